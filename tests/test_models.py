import keras
import numpy as np
import pytest

from facemark.errors import FacemarkError
from facemark.losses import MaskedLandmarkLoss
from facemark.models import build_model


@pytest.mark.parametrize("arch", ["seed", "fmnet"])
@pytest.mark.parametrize("k", [15, 68])
def test_models_map_a_96_face_to_one_by_one_by_2k(arch, k):
    model = build_model(arch, k)
    out = np.asarray(model.predict_on_batch(np.ones((2, 96, 96, 1), np.float32)))
    assert out.shape == (2, 1, 1, 2 * k)
    assert not any(isinstance(layer, keras.layers.Dense) for layer in model.layers)
    assert isinstance(model.layers[-1], keras.layers.Conv2D | keras.layers.DepthwiseConv2D)


def test_seed_is_the_article_network():
    model = build_model("seed", 15)
    seps = [layer for layer in model.layers if isinstance(layer, keras.layers.SeparableConv2D)]
    assert seps and all(layer.padding == "valid" for layer in seps)
    assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
    assert model.layers[-1].get_config()["activation"] == "sigmoid"
    out = np.asarray(model.predict_on_batch(np.ones((1, 96, 96, 1), np.float32)))
    assert out.min() >= 0 and out.max() <= 1


def test_fmnet_is_small():
    # at most 1 MB of float32 weights
    assert build_model("fmnet", 68).count_params() * 4 <= 1_000_000


def test_fmnet_width_scales_channels_and_keeps_the_contract():
    narrow, wide = build_model("fmnet", 15), build_model("fmnet", 15, width=1.5)
    assert wide.count_params() > 1.8 * narrow.count_params()
    out = np.asarray(wide.predict_on_batch(np.ones((1, 96, 96, 1), np.float32)))
    assert out.shape == (1, 1, 1, 30)


def test_fmnet_output_layer_is_the_depthwise_convolution_it_claims_to_be():
    from facemark.models.fmnet import CoordinateConv, coordinate_kernel

    rng = np.random.default_rng(0)
    maps = rng.random((2, 24, 24, 5)).astype("float32")
    kernel = coordinate_kernel(24, 4, 5)
    fast = CoordinateConv(24, depth_multiplier=2, use_bias=False)
    plain = keras.layers.DepthwiseConv2D(24, depth_multiplier=2, use_bias=False)
    fast.build(maps.shape)
    plain.build(maps.shape)
    fast.set_weights([kernel])
    plain.set_weights([kernel])
    np.testing.assert_allclose(np.asarray(fast(maps)), np.asarray(plain(maps)), rtol=1e-5)


def test_fmnet_upsampling_is_keras_nearest_upsampling():
    from facemark.models.fmnet import NearestUpsampling2D

    x = np.random.default_rng(0).random((2, 6, 5, 3)).astype("float32")
    expected = np.asarray(keras.layers.UpSampling2D(2)(x))
    np.testing.assert_array_equal(np.asarray(NearestUpsampling2D()(x)), expected)


def test_a_one_hot_map_gives_that_cells_pixel_centre():
    from facemark.models.fmnet import coordinate_kernel

    maps = np.zeros((24, 24, 1), np.float32)
    maps[5, 17, 0] = 1.0  # row 5, column 17 of a stride-4 map
    xy = np.einsum("hwk,hwkm->km", maps, coordinate_kernel(24, 4, 1))[0] * 96
    np.testing.assert_allclose(xy, [17 * 4 + 1.5, 5 * 4 + 1.5])


def test_unknown_arch():
    with pytest.raises(FacemarkError, match="known: seed, fmnet"):
        build_model("resnet", 15)


def test_masked_mse_equals_mse_on_complete_rows_and_ignores_missing():
    rng = np.random.default_rng(0)
    y, p = rng.random((4, 1, 1, 30)).astype("float32"), rng.random((4, 1, 1, 30)).astype("float32")
    loss = MaskedLandmarkLoss("mse")
    assert float(loss(y, p)) == pytest.approx(float(np.mean((y - p) ** 2)), rel=1e-5)
    y_missing = y.copy()
    y_missing[:, :, :, 10:] = np.nan
    assert float(loss(y_missing, p)) == pytest.approx(float(np.mean((y[..., :10] - p[..., :10]) ** 2)), rel=1e-5)


def test_nme_loss_is_the_benchmarks_inter_ocular_error():
    from facemark.metrics import compute_metrics
    from facemark.schemes import get_scheme

    scheme = get_scheme("kaggle15")
    rng = np.random.default_rng(0)
    y = rng.uniform(0.3, 0.7, (4, 1, 1, 30)).astype("float32")
    y[..., 6:8], y[..., 10:12] = (0.75, 0.4), (0.25, 0.4)  # outer eye corners half a crop apart
    p = y + rng.normal(0, 0.02, y.shape).astype("float32")
    loss = MaskedLandmarkLoss("nme", ocular=scheme.ocular)
    nme = compute_metrics(p.reshape(4, 15, 2) * 96, y.reshape(4, 15, 2) * 96, scheme).nme_io
    assert float(loss(y, p)) * 100 == pytest.approx(nme, rel=1e-4)


@pytest.mark.parametrize("kind", ["mse", "l1", "wing", "softwing", "nme"])
def test_losses_give_finite_gradients_with_missing_targets(kind):
    import tensorflow as tf

    y = np.full((2, 1, 1, 4), np.nan, np.float32)
    y[0, ..., :2] = 0.5
    p = tf.Variable(np.full((2, 1, 1, 4), 0.4, np.float32))
    with tf.GradientTape() as tape:
        value = MaskedLandmarkLoss(kind, ocular=(0, 1))(y, p)
    grad = tape.gradient(value, p).numpy()
    assert np.isfinite(grad).all()
    assert (grad[0, ..., :2] != 0).all() and (grad[0, ..., 2:] == 0).all() and (grad[1] == 0).all()


def test_soft_wing_is_l1_for_small_errors_and_continuous_but_damped_beyond():
    loss = MaskedLandmarkLoss("softwing")  # w1 = 2 crop px, w2 = 20, eps = 0.5
    y = np.zeros((1, 1, 1, 2), np.float32)

    def px(e: float) -> float:  # the loss of a one-coordinate error of e crop px, in crop px
        p = y.copy()
        p[..., 0] = e / 96
        return float(loss(y, p)) * 2 * 96

    assert px(1.0) == pytest.approx(1.0, rel=1e-5)
    assert px(2.0 - 1e-3) == pytest.approx(px(2.0 + 1e-3), abs=0.02)
    assert px(4.0) - px(3.0) > 2.0  # a mid-size error pulls harder than L1's slope of 1
    assert px(40.0) - px(39.0) < 1.0  # an outlier less


def test_loss_round_trips_through_config():
    loss = MaskedLandmarkLoss("wing", wing_w=5.0)
    again = MaskedLandmarkLoss.from_config(loss.get_config())
    assert again.kind == "wing" and again.wing_w == 5.0


def test_heat_map_divergence_is_zero_for_the_target_blob_and_ignores_missing_points():
    import tensorflow as tf

    from facemark.losses import HeatMapDivergence

    size, crop = 24, 96
    target = np.array([[40.0, 30.0], [np.nan, np.nan]]) / crop  # point 2 is missing
    y = target.reshape(1, 1, 1, 4).astype(np.float32)
    centres = (np.arange(size) * 4 + 1.5) / crop  # fmnet's cell centres
    s = 1.0 / size
    gx = np.exp(-((centres - target[0, 0]) ** 2) / (2 * s * s))
    gy = np.exp(-((centres - target[0, 1]) ** 2) / (2 * s * s))
    blob = np.outer(gy, gx) / np.outer(gy, gx).sum()
    uniform = np.full((size, size), 1 / size**2)
    loss = HeatMapDivergence()

    def maps(first):
        return np.stack([first, uniform], axis=-1)[None].astype(np.float32)

    assert float(loss(y, maps(blob))) == pytest.approx(0.0, abs=1e-5)
    assert float(loss(y, maps(uniform))) > 0.3  # a flat map: far from one compact blob
    p = tf.Variable(maps(uniform))
    with tf.GradientTape() as tape:
        value = loss(y, p)
    grad = tape.gradient(value, p).numpy()
    assert np.isfinite(grad).all() and (grad[..., 1] == 0).all() and (grad[..., 0] != 0).any()


@pytest.mark.parametrize("k", [15, 68])
def test_fmnet_xy_maps_a_96_face_to_points_inside_the_crop(k):
    model = build_model("fmnet-xy", k)
    out = np.asarray(model.predict_on_batch(np.random.default_rng(0).random((2, 96, 96, 1)).astype(np.float32)))
    assert out.shape == (2, 1, 1, 2 * k)
    assert 0 < out.min() and out.max() < 1
    assert model.count_params() * 4 <= 500_000  # the tiny tier's size, as fmnet


def test_axis_expectation_of_a_certain_bin_is_that_bins_centre():
    from facemark.models.fmnet import AxisExpectation

    logits = np.full((1, 2, 2 * 96), -50.0, np.float32)
    logits[0, 0, 17] = logits[0, 0, 96 + 40] = 50.0  # point 0: x in bin 17, y in bin 40
    logits[0, 1, 95] = logits[0, 1, 96] = 50.0  # point 1: the last x bin, the first y bin
    out = np.asarray(AxisExpectation(96)(logits)).reshape(2, 2) * 96
    np.testing.assert_allclose(out, [[17.5, 40.5], [95.5, 0.5]], atol=1e-4)
