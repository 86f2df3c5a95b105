"""Rebuild the shipped finder's `model.keras` from its `model.onnx` (a one-off: the bundle shipped
on 2026-12-03 held only the ONNX file; `scripts/retrain.py finder` now ships both).

    python scripts/finder_keras.py [--data ../shared/data]

Why: a finder recipe's `init` (fine-tuning) and any work that needs the network's layers start
from Keras weights. The ONNX file holds the same network with each BatchNorm folded into its
convolution or into a scale and shift (tf2onnx's export). Read back as it is, that network
computes the same in inference, but each BatchNorm would claim mean 0 and variance 1 for inputs
that have neither, so training (which normalises by the batch's own statistics) would start
from a different function. So each BatchNorm's statistics are measured on training scenes and
its scale and shift rewritten to match: the same function in inference, and nearly the same in
training. The file is written only when Keras and ONNX Runtime agree.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FINDER = ROOT / "src" / "facemark" / "weights" / "finder"


def from_onnx(path: Path):
    """`build_finder`'s network (the shipped kind) with the ONNX file's weights, BatchNorms folded."""
    import keras
    import onnx
    from onnx import numpy_helper

    from facemark.finder.network import build_finder

    graph = onnx.load(str(path)).graph
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    nodes = {n.name: n for n in graph.node}
    convs = {}  # Keras layer name -> (ONNX weight (O, I, kh, kw), bias or None)
    for n in graph.node:
        if n.op_type == "Conv":  # named "finder_1/<layer>_1/..." after the Keras layer
            layer = (n.name if n.name.endswith("/depthwise") else n.input[1]).split("/")[1][:-2]
            convs[layer] = (weights[n.input[1]], weights[n.input[2]] if len(n.input) > 2 else None)
    model = build_finder(1.0, "conv", 2, "conv")
    for layer in model.layers:
        if not layer.weights:
            continue
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            layer.set_weights([convs[layer.name][0].transpose(2, 3, 0, 1)])
        elif isinstance(layer, keras.layers.Conv2D):
            kernel, bias = convs[layer.name]
            layer.set_weights([kernel.transpose(2, 3, 1, 0), *([bias.reshape(-1)] if layer.use_bias else [])])
        elif isinstance(layer, keras.layers.BatchNormalization):
            scale = nodes.get(f"finder_1/{layer.name}_1/batchnorm/mul_1")
            if scale is not None:  # after a depthwise convolution: kept as a scale and a shift
                shift = nodes[f"finder_1/{layer.name}_1/batchnorm/add_1"]
                gamma, beta = weights[scale.input[1]].reshape(-1), weights[shift.input[1]].reshape(-1)
            else:  # folded into the convolution before it: its bias is the shift
                conv = layer.name[: -len("_bn")]
                beta = convs[conv + "_conv" if conv + "_conv" in convs else conv][1].reshape(-1)
                gamma = np.ones_like(beta)
            ones = np.full(len(beta), 1 - layer.epsilon, np.float32)  # with epsilon: divides by 1
            layer.set_weights([gamma, beta, np.zeros(len(beta), np.float32), ones])
        else:
            raise SystemExit(f"finder_keras: no rule for layer {layer.name} ({type(layer).__name__})")
    return model


def recalibrated(model, x: np.ndarray) -> None:
    """Give each BatchNorm the mean and variance of its inputs over `x`, rewriting its scale and
    shift so that inference computes what it did: gamma' = gamma * sd, beta' = beta + gamma * mean
    (for a BatchNorm that held mean 0 and variance 1)."""
    import keras

    norms = [la for la in model.layers if isinstance(la, keras.layers.BatchNormalization)]
    probe = keras.Model(model.input, [la.input for la in norms])
    inputs = [np.asarray(v, np.float64) for v in probe.predict_on_batch(x)]
    for layer, seen in zip(norms, inputs):
        gamma, beta, _, _ = layer.get_weights()
        mean, var = seen.mean(axis=(0, 1, 2)), seen.var(axis=(0, 1, 2))
        sd = np.sqrt(var + layer.epsilon)
        layer.set_weights([gamma * sd, beta + gamma * mean, mean, var])  # float32 on assignment


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="the shared data folder")
    p.add_argument("--scenes", type=int, default=256, help="training scenes the statistics come from")
    a = p.parse_args()
    from facemark.training import configure_threads

    configure_threads(1, deterministic=True)  # before TensorFlow starts: the statistics repeat exactly
    import keras

    from facemark.errors import FacemarkError
    from facemark.finder.export import check_agrees
    from facemark.finder.faces import SOURCES, load_faces
    from facemark.finder.scenes import SceneMaker, face_free_photos
    from facemark.finder.training import batch_of
    from facemark.training import deflate_zip

    try:
        faces = load_faces(a.data, "train", tuple(SOURCES), "sources")
    except FacemarkError as exc:
        print(f"finder_keras: error: {exc}", file=sys.stderr)
        return 2
    maker = SceneMaker(faces, face_free_photos(), 128, seed=0)
    x, _ = batch_of([maker.scene(i) for i in range(a.scenes)])
    model = from_onnx(FINDER / "model.onnx")
    before = np.asarray(model.predict_on_batch(x[:32]))
    recalibrated(model, x)
    after = np.asarray(model.predict_on_batch(x[:32]))
    kept = model.get_weights()  # a training-mode call also moves the BatchNorms' statistics
    trained = np.asarray(model(x[:32], training=True))
    model.set_weights(kept)
    print(f"recalibration moved the maps by {np.abs(after - before).max():.2e}")
    print(f"training mode (batch statistics) vs inference on 32 scenes: {np.abs(trained - after).mean():.3f} mean")
    bare = keras.Model(model.inputs, model.outputs, name="finder")
    photo = np.random.default_rng(0).uniform(0, 1, (1, 480, 640, 1)).astype(np.float32)
    try:  # the check every finder bundle passes before it is written
        check_agrees(FINDER / "model.onnx", bare, [x[:32], photo], "the rebuilt finder")
    except FacemarkError as exc:
        print(f"finder_keras: error: {exc}", file=sys.stderr)
        return 1
    bare.save(FINDER / "model.keras")
    deflate_zip(FINDER / "model.keras")
    print(f"wrote {FINDER / 'model.keras'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
