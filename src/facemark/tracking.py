"""Faces followed through video: detect once, then crop each frame from the last frame's points.

Detection runs on the first frame and whenever a face is lost; in between, each face's next crop
comes from its own landmarks (the model's `BoxRegressor`), which is cheaper than detecting and
frames the face the way the model was trained. Every `verify_every` frames the detector looks at a
small window around each face; a face it misses `patience` checks in a row (checked every frame
once one is missed) is lost. Points are smoothed with a One Euro
filter (Casiez et al., CHI 2012): strong smoothing when the face is still (no jitter), little
when it moves (no lag).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facemark.detection import FaceBox, iou
from facemark.errors import FacemarkError
from facemark.imaging import CropSpec, crop_face, to_gray
from facemark.inference import MAX_DOUBT, FaceLandmarks, Landmarker


@dataclass(frozen=True)
class SmoothingConfig:
    """One Euro parameters. Speeds are in face-box sides per second, so they fit any resolution.

    `min_cutoff` (Hz) sets the smoothing of a still face: lower is steadier. `beta` raises the
    cutoff with speed: higher follows fast motion with less lag. `d_cutoff` smooths the speed.
    """

    min_cutoff: float = 0.5
    beta: float = 8.0
    d_cutoff: float = 1.0


class OneEuroFilter:
    """A One Euro filter over arrays of 2-D points (..., 2); the speed is taken per point."""

    def __init__(self, config: SmoothingConfig = SmoothingConfig()):
        self.config = config
        self.value: np.ndarray | None = None
        self.speed: np.ndarray | None = None

    @staticmethod
    def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray:
        tau = 1.0 / (2 * np.pi * np.asarray(cutoff))
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, dt: float, scale: float = 1.0) -> np.ndarray:
        """Smoothed `x` after `dt` seconds; `scale` (face side, px) makes speeds resolution-free."""
        x = np.asarray(x, dtype=np.float64)
        if self.value is None:
            self.value, self.speed = x.copy(), np.zeros(x.shape[:-1])
            return x.copy()
        c = self.config
        raw_speed = np.linalg.norm(x - self.value, axis=-1) / dt / scale
        self.speed = self.speed + self._alpha(c.d_cutoff, dt) * (raw_speed - self.speed)
        a = self._alpha(c.min_cutoff + c.beta * self.speed, dt)[..., None]
        self.value = self.value + a * (x - self.value)
        return self.value.copy()


@dataclass
class _Track:
    raw: np.ndarray  # last frame's unsmoothed points: the next crop comes from these
    box: FaceBox
    filter: OneEuroFilter
    misses: int = 0


class FaceTracker:
    """Landmarks frame after frame: `tracker.update(frame)` -> faces, left to right ([] if none)."""

    def __init__(
        self,
        landmarker: Landmarker,
        fps: float = 30.0,
        smoothing: SmoothingConfig | None = SmoothingConfig(),
        patience: int = 2,
        verify_every: int = 3,
        redetect_every: int = 90,
    ):
        if landmarker.config.box_regressor is None:
            raise FacemarkError("video tracking needs a model whose facemark.json has a box_regressor (retrain it)")
        self.landmarker = landmarker
        self.dt = 1.0 / fps
        self.smoothing = smoothing
        self.patience = patience
        self.verify_every = verify_every
        self.redetect_every = redetect_every  # full-frame detection also finds faces that join
        self.frame = 0
        self.tracks: list[_Track] = []
        self.detections = 0  # frames on which the full detector ran

    def update(self, frame: np.ndarray, dt: float | None = None) -> list[FaceLandmarks]:
        """This frame's faces; `dt` is the time since the last frame in seconds (default 1 / fps),
        for live sources whose frames come unevenly."""
        step = self.dt if dt is None or not 0 < dt < 10 else dt
        gray = to_gray(frame)
        self.frame += 1
        if self.tracks:
            self._follow(gray)
        if not self.tracks or (self.redetect_every and self.frame % self.redetect_every == 0):
            self._detect(gray)
        out = []
        for t in self.tracks:
            pts = t.raw if self.smoothing is None else t.filter(t.raw, step, t.box.side)
            out.append(
                FaceLandmarks(pts, self.landmarker.scheme, (t.box.x0, t.box.y0, t.box.x1, t.box.y1), t.box.score)
            )
        return sorted(out, key=lambda f: f.box[0])

    def _follow(self, gray: np.ndarray) -> None:
        lm = self.landmarker
        raw = np.stack([t.raw for t in self.tracks])
        boxes, rolls = lm.config.box_regressor(raw), lm.config.box_regressor.roll(raw)
        points, doubt = lm.fit_boxes([gray], [0] * len(boxes), boxes, passes=0, rolls=rolls)
        kept = []
        for t, box, roll, pts, d in zip(self.tracks, boxes, rolls, points, doubt):
            seen = d <= MAX_DOUBT and _inside(box, gray.shape)
            if seen and (t.misses or self.frame % self.verify_every == 0):
                seen = self._verify(gray, box, roll)
            t.misses = 0 if seen else t.misses + 1
            if t.misses < self.patience:
                t.raw, t.box = pts, FaceBox(*box, score=t.box.score)
                kept.append(t)
        self.tracks = kept

    def _verify(self, gray: np.ndarray, box: np.ndarray, roll: float, face_px: int = 32) -> bool:
        """Does the detector see the face in a small upright window around the tracked box? (~2 ms)"""
        window, _ = crop_face(gray, box, CropSpec(size=2 * face_px, scale=2.0), roll)
        return self.landmarker.detector.has_face(window, face_px)

    def _detect(self, gray: np.ndarray) -> None:
        self.detections += 1
        for face in self.landmarker.detect(gray):
            box = FaceBox(*face.box, score=face.score)
            if all(iou(box, t.box) < 0.3 for t in self.tracks):
                self.tracks.append(_Track(face.points, box, OneEuroFilter(self.smoothing or SmoothingConfig())))


def _inside(box: np.ndarray, shape: tuple[int, ...]) -> bool:
    """At least half the box lies within the frame."""
    h, w = shape[:2]
    ix = max(0.0, min(box[2], w) - max(box[0], 0.0))
    iy = max(0.0, min(box[3], h) - max(box[1], 0.0))
    return ix * iy >= 0.5 * (box[2] - box[0]) * (box[3] - box[1])
