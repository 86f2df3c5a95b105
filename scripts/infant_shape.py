"""Measure the rows of the infant and adult mean faces that `facemark.infant_shape` warps between.

    python scripts/infant_shape.py [--data ../shared/data]

Training faces only (`facemark.splits.held_out` faces are skipped): ytf68's training identities
and InfAnFace's ads/ and youtube2/ photos. Each face is turned so its eye line is level and
scaled by its 68-point box side; the script prints the mean rows below the eye line of the
nose tip, mouth and chin, the eye line's place in the box, and the eye distance in box sides.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def normalised(points: np.ndarray) -> np.ndarray:
    """68 points turned level (eye line) and scaled to a unit box centred at 0."""
    right, left = points[36:42].mean(0), points[42:48].mean(0)
    a = -np.arctan2(*(left - right)[::-1])
    p = (points - points.mean(0)) @ np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    side = max(np.ptp(p[:, 0]), np.ptp(p[:, 1]))
    return (p - (p.min(0) + p.max(0)) / 2) / side


def rows(shapes: np.ndarray) -> dict[str, float]:
    mean = shapes.mean(0)
    eye = mean[36:48, 1].mean()
    return {
        "eye line from box centre": eye,
        "nose tip below eyes": mean[30, 1] - eye,
        "mouth below eyes": mean[48:68, 1].mean() - eye,
        "chin below eyes": mean[8, 1] - eye,
        "eye distance": float(np.linalg.norm(mean[42:48].mean(0) - mean[36:42].mean(0))),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    a = p.parse_args()

    from facemark.errors import FacemarkError
    from facemark.readers import read_pts, read_ytf68
    from facemark.splits import held_out

    data = Path(a.data)
    try:
        adults = [s.points for s in read_ytf68(data / "ytf68", "training") if not held_out(s)]
        infants = [s.points for s in read_pts(data / "infanface-train") if not held_out(s)]
    except FacemarkError as exc:
        print(f"infant_shape: error: {exc}", file=sys.stderr)
        return 2
    groups = {"adults": adults, "infants": infants}
    table = {name: rows(np.array([normalised(q) for q in faces])) for name, faces in groups.items()}
    print(f"box sides        adults ({len(adults)})  infants ({len(infants)})")
    for key in table["adults"]:
        print(f"{key:26s} {table['adults'][key]:+.3f}  {table['infants'][key]:+.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
