"""A trained finder as a teacher: its score logits on the training scenes, as soft targets.

Why: every lighter finder network trained on the labels alone put a false face on a face-like
object (a coin's relief, a headlight) that the shipped network scores low. The labels say only
"face" or "not a face"; a teacher's scores also say how face-like each place is, which a smaller
network can learn from (knowledge distillation, Hinton et al. 2015). ONNX Runtime runs the
teacher on the batch thread, so the training's own thread is not slowed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facemark.errors import FacemarkError
from facemark.sessions import one_thread_session


class Teacher:
    """A finder bundle's network (its `model.onnx`) giving score logits for training inputs."""

    def __init__(self, bundle: str | Path):
        folder = Path(bundle)
        path = folder / "model.onnx" if folder.is_dir() else folder
        if not path.is_file():
            raise FacemarkError(f"finder recipe: teacher {bundle}: no model.onnx there (a finder bundle folder)")
        self.session = one_thread_session(path, "the teacher finder")
        self.input = self.session.get_inputs()[0].name

    def logits(self, x: np.ndarray) -> np.ndarray:
        """(N, H, W, 1) network input -> (N, H/8, W/8) score logits."""
        return self.session.run(None, {self.input: np.ascontiguousarray(x, dtype=np.float32)})[0][..., 0]
