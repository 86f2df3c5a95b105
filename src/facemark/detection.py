"""Face detectors behind one small interface, picked by name.

`facemark` (the default, `facemark.defaults`) is facemark's own network (`facemark.finder`:
any roll, small faces, five keypoints per face, ONNX Runtime only). `opencv` is OpenCV's
frontal-face Haar cascade, bundled with the OpenCV wheel (the default before the finder). `dlib`
(HOG) and `mediapipe` (BlazeFace) are adapters for detectors a user may already have; asking for
one that is not installed is one clear error.

Every detector returns square `FaceBox`es in one convention, the box landmark crops are built
from (the bounding box of the 68 iBUG points), so any detector feeds any model. Each adapter's
`calibration` maps its own boxes to that convention; the figures come from
`python benchmarks/detection.py --calibrate` on ytf68's training identities.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import numpy as np

from facemark.defaults import DEFAULT_DETECTOR
from facemark.errors import FacemarkError
from facemark.imaging import cv2, to_gray


@dataclass(frozen=True)
class FaceBox:
    """A square face box in original pixels, with the detector's confidence in [0, 1] and, from
    detectors that find them, five keypoints (eye centres, nose tip, mouth corners; subject's
    right first), which give the face's roll."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float = 1.0
    keypoints: tuple[tuple[float, float], ...] | None = None
    # The same face as other views saw it (a detector that looks at a photo turned several ways
    # may see one face at two rolls): each view's box and keypoints; the landmark stage fits them
    # where the fit from the face's own box and roll is doubtful.
    other_views: tuple[FaceBox, ...] = ()

    @property
    def roll(self) -> float:
        """Degrees the face is turned in the image plane (clockwise as seen, 0 upright): the
        angle of the line from its right eye to its left; 0 when the detector gives no keypoints."""
        if not self.keypoints:
            return 0.0
        (rx, ry), (lx, ly) = self.keypoints[:2]
        return float(np.degrees(np.arctan2(ly - ry, lx - rx)))

    def as_array(self) -> np.ndarray:
        return np.array([self.x0, self.y0, self.x1, self.y1], dtype=np.float64)

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2

    @property
    def side(self) -> float:
        return self.x1 - self.x0


@dataclass(frozen=True)
class Calibration:
    """Raw box (x, y, w, h) -> convention box: centre moved by (dx, dy) * w, side = scale * w."""

    dx: float = 0.0
    dy: float = 0.0
    scale: float = 1.0

    def apply(self, x: float, y: float, w: float, h: float, score: float) -> FaceBox:
        w = max(w, h)
        cx, cy, half = x + w / 2 + self.dx * w, y + h / 2 + self.dy * w, self.scale * w / 2
        return FaceBox(cx - half, cy - half, cx + half, cy + half, float(score))


class Detector:
    """Base class: subclasses set `name`, `calibration` and implement `_raw`."""

    name = ""
    requires: str | None = None  # the module an adapter needs; None: always available
    calibration = Calibration()

    def __init__(self) -> None:
        if self.requires and importlib.util.find_spec(self.requires) is None:
            raise FacemarkError(f"detector {self.name!r} needs the {self.requires} package, which is not installed")

    @classmethod
    def available(cls) -> bool:
        """Whether this detector can run here (its package installed)."""
        return cls.requires is None or importlib.util.find_spec(cls.requires) is not None

    def _raw(self, image: np.ndarray, min_side: float | None = None) -> list[tuple[float, float, float, float, float]]:
        """(x, y, w, h, score) boxes in the detector's own convention; `min_side` (px), when
        given, is the smallest face to look for (a detector may use it to search less)."""
        raise NotImplementedError

    def _boxes(self, image: np.ndarray, min_side: float | None) -> list[FaceBox]:
        """The faces in the crop convention; detectors that give more than boxes override this."""
        return [self.calibration.apply(*b) for b in self._raw(image, min_side)]

    def detect(self, image: np.ndarray, min_side: float | None = None) -> list[FaceBox]:
        """Every face in a uint8 image (gray or BGR), in the crop convention, left to right;
        with `min_side`, faces down to that box side (px) and none smaller."""
        boxes = self._boxes(image, min_side)
        if min_side:
            boxes = [b for b in boxes if b.side >= min_side]
        return sorted(self._one_per_face(boxes), key=lambda b: (b.x0, b.y0))

    def _one_per_face(self, boxes: list[FaceBox]) -> list[FaceBox]:
        """The boxes to report of those found: the best of each overlapping group."""
        return suppress(boxes)

    def has_face(self, window: np.ndarray, side: float) -> bool:
        """Is a face with a box of about `side` px centred in `window`? (tracking's check)"""
        cx, cy = window.shape[1] / 2, window.shape[0] / 2
        return any(
            abs(b.centre[0] - cx) < side / 2 and abs(b.centre[1] - cy) < side / 2 and 0.6 < b.side / side < 1.6
            for b in self._near_size(window, side)
        )

    def _near_size(self, window: np.ndarray, side: float) -> list[FaceBox]:
        """Faces of about `side` px; detectors that can limit their search to a size override this."""
        return self.detect(window)


def suppress(boxes: list[FaceBox], overlap: float = 0.3) -> list[FaceBox]:
    """Keep the best of boxes that overlap: a face is reported once."""
    a = np.array([b.as_array() for b in boxes]).reshape(-1, 4)
    return [boxes[i] for i in distinct(a, np.array([b.score for b in boxes]), overlap)]


def distinct(boxes: np.ndarray, priority: np.ndarray, overlap: float = 0.3) -> np.ndarray:
    """Indices of the boxes (N, 4: x0, y0, x1, y1) to keep, highest `priority` first, dropping
    each box that overlaps a kept one by `overlap` IoU or more. Greedy, each kept box's overlaps
    computed at once, so thousands of candidates cost milliseconds."""
    order = np.argsort(-np.asarray(priority, dtype=np.float64), kind="stable")
    a = np.asarray(boxes, dtype=np.float64)[order]
    area = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    alive = np.ones(len(a), bool)
    kept = []
    for i in range(len(a)):
        if not alive[i]:
            continue
        kept.append(order[i])
        rest = a[i + 1 :]
        ix = np.clip(np.minimum(rest[:, 2], a[i, 2]) - np.maximum(rest[:, 0], a[i, 0]), 0, None)
        iy = np.clip(np.minimum(rest[:, 3], a[i, 3]) - np.maximum(rest[:, 1], a[i, 1]), 0, None)
        inter = ix * iy
        union = area[i] + area[i + 1 :] - inter
        iou_ = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        alive[i + 1 :] &= iou_ < overlap
    return np.array(kept, dtype=int)


def _squash(margin: float) -> float:
    """A classifier's unbounded margin (cascade stage weight, SVM score) as a score in [0, 1]."""
    return float(1 / (1 + np.exp(-float(margin))))


def iou(a: FaceBox, b: FaceBox) -> float:
    ix = max(0.0, min(a.x1, b.x1) - max(a.x0, b.x0))
    iy = max(0.0, min(a.y1, b.y1) - max(a.y0, b.y0))
    inter = ix * iy
    union = (a.x1 - a.x0) * (a.y1 - a.y0) + (b.x1 - b.x0) * (b.y1 - b.y0) - inter
    return inter / union if union > 0 else 0.0


class OpenCVDetector(Detector):
    """OpenCV's frontal-face Haar cascade: offline, no download, ~20 ms on a 640x480 frame."""

    name = "opencv"
    calibration = Calibration(dx=0.0, dy=0.157, scale=0.874)
    CASCADE = "haarcascade_frontalface_default.xml"

    def __init__(self, min_neighbors: int = 3, min_face: float = 1 / 16) -> None:
        super().__init__()
        self.cascade = cv2.CascadeClassifier(cv2.data.haarcascades + self.CASCADE)
        if self.cascade.empty():
            raise FacemarkError(f"OpenCV has no {self.CASCADE} (opencv-python-headless 4.x bundles it)")
        self.min_neighbors = min_neighbors
        self.min_face = min_face  # smallest face searched, as a fraction of the image's shorter side

    def _raw(self, image: np.ndarray, min_side: float | None = None) -> list[tuple[float, float, float, float, float]]:
        gray = to_gray(image)
        share = round(min(gray.shape) * self.min_face)
        m = max(24, share if min_side is None else int(min_side / self.calibration.scale))
        rects, _, weights = self.cascade.detectMultiScale3(
            gray, scaleFactor=1.1, minNeighbors=self.min_neighbors, minSize=(m, m), outputRejectLevels=True
        )
        return [(*map(float, r), _squash(w)) for r, w in zip(rects, np.ravel(weights))]

    def _near_size(self, window: np.ndarray, side: float) -> list[FaceBox]:
        raw = side / self.calibration.scale
        lo, hi = (int(raw * 0.7),) * 2, (int(raw * 1.4) + 1,) * 2
        rects = self.cascade.detectMultiScale(to_gray(window), 1.1, self.min_neighbors, minSize=lo, maxSize=hi)
        return [self.calibration.apply(*map(float, r), 1.0) for r in rects]


class DlibDetector(Detector):
    """dlib's HOG + linear SVM frontal detector (`pip install dlib-bin`)."""

    name = "dlib"
    requires = "dlib"
    calibration = Calibration(dx=0.012, dy=0.112, scale=0.981)

    def __init__(self, upsample: int = 1) -> None:
        super().__init__()
        import dlib

        self.detector = dlib.get_frontal_face_detector()
        self.upsample = upsample

    def _raw(self, image: np.ndarray, min_side: float | None = None) -> list[tuple[float, float, float, float, float]]:
        rgb = image if image.ndim == 2 else np.ascontiguousarray(image[..., ::-1])
        rects, scores, _ = self.detector.run(rgb, self.upsample, 0.0)
        return [
            (r.left(), r.top(), r.right() - r.left(), r.bottom() - r.top(), _squash(s)) for r, s in zip(rects, scores)
        ]


class MediaPipeDetector(Detector):
    """MediaPipe's BlazeFace full-range detector (`pip install mediapipe`)."""

    name = "mediapipe"
    requires = "mediapipe"
    calibration = Calibration(dx=0.008, dy=0.097, scale=0.929)

    def __init__(self, min_confidence: float = 0.5) -> None:
        super().__init__()
        import mediapipe as mp

        self.detector = mp.solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=min_confidence
        )

    def _raw(self, image: np.ndarray, min_side: float | None = None) -> list[tuple[float, float, float, float, float]]:
        rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB if image.ndim == 2 else cv2.COLOR_BGR2RGB)
        h, w = rgb.shape[:2]
        found = self.detector.process(rgb).detections or []
        out = []
        for d in found:
            b = d.location_data.relative_bounding_box
            out.append((b.xmin * w, b.ymin * h, b.width * w, b.height * h, float(d.score[0])))
        return out


def _finder() -> type[Detector]:
    from facemark.finder.runtime import FinderDetector  # it subclasses Detector: imported late

    return FinderDetector


# name -> the class, or a function that imports it (for detectors built on this module).
DETECTORS: dict[str, type[Detector] | object] = {
    "facemark": _finder,
    **{d.name: d for d in (OpenCVDetector, DlibDetector, MediaPipeDetector)},
}


def get_detector(name: str | Detector = DEFAULT_DETECTOR) -> Detector:
    """A detector by name (or pass one through): facemark (the default), opencv, dlib or mediapipe."""
    if isinstance(name, Detector):
        return name
    if name not in DETECTORS:
        raise FacemarkError(f"unknown detector {name!r}; known: {', '.join(DETECTORS)}")
    return _detector_class(name)()


def _detector_class(name: str) -> type[Detector]:
    entry = DETECTORS[name]
    return entry if isinstance(entry, type) else entry()


def available_detectors() -> list[str]:
    """The detectors whose packages are installed here."""
    return [n for n in DETECTORS if _detector_class(n).available()]
