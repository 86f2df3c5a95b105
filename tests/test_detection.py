import importlib.util

import numpy as np
import pytest

from facemark import FacemarkError, Landmarker
from facemark.detection import Calibration, get_detector

from conftest import face_photo


@pytest.fixture(scope="module")
def landmarker():
    return Landmarker("kaggle15")


def test_faces_come_left_to_right_with_points_inside_their_boxes(landmarker):
    positions = [(400, 30), (20, 150), (220, 90)]
    faces = landmarker.detect(face_photo(positions))
    assert len(faces) == 3
    xs = [f.box[0] for f in faces]
    assert xs == sorted(xs)
    for face, (x, y) in zip(faces, sorted(positions)):
        assert x <= face.centre[0] <= x + 124 and y <= face.centre[1] <= y + 124
        eyes = face.points[:2]
        assert np.all((eyes[:, 0] > face.box[0]) & (eyes[:, 0] < face.box[2]))
        assert face.points[0, 0] > face.points[1, 0]  # the subject's left eye is on the image's right
        assert 0.0 <= face.score <= 1.0


def test_the_same_face_gets_the_same_points_wherever_it_is(landmarker):
    a = landmarker.detect(face_photo([(20, 40)]))[0].points
    b = landmarker.detect(face_photo([(300, 100)]))[0].points
    np.testing.assert_allclose(b - [280, 60], a, atol=1.5)  # the cascade's scale grid moves a little


@pytest.mark.parametrize("kind", ["flat", "noise", "gradient"])
def test_no_face_is_an_empty_list(landmarker, kind):
    rng = np.random.default_rng(0)
    image = {
        "flat": np.full((240, 320), 128, np.uint8),
        "noise": rng.integers(0, 256, (240, 320), dtype=np.uint8),
        "gradient": np.tile(np.linspace(0, 255, 320, dtype=np.uint8), (240, 1)),
    }[kind]
    assert landmarker.detect(image) == []


def test_calibration_squares_and_moves_the_box():
    box = Calibration(dx=0.1, dy=0.2, scale=0.5).apply(10, 20, 100, 80, 0.9)
    assert box.side == pytest.approx(50) and box.y1 - box.y0 == pytest.approx(50)
    assert box.centre == pytest.approx((70, 80)) and box.score == 0.9


def test_unknown_and_missing_detectors_fail_in_one_line(monkeypatch):
    with pytest.raises(FacemarkError, match="unknown detector 'haar'.*opencv"):
        get_detector("haar")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "mediapipe" else real(n, *a))
    with pytest.raises(FacemarkError, match="needs the mediapipe package"):
        get_detector("mediapipe")


def test_every_entry_point_shares_one_default_detector():
    from facemark.batch.rows import BatchSettings
    from facemark.cli import build_parser
    from facemark.defaults import DEFAULT_DETECTOR
    from facemark.serve.options import ServeOptions

    assert get_detector().name == DEFAULT_DETECTOR
    parser = build_parser()
    for argv in (["detect", "x.jpg"], ["batch", "x.jpg", "--out", "o.jsonl"], ["serve"]):
        assert parser.parse_args(argv).detector == DEFAULT_DETECTOR
    assert ServeOptions().detector == BatchSettings().detector == DEFAULT_DETECTOR
