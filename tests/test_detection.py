import importlib.util

import numpy as np
import pytest

from facemark import FacemarkError, Landmarker
from facemark.detection import Calibration, get_detector, iou
from facemark.inference import MAX_DOUBT

from conftest import face_photo


@pytest.fixture(scope="module")
def landmarker():
    return Landmarker("kaggle15")


def _giving(*boxes):
    """A detector that reports these boxes in every image."""
    from facemark.detection import Detector

    class Fixed(Detector):
        name = "fixed"

        def _boxes(self, image, min_side):
            return list(boxes)

    return Fixed()


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


def test_overlapping_boxes_are_reported_once_best_first():
    from facemark.detection import FaceBox, suppress

    a, b = FaceBox(0, 0, 10, 10, 0.9), FaceBox(1, 1, 11, 11, 0.95)  # IoU 0.68: one face
    far, touching = FaceBox(50, 50, 60, 60, 0.5), FaceBox(8, 0, 18, 10, 0.4)  # IoU 0.11 with a
    assert suppress([a, far, b, touching]) == [b, far, touching]
    grid = [FaceBox(x, y, x + 8, y + 8, (x * 7 + y) % 5 / 5) for x in range(0, 800, 4) for y in range(0, 80, 4)]
    kept = suppress(grid)  # 4,000 candidates, half-overlapping neighbours
    assert 0 < len(kept) < len(grid)
    k = np.array([b.as_array() for b in kept])
    ix = np.clip(np.minimum(k[:, None, 2], k[None, :, 2]) - np.maximum(k[:, None, 0], k[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(k[:, None, 3], k[None, :, 3]) - np.maximum(k[:, None, 1], k[None, :, 1]), 0, None)
    overlap = ix * iy / (2 * 64 - ix * iy)
    np.fill_diagonal(overlap, 0)
    assert overlap.max() < 0.3  # no two kept boxes are one face
    dropped = [g for g in grid if g not in kept]
    assert all(any(iou(g, q) >= 0.3 for q in kept) for g in dropped[:200])  # each dropped one has its face


def test_two_candidates_that_settle_on_one_face_give_it_once(landmarker):
    from facemark.detection import FaceBox

    photo = face_photo([(200, 80)])
    good = landmarker.detector.detect(photo)[0]
    (cx, cy), half = good.centre, good.side  # a second box twice the face's, about the same centre:
    loose = FaceBox(cx - half, cy - half, cx + half, cy + half, 0.5, good.keypoints)  # IoU 0.25

    assert len(_giving(good, loose).detect(photo)) == 2  # the detector's own suppression keeps both
    faces = Landmarker("kaggle15", detector=_giving(good, loose)).detect(photo)
    assert len(faces) == 1  # re-framed from their points, both boxes land on the same face
    np.testing.assert_allclose(faces[0].points, landmarker.detect(photo)[0].points, atol=2.0)  # either fit


def test_a_doubtful_box_across_a_found_face_gets_no_second_look(landmarker, monkeypatch):
    from facemark.detection import FaceBox

    photo = face_photo([(200, 80)])
    good = landmarker.detector.detect(photo)[0]
    one = Landmarker("kaggle15", detector=_giving(good))
    points, _ = one.fit_boxes([photo[..., 0]], [0], good.as_array()[None])
    (ex, ey), s = points[0][list(one.scheme.ocular)].mean(axis=0), good.side
    # A box across the face and the background beside it: it holds the face's eyes, in a corner.
    across = FaceBox(ex - 0.1 * s, ey - 0.1 * s, ex + 2.5 * s, ey + 2.5 * s, 0.4, good.keypoints)
    one = Landmarker("kaggle15", detector=_giving(good, across))
    _, doubt = one.fit_boxes([photo[..., 0]], [0, 0], np.stack([good.as_array(), across.as_array()]))
    assert doubt[0] <= MAX_DOUBT < doubt[1]  # the face settles, the box across it does not

    fits = []
    real = one.fit_boxes
    monkeypatch.setattr(one, "fit_boxes", lambda *a, **k: fits.append(len(a[2])) or real(*a, **k))
    faces = one.detect(photo)
    assert len(faces) == 1 and fits == [2]  # one fit of both candidates, no second look


def test_a_fit_that_jumps_when_re_framed_is_given_up_before_its_mirrored_pass(landmarker, monkeypatch):
    photo = face_photo([(200, 80)])
    good = landmarker.detector.detect(photo)[0].as_array()
    boxes = np.stack([good, [20.0, 150, 60, 190]])  # the face, and a box on the flat background
    gray = photo[..., 0]
    kept_points, kept_doubt = landmarker.fit_boxes([gray], [0, 0], boxes)
    assert kept_doubt[1] > MAX_DOUBT  # kept going, the background fit never settles

    crops = []
    real = landmarker.predict_crops
    monkeypatch.setattr(landmarker, "predict_crops", lambda c, *a, **k: crops.append(len(c)) or real(c, *a, **k))
    points, doubt = landmarker.fit_boxes([gray], [0, 0], boxes, give_up=0.3)
    assert doubt[1] == np.inf and crops == [2, 2, 2]  # last pass: the face and its mirror image only
    np.testing.assert_allclose(points[0], kept_points[0], atol=1e-6)
    assert doubt[0] == pytest.approx(kept_doubt[0])


def test_a_face_the_detector_boxed_only_in_part_is_still_found(landmarker):
    from facemark.detection import FaceBox

    photo = face_photo([(200, 80)])
    good = landmarker.detector.detect(photo)[0]
    (cx, cy), half = good.centre, good.side * 0.3  # eyes and nose only: too little to fit at once
    part = FaceBox(cx - half, cy - half, cx + half, cy + half, 0.5, good.keypoints)

    one = Landmarker("kaggle15", detector=_giving(part))
    first, doubt = one.fit_boxes([photo[..., 0]], [0], part.as_array()[None], rolls=np.array([part.roll]))
    assert doubt[0] > MAX_DOUBT  # the first fit alone would drop it
    faces = one.detect(photo)
    assert len(faces) == 1
    np.testing.assert_allclose(faces[0].points, landmarker.detect(photo)[0].points, atol=2.0)


def test_a_face_the_detector_gave_the_wrong_roll_is_still_found(landmarker):
    from facemark.detection import FaceBox

    upright = face_photo([(200, 80)])
    good = landmarker.detector.detect(upright)[0]
    truth = landmarker.detect(upright)[0].points
    turned = np.ascontiguousarray(np.rot90(upright, -1))  # a quarter turn clockwise: (x, y) -> (h-1-y, x)
    h = upright.shape[0]

    def turn(p):
        return np.stack([h - 1 - p[..., 1], p[..., 0]], axis=-1)

    (cx, cy), half = turn(np.array(good.centre)), good.side / 2
    shift = np.array([cx, cy]) - good.centre  # keypoints moved, not turned: the roll they give is 0
    keypoints = tuple(tuple(k) for k in np.array(good.keypoints) + shift)
    wrong = FaceBox(cx - half, cy - half, cx + half, cy + half, 0.5, keypoints)
    assert abs(wrong.roll - good.roll) < 1e-6

    one = Landmarker("kaggle15", detector=_giving(wrong))
    _, doubt = one.fit_boxes([turned[..., 0]], [0], wrong.as_array()[None], rolls=np.array([wrong.roll]))
    assert doubt[0] > MAX_DOUBT  # fitted at the detector's roll, the face is lost
    faces = one.detect(turned)
    assert len(faces) == 1
    np.testing.assert_allclose(faces[0].points, turn(truth), atol=3.0)


def test_each_view_a_detector_gives_of_a_face_is_fitted(landmarker):
    from dataclasses import replace

    from facemark.detection import FaceBox

    photo = face_photo([(200, 80)])
    good = landmarker.detector.detect(photo)[0]
    off = FaceBox(20, 150, 60, 190, 0.5, good.keypoints)  # a view on background: never a face
    one = Landmarker("kaggle15", detector=_giving(off))
    assert one.detect(photo) == []
    faces = Landmarker("kaggle15", detector=_giving(replace(off, other_views=(good,)))).detect(photo)
    assert len(faces) == 1 and faces[0].box == (good.x0, good.y0, good.x1, good.y1)  # found from its other view


def test_a_faces_other_views_are_fitted_only_when_its_first_views_fit_is_doubtful(landmarker, monkeypatch):
    """The other views cost the landmark stage as much as the first; a steady first fit makes them moot."""
    from dataclasses import replace

    from facemark.detection import FaceBox

    photo = face_photo([(200, 80)])
    good = landmarker.detector.detect(photo)[0]
    off = FaceBox(20, 150, 60, 190, 0.5, good.keypoints)
    one = Landmarker("kaggle15", detector=_giving(replace(good, other_views=(off,))))
    fitted, fit = [], one.fit_boxes

    def recorded(grays, owners, boxes, **kw):
        fitted.append(boxes)
        return fit(grays, owners, boxes, **kw)

    monkeypatch.setattr(one, "fit_boxes", recorded)
    faces = one.detect(photo)
    assert len(faces) == 1 and faces[0].box == (good.x0, good.y0, good.x1, good.y1)
    assert len(fitted) == 1 and fitted[0].tolist() == [good.as_array().tolist()]  # `off` never cropped


def test_a_fit_that_shrinks_to_a_small_face_inside_its_box_is_not_a_face(landmarker):
    photo = face_photo([(200, 80)])
    (face,) = landmarker.detect(photo)
    box = np.array([face.box])
    centre = face.points.mean(axis=0)
    small = centre + (face.points - centre) * 0.3  # a made-up face around the nose and mouth
    doubt = np.zeros(2)
    landmarker._drop_shrunk(np.stack([face.points, small]), np.repeat(box, 2, axis=0), doubt)
    assert doubt[0] == 0 and doubt[1] == np.inf


def test_one_point_that_disagrees_with_the_mirror_image_does_not_make_a_face_doubtful(monkeypatch):
    """Doubt is the mean over the points: an occluded mouth corner must not reject a face whose
    other points agree, while the whole face disagreeing as much still does."""
    one = Landmarker("kaggle15")
    photo = face_photo([(200, 80)])
    box = one.detector.detect(photo)[0].as_array()[None]
    _, steady = one.fit_boxes([photo[..., 0]], [0], box)
    real = one.predict_with_mirror
    side = one.size / one.config.crop.scale  # the box side in crop pixels
    for moved, doubtful in ((slice(0, 1), False), (slice(None), True)):
        shift = np.zeros((one.scheme.num_points, 2))
        shift[moved, 0] = 0.3 * side  # this many points a third of the face away in the mirror image

        def shifted(crops, *a, shift=shift, **k):
            pred, mirrored = real(crops, *a, **k)
            return pred, mirrored + shift

        monkeypatch.setattr(one, "predict_with_mirror", shifted)
        _, doubt = one.fit_boxes([photo[..., 0]], [0], box)
        assert bool(doubt[0] > MAX_DOUBT) == doubtful, (moved, doubt[0], steady[0])
