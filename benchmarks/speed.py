"""Speed and size of the landmark step: ours on ONNX Runtime and Keras, dlib, MediaPipe face mesh.

    python benchmarks/speed.py [--model kaggle15] [--mediapipe-python PATH] [--install-size]
    python benchmarks/speed.py --widths 1,1.25,1.5,2

All timings in one run on the same face crops: latency at batch 1 on one thread, throughput at
a large batch on all cores, import + first prediction in a fresh process, model file sizes, and
(with --install-size) the site-packages size of a fresh base install. --widths instead prices
fmnet at other channel widths (untrained: cost does not depend on the weights) against dlib.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from facemark.bundle import example_image, resolve_model
from facemark.export import example_crops

ROOT = Path(__file__).resolve().parents[1]
PHOTO = example_image()


def per_call(fn, n: int) -> float:
    """Median seconds per call over n calls, after warming up."""
    for _ in range(5):
        fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def onnx_latency(path: Path, crops: np.ndarray) -> float:
    """Seconds per face at batch 1 in a one-thread ONNX Runtime session."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    one = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = one.get_inputs()[0].name
    return per_call(lambda: one.run(None, {name: crops[:1]}), 2000)


def onnx_figures(folder: Path, crops: np.ndarray) -> tuple[float, float]:
    """Batch-1 latency of a one-thread session; throughput through `Landmarker.predict_crops`,
    the path users take (one-thread sessions on every core, cache-sized calls)."""
    from facemark.inference import Landmarker

    latency = onnx_latency(folder / "model.onnx", crops)
    landmarker = Landmarker(folder, backend="onnx")
    big = np.repeat((crops[..., 0] * 255).round().astype(np.uint8), 1024 // len(crops), axis=0)
    throughput = len(big) / per_call(lambda: landmarker.predict_crops(big, batch=len(big)), 20)
    return latency, throughput


def keras_figures(folder: Path, crops: np.ndarray) -> tuple[float, float]:
    """TF pools are process-wide, so batch-1 latency here runs on all cores (a favour to Keras)."""
    from facemark.models import load_keras_model

    model = load_keras_model(folder / "model.keras")
    latency = per_call(lambda: model.predict_on_batch(crops[:1]), 300)
    big = np.repeat(crops, 1024 // len(crops), axis=0)
    throughput = len(big) / per_call(lambda: model.predict_on_batch(big), 10)
    return latency, throughput


def mmac(model) -> float:
    """Multiply-accumulates of the convolutions for one face, in millions."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D | keras.layers.DepthwiseConv2D):
            total += int(np.prod(layer.output.shape[1:3])) * int(np.prod(layer.kernel.shape))
    return total / 1e6


def width_figures(widths: list[float], crops: np.ndarray, dlib_lat: float | None) -> None:
    """Cost of fmnet (kaggle15) at each width: parameters, MMAC, batch-1 ONNX latency."""
    from facemark.export import _to_onnx
    from facemark.models import build_model

    print(f"{'fmnet width':<12} {'params':>8} {'MB fp32':>8} {'MMAC':>6} {'batch-1 ms':>11} {'x dlib':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for width in widths:
            model = build_model("fmnet", 15, 96, width)
            path = Path(tmp) / f"w{width}.onnx"
            _to_onnx(model, path, "fp32", crops)
            latency = onnx_latency(path, crops)
            ratio = f"{dlib_lat / latency:7.2f}" if dlib_lat else f"{'-':>7}"
            params = model.count_params()
            print(f"{width:<12g} {params:>8} {params * 4 / 1e6:8.2f} {mmac(model):6.1f} {latency * 1e3:11.3f} {ratio}")


def dlib_figures() -> float | None:
    try:
        import cv2
        import dlib

        sys.path.insert(0, str(Path(__file__).parent))
        from peers import Dlib
    except ImportError:
        return None
    peer = Dlib()
    rgb = cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    rect = dlib.rectangle(int(w * 0.12), int(h * 0.2), int(w * 0.88), int(h * 0.95))
    return per_call(lambda: peer.landmarks(rgb, rect), 2000)


MEDIAPIPE_SNIPPET = """
import time, cv2, numpy as np, mediapipe as mp
img = cv2.cvtColor(cv2.imread({photo!r}), cv2.COLOR_BGR2RGB)
img = cv2.copyMakeBorder(img, 60, 60, 60, 60, cv2.BORDER_REPLICATE)
with mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1) as mesh:
    for _ in range(20): mesh.process(img)  # tracking mode: the landmark model alone after frame 1
    t = []
    for _ in range(300):
        s = time.perf_counter(); r = mesh.process(img); t.append(time.perf_counter() - s)
print(np.median(t) if r.multi_face_landmarks else 'nan')
"""


def mediapipe_figures(python: str | None) -> float | None:
    if not python:
        return None
    proc = subprocess.run([python, "-c", MEDIAPIPE_SNIPPET.format(photo=str(PHOTO))], capture_output=True, text=True)
    try:
        return float(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        print(f"mediapipe failed: {proc.stderr.strip()[-300:]}", file=sys.stderr)
        return None


def first_prediction_seconds(model: str) -> float:
    code = (
        "import time; t = time.perf_counter(); import facemark; "
        f"facemark.Landmarker({model!r}).predict({str(PHOTO)!r}); "
        "import sys; assert 'tensorflow' not in sys.modules; print(time.perf_counter() - t)"
    )
    runs = [
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
        for _ in range(3)
    ]
    return min(runs)


def install_size() -> float:
    """MB that `pip install .` (base, no extras) adds to a fresh venv's site-packages."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "venv", tmp], check=True)
        py = Path(tmp) / "bin" / "python"
        site = Path(
            subprocess.run(
                [py, "-c", "import site; print(site.getsitepackages()[0])"], capture_output=True, text=True
            ).stdout.strip()
        )

        def size() -> int:
            return sum(f.stat().st_size for f in site.rglob("*") if f.is_file())

        before = size()
        subprocess.run([py, "-m", "pip", "install", "-q", str(ROOT)], check=True)
        return (size() - before) / 1e6


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="kaggle15")
    p.add_argument("--mediapipe-python", default=None)
    p.add_argument("--install-size", action="store_true")
    p.add_argument("--widths", default=None, help="comma-separated fmnet widths to price instead")
    a = p.parse_args()

    crops = example_crops(96, n=64)
    if a.widths:
        width_figures([float(w) for w in a.widths.split(",")], crops, dlib_figures())
        return 0
    folder = resolve_model(a.model)
    ort_lat, ort_thr = onnx_figures(folder, crops)
    dlib_lat = dlib_figures()
    mp_lat = mediapipe_figures(a.mediapipe_python)
    first = first_prediction_seconds(a.model)
    k_lat, k_thr = keras_figures(folder, crops)

    print(f"landmark step, model {a.model}, {os.cpu_count()} cores")
    print(f"{'runtime':<34} {'batch-1 ms':>11} {'faces/s (batch)':>16}")
    print(f"{'facemark ONNX Runtime (1 thread)':<34} {ort_lat * 1e3:11.3f} {ort_thr:16.0f}")
    print(f"{'facemark Keras/TF':<34} {k_lat * 1e3:11.3f} {k_thr:16.0f}")
    if dlib_lat is not None:
        print(f"{'dlib 68-point predictor':<34} {dlib_lat * 1e3:11.3f} {'-':>16}")
        print(f"  ONNX speed-up over dlib: {dlib_lat / ort_lat:.1f}x")
    if mp_lat is not None:
        print(f"{'MediaPipe face mesh (tracking)':<34} {mp_lat * 1e3:11.3f} {'-':>16}")
        print(f"  ONNX speed-up over MediaPipe: {mp_lat / ort_lat:.1f}x")
    print(f"import facemark + first prediction on a photo (light runtime): {first:.3f} s")
    for f in sorted(folder.glob("model.*")):
        print(f"model file {f.name}: {f.stat().st_size / 1e6:.3f} MB")
    if a.install_size:
        print(f"base runtime install (site-packages added): {install_size():.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
