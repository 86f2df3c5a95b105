"""Detectors in front of the landmark model: faces found, landmark error through their boxes,
false faces on face-free images, time per photo; and the calibration each adapter ships with.

    python benchmarks/detection.py [--data ../shared/data/ytf68] [--negatives DIR] [--detectors opencv,dlib]
    python benchmarks/detection.py --calibrate DETECTOR

Held-out identities of the model (`facemark evaluate --holdout --box detector` for the errors).
`--calibrate` fits the raw box -> crop-convention mapping on the *training* identities and prints
the `Calibration(...)` to paste into the adapter in facemark/detection.py.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from facemark.detection import DETECTORS, Calibration, get_detector
from facemark.evaluation import evaluate, holdout
from facemark.imaging import points_box, read_image
from facemark.inference import Landmarker
from facemark.readers import IMAGE_SUFFIXES, Dataset, read_dataset

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


def false_faces(landmarker: Landmarker, folder: Path) -> tuple[int, int]:
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return sum(len(landmarker.detect(read_image(p))) for p in images), len(images)


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
    print(f"{'detector':10} {'found %':>8} {'nme_io %':>9} {'rmse_96':>8} {'fr_10 %':>8} {'ms/photo':>9} {'false':>7}")
    for name in names:
        landmarker = Landmarker(a.model, detector=name)
        held = holdout(dataset, landmarker.config)
        t = time.perf_counter()
        report = evaluate(landmarker, held, box="detector")
        ms = (time.perf_counter() - t) / len(held) * 1000
        false = "{}/{}".format(*false_faces(landmarker, Path(a.negatives))) if a.negatives else "-"
        m = report.metrics
        print(
            f"{name:10} {report.detection_rate:8.2f} {m.nme_io:9.3f}"
            f" {m.rmse_96:8.3f} {m.fr_10:8.2f} {ms:9.1f} {false:>7}"
        )
    print(f"({len(held)} held-out faces; errors over the faces found, in the GT box's 96 px frame)")


def _installed(name: str) -> bool:
    try:
        get_detector(name)
        return True
    except Exception:
        return False


if __name__ == "__main__":
    main()
