"""Hard negatives for the finder: what the shipped pipeline takes for a face and is not one.

Why: on real photos the finder proposes clothing, hands, hair and parts of faces, and each such
candidate costs `detect` a second look (in benchmarks/finder.py 1,041 looks found 39 faces).
The synthetic scenes' backgrounds (face-free photos, textures) do not show these. So each
training photo (held-out people excluded) runs through the shipped finder and landmark model;
a candidate that no face settles in, away from the labelled face and from faces the OpenCV
cascade sees there, is cut out with some context and pasted into scenes as background.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facemark.errors import FacemarkError
from facemark.finder.faces import SOURCES, other_faces, unsure_finder
from facemark.imaging import cv2, points_box, to_gray
from facemark.readers import read_dataset
from facemark.splits import held_out

CONTEXT = 1.5  # a negative's patch side in its candidate box's sides: what the network saw around it
STORED = 48  # px: a patch is stored this large (scenes scale it anyway)
FAR = 0.1  # default share of a known face's box a negative's patch may cover (parts of faces pass)


def mine_negatives(
    data_root: str | Path, sources: tuple[str, ...], landmarker=None, far: float = FAR, log=print
) -> list[np.ndarray]:
    """Patches (STORED px squares, gray) of the shipped pipeline's false candidates in the
    training photos of `sources` (SOURCES names); `landmarker` defaults to the shipped one. A
    candidate's patch may cover at most `far` of a known face's box: at 0.1 most negatives are
    parts of the labelled face (an eye, an ear, a mouth); at 0 none is."""
    if landmarker is None:
        from facemark.inference import Landmarker

        landmarker = Landmarker("kaggle15")
    cascade = unsure_finder()
    out: list[np.ndarray] = []
    for name in sources:
        folder = Path(data_root) / SOURCES[name]
        if not folder.exists():
            raise FacemarkError(f"{folder}: missing (hard negatives are mined from {name} there)")
        data = read_dataset(folder)
        before = len(out)
        for s in data.samples:
            if held_out(s):
                continue
            gray = to_gray(s.image)
            labelled = points_box(s.points, s.mask, data.scheme.frame)
            known = [labelled] + [_square(cx, cy, side) for cx, cy, side in other_faces(cascade, gray, labelled)]
            known += [np.asarray(f.box) for f in landmarker.detect(gray)]
            for box in landmarker.detector.detect(gray):
                patch = _negative(gray, box.as_array(), known, far)
                if patch is not None:
                    out.append(patch)
        log(f"hard negatives: {len(out) - before} from {name}")
    return out


def _square(cx: float, cy: float, side: float) -> np.ndarray:
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])


def _intersection(a: np.ndarray, b: np.ndarray) -> float:
    """The area two (x0, y0, x1, y1) boxes share."""
    return float(np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None).prod())


def _negative(gray: np.ndarray, box: np.ndarray, known: list[np.ndarray], far: float = FAR) -> np.ndarray | None:
    """The candidate `box`'s patch with context, or None where it would show a known face or
    leave the photo (a replicated border would teach streaks)."""
    cx, cy = (box[:2] + box[2:]) / 2
    side = (box[2] - box[0]) * CONTEXT
    region = _square(cx, cy, side)
    h, w = gray.shape
    if region[0] < 0 or region[1] < 0 or region[2] > w or region[3] > h:
        return None
    for face in known:
        if _intersection(region, face) > far * np.prod(face[2:] - face[:2]):
            return None
    x0, y0, x1, y1 = (int(round(v)) for v in region)
    if min(x1 - x0, y1 - y0) < 8:
        return None
    return cv2.resize(gray[y0:y1, x0:x1], (STORED, STORED), interpolation=cv2.INTER_AREA)


def save_negatives(patches: list[np.ndarray], path: Path) -> None:
    np.savez(path, patches=np.array(patches, np.uint8).reshape(-1, STORED, STORED))


def read_negatives(path: Path) -> list[np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return list(z["patches"])
