"""Why `detect` missed a held-out face: no candidate, candidates of the wrong size, or a fit that
did not settle. Tells which stage a lever for the missed faces has to change.

    python benchmarks/missed.py [--model kaggle15] [--set infants] [--finder DIR]

Faces and the found rule are benchmarks/human.py's. For each missed face it prints the finder's
candidates whose box holds the true eye midpoint (score, box side in IPDs, roll) and each one's
fit (`Landmarker.fit_boxes`, the first fit without the second look): its doubt (face-like within
`MAX_DOUBT`) and how far its eye midpoint lies from the true one, in IPDs (found within 0.5).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from facemark.finder.runtime import FinderDetector
from facemark.imaging import apply, invert, points_box, read_image
from facemark.inference import MAX_DOUBT, Landmarker
from facemark.schemes import CONVERSIONS, MTFL5
from facemark.splits import HOLDOUTS
from human import HOLDOUT_HELP, SETS, faces_of, pick

WRONG_SIZE = 4.0  # a candidate box this many IPDs or more a side frames far more than the face


def diagnose(lm: Landmarker, image: np.ndarray, truth: np.ndarray) -> tuple[str, list[str]]:
    """The stage that lost this face, and a line for the best possible start and each candidate near it."""
    gray, to_photo = lm.working_copy(image)
    true = apply(invert(to_photo), truth)  # into the working copy's pixels
    mid, ipd = true[:2].mean(axis=0), np.hypot(*(true[1] - true[0]))
    roll = float(np.degrees(np.arctan2(*(true[1] - true[0])[::-1])))  # as `FaceBox.roll`
    views = [v for b in lm.detector.detect(gray) for v in (b, *b.other_views)]
    near = [v for v in views if v.x0 <= mid[0] <= v.x1 and v.y0 <= mid[1] <= v.y1]
    # The first fit from each near candidate, and from the best start a candidate could give:
    # the true face's box (the GT-box protocol) at the true roll.
    boxes = np.array([points_box(true, frame=MTFL5.frame)] + [v.as_array() for v in near])
    rolls = np.array([roll] + [v.roll for v in near])
    points, doubt = lm.fit_boxes([gray], [0] * len(boxes), boxes, rolls=rolls)
    off = np.hypot(*(points[:, list(lm.scheme.ocular)].mean(axis=1) - mid).T) / ipd

    def fit(i: int) -> str:
        return f"doubt {doubt[i]:.3f}, eyes off {off[i]:.2f} IPD"

    lines = [f"true roll {roll:4.0f}, IPD {ipd:.0f} px; from the true box: {fit(0)}"]
    lines += [
        f"score {v.score:.2f}, side {v.side / ipd:.1f} IPD, roll {v.roll:4.0f}: {fit(i + 1)}"
        for i, v in enumerate(near)
    ]
    if not near:
        return "no candidate", [*lines, f"{len(views)} candidates elsewhere"]
    if all(v.side / ipd >= WRONG_SIZE for v in near):
        return "wrong size", lines
    return "fit did not settle", lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="kaggle15")
    p.add_argument("--set", default="infants", help="a word of one of benchmarks/human.py's set titles")
    p.add_argument("--finder", default=None, help="a finder bundle folder (default: the shipped one)")
    p.add_argument("--holdout", choices=HOLDOUTS, default="sources", help=HOLDOUT_HELP)
    a = p.parse_args()
    title = next((t for t in SETS if a.set.lower() in t.lower()), None)
    if title is None:
        raise SystemExit(f"--set: none of {', '.join(SETS)} has {a.set!r}")
    lm = Landmarker(a.model, detector=FinderDetector(a.finder))
    to5 = CONVERSIONS[lm.scheme.name, MTFL5.name]
    faces = faces_of(SETS[title], a.holdout)
    stages: dict[str, int] = {}
    for path, truth in faces:
        image = read_image(path)  # decoded once for `detect` and the diagnosis
        if pick(truth, [to5 @ f.points for f in lm.detect(image)]) is not None:
            continue
        stage, lines = diagnose(lm, image, truth)
        stages[stage] = stages.get(stage, 0) + 1
        print(f"{Path(path).name}: {stage}")
        for line in lines:
            print(f"    {line}")
    missed = sum(stages.values())
    print(
        f"\n{title}: {missed} of {len(faces)} missed (MAX_DOUBT {MAX_DOUBT}): "
        + ", ".join(f"{k} {v}" for k, v in stages.items())
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
