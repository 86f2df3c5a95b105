import numpy as np
import pytest

from facemark.infant_shape import ADULT_ROWS, EYE_ROW, INFANT_ROWS, toward_infant

SIDE, CENTRE = 80.0, 70.0  # a face box of 80 px centred at row 70 of a 160 px image
EYE = CENTRE + EYE_ROW * SIDE


def _dots(rows: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """A black image with a bright 3x3 dot at each (column 20 + 25 i, row) and its points."""
    image = np.zeros((160, 140), np.uint8)
    points = np.array([[20.0 + 25 * i, round(r)] for i, r in enumerate(rows)])
    for x, y in points.astype(int):
        image[y - 1 : y + 2, x - 1 : x + 2] = 255
    return image, points


def test_strength_zero_changes_nothing():
    image, points = _dots([EYE, EYE + 20, EYE + 50])
    out, moved, centre = toward_infant(image, points, CENTRE, SIDE, 0.0)
    np.testing.assert_array_equal(out, image)
    np.testing.assert_allclose(moved, points)
    assert centre == CENTRE


@pytest.mark.parametrize("recentre", [False, True])
@pytest.mark.parametrize("strength", [0.5, 1.0])
def test_points_move_with_their_pixels(strength, recentre):
    image, points = _dots([EYE - 12, EYE, EYE + 15, EYE + 30, EYE + 48])
    out, moved, _ = toward_infant(image, points, CENTRE, SIDE, strength, recentre)
    for x, y in moved:
        window = out[int(y) - 6 : int(y) + 7, int(x) - 4 : int(x) + 5].astype(float)
        ys = np.arange(int(y) - 6, int(y) + 7)
        assert window.sum() > 0, "the dot left its point"
        assert abs((window.sum(1) * ys).sum() / window.sum() - y) < 0.5


def test_full_strength_puts_the_adult_rows_on_the_infant_rows():
    adult = [EYE + r * SIDE for r in ADULT_ROWS]
    points = np.array([[50.0, r] for r in adult])
    _, moved, centre = toward_infant(np.zeros((160, 100), np.uint8), points, CENTRE, SIDE, 1.0)
    np.testing.assert_allclose((moved[:, 1] - EYE) / SIDE, INFANT_ROWS, atol=1e-9)
    assert centre == pytest.approx(CENTRE - (ADULT_ROWS[-1] - INFANT_ROWS[-1]) * SIDE / 2)  # the chin rose
    # recentred, the face moves down by that much: its box centre stays where the crop expects it
    _, recentred, centre = toward_infant(np.zeros((160, 100), np.uint8), points, CENTRE, SIDE, 1.0, recentre=True)
    assert centre == CENTRE
    np.testing.assert_allclose(recentred[:, 1] - moved[:, 1], (ADULT_ROWS[-1] - INFANT_ROWS[-1]) * SIDE / 2)


def test_missing_points_stay_missing_and_colour_images_keep_their_channels():
    points = np.array([[10.0, 60.0], [np.nan, np.nan]])
    out, moved, _ = toward_infant(np.zeros((160, 100, 3), np.uint8), points, CENTRE, SIDE, 0.7)
    assert out.shape == (160, 100, 3)
    assert np.isnan(moved[1]).all() and np.isfinite(moved[0]).all()
