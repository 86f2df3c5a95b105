"""What the finder's output cells mean, in both directions (numpy; decoding uses one OpenCV dilation).

Each cell of the stride-8 output holds CHANNELS numbers: a face-centre logit, the centre's offset
from the cell centre (in cells), log(box side / stride), and the five keypoints relative to the
centre in units of the box side. The box is the landmark models' crop convention (the square
around the 68 iBUG points), so the finder feeds every landmark model without a calibration.

Training targets are CenterNet-style: a Gaussian bump per face (exactly 1 in the centre's cell),
regression targets on the cells near each centre, weighted by the bump, and a weight map that
switches the score loss off where a face is outside the band of sizes learnt or may be unlabelled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facemark.imaging import cv2

STRIDE = 8
KEYPOINTS = 5  # right eye centre, left eye centre, nose tip, right mouth corner, left mouth corner
CHANNELS = 4 + 2 * KEYPOINTS  # score logit, centre offset (2), log side, keypoints (10)
TARGETS = 3 + CHANNELS - 1  # heat, regression weight, score weight, then the 13 regression targets
PRIOR_LOGIT = -4.6  # sigmoid ~ 0.01: almost every cell is background, so the score starts there
MIN_SIDE = 16.0  # px: smaller faces are neither taught as faces nor as background
# px: larger faces are found at a coarser level of the photo's pyramid (runtime.py), so the
# network learns one band of sizes well; in training they carry no score loss at their centre.
MAX_SIDE = 96.0
REGRESS_FROM = 0.3  # cells whose bump is at least this learn the face's geometry


@dataclass(frozen=True)
class Face:
    """A face in pixel coordinates (pixel centres at integers): crop-convention box centre and
    side, and its five keypoints (5, 2)."""

    centre: tuple[float, float]
    side: float
    keypoints: np.ndarray


def sigma_cells(side: float) -> float:
    """The bump's width: wider for larger faces, whose centre a cell can place less exactly."""
    return max(0.6, 0.08 * side / STRIDE)


def encode(faces: list[Face], unsure: list[Face], shape: tuple[int, int]) -> np.ndarray:
    """(H/8, W/8, TARGETS) float32 targets for an image of `shape` (H, W) holding `faces`;
    `unsure` faces (possibly unlabelled ones) get no score loss around their centre."""
    gh, gw = shape[0] // STRIDE, shape[1] // STRIDE
    out = np.zeros((gh, gw, TARGETS), np.float32)
    out[..., 2] = 1.0
    gy, gx = np.mgrid[0:gh, 0:gw].astype(np.float32)
    owner = np.zeros((gh, gw), np.float32)  # the largest bump so far: a cell learns its nearest face
    for face in faces:
        cx, cy = _cell(face.centre)
        if not MIN_SIDE <= face.side <= MAX_SIDE:
            _unsure(out, cx, cy, face.side)
            continue
        s = sigma_cells(face.side)
        bump = np.exp(-((gx - cx) ** 2 + (gy - cy) ** 2) / (2 * s * s))
        ix, iy = int(np.floor(cx + 0.5)), int(np.floor(cy + 0.5))
        if 0 <= ix < gw and 0 <= iy < gh:
            bump[iy, ix] = 1.0
        out[..., 0] = np.maximum(out[..., 0], bump)
        mine = (bump >= REGRESS_FROM) & (bump > owner)
        if not mine.any():
            continue
        owner[mine] = bump[mine]
        out[..., 1][mine] = bump[mine]
        out[..., 3][mine] = (cx - gx)[mine]
        out[..., 4][mine] = (cy - gy)[mine]
        out[..., 5][mine] = np.log(face.side / STRIDE)
        rel = (np.asarray(face.keypoints, np.float32) - np.asarray(face.centre, np.float32)) / face.side
        out[..., 6:][mine] = rel.reshape(-1)
    for face in unsure:
        _unsure(out, *_cell(face.centre), face.side)
    return out


def _cell(point) -> tuple[float, float]:
    """A pixel position in cell units: cell j's centre is pixel STRIDE * j + (STRIDE - 1) / 2."""
    return (point[0] - (STRIDE - 1) / 2) / STRIDE, (point[1] - (STRIDE - 1) / 2) / STRIDE


def _unsure(out: np.ndarray, cx: float, cy: float, side: float) -> None:
    r = max(1.0, side / STRIDE / 4)
    y0, y1 = max(0, int(np.floor(cy - r))), min(out.shape[0], int(np.ceil(cy + r)) + 1)
    x0, x1 = max(0, int(np.floor(cx - r))), min(out.shape[1], int(np.ceil(cx + r)) + 1)
    out[y0:y1, x0:x1, 2] = np.where(out[y0:y1, x0:x1, 0] >= 1.0, 1.0, 0.0)


def decode(maps: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Raw network maps (H/8, W/8, CHANNELS) -> faces scoring at least `threshold` at a local
    maximum: scores (N,), centres (N, 2), sides (N,), keypoints (N, 5, 2), in input pixels.
    Maxima are found on the logits (the sigmoid keeps their order) by a 3x3 dilation, which
    costs a tenth of shifting a padded map nine times: it runs on every pyramid level and view."""
    logit = np.ascontiguousarray(maps[..., 0], dtype=np.float32)
    least = _logit(threshold)
    if not logit.size or logit.max() < least:  # a view without a candidate (most, on face-free photos)
        return np.zeros(0), np.zeros((0, 2)), np.zeros(0), np.zeros((0, KEYPOINTS, 2))
    neighbours = cv2.dilate(logit, np.ones((3, 3), np.uint8))  # out-of-map cells count as -inf
    iy, ix = np.nonzero((logit >= neighbours) & (logit >= least))
    cells = maps[iy, ix].astype(np.float64)
    cx = (ix + cells[:, 1]) * STRIDE + (STRIDE - 1) / 2
    cy = (iy + cells[:, 2]) * STRIDE + (STRIDE - 1) / 2
    side = np.exp(np.clip(cells[:, 3], -2.0, 8.0)) * STRIDE
    centres = np.stack([cx, cy], axis=1)
    keypoints = centres[:, None, :] + cells[:, 4:].reshape(-1, KEYPOINTS, 2) * side[:, None, None]
    return 1 / (1 + np.exp(-cells[:, 0])), centres, side, keypoints


def _logit(p: float) -> float:
    """The logit whose sigmoid is `p` (-inf for p <= 0, inf for p >= 1)."""
    if p <= 0:
        return -np.inf
    return np.inf if p >= 1 else float(np.log(p / (1 - p)))
