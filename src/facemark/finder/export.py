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

    from facemark.export import _asymmetric_nearest_resize, _converters_quiet
    from facemark.training import deflate_zip

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    checks = [rng.uniform(0, 1, (1, h, w, 1)).astype(np.float32) for h, w in ((256, 256), (96, 160), (480, 640))]
    bare = keras.Model(model.inputs, model.outputs, name=model.name)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".export-") as tmp:
        tmp = Path(tmp)
        bare.save(tmp / KERAS_NAME)
        deflate_zip(tmp / KERAS_NAME)
        with _converters_quiet():
            bare.predict_on_batch(checks[0])
            bare.export(str(tmp / "raw.onnx"), format="onnx", verbose=False)
        proto = onnx.load(str(tmp / "raw.onnx"))
        for value in (proto.graph.input[0], proto.graph.output[0]):
            for dim, name in zip(value.type.tensor_type.shape.dim, ("batch", "height", "width")):
                dim.dim_param = name
        _asymmetric_nearest_resize(proto)
        onnx.save(proto, str(tmp / ONNX_NAME))
        diff = max(
            float(np.abs(run_onnx(tmp / ONNX_NAME, x) - np.asarray(bare.predict_on_batch(x))).max()) for x in checks
        )
        if not diff <= TOLERANCE:
            raise FacemarkError(f"the finder's ONNX export differs from Keras by {diff:.2g}; nothing written")
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


def run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]
