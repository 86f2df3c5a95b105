"""The CLI end to end, as a user runs it: every bad input is one line on stderr and exit 2."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from facemark.cli import build_parser, main

from conftest import synthetic_face


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny kaggle15 run shared by the tests below (1 epoch on a generated Kaggle CSV)."""
    from facemark.readers import write_kaggle_csv

    from conftest import kaggle_samples

    root = tmp_path_factory.mktemp("cli")
    write_kaggle_csv(root / "training.csv", kaggle_samples(16))
    rc = main(
        [
            "train",
            "--data",
            str(root / "training.csv"),
            "--scheme",
            "kaggle15",
            "--epochs",
            "1",
            "--batch",
            "7",
            "--out",
            str(root / "run"),
            "--quiet",
        ]
    )
    assert rc == 0
    return root


def _one_error_line(capsys, rc, needle):
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("facemark: error:"), err
    assert needle in err[0], err[0]


def test_evaluate_json_has_the_metrics(trained, capsys):
    rc = main(
        [
            "evaluate",
            "--model",
            str(trained / "run"),
            "--data",
            str(trained / "training.csv"),
            "--json",
            "--plot",
            str(trained / "ced.png"),
        ]
    )
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 16 and {"rmse_96", "nme_io", "fr_10", "auc_10"} <= set(report)
    assert "face crops" in report["protocol"]
    assert (trained / "ced.png").stat().st_size > 0


def test_evaluate_table_and_gt_box_protocol_on_68_point_data(trained, capsys, ytf68_like):
    assert main(["evaluate", "--model", str(trained / "run"), "--data", str(ytf68_like)]) == 0
    out = capsys.readouterr().out
    assert "GT box" in out and "nme_io" in out and "mouth_center_bottom_lip" in out


def test_predict_json_and_drawn_output(trained, capsys, tmp_path):
    img, _ = synthetic_face(np.random.default_rng(0), 120)
    cv2.imwrite(str(tmp_path / "a.png"), img)
    rc = main(
        [
            "predict",
            "--model",
            str(trained / "run" / "model.keras"),
            str(tmp_path / "a.png"),
            "--json",
            "--out",
            str(tmp_path / "drawn"),
        ]
    )
    assert rc == 0
    entries = json.loads(capsys.readouterr().out)
    assert entries[0]["image"] == str(tmp_path / "a.png")
    assert len(entries[0]["points"]) == 15 and set(entries[0]["points"][0]) == {"name", "x", "y"}
    assert cv2.imread(str(tmp_path / "drawn" / "a.png")).shape == (120, 120, 3)


@pytest.mark.parametrize("content, needle", [(b"", "empty file"), (b"hello, not an image", "not a readable image")])
def test_a_bad_image_is_reported_and_the_good_one_still_done(trained, capsys, tmp_path, content, needle):
    good, bad = tmp_path / "good.png", tmp_path / "bad.jpg"
    cv2.imwrite(str(good), np.zeros((96, 96), np.uint8))
    bad.write_bytes(content)
    rc = main(["predict", "--model", str(trained / "run"), str(good), str(bad), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 3 and len(err) == 1 and str(bad) in err[0] and needle in err[0], err
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["good.png"]


def test_truncated_jpeg(trained, capsys, tmp_path):
    ok, buf = cv2.imencode(".jpg", np.full((96, 96), 128, np.uint8))
    (tmp_path / "t.jpg").write_bytes(buf.tobytes()[: len(buf) // 2])
    rc = main(["predict", "--model", str(trained / "run"), str(tmp_path / "t.jpg")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 3 and len(err) == 1 and "not a readable image (truncated" in err[0], err


def test_missing_model_and_scheme_mismatch(trained, capsys, tmp_path):
    _one_error_line(
        capsys,
        main(["evaluate", "--model", str(tmp_path / "none.keras"), "--data", str(trained / "training.csv")]),
        "no such model",
    )
    # an ibug68 model cannot be scored on kaggle15 data
    _one_error_line(
        capsys, main(["evaluate", "--model", "ibug68", "--data", str(trained / "training.csv")]), "does not match"
    )


def test_corrupt_model_file(capsys, tmp_path, trained):
    bad = tmp_path / "m"
    bad.mkdir()
    (bad / "facemark.json").write_text((trained / "run" / "facemark.json").read_text())
    (bad / "model.keras").write_bytes(b"PK\x03\x04 garbage")
    _one_error_line(
        capsys,
        main(["predict", "--model", str(bad), "--backend", "keras", str(trained / "run" / "loss.png")]),
        "not a .keras archive (corrupt",
    )


def test_training_on_an_empty_data_set_writes_nothing(capsys, tmp_path, trained):
    header = (trained / "training.csv").read_text().splitlines()[0]
    (tmp_path / "training.csv").write_text(header + "\n")
    rc = main(
        ["train", "--data", str(tmp_path / "training.csv"), "--scheme", "kaggle15", "--out", str(tmp_path / "run")]
    )
    _one_error_line(capsys, rc, "empty")
    assert not (tmp_path / "run").exists()


def test_a_training_stopped_by_its_time_budget_says_how_to_resume(capsys, tmp_path, trained):
    out = tmp_path / "run"
    argv = ["train", "--data", str(trained / "training.csv"), "--scheme", "kaggle15", "--batch", "7", "--quiet"]
    rc = main([*argv, "--epochs", "2", "--max-minutes", "1e-6", "--out", str(out)])
    assert rc == 0
    assert f"continue with: facemark train --resume --out {out}" in capsys.readouterr().out
    assert main(["train", "--resume", "--out", str(out), "--max-minutes", "60", "--quiet"]) == 0
    assert "continue with" not in capsys.readouterr().out  # finished: nothing left to resume


def test_mistyped_option_suggests_the_right_one(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--jsn"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "did you mean --json?" in err[0]


def test_interrupted_training_keeps_the_last_checkpoint_and_resumes(tmp_path):
    """SIGTERM mid-run: the last complete epoch survives and --resume finishes the run."""
    from conftest import write_ytf68_like

    data = write_ytf68_like(tmp_path / "d", n_people=10, per_person=6)
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "facemark.cli",
        "train",
        "--data",
        str(data),
        "--scheme",
        "ibug68",
        "--epochs",
        "50",
        "--batch",
        "4",
        "--out",
        str(run),
        "--quiet",
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, env=env, text=True)
    latest = run / "checkpoints" / "latest"
    for _ in range(600):
        if latest.exists():
            break
        if proc.poll() is not None:
            pytest.fail(proc.stderr.read())
        import time

        time.sleep(0.1)
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "checkpoint epoch-" in err and "--resume" in err
    done = int(latest.read_text().split("-")[1])
    assert (run / "model.keras").exists()
    rc = subprocess.run(
        [*cmd[:-5], "--epochs", str(done + 1), "--out", str(run), "--resume", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert rc.returncode == 0, rc.stderr
    assert latest.read_text() == f"epoch-{done + 1:04d}"


def test_a_fresh_process_prints_only_the_error_line(tmp_path):
    """TensorFlow's start-up notices must not bury the error a user needs to read."""
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    cmd = [sys.executable, "-m", "facemark.cli", "train", "--data", str(tmp_path / "bad.csv"), "--scheme", "kaggle15"]
    out = subprocess.run([*cmd, "--out", str(tmp_path / "run")], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"facemark: error: {tmp_path / 'bad.csv'}: no 'Image' column (not a Kaggle training.csv?)"
    ]
    assert not (tmp_path / "run").exists()


def test_commands_that_need_the_training_extra_say_so(monkeypatch, capsys):
    """On the light base install a Keras-only command names the extra to install, in one line."""
    import facemark.cli as cli

    def missing(_args):
        raise ModuleNotFoundError("No module named 'keras'", name="keras")

    monkeypatch.setitem(cli.COMMANDS, "export", missing)
    rc = main(["export", "--model", "kaggle15", "--format", "onnx", "-o", "x.onnx"])
    _one_error_line(capsys, rc, "pip install 'facemark[train]'")


def test_train_offers_every_loss_the_trainer_knows():
    from facemark.losses import LOSSES

    train = next(a for a in build_parser()._actions if a.choices and "train" in a.choices).choices["train"]
    loss = next(a for a in train._actions if "--loss" in a.option_strings)
    assert tuple(loss.choices) == LOSSES
