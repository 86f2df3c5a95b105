"""Label conventions: where one data set's labeller puts a point relative to where people do.

ytf68's machine labeller puts points lower and to image-right of human marks (docs/training.md).
An offset is measured per point in the face's own frame (along the eye-centre line, + toward the
subject's left eye, and across it, + down; % of the inter-pupil distance), and a data set's
labels are corrected by subtracting it before training, so a model learns the human convention.
Points no human set marks take the offset of the nearest point that one does (NEAREST).
"""

from __future__ import annotations

import numpy as np

from facemark.schemes import CONVERSIONS, IBUG68, MTFL5, Scheme

# Points with no human-marked counterpart in mtfl5 -> the measured points they follow.
NEAREST = {
    "left_eye_inner_corner": ["left_eye_center"],
    "left_eye_outer_corner": ["left_eye_center"],
    "left_eyebrow_inner_end": ["left_eye_center"],
    "left_eyebrow_outer_end": ["left_eye_center"],
    "right_eye_inner_corner": ["right_eye_center"],
    "right_eye_outer_corner": ["right_eye_center"],
    "right_eyebrow_inner_end": ["right_eye_center"],
    "right_eyebrow_outer_end": ["right_eye_center"],
    "mouth_center_top_lip": ["mouth_left_corner", "mouth_right_corner"],
    "mouth_center_bottom_lip": ["mouth_left_corner", "mouth_right_corner"],
}
_MOUTH = ["mouth_left_corner", "mouth_right_corner"]
# ibug68 points by region (0-based; the jaw runs from the subject's right temple to the left).
_IBUG_REGIONS = (
    (range(0, 3), ["right_eye_center"]),
    (range(3, 7), ["mouth_right_corner"]),
    (range(7, 10), _MOUTH),
    (range(10, 14), ["mouth_left_corner"]),
    (range(14, 17), ["left_eye_center"]),
    (range(17, 22), ["right_eye_center"]),  # right brow
    (range(22, 27), ["left_eye_center"]),
    (range(27, 36), ["nose_tip"]),
    (range(36, 42), ["right_eye_center"]),
    (range(42, 48), ["left_eye_center"]),
    ((48, 49, 50, 58, 59, 60, 61, 67), ["mouth_right_corner"]),
    ((51, 57, 62, 66), _MOUTH),
    ((52, 53, 54, 55, 56, 63, 64, 65), ["mouth_left_corner"]),
)
NEAREST.update({IBUG68.point_names[i]: measured for points, measured in _IBUG_REGIONS for i in points})


def spread(measured: dict[str, tuple[float, float]], scheme: Scheme) -> dict[str, list[float]]:
    """Offsets for every point of `scheme` from those measured on a few (NEAREST fills the rest)."""
    out = {}
    for name in scheme.point_names:
        sources = [name] if name in measured else NEAREST.get(name, [])
        if sources and all(s in measured for s in sources):
            out[name] = [round(float(np.mean([measured[s][k] for s in sources])), 3) for k in (0, 1)]
    return out


def eye_frame(points: np.ndarray, scheme: Scheme) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per face (N, K, 2): unit vector along the eye-centre line (image right for an upright
    face), the one across it (down), and the inter-pupil distance (NaN without both eyes)."""
    to5 = CONVERSIONS[scheme.name, MTFL5.name][:2] if scheme != MTFL5 else np.eye(MTFL5.num_points)[:2]
    used = to5 > 0
    eyes = np.einsum("tk,nkc->ntc", to5, np.nan_to_num(points))
    missing = np.array([np.isnan(points[:, u, 0]).any(axis=1) for u in used]).any(axis=0)
    d = eyes[:, 1] - eyes[:, 0]
    ipd = np.where(missing, np.nan, np.linalg.norm(d, axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        u = d / ipd[:, None]
    return u, np.stack([-u[:, 1], u[:, 0]], axis=-1), ipd


def corrected(points: np.ndarray, offsets: dict[str, list[float]], scheme: Scheme) -> np.ndarray:
    """Labels (N, K, 2; NaN = missing) moved by minus each point's offset, in each face's own frame.
    Faces without both eye centres are left as they are."""
    points = np.asarray(points, dtype=np.float64)
    shift = np.zeros((scheme.num_points, 2))
    for name, (along, across) in offsets.items():
        shift[scheme.point_names.index(name)] = along, across
    u, v, ipd = eye_frame(points, scheme)
    move = (shift[None, :, :1] * u[:, None] + shift[None, :, 1:] * v[:, None]) * ipd[:, None, None] / 100
    ok = np.isfinite(ipd)[:, None, None]
    return np.where(ok, points - np.nan_to_num(move), points).astype(np.float32)
