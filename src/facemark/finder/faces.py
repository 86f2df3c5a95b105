"""The faces the finder learns from: every labelled face of the shared data sets, cut out with
its surroundings as a small gray patch, with its crop-convention box and five keypoints.

Why patches: scenes are composed from thousands of faces per minute; a patch of 2.4 box sides at
most PATCH_SIDE px keeps the pool in memory (~0.3 GB for 11k faces) and every warp cheap. Faces
the labels do not mention (the web and infant photos may show other people) are found with the
OpenCV cascade and kept as `unsure`, so they are never taught as background.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facemark.errors import FacemarkError
from facemark.imaging import cv2, points_box
from facemark.readers import read_dataset
from facemark.schemes import MTFL5, convert_points
from facemark.splits import held_out

MARGIN = 1.2  # patch half-width in box sides: context around the face (hair, shoulders, background)
STORED_SIDE = 72  # px: a face box is stored at most this large (scenes scale it anyway)


@dataclass
class FacePatch:
    """One labelled face: a gray patch, its box centre and side and keypoints in patch pixels,
    and unlabelled faces seen in the patch (centre x, y, side)."""

    patch: np.ndarray
    centre: np.ndarray
    side: float
    keypoints: np.ndarray  # (5, 2)
    unsure: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))
    source: str = ""  # its SOURCES name, so a recipe can weight the sources


# The data sets the finder learns from (folders under the data root); which faces of each are
# held out is `facemark.splits.held_out`, the rule the landmark recipes validate with too.
SOURCES = {"ytf68": "ytf68", "mtfl5-web": "mtfl5/web", "mtfl5-lfw": "mtfl5/lfw", "infanface": "infanface-train"}


def load_faces(
    data_root: str | Path, part: str = "train", sources: tuple[str, ...] = tuple(SOURCES), holdout: str = "sources"
) -> list[FacePatch]:
    """Face patches of the `train` or `val` part (`splits.held_out` under `holdout`) of each
    named source under `data_root`."""
    root = Path(data_root)
    out: list[FacePatch] = []
    for name in sources:
        folder = root / SOURCES[name]
        if not folder.exists():
            raise FacemarkError(f"{folder}: missing (the finder trains on {', '.join(SOURCES)} under {root})")
        data = read_dataset(folder)
        look_around = name in ("mtfl5-web", "infanface")
        cascade = unsure_finder() if look_around else None
        for s in data.samples:
            if held_out(s, holdout) != (part == "val"):
                continue
            kp, kp_mask = convert_points(s.points, s.mask, data.scheme, MTFL5)
            if not kp_mask.all():
                continue
            box = points_box(s.points, s.mask, data.scheme.frame)
            out.append(_patch(s.image, box, kp, other_faces(cascade, s.image, box) if cascade else None, name))
    return out


def unsure_finder():
    """The detector that finds the faces labels do not mention (so they are never background)."""
    from facemark.detection import OpenCVDetector

    return OpenCVDetector(min_neighbors=2)


def other_faces(detector, image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Other faces the cascade sees in the photo: (centre x, centre y, side) rows."""
    from facemark.detection import FaceBox, iou

    labelled = FaceBox(*box)
    found = [b for b in detector.detect(image) if iou(b, labelled) < 0.2]
    return np.array([[*b.centre, b.side] for b in found], np.float32).reshape(-1, 3)


def _patch(image: np.ndarray, box: np.ndarray, keypoints: np.ndarray, others, source: str) -> FacePatch:
    side = float(max(box[2] - box[0], box[3] - box[1]))
    centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
    h, w = image.shape
    half = MARGIN * side
    x0, y0 = max(0, int(np.floor(centre[0] - half))), max(0, int(np.floor(centre[1] - half)))
    x1, y1 = min(w, int(np.ceil(centre[0] + half)) + 1), min(h, int(np.ceil(centre[1] + half)) + 1)
    patch = image[y0:y1, x0:x1]
    k = min(1.0, STORED_SIDE / side)
    offset = np.array([x0, y0], np.float64)
    if k < 1.0:
        new = (max(1, round(patch.shape[1] * k)), max(1, round(patch.shape[0] * k)))
        patch = cv2.resize(patch, new, interpolation=cv2.INTER_AREA)
        kx, ky = new[0] / (x1 - x0), new[1] / (y1 - y0)
    else:
        kx = ky = 1.0

    def to_patch(p):
        p = np.asarray(p, np.float64) - offset
        return np.stack([(p[..., 0] + 0.5) * kx - 0.5, (p[..., 1] + 0.5) * ky - 0.5], axis=-1)

    unsure = np.zeros((0, 3), np.float32)
    if others is not None and len(others):
        unsure = np.column_stack([to_patch(others[:, :2]), others[:, 2] * kx]).astype(np.float32)
    return FacePatch(
        np.ascontiguousarray(patch), to_patch(centre), side * kx, to_patch(keypoints).astype(np.float32), unsure, source
    )


def save_faces(faces: list[FacePatch], path: Path) -> None:
    """The pool as one .npz (patches concatenated), so a resumed run skips the slow reading."""
    flat = np.concatenate([f.patch.ravel() for f in faces])
    np.savez(
        path,
        pixels=flat,
        shapes=np.array([f.patch.shape for f in faces], np.int32),
        centres=np.array([f.centre for f in faces], np.float32),
        sides=np.array([f.side for f in faces], np.float32),
        keypoints=np.array([f.keypoints for f in faces], np.float32),
        unsure=np.concatenate([f.unsure for f in faces] + [np.zeros((0, 3), np.float32)]),
        unsure_counts=np.array([len(f.unsure) for f in faces], np.int32),
        sources=np.array([f.source for f in faces], dtype=str),
    )


def read_faces(path: Path) -> list[FacePatch]:
    with np.load(path, allow_pickle=False) as z:
        shapes, pixels = z["shapes"], z["pixels"]
        ends = np.cumsum(shapes[:, 0] * shapes[:, 1])
        u_ends = np.cumsum(z["unsure_counts"])
        sources = z["sources"] if "sources" in z.files else np.full(len(shapes), "")
        return [
            FacePatch(
                pixels[e - h * w : e].reshape(h, w),
                z["centres"][i].astype(np.float64),
                float(z["sides"][i]),
                z["keypoints"][i],
                z["unsure"][ue - n : ue],
                str(sources[i]),
            )
            for i, ((h, w), e, ue, n) in enumerate(zip(shapes, ends, u_ends, z["unsure_counts"]))
        ]
