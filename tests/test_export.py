"""Export to ONNX and LiteRT: self-checked files, and one-line errors with nothing left behind."""

import os
import subprocess
import sys

import numpy as np
import pytest

from facemark.cli import main
from facemark.export import export


@pytest.mark.parametrize("fmt, precision", [("onnx", "fp32"), ("onnx", "fp16"), ("tflite", "fp32"), ("tflite", "fp16")])
def test_export_writes_a_checked_file_that_its_runtime_loads(tmp_path, fmt, precision):
    out = tmp_path / f"m.{fmt}"
    report = export("kaggle15", fmt, precision, out)
    assert out.exists() and report.max_diff_px <= {"fp32": 0.01, "fp16": 0.1}[precision]
    crops = np.random.default_rng(0).random((1, 96, 96, 1)).astype(np.float32)
    if fmt == "onnx":
        import onnxruntime as ort

        s = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        assert s.run(None, {s.get_inputs()[0].name: crops})[0].shape == (1, 1, 1, 30)
    else:
        from ai_edge_litert.interpreter import Interpreter

        interp = Interpreter(model_path=str(out))
        interp.allocate_tensors()
        interp.set_tensor(interp.get_input_details()[0]["index"], crops)
        interp.invoke()
        assert interp.get_tensor(interp.get_output_details()[0]["index"]).shape == (1, 1, 1, 30)
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary files left
    if precision == "fp16":
        assert out.stat().st_size < 500_000


def test_onnx_export_upsamples_with_resizes_onnx_runtime_keeps_in_its_blocked_layout(tmp_path):
    import onnx

    export("kaggle15", "onnx", "fp32", tmp_path / "m.onnx")
    nodes = onnx.load(str(tmp_path / "m.onnx")).graph.node
    resizes = [n for n in nodes if n.op_type == "Resize"]
    modes = {a.s for n in resizes for a in n.attribute if a.name == "coordinate_transformation_mode"}
    assert len(resizes) == 2 and modes == {b"asymmetric"}
    assert not any(n.op_type == "Tile" for n in nodes)


def _export(*args: str) -> int:
    return main(["export", "--model", *args])


def _one_line(capsys, rc, needle):
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and needle in err[0], err


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--format", "coreml"], "unknown export format"),
        (["--format", "onnx", "--precision", "int4"], "unknown precision"),
    ],
)
def test_bad_export_options(tmp_path, capsys, args, needle):
    _one_line(capsys, _export("kaggle15", *args, "-o", str(tmp_path / "m.onnx")), needle)
    assert not any(tmp_path.iterdir())


def test_export_into_missing_or_read_only_folder(tmp_path, capsys):
    _one_line(
        capsys,
        main(["export", "--model", "kaggle15", "--format", "onnx", "-o", str(tmp_path / "no" / "m.onnx")]),
        "does not exist",
    )
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        _one_line(
            capsys,
            main(["export", "--model", "kaggle15", "--format", "onnx", "-o", str(ro / "m.onnx")]),
            "not writable",
        )
    finally:
        ro.chmod(0o700)


def test_calibration_data_of_another_scheme(tmp_path, capsys, kaggle_csv):
    rc = main(
        ["export", "--model", "ibug68", "--format", "onnx", "--data", str(kaggle_csv), "-o", str(tmp_path / "m.onnx")]
    )
    _one_line(capsys, rc, "does not match")
    assert not (tmp_path / "m.onnx").exists()


def test_corrupt_onnx_model(tmp_path, capsys):
    from facemark.bundle import resolve_model

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "facemark.json").write_text((resolve_model("kaggle15") / "facemark.json").read_text())
    (bad / "model.onnx").write_bytes(b"\x08\x01garbage")
    _one_line(capsys, main(["predict", "--model", str(bad)]), "cannot load the ONNX model")


def test_a_refused_export_prints_only_its_error_line_in_a_fresh_process(tmp_path):
    """Converter warnings, quantizer log lines and TensorFlow's native notices stay out of it."""
    out = tmp_path / "m.onnx"
    cmd = [sys.executable, "-m", "facemark.cli", "export", "--model", "kaggle15", "--format", "onnx"]
    run = subprocess.run([*cmd, "--precision", "int8", "-o", str(out)], capture_output=True, text=True)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1, lines
    assert lines[0].startswith("facemark: error: exported onnx int8 differs by")
    assert not out.exists() and list(tmp_path.iterdir()) == []
