"""The Python API: load a model by name or path, predict landmarks, get typed results.

Two runtimes sit behind one interface: ONNX Runtime for a bundle that has `model.onnx` (light,
no TensorFlow) and Keras for one that only has `model.keras` (fresh training runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facemark.bundle import KERAS_NAME, ONNX_NAME, ModelConfig, resolve_model
from facemark.errors import FacemarkError
from facemark.imaging import CropSpec, crop_face, read_image, to_gray, to_original, whole_image_box
from facemark.schemes import Scheme

BACKENDS = ("auto", "onnx", "keras")


@dataclass(frozen=True)
class Landmark:
    name: str
    x: float
    y: float


@dataclass
class FaceLandmarks:
    """One face's points in the caller's pixels, with the scheme that names them."""

    points: np.ndarray  # (K, 2) float, original pixels
    scheme: Scheme
    box: tuple[float, float, float, float]  # the face box the crop was built from
    score: float = 1.0

    @property
    def landmarks(self) -> list[Landmark]:
        return [Landmark(n, float(x), float(y)) for n, (x, y) in zip(self.scheme.point_names, self.points)]

    def to_dict(self) -> dict:
        return {
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 4),
            "points": [{"name": p.name, "x": round(p.x, 2), "y": round(p.y, 2)} for p in self.landmarks],
        }


class _KerasRunner:
    def __init__(self, path: Path):
        from facemark.models import load_keras_model

        self.model = load_keras_model(path)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(x))


class _OnnxRunner:
    def __init__(self, path: Path, threads: int | None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            raise FacemarkError(f"{path}: cannot load the ONNX model ({str(exc)[:120]})") from None
        self.input = self.session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: x})[0]


def _onnxruntime_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


class Landmarker:
    """A landmark model ready to run: `Landmarker("kaggle15").predict("face.jpg")`.

    `model` is a shipped model's name, a model or run folder, or a `.keras` / `.onnx` file.
    """

    def __init__(self, model: str | Path = "kaggle15", backend: str = "auto", threads: int | None = None):
        if backend not in BACKENDS:
            raise FacemarkError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
        folder = resolve_model(model)
        self.config = ModelConfig.load(folder)
        self.scheme = self.config.scheme_obj
        self.size = self.config.crop.size
        onnx_path, keras_path = folder / ONNX_NAME, folder / KERAS_NAME
        explicit = Path(model).suffix if Path(model).is_file() else ""
        if backend == "auto":  # ONNX Runtime unless a .keras file was named or no ONNX file is there
            use_onnx = explicit != ".keras" and onnx_path.exists() and _onnxruntime_available()
            backend = "onnx" if use_onnx or not keras_path.exists() else "keras"
        if backend == "onnx":
            if not onnx_path.exists():
                raise FacemarkError(f"{folder}: no {ONNX_NAME} in this model (export one with 'facemark export')")
            self._run = _OnnxRunner(onnx_path, threads)
        else:
            if not keras_path.exists():
                raise FacemarkError(f"{folder}: no {KERAS_NAME} in this model")
            self._run = _KerasRunner(keras_path)
        self.backend = backend

    def predict_crops(self, crops: np.ndarray, batch: int = 256) -> np.ndarray:
        """(N, S, S) uint8 gray crops -> (N, K, 2) points in crop pixels."""
        crops = np.asarray(crops)
        if crops.ndim != 3 or crops.shape[1:] != (self.size, self.size):
            raise FacemarkError(f"crops must have shape (N, {self.size}, {self.size}), got {crops.shape}")
        x = (crops.astype(np.float32) * np.float32(self.config.pixel_scale))[..., None]
        out = [self._run(x[i : i + batch]) for i in range(0, len(x), batch)] or [
            np.zeros((0, 2 * self.scheme.num_points))
        ]
        return np.concatenate(out).reshape(len(x), -1, 2).astype(np.float64) * self.size

    def crop(self, image: np.ndarray, box=None) -> tuple[np.ndarray, np.ndarray]:
        """The model's input crop for a face box, or for the whole image when `box` is None."""
        if box is None:
            return crop_face(image, whole_image_box(image), CropSpec(self.size))
        return crop_face(image, np.asarray(box, dtype=np.float64), self.config.crop)

    def predict(self, image: np.ndarray | str | Path, box=None) -> FaceLandmarks:
        """Landmarks of one face: in `box` (x0, y0, x1, y1), or the whole image as the face crop."""
        return self.predict_many([image], [box])[0]

    def predict_many(self, images: list, boxes: list | None = None) -> list[FaceLandmarks]:
        """One face per image (paths or arrays), run as a single batch."""
        boxes = boxes or [None] * len(images)
        crops, matrices, used = [], [], []
        for image, box in zip(images, boxes):
            if not isinstance(image, np.ndarray):
                image = read_image(image)
            crop, matrix = self.crop(to_gray(image), box)
            crops.append(crop)
            matrices.append(matrix)
            used.append(whole_image_box(image) if box is None else np.asarray(box, dtype=np.float64))
        if not crops:
            return []
        points = self.predict_crops(np.stack(crops))
        return [
            FaceLandmarks(to_original(p, m), self.scheme, tuple(float(v) for v in b))
            for p, m, b in zip(points, matrices, used)
        ]
