"""Accuracy of the shipped models and the peers on the same held-out faces, in one table.

    python benchmarks/accuracy.py [--data ../shared/data/ytf68] [--mediapipe-python PATH]

Faces: the ytf68 identities the shipped models' training held out (never seen in training).
- ours, kaggle15: Kaggle-format 96x96 crops of those faces (written to a temporary
  training.csv and read back, so the Kaggle reader and `evaluate` run as a user runs them);
- ours, ibug68: the GT-box protocol on the original images;
- peers with their own face detectors (dlib HOG, MediaPipe's detector), scored in the same
  96x96 kaggle15 frame; their errors are over the faces they found.
Peers follow other annotation conventions (brow ends, lip centres): the per-point table shows
where that costs them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from facemark.bundle import DEFAULT_CROPS
from facemark.evaluation import evaluate, holdout
from facemark.imaging import apply, crop_face, crop_matrix, points_box
from facemark.inference import Landmarker
from facemark.metrics import Metrics, compute_metrics
from facemark.readers import Dataset, Sample, read_dataset, write_kaggle_csv
from facemark.schemes import IBUG68, KAGGLE15, convert_points

ROOT = Path(__file__).resolve().parents[1]


def kaggle_crops(ds: Dataset) -> list[Sample]:
    """96x96 crops in the Kaggle framing (the kaggle15 model's crop of the GT box)."""
    out = []
    for s in ds.samples:
        crop, m = crop_face(s.image, points_box(s.points, s.mask), DEFAULT_CROPS["kaggle15"])
        pts, mask = convert_points(apply(m, s.points), s.mask, IBUG68, KAGGLE15)
        out.append(Sample(crop, pts, mask, s.identity, s.source))
    return out


def frame_matrices(ds: Dataset) -> list[np.ndarray]:
    return [crop_matrix(points_box(s.points, s.mask), DEFAULT_CROPS["kaggle15"]) for s in ds.samples]


def score_peer(ds: Dataset, found: list[np.ndarray | None]) -> tuple[Metrics, float]:
    """kaggle15 metrics of peer points (original pixels) in the same 96 frame; detection rate %."""
    preds, gts = [], []
    for s, m, pts in zip(ds.samples, frame_matrices(ds), found):
        if pts is None:
            continue
        gt, _ = convert_points(apply(m, s.points), s.mask, IBUG68, KAGGLE15)
        preds.append(apply(m, pts))
        gts.append(gt)
    rate = 100.0 * len(preds) / len(ds)
    return compute_metrics(np.stack(preds), np.stack(gts), KAGGLE15), rate


def run_dlib(ds: Dataset, root: Path) -> tuple[list | None, list | None]:
    import cv2

    from peers import dlib_or_none

    dlib = dlib_or_none()
    if dlib is None:
        return None, None
    k15, k68 = [], []
    for s in ds.samples:
        rgb = cv2.cvtColor(cv2.imread(str(root / s.source)), cv2.COLOR_BGR2RGB)
        pts = dlib.detect(rgb, points_box(s.points, s.mask))
        k68.append(pts)
        k15.append(None if pts is None else convert_points(pts, np.ones(68, bool), IBUG68, KAGGLE15)[0])
    return k15, k68


def run_mediapipe(ds: Dataset, root: Path, python: str | None) -> list | None:
    if not python:
        return None
    paths = [str(root / s.source) for s in ds.samples]
    proc = subprocess.run(
        [python, str(Path(__file__).with_name("peers.py"))], input=json.dumps(paths), capture_output=True, text=True
    )
    if proc.returncode:
        print(f"mediapipe failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return [None if p is None else np.array(p) for p in json.loads(proc.stdout)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "ytf68"))
    p.add_argument("--mediapipe-python", default=None, help="python of a venv with mediapipe==0.10.21")
    p.add_argument("--json", default=None, help="also write all figures to this JSON file")
    a = p.parse_args()

    k15, i68 = Landmarker("kaggle15"), Landmarker("ibug68")
    ds = holdout(read_dataset(a.data), k15.config)
    rows: dict[str, tuple[Metrics, float]] = {}

    with tempfile.TemporaryDirectory() as tmp:
        write_kaggle_csv(Path(tmp) / "training.csv", kaggle_crops(ds))
        kaggle_ds = read_dataset(Path(tmp) / "training.csv")
    rows["facemark kaggle15 (Kaggle-format crops)"] = (evaluate(k15, kaggle_ds).metrics, 100.0)
    rows["facemark kaggle15 (GT box)"] = (evaluate(k15, ds).metrics, 100.0)
    through = evaluate(k15, ds, box="detector")
    rows["facemark kaggle15 (own opencv detector)"] = (through.metrics, through.detection_rate)
    ds68 = holdout(read_dataset(a.data), i68.config)
    rows["facemark ibug68 (GT box, 68 points)"] = (evaluate(i68, ds68).metrics, 100.0)

    root = Path(a.data)
    dlib15, dlib68 = run_dlib(ds, root)
    if dlib15 is not None:
        rows["dlib (own detector)"] = score_peer(ds, dlib15)
        found = [(s, m, pts) for s, m, pts in zip(ds.samples, frame_matrices(ds), dlib68) if pts is not None]
        gts = np.stack([apply(m, np.where(s.mask[:, None], s.points, np.nan)) for s, m, _ in found])
        preds = np.stack([apply(m, pts) for _, m, pts in found])
        rows["dlib (own detector, 68 points)"] = (compute_metrics(preds, gts, IBUG68), 100.0 * len(found) / len(ds))
    mp_points = run_mediapipe(ds, root, a.mediapipe_python)
    if mp_points is not None:
        rows["MediaPipe face mesh (own detector)"] = score_peer(ds, mp_points)

    print(f"held-out identities: {len({s.identity for s in ds.samples})}, images: {len(ds)}")
    print(f"{'model':<42} {'found %':>8} {'rmse_96':>8} {'nme_io %':>9} {'fr_10 %':>8} {'auc_10':>7}")
    for name, (m, rate) in rows.items():
        print(f"{name:<42} {rate:8.1f} {m.rmse_96:8.3f} {m.nme_io:9.3f} {m.fr_10:8.2f} {m.auc_10:7.3f}")
    k15_rows = {n: m for n, (m, _) in rows.items() if "68 points" not in n}
    print("\nper-point mean error, px of the 96x96 kaggle15 frame:")
    tags = {"crops": " crops", "opencv detector": " det"}
    short = [
        n.split(" (")[0].replace("facemark ", "") + "".join(t for k, t in tags.items() if k in n) for n in k15_rows
    ]
    print(f"{'point':<26}" + "".join(f"{s[:14]:>15}" for s in short))
    for point in KAGGLE15.point_names:
        print(f"{point:<26}" + "".join(f"{m.per_point[point]:15.2f}" for m in k15_rows.values()))
    if a.json:
        data = {n: {**m.to_dict(), "found": rate} for n, (m, rate) in rows.items()}
        Path(a.json).write_text(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main())
