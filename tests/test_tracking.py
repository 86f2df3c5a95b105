import numpy as np
import pytest

from facemark import Landmarker
from facemark.tracking import FaceTracker, OneEuroFilter, SmoothingConfig

from conftest import face_photo


def test_one_euro_steadies_a_still_point_and_follows_a_moving_one():
    rng = np.random.default_rng(0)
    dt, side = 1 / 30, 100.0
    still = OneEuroFilter()
    noisy = 50 + rng.normal(0, 0.1, (300, 1, 2))  # jitter of 0.1 % of the face side
    out = np.stack([still(p, dt, side) for p in noisy])
    assert out[60:].std() < noisy[60:].std() / 3

    # Walking pace: one face side per second. After settling, the lag stays within one frame.
    moving = OneEuroFilter()
    speed = side * dt  # px per frame
    track = np.stack([np.array([[i * speed, 0.0]]) for i in range(120)])
    smoothed = np.stack([moving(p, dt, side) for p in track])
    lag_frames = (track[60:, 0, 0] - smoothed[60:, 0, 0]) / speed
    assert 0 <= lag_frames.max() <= 1.0


@pytest.fixture(scope="module")
def landmarker():
    return Landmarker("kaggle15")


def test_tracking_loses_a_face_that_leaves_and_finds_it_again(landmarker):
    face, blank = face_photo([(200, 80)]), face_photo([])
    frames = [face] * 10 + [blank] * 10 + [face] * 10
    tracker = FaceTracker(landmarker, fps=30)
    seen = [len(tracker.update(f)) for f in frames]
    assert seen[:10] == [1] * 10
    lost_by = tracker.verify_every + tracker.patience  # frames a vanished face may still be reported
    assert seen[10 + lost_by : 20] == [0] * (10 - lost_by)
    assert seen[20:] == [1] * 10
    assert tracker.detections < len(frames) - 5  # most faces came from tracking, not detection


def test_tracked_points_follow_a_moving_face(landmarker):
    tracker = FaceTracker(landmarker, fps=30, smoothing=None)
    for i in range(12):
        (face,) = tracker.update(face_photo([(100 + 8 * i, 80)]))
    still = landmarker.detect(face_photo([(100 + 8 * 11, 80)]))[0]
    np.testing.assert_allclose(face.points, still.points, atol=3.0)  # 2.4 % of the face


def test_smoothing_steadies_a_still_face_in_noisy_frames(landmarker):
    rng = np.random.default_rng(0)
    photo = face_photo([(200, 80)]).astype(np.float32)
    frames = [np.clip(photo + rng.normal(0, 6, photo.shape), 0, 255).astype(np.uint8) for _ in range(30)]
    jitter = {}  # frame-to-frame movement, what a viewer sees shake; a slow drift of the track is not
    for name, smoothing in (("raw", None), ("smoothed", SmoothingConfig())):
        tracker = FaceTracker(landmarker, fps=30, smoothing=smoothing)
        points = np.stack([tracker.update(f)[0].points for f in frames])
        jitter[name] = np.abs(np.diff(points[10:], axis=0)).mean()
    assert jitter["smoothed"] < jitter["raw"] / 3


def test_tracking_keeps_a_face_through_a_turning_roll(landmarker):
    """Each crop is turned upright by the face's own roll, so a head tilting to 90 degrees,
    which no upright detector finds, stays tracked and its eye line turns with it."""
    import cv2

    photo = face_photo([(218, 98)])  # the face centred at (280, 160)
    tracker = FaceTracker(landmarker, fps=30, smoothing=None, redetect_every=0)
    right, left = (landmarker.scheme.point_names.index(n) for n in ("right_eye_center", "left_eye_center"))
    for angle in range(0, 91, 5):
        frame = cv2.warpAffine(
            photo, cv2.getRotationMatrix2D((280, 160), -angle, 1.0), (560, 320), borderValue=(110,) * 3
        )
        faces = tracker.update(frame)
        assert len(faces) == 1, angle
        d = faces[0].points[left] - faces[0].points[right]
        assert abs(np.degrees(np.arctan2(d[1], d[0])) - angle) < 8, angle
    assert tracker.detections == 1
