"""One output row per image, made the same way by every engine: path, size, faces, error,
model. A file that cannot be read is a row with an error, never an exception."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from facemark import __version__
from facemark.batch.sources import is_uri
from facemark.bundle import KERAS_NAME, ONNX_NAME, resolve_model
from facemark.defaults import DEFAULT_DETECTOR, DEFAULT_MODEL
from facemark.detection import get_detector
from facemark.errors import FacemarkError
from facemark.imaging import decode_image, read_bytes
from facemark.inference import Landmarker


@dataclass(frozen=True)
class BatchSettings:
    """What decides a row: the same settings give the same rows on every engine."""

    model: str = DEFAULT_MODEL
    detector: str = DEFAULT_DETECTOR
    mirror: bool = False
    min_face: float | None = None

    def landmarker(self) -> Landmarker:
        """A one-thread landmarker with its detector built (an unknown one fails here)."""
        detector = get_detector(self.detector)
        return Landmarker(self.model, threads=1, detector=detector, mirror=self.mirror, min_face=self.min_face)


def model_version(model: str) -> str:
    """facemark's version and the network file's digest: rows say exactly which weights made them."""
    folder = resolve_model(model)
    weights = folder / ONNX_NAME if (folder / ONNX_NAME).exists() else folder / KERAS_NAME
    return f"{__version__}+{hashlib.sha256(weights.read_bytes()).hexdigest()[:12]}"


def schema():
    """The Parquet schema of a row (pyarrow comes with the batch extra)."""
    import pyarrow as pa

    point = pa.struct([("name", pa.string()), ("x", pa.float64()), ("y", pa.float64())])
    face = pa.struct([("box", pa.list_(pa.float64())), ("score", pa.float64()), ("points", pa.list_(point))])
    return pa.schema(
        [
            ("index", pa.int64()),
            ("path", pa.string()),
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("faces", pa.list_(face)),
            ("error", pa.string()),
            ("model", pa.string()),
            ("model_version", pa.string()),
        ]
    )


def _read_bytes(path: str) -> np.ndarray:
    """A local file's bytes, or an object-store URI's through pyarrow's file systems."""
    if not is_uri(path):
        return read_bytes(path)
    import pyarrow.fs

    try:
        fs, inner = pyarrow.fs.FileSystem.from_uri(path)
        with fs.open_input_stream(inner) as f:
            return np.frombuffer(f.read(), np.uint8)
    except (OSError, ValueError) as exc:
        raise FacemarkError(f"cannot read ({str(exc)[:100]})") from None


def landmark_rows(landmarker: Landmarker, items: list[tuple[int, str]], model: str, version: str) -> list[dict]:
    """Rows for (index, path) items, in their order. Each image goes through the model on its
    own: ONNX Runtime's results move in the fifth decimal with the batch's make-up, and a row
    must depend on its image only, whichever engine, batch or shard it falls in."""
    rows = []
    for index, path in items:
        base = {"index": index, "path": path, "model": model, "model_version": version}
        try:
            image = decode_image(_read_bytes(path), gray=True)
        except FacemarkError as exc:
            rows.append({**base, "width": None, "height": None, "faces": None, "error": str(exc)})
            continue
        faces = landmarker.detect_working([landmarker.working_copy(image)])[0]
        h, w = image.shape
        rows.append({**base, "width": w, "height": h, "faces": [f.to_dict() for f in faces], "error": None})
    return rows
