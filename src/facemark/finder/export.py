"""The finder's bundle: `model.keras` (for fine-tuning), `model.onnx` (what runs) and
`finder.json` (how to run it), written only when ONNX Runtime agrees with Keras."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from facemark.bundle import KERAS_NAME, ONNX_NAME
from facemark.errors import FacemarkError

CONFIG = "finder.json"
TOLERANCE = 1e-3  # largest map difference between ONNX Runtime and Keras


def write_bundle(model, folder: Path, cfg, threshold: float = 0.5, note: str | None = None) -> Path:
    import keras
    import onnx

    from facemark.export import for_onnx_runtime
    from facemark.training import deflate_zip

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    checks = [rng.uniform(0, 1, (1, h, w, 1)).astype(np.float32) for h, w in ((256, 256), (96, 160), (480, 640))]
    bare = keras.Model(model.inputs, model.outputs, name=model.name)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".export-") as tmp:
        tmp = Path(tmp)
        bare.save(tmp / KERAS_NAME)
        deflate_zip(tmp / KERAS_NAME)
        exported(bare, tmp / "raw.onnx", checks[0])
        proto = onnx.load(str(tmp / "raw.onnx"))
        for value in (proto.graph.input[0], proto.graph.output[0]):
            for dim, name in zip(value.type.tensor_type.shape.dim, ("batch", "height", "width")):
                dim.dim_param = name
        for_onnx_runtime(proto)
        onnx.save(proto, str(tmp / ONNX_NAME))
        check_agrees(tmp / ONNX_NAME, bare, checks, "the finder")
        config = {
            "stride": 8,
            "width": cfg.width,
            "branch": cfg.branch,
            "stride4_blocks": cfg.stride4_blocks,
            "stem": cfg.stem,
            "trained_size": cfg.size,
            "threshold": threshold,
        }
        (tmp / CONFIG).write_text(json.dumps({**config, **({"threshold_note": note} if note else {})}, indent=2))
        for name in (KERAS_NAME, ONNX_NAME, CONFIG):
            os.replace(tmp / name, folder / name)
    return folder


def exported(bare, path: Path, sample: np.ndarray) -> None:
    """`bare` (a Keras model without training state) written as ONNX to `path`; `sample` builds it
    first, as Keras's exporter wants a model that has run."""
    from facemark.export import _converters_quiet

    with _converters_quiet():
        bare.predict_on_batch(sample)
        bare.export(str(path), format="onnx", verbose=False)


def check_agrees(path: Path, bare, checks: list[np.ndarray], what: str) -> None:
    """Raise unless ONNX Runtime on `path` gives Keras's outputs (within TOLERANCE) on `checks`:
    a bundle is written only after this passes."""
    diff = max(float(np.abs(run_onnx(path, x) - np.asarray(bare.predict_on_batch(x))).max()) for x in checks)
    if not diff <= TOLERANCE:
        raise FacemarkError(f"{what}'s ONNX export differs from Keras by {diff:.2g}; nothing written")


def run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]
