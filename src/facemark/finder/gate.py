"""The finder's second stage: a tiny classifier that turns down candidates that hold no face.

Why: after the finder, `detect` spends much of its time on candidates that are not faces. Each
is fitted by the landmark model (four crops) and, as it does not settle, given a second look (up
to twenty more); in benchmarks/human.py's web photos 81 of 215 candidates lay away from every
face found. A classifier that sees each candidate's patch with some context could drop those for
a fraction of one crop's cost (the cascade of MTCNN's proposal and refinement stages). It passes
anything that holds a face or part of one, at any roll, so the landmark stage can still re-frame
a box on part of a face; it is trained on the shipped finder's own candidates
(`facemark.finder.gate_training`). A finder bundle uses it when `gate.onnx` lies beside its
model. None ships: measured, it saved a tenth of the time on web photos and none on the two-face
photo, as the candidates that cost the time look like faces to it too (docs/training.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from facemark.detection import FaceBox
from facemark.imaging import cv2
from facemark.sessions import one_thread_session

GATE_ONNX, GATE_CONFIG = "gate.onnx", "gate.json"
SIDE = 48  # px: the patch the classifier sees, a box 32 px a side (the finder sees boxes at 24-96 px)
CONTEXT = 1.5  # the patch's side in candidate box sides


def square_patch(gray: np.ndarray, centre, side: float, out: int) -> np.ndarray:
    """The square of `side` px about `centre` in `gray`, area-resized to `out` px; where it
    leaves the image, the edge pixels are repeated (a candidate at the border keeps its size)."""
    h, w = gray.shape
    half = max(side, 1.0) / 2
    x0, y0 = int(np.floor(centre[0] - half)), int(np.floor(centre[1] - half))
    n = max(1, int(round(side)))
    x1, y1 = x0 + n, y0 + n
    inside = gray[max(0, y0) : max(0, min(h, y1)), max(0, x0) : max(0, min(w, x1))]
    if inside.size == 0:  # wholly outside: nothing of the photo to show
        return np.zeros((out, out), np.uint8)
    if (x0, y0, x1, y1) != (max(0, x0), max(0, y0), min(w, x1), min(h, y1)):
        pads = (max(0, -y0), max(0, y1 - h), max(0, -x0), max(0, x1 - w))
        inside = cv2.copyMakeBorder(inside, *pads, cv2.BORDER_REPLICATE)
    return cv2.resize(inside, (out, out), interpolation=cv2.INTER_AREA)


class Gate:
    """The shipped (or a candidate's) gate: `keep` returns the candidates that may hold a face."""

    def __init__(self, path: Path):
        self.session = one_thread_session(path, "the finder's gate")
        self.input = self.session.get_inputs()[0].name
        config = path.parent / GATE_CONFIG
        self.threshold = float(json.loads(config.read_text())["threshold"]) if config.exists() else 0.5

    @classmethod
    def beside(cls, finder_onnx: Path) -> Gate | None:
        """The gate in a finder bundle's folder, if it has one."""
        path = finder_onnx.parent / GATE_ONNX
        return cls(path) if path.exists() else None

    def scores(self, gray: np.ndarray, boxes: list[FaceBox]) -> np.ndarray:
        """Each candidate's probability of holding a face (or part of one)."""
        if not boxes:
            return np.zeros(0)
        x = np.stack([square_patch(gray, b.centre, b.side * CONTEXT, SIDE) for b in boxes]).astype(np.float32)
        x *= np.float32(1 / 255)
        logits = self.session.run(None, {self.input: x[..., None]})[0].reshape(-1)
        return 1 / (1 + np.exp(-logits.astype(np.float64)))

    def keep(self, gray: np.ndarray, boxes: list[FaceBox]) -> list[FaceBox]:
        return [b for b, s in zip(boxes, self.scores(gray, boxes)) if s >= self.threshold]
