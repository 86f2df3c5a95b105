"""ONNX Runtime sessions as facemark runs them: on the CPU, one thread each (callers that want
more threads run more sessions), and one clear error for a file ONNX Runtime cannot load, whose
own exception types tell a user little."""

from __future__ import annotations

from pathlib import Path

from facemark.errors import FacemarkError


def one_thread_session(path: Path, what: str):
    """An `onnxruntime.InferenceSession` of `path`; `what` names the model in the error."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types for bad files
        raise FacemarkError(f"{path}: cannot load {what} ({str(exc)[:120]})") from None
