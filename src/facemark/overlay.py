"""Face filters: an RGBA picture pinned to named landmarks, following position, size and roll.

An `Overlay` is a picture with alpha plus anchors: which kaggle15 landmark each of a few of its
pixels belongs on. A least-squares similarity transform maps the anchors onto the face's points
and the picture is warped and alpha-blended there. The shipped overlays are drawn by the code
below (no third-party art).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facemark.errors import FacemarkError
from facemark.imaging import cv2, read_image, similarity
from facemark.inference import FaceLandmarks
from facemark.schemes import KAGGLE15, convert_points


@dataclass
class Overlay:
    rgba: np.ndarray  # (H, W, 4) uint8, BGR + alpha
    anchors: dict[str, tuple[float, float]]  # kaggle15 point name -> pixel of the picture

    def __post_init__(self) -> None:
        if self.rgba.ndim != 3 or self.rgba.shape[2] != 4:
            raise FacemarkError("the overlay picture has no alpha channel (it must be an RGBA PNG)")
        if len(self.anchors) < 2:
            raise FacemarkError("an overlay needs at least two anchors (e.g. left_eye_center and right_eye_center)")
        h, w = self.rgba.shape[:2]
        for name, (x, y) in self.anchors.items():
            if name not in KAGGLE15.point_names:
                raise FacemarkError(f"unknown anchor point {name!r}; use kaggle15 names such as left_eye_center")
            if not (0 <= x <= w - 1 and 0 <= y <= h - 1):
                raise FacemarkError(f"anchor {name} at ({x:g}, {y:g}) lies outside the {w}x{h} overlay picture")


def _sunglasses() -> Overlay:
    img = np.zeros((150, 420, 4), np.uint8)
    for cx in (110, 310):  # the subject's right eye is on the picture's left
        cv2.ellipse(img, (cx, 75), (88, 58), 0, 0, 360, (30, 30, 30, 235), -1, cv2.LINE_AA)
        cv2.ellipse(img, (cx, 75), (88, 58), 0, 0, 360, (10, 10, 10, 255), 8, cv2.LINE_AA)
        cv2.ellipse(img, (cx - 30, 55), (22, 10), -20, 0, 360, (200, 200, 200, 150), -1, cv2.LINE_AA)
    cv2.line(img, (190, 60), (230, 60), (10, 10, 10, 255), 10, cv2.LINE_AA)
    return Overlay(img, {"right_eye_center": (110.0, 75.0), "left_eye_center": (310.0, 75.0)})


def _moustache() -> Overlay:
    img = np.zeros((110, 320, 4), np.uint8)
    for side in (-1, 1):
        pts = np.array([[160, 40], [160 + side * 60, 20], [160 + side * 135, 45], [160 + side * 150, 25],
                        [160 + side * 140, 70], [160 + side * 70, 75], [160, 62]], np.int32)  # fmt: skip
        cv2.fillPoly(img, [pts], (25, 40, 70, 255), cv2.LINE_AA)
    img[..., 3] = cv2.GaussianBlur(img[..., 3], (3, 3), 0)
    anchors = {"mouth_right_corner": (60.0, 95.0), "mouth_left_corner": (260.0, 95.0), "nose_tip": (160.0, 5.0)}
    return Overlay(img, anchors)


BUILTIN = {"sunglasses": _sunglasses, "moustache": _moustache}


def parse_anchors(specs: list[str]) -> dict[str, tuple[float, float]]:
    """`NAME=X,Y` strings (from --anchor) -> {name: (x, y)}."""
    out = {}
    for spec in specs:
        try:
            name, xy = spec.split("=")
            x, y = (float(v) for v in xy.split(","))
        except ValueError:
            raise FacemarkError(f"--anchor {spec!r}: expected NAME=X,Y such as left_eye_center=120,80") from None
        out[name.strip()] = (x, y)
    return out


def load_overlay(spec: str | Path, anchors: dict[str, tuple[float, float]] | None = None) -> Overlay:
    """A shipped overlay by name, or an RGBA PNG with `anchors` (kaggle15 names -> its pixels)."""
    if str(spec) in BUILTIN:
        return BUILTIN[str(spec)]()
    path = Path(spec)
    if not path.is_file():
        raise FacemarkError(f"{spec}: no such overlay file, nor a shipped overlay ({', '.join(BUILTIN)})")
    if not anchors:
        raise FacemarkError(f"{spec}: a picture overlay needs its anchors, e.g. --anchor left_eye_center=120,80")
    rgba = read_image(path, unchanged=True)
    if rgba.dtype != np.uint8:  # a 16-bit PNG keeps its top 8 bits
        rgba = (rgba >> 8).astype(np.uint8)
    return Overlay(rgba, anchors)


def overlay_matrix(overlay: Overlay, face: FaceLandmarks) -> np.ndarray:
    """Overlay pixels -> image pixels for this face."""
    points, _ = convert_points(face.points, np.ones(len(face.points), bool), face.scheme, KAGGLE15)
    names = list(overlay.anchors)
    dst = np.array([points[KAGGLE15.point_names.index(n)] for n in names])
    return similarity(np.array([overlay.anchors[n] for n in names]), dst)


def apply_overlay(image: np.ndarray, faces: list[FaceLandmarks], overlay: Overlay) -> np.ndarray:
    """A BGR copy of the image with the overlay blended onto every face."""
    out = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image.copy()
    h, w = out.shape[:2]
    for face in faces:
        warped = cv2.warpAffine(overlay.rgba, overlay_matrix(overlay, face), (w, h), flags=cv2.INTER_LINEAR)
        alpha = warped[..., 3:].astype(np.float32) / 255
        out = (out * (1 - alpha) + warped[..., :3] * alpha).round().astype(np.uint8)
    return out
