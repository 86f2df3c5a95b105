"""Detectors in front of the landmark model: faces found, landmark error through their boxes,
false faces on face-free images, time per photo; and the calibration each adapter ships with.

    python benchmarks/detection.py [--data ../shared/data/ytf68] [--negatives DIR] [--detectors opencv,dlib]
    python benchmarks/detection.py --calibrate DETECTOR

Held-out identities of the model (`facemark evaluate --holdout --box detector` for the errors).
With --negatives (a folder of real face-free photos): false faces on them, and "group photos":
2-5 held-out people pasted side by side at different sizes onto those photos, every face to find.
`--calibrate` fits the raw box -> crop-convention mapping on the *training* identities and prints
the `Calibration(...)` to paste into the adapter in facemark/detection.py.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from facemark.detection import DETECTORS, Calibration, get_detector
from facemark.evaluation import evaluate, holdout
from facemark.imaging import IMAGE_SUFFIXES, points_box, read_image
from facemark.inference import Landmarker
from facemark.readers import Dataset, read_dataset

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ytf68"


def calibrate(name: str, dataset: Dataset, model: str) -> Calibration:
    """Median mapping from the detector's raw boxes to the GT 68-point boxes (square, centred)."""
    detector = get_detector(name)
    people = set(Landmarker(model).config.extra["holdout_identities"])
    rel = []
    for s in dataset.samples:
        if s.identity in people:
            continue
        gt = points_box(s.points, s.mask)
        side = max(gt[2] - gt[0], gt[3] - gt[1])
        centre = (gt[:2] + gt[2:]) / 2
        for x, y, w, h, _ in detector._raw(s.image):
            w = max(w, h)
            c = np.array([x + w / 2, y + h / 2])
            if np.all(np.abs(c - centre) < side / 2):
                rel.append([*(centre - c) / w, side / w])
    dx, dy, scale = np.median(np.array(rel), axis=0)
    print(f"{name}: {len(rel)} boxes matched on training identities")
    return Calibration(round(float(dx), 3), round(float(dy), 3), round(float(scale), 3))


def false_faces(landmarker: Landmarker, images: list[Path]) -> int:
    return sum(len(landmarker.detect(read_image(p))) for p in images)


def group_photos(dataset: Dataset, root: Path, backgrounds: list[Path], n: int = 12, seed: int = 0):
    """(photo, true boxes) pairs: frames of different held-out people pasted onto real backgrounds."""
    rng = np.random.default_rng(seed)
    people: dict[str, str] = {}
    for s in dataset.samples:
        people.setdefault(s.identity, s.source)
    sources = [people[k] for k in sorted(people)]
    for g in range(n):
        photo = cv2.resize(read_image(backgrounds[g % len(backgrounds)], gray=False), (960, 540))
        boxes, x = [], 20
        for k in rng.choice(len(sources), int(rng.integers(2, 6)), replace=False):
            face = read_image(root / sources[k], gray=False)
            h = int(rng.integers(140, 260))
            w = int(face.shape[1] * h / face.shape[0])
            if x + w > 950:
                break
            y = int(rng.integers(10, 540 - h - 10))
            photo[y : y + h, x : x + w] = cv2.resize(face, (w, h), interpolation=cv2.INTER_AREA)
            boxes.append((x, y, x + w, y + h))
            x += w + int(rng.integers(10, 40))
        yield photo, boxes


def group_figures(landmarker: Landmarker, held: Dataset, root: Path, backgrounds: list[Path]) -> tuple[int, int, int]:
    """Faces found in the group photos, faces pasted there, and found faces that are not faces."""
    total = found = false = 0
    for photo, boxes in group_photos(held, root, backgrounds):
        faces = landmarker.detect(photo)
        total += len(boxes)
        found += sum(any(f.centred_in(b) for f in faces) for b in boxes)
        false += sum(not any(f.centred_in(b) for b in boxes) for f in faces)
    return found, total, false


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--model", default="kaggle15")
    ap.add_argument("--detectors", default=None, help="comma-separated (default: every one installed)")
    ap.add_argument("--negatives", default=None, help="a folder of face-free photos: every face found is false")
    ap.add_argument("--calibrate", default=None, metavar="DETECTOR")
    a = ap.parse_args()
    dataset = read_dataset(a.data)
    if a.calibrate:
        print(calibrate(a.calibrate, dataset, a.model))
        return
    names = a.detectors.split(",") if a.detectors else [n for n in DETECTORS if _installed(n)]
    negatives = (
        sorted(p for p in Path(a.negatives).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if a.negatives else []
    )
    print(f"{'detector':10} {'found %':>8} {'nme_io %':>9} {'rmse_96':>8} {'fr_10 %':>8} {'ms/photo':>9}"
          f" {'false':>7} {'group photos':>14}")  # fmt: skip
    for name in names:
        landmarker = Landmarker(a.model, detector=name)
        held = holdout(dataset, landmarker.config)
        t = time.perf_counter()
        report = evaluate(landmarker, held, box="detector")
        ms = (time.perf_counter() - t) / len(held) * 1000
        false = f"{false_faces(landmarker, negatives)}/{len(negatives)}" if negatives else "-"
        groups = (
            "{} of {}, {} false".format(*group_figures(landmarker, held, Path(a.data), negatives)) if negatives else "-"
        )
        m = report.metrics
        print(
            f"{name:10} {report.detection_rate:8.2f} {m.nme_io:9.3f}"
            f" {m.rmse_96:8.3f} {m.fr_10:8.2f} {ms:9.1f} {false:>7} {groups:>14}"
        )
    print(f"({len(held)} held-out faces; errors over the faces found, in the GT box's 96 px frame;")
    print(" false: faces found in the face-free photos; group photos: faces found of those pasted, false finds)")


def _installed(name: str) -> bool:
    try:
        get_detector(name)
        return True
    except Exception:
        return False


if __name__ == "__main__":
    main()
