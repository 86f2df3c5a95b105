import numpy as np
import pytest

from facemark import FacemarkError
from facemark.inference import FaceLandmarks
from facemark.overlay import BUILTIN, Overlay, apply_overlay, load_overlay, parse_anchors, similarity
from facemark.schemes import KAGGLE15


def _face(left_eye, right_eye) -> FaceLandmarks:
    pts = np.full((15, 2), 50.0)
    pts[0], pts[1] = left_eye, right_eye
    return FaceLandmarks(pts, KAGGLE15, (0, 0, 100, 100))


def test_similarity_recovers_scale_roll_and_shift():
    src = np.array([[0.0, 0.0], [10.0, 0.0], [3.0, 7.0]])
    a = 2 * np.exp(1j * 0.3)
    z = a * (src[:, 0] + 1j * src[:, 1]) + (5 - 4j)
    m = similarity(src, np.stack([z.real, z.imag], 1))
    np.testing.assert_allclose(m, [[a.real, -a.imag, 5], [a.imag, a.real, -4]], atol=1e-12)


def test_the_overlay_anchors_land_on_the_eyes_whatever_the_roll():
    # Two opaque dots at the anchors: after warping they must sit on the face's eye points.
    rgba = np.zeros((40, 100, 4), np.uint8)
    rgba[18:23, 18:23] = rgba[18:23, 78:83] = (255, 255, 255, 255)
    overlay = Overlay(rgba, {"right_eye_center": (20.0, 20.0), "left_eye_center": (80.0, 20.0)})
    face = _face(left_eye=(150.0, 90.0), right_eye=(70.0, 130.0))  # rolled, twice as wide as the overlay
    out = apply_overlay(np.zeros((240, 240, 3), np.uint8), [face], overlay)
    ys, xs = np.nonzero(out[..., 0] > 127)
    left = xs > 110
    assert np.hypot(xs[left].mean() - 150, ys[left].mean() - 90) < 0.7
    assert np.hypot(xs[~left].mean() - 70, ys[~left].mean() - 130) < 0.7


def test_no_face_leaves_the_image_as_it_was():
    image = np.random.default_rng(0).integers(0, 255, (50, 60, 3), dtype=np.uint8)
    np.testing.assert_array_equal(apply_overlay(image, [], load_overlay("sunglasses")), image)


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_shipped_overlays_are_drawn_with_alpha(name):
    overlay = load_overlay(name)
    assert overlay.rgba.shape[2] == 4 and 0 < (overlay.rgba[..., 3] > 0).mean() < 1


@pytest.mark.parametrize(
    "rgba, anchors, needle",
    [
        (np.zeros((10, 10, 3), np.uint8), {"left_eye_center": (1, 1), "right_eye_center": (5, 5)}, "no alpha"),
        (np.zeros((10, 10, 4), np.uint8), {"left_eye_center": (1, 1), "right_eye_center": (15, 5)}, "outside"),
        (np.zeros((10, 10, 4), np.uint8), {"left_eye_center": (1, 1)}, "at least two"),
        (np.zeros((10, 10, 4), np.uint8), {"left_eye": (1, 1), "right_eye_center": (5, 5)}, "unknown anchor"),
    ],
)
def test_bad_overlays_are_refused(rgba, anchors, needle):
    with pytest.raises(FacemarkError, match=needle):
        Overlay(rgba, anchors)


def test_anchor_options_are_parsed_or_refused():
    assert parse_anchors(["left_eye_center=1,2.5"]) == {"left_eye_center": (1.0, 2.5)}
    with pytest.raises(FacemarkError, match="NAME=X,Y"):
        parse_anchors(["left_eye_center:1,2"])
