"""Accuracy on faces people marked by hand, ours beside dlib and MediaPipe, in one run.

    python benchmarks/human.py [--models kaggle15,runs/kaggle15-human] [--mediapipe-python PATH]
    python benchmarks/human.py --detectors facemark,runs/finder-hn/finder   # a candidate finder beside the shipped one

Faces: the human-labelled part of the shared data that `splits.held_out` keeps out of every
multi-source recipe (mtfl5 web photos and LFW people hashing to 0 mod 10, InfAnFace's google2
photos). `--holdout google2-half` measures on the faces that rule holds out (half the google2
photos), for a candidate trained on the other half; every shipped model held out those too.
Every tool runs through its own face detector on the whole photo, as a user runs it; a face is
found when a tool's eye midpoint lies within half the inter-pupil distance (IPD) of the
true one. Figures over 5 points (eye centres, nose tip, mouth corners):
- NME: mean point error / true IPD, % (faces found);
- failures: faces with NME > 10 % or missed, % of all faces;
- offsets: each point's mean signed error along the eye line (+ toward the subject's left eye)
  and across it (+ down), % IPD: a labelling convention shows here, not in the NME.
A last row takes the turned heads of the web and LFW rows (TURNED): the nearest this data comes
to a wide-pose set such as AFLW, which has no copy here.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import cv2
import numpy as np

from facemark.defaults import DEFAULT_DETECTOR
from facemark.evaluation import signed_offsets
from facemark.inference import Landmarker
from facemark.readers import read_dataset
from facemark.schemes import CONVERSIONS, IBUG68, MTFL5, convert_points
from facemark.splits import HOLDOUTS, held_out

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SETS = {
    "web photos (mtfl5)": "mtfl5/web",
    "LFW people (mtfl5)": "mtfl5/lfw",
    "infants (InfAnFace)": "infanface-train",
    # Machine labels, for their convention only: a tool that agrees with people shows ytf68's
    # offset here, so after the correction ours and the peers should err the same way.
    "ytf68 test people (machine labels)": "ytf68",
}
HOLDOUT_HELP = "the faces measured: those this rule of facemark.splits.HOLDOUTS keeps out of training"
# Turned heads: the nose tip at least this far (fraction of the IPD) off the eye midline, along
# the eye line; about a fifth of the held-out web photos, a tenth of LFW's (heads turned ~25 deg+).
TURNED, TURNED_FROM = 0.25, ("web photos (mtfl5)", "LFW people (mtfl5)")


def faces_of(folder: str, holdout: str = "sources") -> list[tuple[str, np.ndarray]]:
    data = read_dataset(DATA / folder)
    out = []
    for s in data.samples:
        if held_out(s, holdout):
            five, mask = convert_points(s.points, s.mask, data.scheme, MTFL5)
            if mask.all():
                path = s.source if Path(s.source).is_absolute() or Path(s.source).exists() else DATA / folder / s.source
                out.append((str(path), five.astype(np.float64)))
    return out


def pick(truth: np.ndarray, found: list[np.ndarray]) -> np.ndarray | None:
    """The found face (5 points) whose eye midpoint is nearest the true one, if within IPD / 2."""
    mid, ipd = truth[:2].mean(axis=0), np.hypot(*(truth[1] - truth[0]))
    best = min(found, key=lambda f: np.hypot(*(f[:2].mean(axis=0) - mid)), default=None)
    if best is None or np.hypot(*(best[:2].mean(axis=0) - mid)) > ipd / 2:
        return None
    return best


def ours(model: str, paths: list[str], detector: str) -> list[list[np.ndarray]]:
    """`model` behind `detector`: a detector's name, or a finder bundle folder (a candidate finder)."""
    if Path(detector).is_dir():
        from facemark.finder.runtime import FinderDetector

        detector = FinderDetector(detector)
    lm = Landmarker(model, detector=detector)
    to5 = CONVERSIONS[lm.scheme.name, MTFL5.name]
    return [[to5 @ f.points for f in lm.detect(p)] for p in paths]


def dlib_faces(paths: list[str]) -> list[list[np.ndarray]] | None:
    from peers import dlib_or_none

    dlib = dlib_or_none()
    if dlib is None:
        return None
    to5 = CONVERSIONS[IBUG68.name, MTFL5.name]
    return [[to5 @ f for f in dlib.faces(cv2.imread(p))] for p in paths]


def mediapipe_faces(paths: list[str], python: str | None) -> list[list[np.ndarray]] | None:
    if not python:
        return None
    with tempfile.TemporaryDirectory():
        proc = subprocess.run(
            [python, str(ROOT / "benchmarks" / "peers.py"), "scan"],
            input=json.dumps(paths), capture_output=True, text=True, check=True,
        )  # fmt: skip
    return [[np.array(f) for f in r["mesh"]] for r in json.loads(proc.stdout)]


def turn(five: np.ndarray) -> float:
    """How far the nose tip sits off the eye midline, along the eye line, in IPDs: a head's turn."""
    eyes = five[1] - five[0]
    ipd = np.hypot(*eyes)
    return float(abs(np.dot(five[2] - five[:2].mean(axis=0), eyes / ipd)) / ipd)


def report(title: str, rows: dict[str, dict]) -> None:
    print(f"\n{title}: {next(iter(rows.values()))['n']} held-out faces")
    print(
        f"  {'tool':34} {'found %':>8} {'NME %':>7} {'fail %':>7}   "
        "offsets along/across (% IPD): eyes R, L, nose, mouth R, L"
    )
    for name, r in rows.items():
        offs = " ".join(f"{x:+.1f}/{y:+.1f}" for x, y in r["offsets"].values())
        print(f"  {name:34} {r['found']:8.1f} {r['nme']:7.2f} {r['failures']:7.2f}   {offs}")


def figures(truths: list[np.ndarray], found: list[list[np.ndarray]]) -> dict:
    picked = [pick(t, f) for t, f in zip(truths, found)]
    hit = [i for i, p in enumerate(picked) if p is not None]
    gt = np.stack([truths[i] for i in hit]) if hit else np.zeros((0, 5, 2))
    pred = np.stack([picked[i] for i in hit]) if hit else np.zeros((0, 5, 2))
    ipd = np.hypot(*(gt[:, 1] - gt[:, 0]).T)
    nme = np.linalg.norm(pred - gt, axis=2).mean(axis=1) / ipd * 100
    return {
        "n": len(truths),
        "found": 100 * len(hit) / len(truths),
        "nme": float(nme.mean()) if hit else float("nan"),
        "failures": 100 * (len(truths) - len(hit) + int((nme > 10).sum())) / len(truths),
        "offsets": signed_offsets(pred, gt, MTFL5) if hit else {},
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="kaggle15", help="comma-separated facemark models (names or run folders)")
    p.add_argument("--mediapipe-python", default=None, help="python of a venv with mediapipe==0.10.21")
    p.add_argument(
        "--detectors",
        default=DEFAULT_DETECTOR,
        help="detectors in front of ours, comma-separated: names or finder bundle folders",
    )
    p.add_argument("--json", default=None, help="also write every figure here")
    p.add_argument("--holdout", choices=HOLDOUTS, default="sources", help=HOLDOUT_HELP)
    a = p.parse_args()
    results: dict[str, dict] = {}
    turned: dict[str, tuple[list, list]] = {}  # tool -> (truths, found) of the turned heads
    for title, folder in SETS.items():
        faces = faces_of(folder, a.holdout)
        paths, truths = [f[0] for f in faces], [f[1] for f in faces]
        tools = {f"facemark {m} ({d})": ours(m, paths, d) for m in a.models.split(",") for d in a.detectors.split(",")}
        tools["dlib (HOG + 68 points)"] = dlib_faces(paths)
        tools["MediaPipe face mesh"] = mediapipe_faces(paths, a.mediapipe_python)
        tools = {name: got for name, got in tools.items() if got is not None}
        results[title] = {name: figures(truths, got) for name, got in tools.items()}
        report(title, results[title])
        if title in TURNED_FROM:
            keep = [i for i, t in enumerate(truths) if turn(t) >= TURNED]
            for name, got in tools.items():
                mine = turned.setdefault(name, ([], []))
                mine[0].extend(truths[i] for i in keep)
                mine[1].extend(got[i] for i in keep)
    title = f"turned heads of the web and LFW rows (nose >= {TURNED:.2f} IPD off the eye midline)"
    results[title] = {name: figures(t, f) for name, (t, f) in turned.items()}
    report(title, results[title])
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
