import numpy as np
import pytest

from facemark.errors import FacemarkError
from facemark.schemes import IBUG68, KAGGLE15, convert_points, get_scheme


def test_kaggle15_names_are_the_kaggle_column_stems_in_order():
    assert KAGGLE15.point_names[0] == "left_eye_center"
    assert KAGGLE15.point_names[-1] == "mouth_center_bottom_lip"
    assert KAGGLE15.num_points == 15 and IBUG68.num_points == 68
    assert len(set(IBUG68.point_names)) == 68


@pytest.mark.parametrize("scheme", [KAGGLE15, IBUG68])
def test_flip_permutation_is_an_involution_that_swaps_left_and_right(scheme):
    perm = scheme.flip_permutation()
    assert np.array_equal(perm[perm], np.arange(scheme.num_points))
    for a, b in scheme.flip_pairs:
        # ibug68 numbers each side along the contour, so compare the part names only.
        na, nb = (scheme.point_names[i].rstrip("0123456789_") for i in (a, b))
        if "left" in na or "right" in na:
            assert na.replace("left", "X").replace("right", "left").replace("X", "right") == nb


def test_kaggle_flip_pairs_cover_every_sided_point():
    sided = {i for i, n in enumerate(KAGGLE15.point_names) if "left" in n or "right" in n}
    assert {i for pair in KAGGLE15.flip_pairs for i in pair} == sided
    assert KAGGLE15.point_names[KAGGLE15.ocular[0]] == "left_eye_outer_corner"


def test_ibug_to_kaggle_conversion_by_hand():
    pts = np.arange(136, dtype=np.float32).reshape(68, 2)
    out, mask = convert_points(pts, np.ones(68, bool), IBUG68, KAGGLE15)
    k = {n: out[i] for i, n in enumerate(KAGGLE15.point_names)}
    assert mask.all()
    np.testing.assert_allclose(k["left_eye_center"], pts[42:48].mean(0))
    np.testing.assert_allclose(k["right_eye_center"], pts[36:42].mean(0))
    np.testing.assert_allclose(k["right_eye_outer_corner"], pts[36])
    np.testing.assert_allclose(k["left_eye_outer_corner"], pts[45])
    np.testing.assert_allclose(k["left_eyebrow_outer_end"], pts[26])
    np.testing.assert_allclose(k["mouth_right_corner"], pts[48])
    np.testing.assert_allclose(k["nose_tip"], pts[30])
    np.testing.assert_allclose(k["mouth_center_bottom_lip"], pts[57])


def test_conversion_drops_points_whose_sources_are_missing():
    mask = np.ones(68, bool)
    mask[40] = False  # one of the right eye's six points
    out, out_mask = convert_points(np.zeros((68, 2)), mask, IBUG68, KAGGLE15)
    assert not out_mask[KAGGLE15.point_names.index("right_eye_center")]
    assert np.isnan(out[KAGGLE15.point_names.index("right_eye_center")]).all()
    assert out_mask.sum() == 14


def test_unknown_scheme_is_a_clear_error():
    with pytest.raises(FacemarkError, match="known: kaggle15, ibug68"):
        get_scheme("dlib5")
    with pytest.raises(FacemarkError):
        convert_points(np.zeros((15, 2)), np.ones(15, bool), KAGGLE15, IBUG68)
