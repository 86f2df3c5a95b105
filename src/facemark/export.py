"""Export a Keras landmark model to ONNX (ONNX Runtime) or LiteRT (.tflite, phones).

Every export checks itself: the exported model runs beside the Keras one on real face crops and
the largest point difference (pixels of the 96 frame) must stay under the precision's
tolerance, or no file is written.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facemark._tensorflow import native_stderr_held
from facemark.augment import AugmentConfig, make_batch
from facemark.bundle import CONFIG_NAME, KERAS_NAME, ModelConfig, example_image, resolve_model
from facemark.errors import FacemarkError
from facemark.files import check_output_file
from facemark.imaging import CropSpec, crop_face, read_image, whole_image_box

FORMATS = ("onnx", "tflite")
PRECISIONS = ("fp32", "fp16", "int8")
# Largest allowed point difference from the Keras model, in pixels of the 96x96 crop.
TOLERANCE_PX = {"fp32": 0.01, "fp16": 0.1, "int8": 1.0}


@dataclass
class ExportReport:
    path: Path
    format: str
    precision: str
    max_diff_px: float
    size_bytes: int
    n_check: int


def example_crops(size: int, n: int = 64, seed: int = 0) -> np.ndarray:
    """Real face crops for calibration and checks: the shipped photo under jittered face boxes."""
    photo = read_image(example_image())
    box = whole_image_box(photo)
    side = box[2] - box[0]
    rng = np.random.default_rng(seed)
    crops = []
    for _ in range(n):
        jitter = np.concatenate([rng.uniform(-0.08, 0.08, 2)] * 2) * side
        scale = rng.uniform(0.85, 1.15)
        crops.append(crop_face(photo, box + jitter, CropSpec(size, scale))[0])
    return (np.stack(crops).astype(np.float32) / 255.0)[..., None]


def _check_crops(config: ModelConfig, data: str | None) -> np.ndarray:
    if data is None:
        return example_crops(config.crop.size)
    from facemark.training import TrainConfig, prepare_data

    cfg = TrainConfig(data=data, scheme=config.scheme, val_fraction=0.5)
    scheme, train_set, _ = prepare_data(cfg)
    idx = np.arange(min(len(train_set), 256))
    x, _ = make_batch(train_set, idx, scheme, config.crop.size, AugmentConfig.none(), np.random.default_rng(0))
    return x


def export(model: str | Path, format: str, precision: str, out: str | Path, data: str | None = None) -> ExportReport:
    """Write `out` only if the exported model agrees with the Keras one within tolerance."""
    if format not in FORMATS:
        raise FacemarkError(f"unknown export format {format!r}; known: {', '.join(FORMATS)}")
    if precision not in PRECISIONS:
        raise FacemarkError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    folder = resolve_model(model)
    out = check_output_file(out, inputs=[folder / KERAS_NAME, folder / CONFIG_NAME])
    config = ModelConfig.load(folder)
    if not (folder / KERAS_NAME).exists():
        raise FacemarkError(f"{folder}: export needs the Keras model ({KERAS_NAME})")
    from facemark.models import load_keras_model

    keras_model = load_keras_model(folder / KERAS_NAME)
    crops = _check_crops(config, data)
    reference = np.asarray(keras_model.predict_on_batch(crops))
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".facemark-export-") as tmp:
        tmp_file = Path(tmp) / f"model.{format}"
        with _converters_quiet():
            if format == "onnx":
                _to_onnx(keras_model, tmp_file, precision, crops)
                got = _run_onnx(tmp_file, crops)
            else:
                _to_tflite(keras_model, tmp_file, precision, crops)
                got = _run_tflite(tmp_file, crops)
        diff = float(np.abs(got.reshape(reference.shape) - reference).max() * config.crop.size)
        limit = TOLERANCE_PX[precision]
        if not diff <= limit:
            hint = " (int8 costs too much accuracy for this model: use fp16)" if precision == "int8" else ""
            raise FacemarkError(
                f"exported {format} {precision} differs by {diff:.4f} px > {limit} px; nothing written{hint}"
            )
        os.replace(tmp_file, out)
    return ExportReport(out, format, precision, diff, out.stat().st_size, len(crops))


@contextlib.contextmanager
def _converters_quiet():
    """Hold back the converters' chatter (tf2onnx and TensorFlow warnings, the quantizer's log
    lines, the SavedModel listing, LiteRT's delegate notice): the export's own report or error
    line is what a user reads."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), native_stderr_held():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)


def _to_onnx(model, path: Path, precision: str, crops: np.ndarray) -> None:
    import onnx

    model.predict_on_batch(crops[:1])  # Keras exports only a model that has been called
    fp32 = path.with_suffix(".fp32.onnx")
    model.export(str(fp32), format="onnx", verbose=False)
    proto = onnx.load(str(fp32))
    proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    for_onnx_runtime(proto)
    if precision == "fp16":
        proto = _fp16_weights(proto)
    onnx.save(proto, str(path))
    fp32.unlink()
    if precision == "int8":
        _quantize_onnx(path, crops)


def for_onnx_runtime(proto) -> None:
    """Rewrite, in place, what the converter wrote into what ONNX Runtime runs fastest, the
    function unchanged: every exporter's ONNX file (landmark models and finder) goes through this."""
    _asymmetric_nearest_resize(proto)
    _repeat_as_resize(proto)


# The ops tf2onnx spells `keras.ops.repeat` with.
_REPEAT_OPS = {
    "Unsqueeze", "Tile", "Reshape", "Transpose",  # the repeat and its layout changes
    "Shape", "Gather", "Cast", "Slice", "Squeeze", "Mul", "Concat",  # the shape arithmetic around it
}  # fmt: skip


def _repeat_as_resize(proto) -> None:
    """Replace each x2 nearest upsampling written as two repeats (`NearestUpsampling2D` on an
    input of free size, the finder's) by one Resize.

    Why: tf2onnx spells each repeat as an Unsqueeze, a Tile and a Reshape in NHWC, with
    transposes out of and back into ONNX Runtime's blocked layout; as one Resize the finder ran
    12 % faster on a 640x480 photo's first level, 23 % on its smallest (the same maps within
    1e-6). Only a chain from a convolution's output that holds exactly two Tiles by 2 and ends in
    the transpose back to NCHW is replaced; the exporters' agreement checks catch anything else.
    """
    from onnx import helper, numpy_helper

    graph = proto.graph
    consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    resizes, dropped = {}, set()  # by the id of each chain's last node; the ids of every chain node
    for start in graph.node:
        source = start.input[0] if start.op_type == "Unsqueeze" else None
        if source is None or id(start) in dropped or getattr(producer.get(source), "op_type", None) != "Conv":
            continue
        chain, todo = {}, list(consumers.get(source, []))
        while todo:
            node = todo.pop()
            if id(node) not in chain and node.op_type in _REPEAT_OPS:
                chain[id(node)] = node
                todo += [c for out in node.output for c in consumers.get(out, [])]
        leaves = [  # the chain nodes whose outputs leave the chain
            n for n in chain.values() if any(id(c) not in chain for out in n.output for c in consumers.get(out, []))
        ]
        tiles = [consts.get(n.input[1]) for n in chain.values() if n.op_type == "Tile"]
        by_two = all(t is not None and sorted(t.tolist()) == [1] * (t.size - 1) + [2] for t in tiles)
        if len(leaves) != 1 or len(tiles) != 2 or not by_two or leaves[0].op_type != "Transpose":
            continue
        if next(list(a.ints) for a in leaves[0].attribute if a.name == "perm") != [0, 3, 1, 2]:
            continue
        scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), f"{leaves[0].output[0]}_scales")
        graph.initializer.append(scales)
        resizes[id(leaves[0])] = helper.make_node(
            "Resize",
            [source, "", scales.name],
            [leaves[0].output[0]],
            name=f"{leaves[0].name}_resize",
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        )
        dropped |= set(chain)
    if resizes:
        nodes = [resizes.get(id(n), n) for n in graph.node if id(n) in resizes or id(n) not in dropped]
        del graph.node[:]
        graph.node.extend(_live(nodes, {o.name for o in graph.output}))
        used = {name for node in graph.node for name in node.input}
        for init in [i for i in graph.initializer if i.name not in used]:
            graph.initializer.remove(init)


def _live(nodes: list, outputs: set[str]) -> list:
    """`nodes` (in order) less those no graph output depends on: the shape arithmetic a
    replaced chain leaves behind."""
    needed, live = set(outputs), []
    for node in reversed(nodes):
        if any(out in needed for out in node.output):
            live.append(node)
            needed |= {name for name in node.input if name}
    return live[::-1]


def _asymmetric_nearest_resize(proto) -> None:
    """Rewrite tf2onnx's nearest Resize by whole factors to the 'asymmetric' convention.

    Why: for a whole factor s, TensorFlow's floor((x + 0.5) / s) and floor(x / s) pick the same
    source cell, and ONNX Runtime keeps only the asymmetric form in its blocked (NCHWc) layout.
    """
    from onnx import numpy_helper

    consts = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    tf_nearest = {
        "mode": b"nearest",
        "nearest_mode": b"floor",
        "coordinate_transformation_mode": b"tf_half_pixel_for_nn",
    }
    for node in proto.graph.node:
        scales = consts.get(node.input[2]) if node.op_type == "Resize" and len(node.input) > 2 else None
        if scales is None or not scales.size or np.any(scales != np.round(scales)):
            continue
        attrs = {a.name: a for a in node.attribute}
        if all(name in attrs and attrs[name].s == value for name, value in tf_nearest.items()):
            attrs["coordinate_transformation_mode"].s = b"asymmetric"


def _fp16_weights(proto):
    """Store float weights as fp16 with a Cast back to fp32: half the file, fp32 arithmetic."""
    import onnx
    from onnx import helper, numpy_helper

    graph = proto.graph
    casts, keep = [], []
    for init in graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype == np.float32 and arr.size > 16:
            half = numpy_helper.from_array(arr.astype(np.float16), init.name + "_fp16")
            keep.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT))
        else:
            keep.append(init)
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    return proto


def _quantize_onnx(path: Path, crops: np.ndarray) -> None:
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize_static

    name = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{name: crops[i : i + 1]} for i in range(len(crops))])

        def get_next(self):
            return next(self.items, None)

    q = path.with_suffix(".int8.onnx")
    quantize_static(
        str(path), str(q), Reader(), activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True
    )
    os.replace(q, path)


def _run_onnx(path: Path, crops: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: crops})[0]


def _to_tflite(model, path: Path, precision: str, crops: np.ndarray) -> None:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([crops[i : i + 1]] for i in range(len(crops)))
    path.write_bytes(converter.convert())


def _tflite_interpreter(path: Path):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter  # noqa: N806
    return Interpreter(model_path=str(path))


def _run_tflite(path: Path, crops: np.ndarray) -> np.ndarray:
    interp = _tflite_interpreter(path)
    interp.allocate_tensors()  # converted with batch 1: one crop per call, as on a phone
    inp, outp = interp.get_input_details()[0], interp.get_output_details()[0]
    results = []
    for crop in crops:
        interp.set_tensor(inp["index"], crop[None])
        interp.invoke()
        results.append(interp.get_tensor(outp["index"]).copy())
    return np.concatenate(results)
