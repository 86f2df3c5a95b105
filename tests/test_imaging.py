import cv2
import numpy as np
import pytest

from facemark.imaging import (
    CropSpec,
    apply,
    compose,
    crop_face,
    crop_matrix,
    points_box,
    scale_of,
    to_original,
    whole_image_box,
)


def test_crop_then_inverse_is_exact():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 400, size=(68, 2))
    m = crop_matrix(np.array([100.0, 80.0, 260.0, 300.0]), CropSpec(96, 1.26, (0.0, -0.159)))
    np.testing.assert_allclose(to_original(apply(m, pts), m), pts, atol=1e-9)


def test_crop_places_the_box_centre_at_the_crop_centre():
    m = crop_matrix(np.array([10.0, 20.0, 110.0, 120.0]), CropSpec(96, 1.0, (0.0, 0.0)))
    np.testing.assert_allclose(apply(m, np.array([[60.0, 70.0]])), [[47.5, 47.5]])
    # scale 1: the box side (100 px) spans the 96 px crop
    np.testing.assert_allclose(m[0, 0], 0.96)


def test_a_96_pixel_image_taken_whole_is_its_own_crop():
    img = np.arange(96 * 96, dtype=np.uint8).reshape(96, 96)
    crop, m = crop_face(img, whole_image_box(img), CropSpec(96))
    np.testing.assert_allclose(m, [[1, 0, 0], [0, 1, 0]], atol=1e-12)
    np.testing.assert_array_equal(crop, img)


@pytest.mark.parametrize("exact", [False, True])
def test_large_images_are_shrunk_without_moving_points(exact):
    # A bright square whose centre must land where the matrix says, even after area pre-shrinking.
    img = np.zeros((1200, 1200), np.uint8)
    img[580:620, 380:420] = 255  # centre (399.5, 599.5)
    crop, m = crop_face(img, np.array([0.0, 200.0, 801.0, 1001.0]), CropSpec(96, 1.0), exact=exact)
    ys, xs = np.nonzero(crop > 127)
    expected = apply(m, np.array([[399.5, 599.5]]))[0]
    assert abs(xs.mean() - expected[0]) < 0.6 and abs(ys.mean() - expected[1]) < 0.6


@pytest.mark.parametrize("side, roll", [(150.0, 0.0), (300.0, 30.0), (700.0, -120.0)])
def test_the_fast_shrink_averages_like_one_exact_area_resize(side, roll):
    # Halvings then a doubled warp halved must give the crop one fractional area resize gives.
    rng = np.random.default_rng(1)
    img = cv2.resize(rng.uniform(0, 255, (60, 60)).astype(np.uint8), (999, 777), interpolation=cv2.INTER_CUBIC)
    box = np.array([450.0 - side / 2, 380.0 - side / 2, 450.0 + side / 2, 380.0 + side / 2])
    fast, exact = (crop_face(img, box, CropSpec(96, 1.0), roll, exact=e)[0].astype(float) for e in (False, True))
    assert np.abs(fast - exact).mean() < 1.0 and np.abs(fast - exact).max() < 12


def test_points_box_uses_present_points_only():
    pts = np.array([[1.0, 2.0], [5.0, 9.0], [np.nan, np.nan]])
    np.testing.assert_allclose(points_box(pts, np.array([True, True, False])), [1, 2, 5, 9])


@pytest.mark.parametrize("size", [64, 96, 128])
def test_crop_output_size(size):
    crop, _ = crop_face(np.zeros((50, 70, 3), np.uint8), np.array([5.0, 5.0, 40.0, 45.0]), CropSpec(size, 1.2))
    assert crop.shape == (size, size) and crop.dtype == np.uint8


@pytest.mark.parametrize(
    "box, mark",
    [([300.0, 500.0, 400.0, 600.0], (360, 542)), ([-60.0, -40.0, 40.0, 60.0], (10, 15)),
     ([1150.0, 1130.0, 1250.0, 1230.0], (1190, 1185))],
)  # fmt: skip
def test_a_small_face_in_a_large_frame_lands_where_the_matrix_says(box, mark):
    # Crops read only the part of the frame they cover; the mark must not move, inside or at an edge.
    img = np.full((1200, 1200), 40, np.uint8)
    x, y = mark
    img[y - 3 : y + 4, x - 3 : x + 4] = 255
    crop, m = crop_face(img, np.array(box), CropSpec(96, 1.25))
    ys, xs = np.nonzero(crop > 127)
    expected = apply(m, np.array([[x, y]], dtype=float))[0]
    assert abs(xs.mean() - expected[0]) < 0.6 and abs(ys.mean() - expected[1]) < 0.6
    np.testing.assert_allclose(to_original(apply(m, np.array([[x, y]], dtype=float)), m), [[x, y]], atol=1e-9)


def test_composed_affines_map_points_as_the_two_in_turn_and_scale_by_their_product():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    points = rng.normal(size=(5, 2))
    assert np.allclose(apply(compose(a, b), points), apply(a, apply(b, points)))
    turn = crop_matrix(np.array([10.0, 20.0, 50.0, 60.0]), CropSpec(96), roll=37.0)  # 96 / 40 px, turned
    assert scale_of(turn) == pytest.approx(96 / 40 / CropSpec(96).scale)
    assert scale_of(compose(turn, turn)) == pytest.approx(scale_of(turn) ** 2)
