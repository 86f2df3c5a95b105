"""detect, filter and video as a user runs them, on photos and a video made from the shipped real
face; bad input is one error line, exit 2 and no output file left behind."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from facemark.cli import main

from conftest import YTF68, face_photo, needs_ytf68


def _one_error_line(capsys, rc, needle):
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("facemark: error:"), err
    assert needle in err[0], err[0]


@pytest.fixture
def photos(tmp_path):
    cv2.imwrite(str(tmp_path / "group.jpg"), face_photo([(380, 60), (30, 150), (210, 20)]))
    cv2.imwrite(str(tmp_path / "empty.png"), np.full((200, 300, 3), 90, np.uint8))
    return tmp_path


def _write_video(path, frames, fps=30):
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()


def test_detect_json_lists_every_face_left_to_right_and_no_face_as_empty(photos, capsys):
    assert main(["detect", str(photos), "--json", "--out", str(photos / "drawn")]) == 0
    entries = {e["image"].rsplit("/", 1)[-1]: e["faces"] for e in json.loads(capsys.readouterr().out)}
    assert entries["empty.png"] == []
    faces = entries["group.jpg"]
    assert len(faces) == 3
    assert [f["box"][0] for f in faces] == sorted(f["box"][0] for f in faces)
    assert {"box", "score", "points"} <= set(faces[0]) and len(faces[0]["points"]) == 15
    assert faces[0]["box"][0] < 30 + 124 and faces[2]["box"][0] > 380 - 30  # original pixels
    assert cv2.imread(str(photos / "drawn" / "group.jpg")).shape == (320, 560, 3)  # JPEG in, JPEG out


def test_filter_writes_the_overlaid_photo(photos, capsys):
    out = photos / "glasses.png"
    assert main(["filter", str(photos / "group.jpg"), "--overlay", "sunglasses", "-o", str(out)]) == 0
    before, after = cv2.imread(str(photos / "group.jpg")), cv2.imread(str(out))
    changed = np.abs(before.astype(int) - after).max(axis=2) > 40
    assert 0.005 < changed.mean() < 0.2  # three pairs of glasses, not the whole picture
    assert "3 faces" in capsys.readouterr().out


def test_filter_with_a_png_without_alpha_writes_nothing(photos, capsys):
    cv2.imwrite(str(photos / "flat.png"), np.zeros((20, 40, 3), np.uint8))
    args = ["filter", str(photos / "group.jpg"), "--overlay", str(photos / "flat.png"), "-o", str(photos / "o.png")]
    rc = main([*args, "--anchor", "left_eye_center=30,10", "--anchor", "right_eye_center=10,10"])
    _one_error_line(capsys, rc, "no alpha channel")
    assert not (photos / "o.png").exists()


def test_video_reports_every_frame_and_writes_the_drawn_video(tmp_path, capsys):
    face, blank = face_photo([(200, 80)]), face_photo([])
    _write_video(tmp_path / "in.avi", [face] * 8 + [blank] * 8 + [face] * 8)
    rc = main(["video", str(tmp_path / "in.avi"), "-o", str(tmp_path / "out.avi"), "--json", str(tmp_path / "f.json")])
    assert rc == 0
    frames = json.loads((tmp_path / "f.json").read_text())
    assert [f["frame"] for f in frames] == list(range(24))
    seen = [len(f["faces"]) for f in frames]
    assert seen[:8] == [1] * 8 and seen[-6:] == [1] * 6 and 0 in seen[8:16]
    cap = cv2.VideoCapture(str(tmp_path / "out.avi"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 24
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.json", "in.avi", "out.avi"]  # no temporary files


@pytest.mark.parametrize(
    "content, needle",
    [(b"", "empty file"), (b"\x00" * 4096, "not a readable video"), (None, "no such video file")],
)
def test_bad_videos_leave_no_output(tmp_path, capsys, content, needle):
    if content is not None:
        (tmp_path / "in.mp4").write_bytes(content)
    rc = main(["video", str(tmp_path / "in.mp4"), "-o", str(tmp_path / "out.mp4"), "--json", str(tmp_path / "f.json")])
    _one_error_line(capsys, rc, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == (["in.mp4"] if content is not None else [])


def test_video_into_a_missing_folder_or_unknown_extension(tmp_path, capsys):
    _write_video(tmp_path / "in.avi", [face_photo([(200, 80)])] * 2)
    rc = main(["video", str(tmp_path / "in.avi"), "-o", str(tmp_path / "nope" / "out.mp4")])
    _one_error_line(capsys, rc, "folder does not exist")
    _one_error_line(capsys, main(["video", str(tmp_path / "in.avi"), "-o", str(tmp_path / "o.gif")]), "extension")


def test_camera_that_does_not_open(capsys):
    _one_error_line(capsys, main(["video", "--camera", "97", "--json", "x.json"]), "camera 97 does not open")


def test_unknown_detector(photos, capsys):
    _one_error_line(capsys, main(["detect", str(photos), "--detector", "haar"]), "unknown detector 'haar'")


def test_detect_filter_and_video_run_without_tensorflow(photos):
    _write_video(photos / "in.avi", [face_photo([(200, 80)])] * 3)
    code = (
        "import sys; from facemark.cli import main; d = sys.argv[1]; "
        "assert main(['detect', d + '/group.jpg', '--json']) == 0; "
        "assert main(['filter', d + '/group.jpg', '--overlay', 'moustache', '-o', d + '/m.png']) == 0; "
        "assert main(['video', d + '/in.avi', '--json', d + '/v.json']) == 0; "
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; assert not bad, bad"
    )
    out = subprocess.run([sys.executable, "-c", code, str(photos)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


@needs_ytf68
def test_evaluate_through_the_detector_reports_the_detection_rate(capsys):
    rc = main(["evaluate", "--model", "kaggle15", "--data", str(YTF68), "--holdout", "--box", "detector", "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["detection_rate"] > 95 and report["nme_io"] < 7 and "detector" in report["protocol"]
