"""`facemark batch`: sources of every kind, error rows, identical rows from the local and Ray
engines, and a resume after a kill that redoes only the unfinished shards."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402

from facemark.batch import BatchSettings, read_rows, run_batch  # noqa: E402
from facemark.batch.sources import expand_sources  # noqa: E402
from facemark.cli import main  # noqa: E402
from facemark.errors import EXIT_ERROR, EXIT_SOME_INPUTS_FAILED, FacemarkError  # noqa: E402

from conftest import YTF68, face_photo  # noqa: E402


def _images(root: Path, n_good: int = 50) -> Path:
    """n_good photos of the shipped real face at varied places and sizes (some with two faces,
    some with none), in nested folders, plus bad and odd files: 60 files in all."""
    rng = np.random.default_rng(0)
    for i in range(n_good):
        folder = root / f"set{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        side = int(rng.integers(90, 160))
        spots = [] if i % 10 == 9 else [(int(rng.integers(0, 400)), int(rng.integers(0, 150)))]
        if i % 7 == 0:
            spots.append((int(rng.integers(0, 100)), 160))
        photo = face_photo(spots, size=(320, 560), face=side)
        cv2.imwrite(str(folder / f"photo {i:02d}.{'png' if i % 4 == 0 else 'jpg'}"), photo)
    good = (root / "set0" / "photo 03.jpg").read_bytes()
    (root / "bad").mkdir()
    (root / "bad" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "bad" / "empty.jpg").write_bytes(b"")
    (root / "bad" / "text.png").write_bytes(b"not an image at all")
    (root / "bad" / "motion.jpg").write_bytes(good + b"\0\0\0\x18ftypmp42" + bytes(500))  # readable
    (root / "bad" / "ünïcode.jpg").write_bytes(good)
    (root / "bad" / "big.png").write_bytes(cv2.imencode(".png", np.zeros((2000, 3000), np.uint8))[1].tobytes())
    (root / "bad" / "tiny.png").write_bytes(cv2.imencode(".png", np.zeros((1, 1), np.uint8))[1].tobytes())
    (root / "bad" / "gray16.png").write_bytes(cv2.imencode(".png", np.full((50, 50), 40000, np.uint16))[1].tobytes())
    (root / "bad" / "dir.jpg").mkdir()  # a folder named like an image: not a row
    (root / "bad" / "zero-width.jpg").write_bytes(b"\xff\xd8\xff\xd9")
    (root / "bad" / "._stub.jpg").write_bytes(b"\0\x05\x16\x07")  # skipped: OS metadata
    (root / ".hidden").mkdir()
    (root / ".hidden" / "x.jpg").write_bytes(good)  # skipped: hidden folder
    return root


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return _images(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="module")
def local_rows(images, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "out"
    summary = run_batch([str(images)], out, workers=2, shard_size=16, progress=False)
    assert summary["images"] == summary["processed"] == 59 and summary["shards_written"] == 4
    return out


def test_every_image_is_one_row_and_bad_files_are_error_rows(local_rows, images):
    table = read_rows(local_rows)
    rows = table.to_pylist()
    assert [r["index"] for r in rows] == list(range(59))
    by_name = {Path(r["path"]).name: r for r in rows}
    assert "._stub.jpg" not in by_name and "x.jpg" not in by_name
    for name, needle in [("truncated.jpg", "truncated"), ("empty.jpg", "empty"), ("text.png", "not a readable")]:
        assert needle in by_name[name]["error"] and by_name[name]["faces"] is None
    assert by_name["zero-width.jpg"]["error"] and "dir.jpg" not in by_name  # a folder named .jpg is no image
    for name in ("motion.jpg", "ünïcode.jpg", "big.png", "tiny.png", "gray16.png"):
        assert by_name[name]["error"] is None, by_name[name]
    face = by_name["photo 03.jpg"]["faces"][0]
    assert len(face["box"]) == 4 and len(face["points"]) == 15 and {"name", "x", "y"} == set(face["points"][0])
    assert (by_name["photo 03.jpg"]["width"], by_name["photo 03.jpg"]["height"]) == (560, 320)
    assert by_name["photo 09.jpg"]["faces"] == []  # a photo without a face: no faces, no error
    assert len(by_name["photo 07.jpg"]["faces"]) == 2
    assert {r["model"] for r in rows} == {"kaggle15"} and rows[0]["model_version"].startswith("0.")


def test_rows_match_what_detect_gives_for_the_same_photo(local_rows, images):
    from facemark import Landmarker

    row = next(r for r in read_rows(local_rows).to_pylist() if r["path"].endswith("photo 07.jpg"))
    expected = [f.to_dict() for f in Landmarker("kaggle15").detect(str(images / "set1" / "photo 07.jpg"))]
    assert row["faces"] == expected


def test_the_ray_engine_gives_identical_rows(local_rows, images, tmp_path):
    """A real local Ray (ray.init(num_cpus=2)), in a child process so that a hang fails the test."""
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    code = textwrap.dedent(f"""
        import ray
        from facemark.batch import run_batch
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        s = run_batch([{str(images)!r}], {str(out)!r}, engine="ray", workers=2, shard_size=16, batch_size=8,
                      progress=False)
        assert s["processed"] == 59, s
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for shard in sorted(local_rows.glob("part-*.parquet")):
        assert pq.read_table(out / shard.name).equals(pq.read_table(shard)), shard.name


def test_resume_after_a_kill_redoes_only_the_unfinished_shards(images, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "facemark.cli", "batch", str(images), "--out", str(out), "--shard-size", "4"]
    proc = subprocess.Popen([*cmd, "--workers", "1", "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while len(list(out.glob("part-*.parquet"))) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("part-*.parquet")}
    assert 3 <= len(before) < 15, "the kill must land mid-run"
    resumed = subprocess.run([*cmd, "--resume", "--quiet"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == EXIT_SOME_INPUTS_FAILED, resumed.stderr
    assert f"{15 - len(before)} shards written, {len(before)} already done" in resumed.stdout
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("part-*.parquet")}
    assert len(after) == 15 and all(after[name] == stamp for name, stamp in before.items())
    assert [r["index"] for r in read_rows(out).to_pylist()] == list(range(59))  # each image once
    assert not list(out.glob(".*.tmp*"))
    assert json.loads((out / "manifest.json").read_text())["finished"] is True


def test_sources_of_every_kind(images, tmp_path):
    files = expand_sources([str(images)])
    assert len(files) == 59 and all(os.path.isabs(f) for f in files)
    (tmp_path / "list.txt").write_text("# a comment\n" + "\n".join(files[:5]) + "\n\n")
    (tmp_path / "list.csv").write_text("\ufeffid,file\n" + "".join(f"{i},{f}\n" for i, f in enumerate(files[5:9])))
    pq.write_table(pa.table({"path": files[9:12]}), tmp_path / "list.parquet")
    glob = str(images / "set1" / "*.jpg")
    got = expand_sources([str(tmp_path / "list.txt"), str(tmp_path / "list.parquet"), glob])
    assert got[:8] == files[:5] + files[9:12] and all("set1" in g for g in got[8:])
    assert expand_sources([str(tmp_path / "list.csv")], column="file") == files[5:9]
    assert expand_sources([*files[:3], *files[:3]]) == files[:3]  # each image once
    with pytest.raises(FacemarkError, match="no column 'path'"):
        expand_sources([str(tmp_path / "list.csv")])


def test_bad_runs_are_one_line_and_exit_2(images, tmp_path, capsys):
    out = tmp_path / "o"
    cases = [
        (["batch", str(tmp_path / "nope"), "--out", str(out)], "no such file or folder"),
        (["batch", str(images), "--out", str(out), "--resume"], "nothing to resume"),
        (["batch", str(images), "--out", str(out), "--model", "nope"], "no such model"),
        (["batch", str(images), "--out", str(out), "--engine", "ray", "--detector", "haar"], "unknown detector"),
    ]
    for args, needle in cases:
        rc = main(args)
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == EXIT_ERROR and len(err) == 1 and needle in err[0], (args, err)
    assert not (out / "manifest.json").exists()
    small = tmp_path / "small"
    small.mkdir()
    cv2.imwrite(str(small / "a.jpg"), face_photo([(200, 80)]))
    assert main(["batch", str(small), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    for args, needle in [
        (["batch", str(small), "--out", str(out)], "already holds a batch run"),
        (["batch", str(small), "--out", str(out), "--resume", "--mirror"], "other settings"),
    ]:
        rc = main(args)
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == EXIT_ERROR and len(err) == 1 and needle in err[0], (args, err)


@pytest.mark.skipif(not YTF68.exists(), reason="needs ../shared/data/ytf68")
def test_real_ytf68_photos_through_both_engines(tmp_path):
    files = sorted((YTF68 / "test").glob("*.jpg"))[:40]
    (tmp_path / "list.txt").write_text("\n".join(map(str, files)))
    settings = BatchSettings("kaggle15")
    a = run_batch([str(tmp_path / "list.txt")], tmp_path / "a", settings, workers=1, shard_size=16, progress=False)
    assert a["processed"] == 40 and a["unreadable"] == 0 and a["faces"] >= 36
