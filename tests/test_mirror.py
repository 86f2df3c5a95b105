"""Labels that sit off mirror symmetry: measured from a model, honoured when un-mirroring, and
mirror averaging on request."""

import numpy as np
import pytest

from facemark.evaluation import mirror_offset
from facemark.inference import Landmarker
from facemark.readers import Dataset, Sample
from facemark.schemes import KAGGLE15


def _square_finder(bias: float):
    """A stand-in network that puts every point at a bright square's centre, plus a bias in x."""

    def run(x: np.ndarray) -> np.ndarray:
        out = []
        for img in x[..., 0]:
            ys, xs = np.nonzero(img > 0.5)
            out.append([xs.mean() + bias, ys.mean()] * KAGGLE15.num_points)
        return np.array(out, np.float32).reshape(len(x), 1, 1, -1) / 96

    return run


def _squares(offset: float, n: int = 12) -> Dataset:
    rng = np.random.default_rng(0)
    samples = []
    for _ in range(n):
        x0, y0 = rng.integers(20, 70, size=2)
        image = np.zeros((96, 96), np.uint8)
        image[y0 : y0 + 5, x0 : x0 + 5] = 255
        points = np.tile([x0 + 2 + offset, y0 + 2], (KAGGLE15.num_points, 1)).astype(float)
        samples.append(Sample(image, points, np.ones(KAGGLE15.num_points, bool)))
    return Dataset(KAGGLE15, samples, True, "test")


@pytest.mark.parametrize("model_bias", [0.0, 0.4, -0.7])
def test_mirror_offset_measures_the_labels_not_the_models_bias(model_bias):
    landmarker = Landmarker("kaggle15")
    landmarker._run = _square_finder(model_bias)
    assert mirror_offset(landmarker, _squares(offset=1.1)) == pytest.approx(1.1, abs=1e-3)
    assert mirror_offset(landmarker, _squares(offset=0.0)) == pytest.approx(0.0, abs=1e-3)


def test_unmirroring_a_model_trained_with_an_offset_agrees_with_its_plain_prediction():
    landmarker = Landmarker("kaggle15")
    landmarker.config.mirror_offset = 1.1
    landmarker._run = _square_finder(1.1)  # predicts where such labels would be
    crops = np.stack([s.image for s in _squares(offset=1.1).samples])
    plain = landmarker.predict_crops(crops)
    back = landmarker._unmirror(landmarker.predict_crops(crops[:, :, ::-1]))
    np.testing.assert_allclose(back, plain, atol=1e-4)


def test_mirror_averaging_cancels_a_models_left_right_bias():
    landmarker = Landmarker("kaggle15", mirror=True)
    landmarker.config.mirror_offset = 1.1
    landmarker._run = _square_finder(0.4)  # off the labels' convention by -0.7 px
    data = _squares(offset=1.1)
    truth = np.stack([s.points for s in data.samples])
    crops = np.stack([s.image for s in data.samples])
    np.testing.assert_allclose(landmarker.predict_crops(crops), truth, atol=1e-4)
    assert np.allclose(landmarker.predict_crops(crops, mirror=False)[..., 0], truth[..., 0] - 0.7, atol=1e-4)


def test_predict_takes_mirror(capsys):
    import json

    from facemark.cli import main

    assert main(["predict", "--mirror", "--json"]) == 0
    faces = json.loads(capsys.readouterr().out)
    assert len(faces) == 1 and len(faces[0]["points"]) == 15
