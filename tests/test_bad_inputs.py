"""Bad input, fed to every command as a careless user would: generated broken files (truncated,
appended, zero-length, wrong type, huge, unicode and colliding names), outputs aimed at inputs,
absurd options. Each case asserts the documented exit status, one line per problem on stderr, no
input changed (checksums) and no partial output left behind."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from facemark.cli import main
from facemark.errors import EXIT_ERROR, EXIT_SOME_INPUTS_FAILED

from conftest import face_photo, png_claiming


def _checksums(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


def _err_lines(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


def _jpeg(image: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", image)[1].tobytes()


GOOD = _jpeg(face_photo([(200, 80)]))
BAD_FILES = {  # name -> (bytes, what the error line says)
    "truncated.jpg": (GOOD[: len(GOOD) // 2], "truncated"),
    "truncated.png": (cv2.imencode(".png", face_photo([(200, 80)]))[1].tobytes()[:-30], "truncated"),
    "empty.jpg": (b"", "empty file"),
    "text.jpg": (b"hello, I am a text file", "not a readable image"),
    "bomb.png": (png_claiming(100_000, 100_000), "over the 250 MP limit"),
}


@pytest.fixture
def album(tmp_path):
    """Two good photos (one with a unicode name, one with bytes after its end marker), the bad
    files above, and hidden files / macOS stubs that folder expansion must skip."""
    root = tmp_path / "album"
    root.mkdir()
    (root / "größe 1.jpg").write_bytes(GOOD)
    (root / "motion.jpg").write_bytes(GOOD + b"\0\0\0\x18ftypmp42" + os.urandom(3000))  # a Motion Photo's tail
    for name, (data, _) in BAD_FILES.items():
        (root / name).write_bytes(data)
    (root / "._motion.jpg").write_bytes(b"\0\x05\x16\x07\0\x02\0\0Mac OS X")
    (root / ".hidden.png").write_bytes(b"not even an image")
    return root


@pytest.mark.parametrize("verb", ["detect", "predict"])
def test_a_batch_survives_its_bad_files_and_reports_each(verb, album, tmp_path, capsys):
    before = _checksums(album)
    rc = main([verb, str(album), "--json", "--out", str(tmp_path / "drawn")])
    captured = capsys.readouterr()
    entries = {Path(e["image"]).name: e for e in json.loads(captured.out)}
    err = captured.err.strip().splitlines()
    assert rc == EXIT_SOME_INPUTS_FAILED
    assert set(entries) == {"größe 1.jpg", "motion.jpg", *BAD_FILES}  # stubs and hidden files skipped
    for name, (_, needle) in BAD_FILES.items():
        assert needle in entries[name]["error"], entries[name]
        assert sum(name in line and needle in line for line in err) == 1, err
    assert len(err) == len(BAD_FILES) and all(line.startswith("facemark: error:") for line in err)
    good = ("faces" if verb == "detect" else "points", ["größe 1.jpg", "motion.jpg"])
    assert all(good[0] in entries[n] and "error" not in entries[n] for n in good[1])
    assert sorted(p.name for p in (tmp_path / "drawn").iterdir()) == sorted(good[1])  # JPEG in, JPEG out
    assert _checksums(album) == before


def test_strict_stops_at_the_first_bad_file_with_one_line(album, capsys):
    files = [str(album / n) for n in ("größe 1.jpg", "text.jpg", "motion.jpg")]
    rc = main(["detect", *files, "--strict", "--json"])
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert rc == EXIT_ERROR and len(err) == 1 and "text.jpg" in err[0]
    assert [e["image"] for e in json.loads(captured.out)] == files[:1]  # what was done before it is kept


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_one_bad_file_alone_is_one_line(name, album, capsys):
    rc = main(["predict", str(album / name)])
    err = _err_lines(capsys)
    assert rc == EXIT_SOME_INPUTS_FAILED and len(err) == 1 and BAD_FILES[name][1] in err[0], err


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_filter_on_a_bad_photo_is_one_line_and_writes_nothing(name, album, tmp_path, capsys):
    rc = main(["filter", str(album / name), "--overlay", "sunglasses", "-o", str(tmp_path / "out.png")])
    err = _err_lines(capsys)
    assert rc == EXIT_ERROR and len(err) == 1 and BAD_FILES[name][1] in err[0], err
    assert list(tmp_path.glob("*.png")) == []


def test_outputs_never_replace_inputs(album, tmp_path, capsys):
    before = _checksums(album)
    photo = str(album / "motion.jpg")
    cases = [
        (["detect", str(album), "--out", str(album)], "holds input"),
        (["detect", photo, "--out", str(tmp_path)], "holds input"),  # tmp_path holds the album
        (["predict", photo, "--out", photo], "not a folder"),
        (["filter", photo, "--overlay", "sunglasses", "-o", photo], "replace the input"),
        (["filter", photo, "--overlay", "sunglasses", "-o", str(album / "x.txt")], "extension"),
        (["detect", photo, "--out", "/proc/facemark-test"], "cannot create"),
    ]
    for args, needle in cases:
        rc = main(args)
        err = _err_lines(capsys)
        assert rc == EXIT_ERROR and len(err) == 1 and needle in err[0], (args, err)
    assert _checksums(album) == before


def test_same_names_from_different_folders_do_not_collide(tmp_path, capsys):
    for folder, suffix in (("d1", ".jpg"), ("d1", ".png"), ("d2", ".jpg")):
        (tmp_path / folder).mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / folder / f"face{suffix}"), face_photo([(200, 80)]))
    out = tmp_path / "out"
    assert main(["detect", str(tmp_path / "d1"), str(tmp_path / "d2"), "--out", str(out)]) == 0
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.*")) == ["d1/face.jpg", "d1/face.png", "d2/face.jpg"]
    assert main(["detect", str(tmp_path / "d1"), "--out", str(tmp_path / "png"), "--save-as", "png"]) == 0
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == ["face.jpg.png", "face.png.png"]
    capsys.readouterr()


def _write_video(path: Path, n: int) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (560, 320))
    for _ in range(n):
        writer.write(face_photo([(200, 80)]))
    writer.release()


def test_video_outputs_and_options_are_checked_before_any_frame(tmp_path, capsys):
    video = tmp_path / "in.avi"
    _write_video(video, 4)
    before = _checksums(tmp_path)
    v = str(video)
    cases = [
        (["--json", v], "replace the input"),
        (["-o", str(tmp_path / "x.avi"), "--json", str(tmp_path / "x.avi")], "two outputs"),
        (["--json", str(tmp_path / "nodir" / "x.json")], "does not exist"),
        (["--json", "x.json", "--beta", "nan"], "finite"),
        (["--json", "x.json", "--max-frames", "-5"], "out of range"),
        (["--json", "x.json", "--min-cutoff", "-1"], "out of range"),
        (["--json", "x.json", "--threads", "0"], "out of range"),
    ]
    for extra, needle in cases:
        try:
            rc = main(["video", v, *extra])
        except SystemExit as exc:  # argparse's own refusal
            rc = exc.code
        err = _err_lines(capsys)
        assert rc == EXIT_ERROR and len(err) == 1 and needle in err[0], (extra, err)
    assert _checksums(tmp_path) == before


def test_a_truncated_video_says_so(tmp_path, capsys):
    _write_video(tmp_path / "full.avi", 40)
    data = (tmp_path / "full.avi").read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) // 2])
    rc = main(["video", str(tmp_path / "cut.avi"), "--json", str(tmp_path / "f.json")])
    err = _err_lines(capsys)
    frames = json.loads((tmp_path / "f.json").read_text())  # strict JSON, the decoded frames' results
    assert rc == EXIT_SOME_INPUTS_FAILED and 0 < len(frames) < 40
    assert len(err) == 1 and f"only {len(frames)} of the 40 frames" in err[0], err


def test_native_library_chatter_stays_out_of_the_error_output(tmp_path):
    """FFmpeg logs 'moov atom not found' on fd 2, libpng warns about odd chunks: only our line shows."""
    writer = cv2.VideoWriter(str(tmp_path / "v.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30, (160, 120))
    for _ in range(10):
        writer.write(np.zeros((120, 160, 3), np.uint8))
    writer.release()
    data = (tmp_path / "v.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    cmd = [sys.executable, "-m", "facemark.cli", "video", str(tmp_path / "cut.mp4"), "--json", str(tmp_path / "f.json")]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == EXIT_ERROR
    assert out.stderr.strip().splitlines() == [
        f"facemark: error: {tmp_path / 'cut.mp4'}: not a readable video (corrupt or unsupported format)"
    ]
    assert not (tmp_path / "f.json").exists()


def test_real_camera_sizes_are_accepted(tmp_path, capsys):
    """A 72-MP photo (phones take 50-200 MP) is read; only a bomb's claimed size is refused."""
    big = np.zeros((7_000, 10_300), np.uint8)
    cv2.rectangle(big, (4000, 3000), (5000, 4000), 200, -1)
    cv2.imwrite(str(tmp_path / "big.png"), big)
    assert main(["detect", str(tmp_path / "big.png"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["faces"] == []


def test_train_refuses_absurd_options_before_any_work(tmp_path, kaggle_csv, capsys):
    (tmp_path / "nan.json").write_text('{"lr": NaN}')
    (tmp_path / "file").write_text("x")
    base = ["train", "--data", str(kaggle_csv), "--out"]
    cases = [
        ([*base, str(tmp_path / "r"), "--lr", "nan"], "finite"),
        ([*base, str(tmp_path / "r"), "--lr", "1e6"], "out of range"),
        ([*base, str(tmp_path / "r"), "--config", str(tmp_path / "nan.json")], "lr must be a number > 0"),
        ([*base, str(tmp_path / "file")], "not a folder"),
        (["train", "--resume", "--out", str(tmp_path / "r")], "nothing to resume"),
    ]
    for args, needle in cases:
        try:
            rc = main(args)
        except SystemExit as exc:
            rc = exc.code
        err = _err_lines(capsys)
        assert rc == EXIT_ERROR and len(err) == 1 and needle in err[0], (args, err)
    assert not (tmp_path / "r").exists()


def test_a_second_training_into_a_locked_run_folder_is_refused(tmp_path, kaggle_csv, capsys):
    from facemark.files import FolderLock

    run = tmp_path / "run"
    run.mkdir()
    lock = FolderLock(run)  # as a training in progress holds it
    args = ["train", "--data", str(kaggle_csv), "--epochs", "1", "--batch", "10", "--out", str(run), "--quiet"]
    try:
        rc = main(args)
        err = _err_lines(capsys)
        assert rc == EXIT_ERROR and len(err) == 1 and "another training" in err[0] and f"pid {os.getpid()}" in err[0]
        assert sorted(p.name for p in run.iterdir()) == [".lock"]  # the holder's folder is untouched
    finally:
        lock.release()
    assert main(args) == 0  # a lock whose holder has gone is no obstacle
    capsys.readouterr()


def test_a_loss_that_turns_nan_stops_the_run_and_keeps_the_last_good_checkpoint(
    tmp_path, kaggle_csv, capsys, monkeypatch
):
    import keras

    run = tmp_path / "run"
    real = keras.Model.train_on_batch

    def poisoned(self, *args, **kwargs):  # the loss turns NaN once the first epoch is saved
        return float("nan") if (run / "checkpoints" / "latest").exists() else real(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "train_on_batch", poisoned)
    rc = main(["train", "--data", str(kaggle_csv), "--epochs", "3", "--batch", "10", "--out", str(run), "--quiet"])
    err = _err_lines(capsys)
    assert rc == EXIT_ERROR and len(err) == 1 and "diverged in epoch 2" in err[0] and "epoch-0001 is kept" in err[0]
    assert (run / "checkpoints" / "latest").read_text() == "epoch-0001" and (run / "model.keras").exists()


def test_resume_after_an_interrupt_before_the_first_epoch_starts_over(tmp_path, kaggle_csv, capsys, monkeypatch):
    import keras

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    run = tmp_path / "run"
    args = ["train", "--data", str(kaggle_csv), "--epochs", "1", "--batch", "10", "--out", str(run), "--quiet"]
    with monkeypatch.context() as m:
        m.setattr(keras.Model, "train_on_batch", interrupted)
        assert main(args) == EXIT_ERROR
    hint = _err_lines(capsys)[0]
    assert "no epoch had completed" in hint and "--resume" in hint
    assert main(["train", "--resume", "--out", str(run), "--quiet"]) == 0  # the hint works
    assert (run / "model.keras").exists()
    capsys.readouterr()


def test_a_model_folder_whose_network_does_not_fit_its_scheme(tmp_path, capsys):
    from facemark.bundle import resolve_model

    shipped = resolve_model("kaggle15")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "model.onnx").write_bytes((shipped / "model.onnx").read_bytes())
    (mixed / "facemark.json").write_text((resolve_model("ibug68") / "facemark.json").read_text())
    for verb in (["predict"], ["detect", str(tmp_path / "p.jpg")]):
        cv2.imwrite(str(tmp_path / "p.jpg"), face_photo([(200, 80)]))
        rc = main([*verb, "--model", str(mixed)])
        err = _err_lines(capsys)
        assert rc == EXIT_ERROR and len(err) == 1 and "gives 30 numbers" in err[0] and "ibug68" in err[0], err
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "facemark.json").write_text((shipped / "facemark.json").read_text())
    (corrupt / "model.keras").write_bytes((shipped / "model.keras").read_bytes()[:4000])
    rc = main(["predict", "--model", str(corrupt)])
    err = _err_lines(capsys)
    assert rc == EXIT_ERROR and len(err) == 1 and "corrupt" in err[0] and "not found" not in err[0].lower(), err


def test_export_into_a_folder_is_refused_before_any_work(tmp_path, capsys):
    rc = main(["export", "--model", "kaggle15", "--format", "onnx", "-o", str(tmp_path)])
    err = _err_lines(capsys)
    assert rc == EXIT_ERROR and len(err) == 1 and "is a folder" in err[0]
    assert list(tmp_path.iterdir()) == []


def test_csvs_as_excel_writes_them_and_an_unlabelled_one(kaggle_csv, tmp_path, capsys):
    from facemark.readers import read_dataset

    text = kaggle_csv.read_text()
    (tmp_path / "excel.csv").write_bytes(b"\xef\xbb\xbf" + text.encode() + b"\n\n\n")  # BOM, blank lines at the end
    assert len(read_dataset(tmp_path / "excel.csv")) == len(read_dataset(kaggle_csv))
    header, *rows = text.strip().splitlines()
    empty = [",".join([""] * 30 + [row.rsplit(",", 1)[1]]) for row in rows]
    (tmp_path / "empty.csv").write_text("\n".join([header, *empty]) + "\n")
    rc = main(["evaluate", "--model", "kaggle15", "--data", str(tmp_path / "empty.csv"), "--json"])
    err = _err_lines(capsys)
    assert rc == EXIT_ERROR and len(err) == 1 and "nothing to score" in err[0]


@pytest.mark.parametrize(
    "image, needle",
    [
        (np.zeros((0, 0), np.uint8), "empty"),
        (np.zeros((5, 5, 2), np.uint8), "shape"),
        (np.full((9, 9), np.nan, np.float32), "NaN"),
        (np.zeros((9, 9), np.complex64), "dtype"),
        ("no-such-file.jpg", "no such image file"),
    ],
)
def test_the_python_api_raises_one_clear_error_for_bad_arrays(image, needle):
    from facemark import FacemarkError, Landmarker

    lm = Landmarker("kaggle15")
    for call in (lm.detect, lm.predict):
        with pytest.raises(FacemarkError, match=needle):
            call(image)


def test_the_python_api_takes_other_dtypes_and_checks_boxes():
    from facemark import FacemarkError, Landmarker

    lm = Landmarker("kaggle15")
    photo = cv2.cvtColor(face_photo([(200, 80)]), cv2.COLOR_BGR2GRAY)
    ref = lm.detect(photo)[0].points
    for other in (photo.astype(np.float32) / 255, photo.astype(np.uint16) * 257, np.dstack([photo] * 3 + [photo])):
        np.testing.assert_allclose(lm.detect(other)[0].points, ref, atol=0.5)
    with pytest.raises(FacemarkError, match="3 images but 1 boxes"):
        lm.predict_many([photo] * 3, [None])
    with pytest.raises(FacemarkError, match="outside"):
        lm.predict(photo, box=(600, 400, 700, 500))
    with pytest.raises(FacemarkError, match="not a box"):
        lm.predict(photo, box=(10, 10, 5, 50))


@pytest.mark.parametrize("shape", [(1, 1), (20_000, 20), (20, 20_000), (4, 4, 3)])
@pytest.mark.parametrize("fill", [0, 255])
def test_any_image_shape_or_blank_frame_is_an_empty_list(shape, fill):
    from facemark import Landmarker

    assert Landmarker("kaggle15").detect(np.full(shape, fill, np.uint8)) == []


def test_chunks_are_bounded_by_bytes_not_only_by_count():
    from facemark.files import decode_in_chunks

    paths = [Path(f"{i}.jpg") for i in range(10)]
    chunks = list(decode_in_chunks(paths, lambda p: np.zeros(1 << 20, np.uint8), max_count=256, max_bytes=3 << 20))
    assert [len(c) for c in chunks] == [3, 3, 3, 1]
    assert [p for c in chunks for p, _ in c] == paths


def test_json_lists_stay_strict_when_a_model_gives_nan(capsys):
    import io

    from facemark.files import JsonList

    out = io.StringIO()
    with JsonList(out) as listing:
        listing.add({"image": "a.jpg", "points": [{"name": "nose_tip", "x": float("nan"), "y": 3.0}]})
    assert json.loads(out.getvalue()) == [{"image": "a.jpg", "points": [{"name": "nose_tip", "x": None, "y": 3.0}]}]
