import numpy as np

from facemark.boxes import BoxRegressor

from conftest import mean_face68


def _similar(points: np.ndarray, scale: float, angle: float, shift) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return points @ (scale * np.array([[c, -s], [s, c]])).T + shift


def _faces(n: int, rng: np.random.Generator):
    """The same face at random positions, sizes and rolls, with its box moved along."""
    base = mean_face68() * 100
    pts, centres, sides = [], [], []
    for _ in range(n):
        k, a, t = rng.uniform(0.5, 3), rng.uniform(-0.4, 0.4), rng.uniform(-200, 200, 2)
        pts.append(_similar(base + rng.normal(0, 0.5, base.shape), k, a, t))
        centres.append(_similar(np.array([[3.0, -10.0]]), k, a, t)[0])
        sides.append(120.0 * k)
    return np.stack(pts), np.stack(centres), np.array(sides)


def test_the_box_follows_the_face_through_shift_scale_and_roll():
    pts, centres, sides = _faces(400, np.random.default_rng(0))
    regress = BoxRegressor.fit(pts, centres, sides)
    test_pts, test_centres, test_sides = _faces(50, np.random.default_rng(1))
    boxes = regress(test_pts)
    np.testing.assert_allclose((boxes[:, :2] + boxes[:, 2:]) / 2, test_centres, atol=0.02 * test_sides.max())
    np.testing.assert_allclose(boxes[:, 2] - boxes[:, 0], test_sides, rtol=0.02)
    # One face alone gives the same box as in a batch, and the config round-trips through JSON.
    again = BoxRegressor.from_dict(regress.to_dict())
    np.testing.assert_allclose(again(test_pts[3]), boxes[3], atol=1e-3)


def test_incomplete_faces_are_left_out_of_the_fit():
    pts, centres, sides = _faces(300, np.random.default_rng(2))
    pts[::2, 5] = np.nan
    regress = BoxRegressor.fit(pts, centres, sides)
    assert np.all(np.isfinite(regress.weights))
