import numpy as np
import pytest

from facemark.augment import AugmentConfig, build_cache, make_batch
from facemark.bundle import DEFAULT_CROPS
from facemark.readers import Dataset, read_dataset
from facemark.schemes import IBUG68, KAGGLE15

from conftest import kaggle_samples


def _cache():
    ds = Dataset(KAGGLE15, kaggle_samples(4, partial=False), crops=True, format="test")
    return build_cache(ds, KAGGLE15, DEFAULT_CROPS["kaggle15"])


def test_canonical_batch_reproduces_the_original_crop_and_points():
    samples = kaggle_samples(4, partial=False)
    x, y = make_batch(_cache(), np.arange(4), KAGGLE15, 96, AugmentConfig.none(), np.random.default_rng(0))
    assert x.shape == (4, 96, 96, 1) and y.shape == (4, 1, 1, 30)
    np.testing.assert_allclose(x[2, :, :, 0] * 255, samples[2].image, atol=1e-3)
    np.testing.assert_allclose(y[2].reshape(15, 2) * 96, samples[2].points, atol=1e-4)


@pytest.mark.parametrize("offset", [0.0, 1.1])
def test_flip_mirrors_points_and_swaps_left_right_names(offset):
    cache = _cache()
    plain = AugmentConfig.none()
    flip_only = AugmentConfig(**{**plain.to_dict(), "flip": 1.0, "mirror_offset": offset})
    x0, y0 = make_batch(cache, np.arange(1), KAGGLE15, 96, plain, np.random.default_rng(0))
    x1, y1 = make_batch(cache, np.arange(1), KAGGLE15, 96, flip_only, np.random.default_rng(0))
    p0, p1 = y0.reshape(15, 2) * 96, y1.reshape(15, 2) * 96
    np.testing.assert_allclose(x1[0, :, ::-1], x0[0], atol=1e-5)  # the image is the mirror image
    names = KAGGLE15.point_names
    for i, name in enumerate(names):
        twin = name.replace("left", "X").replace("right", "left").replace("X", "right")
        j = names.index(twin)
        # the point now called `name` is where its twin was, mirrored: x -> 95 - x, plus twice the
        # labels' own offset from mirror symmetry
        np.testing.assert_allclose(p1[i], [95 - p0[j, 0] + 2 * offset, p0[j, 1]], atol=1e-4)


@pytest.mark.parametrize("infant_shape", [0.0, 1.0])
def test_augmented_points_follow_the_pixels(infant_shape):
    # A bright dot labelled as the nose tip must stay under its label through any transform.
    s = kaggle_samples(1, partial=False)[0]
    s.image[:] = 0
    nose = KAGGLE15.point_names.index("nose_tip")
    x, y = s.points[nose].round().astype(int)
    s.image[y - 1 : y + 2, x - 1 : x + 2] = 255
    s.points[nose] = [x, y]
    cache = build_cache(Dataset(KAGGLE15, [s], True, "t"), KAGGLE15, DEFAULT_CROPS["kaggle15"])
    cfg = AugmentConfig(
        flip=0.5, rotate=30, scale=0.1, shift=0.06, brightness=0, contrast=0, blur=0, noise=0, infant_shape=infant_shape
    )
    for seed in range(5):
        xb, yb = make_batch(cache, np.arange(1), KAGGLE15, 96, cfg, np.random.default_rng(seed))
        img = xb[0, :, :, 0]
        ys, xs = np.nonzero(img > img.max() / 2)
        np.testing.assert_allclose([xs.mean(), ys.mean()], yb.reshape(15, 2)[nose] * 96, atol=0.7)


def _canonical_and_with(change: str, n: int, seed: int):
    """The cache and its first `n` canonical crops, without and with one change always applied."""
    cache = _cache()
    plain = AugmentConfig.none()
    changed = AugmentConfig(**{**plain.to_dict(), change: 1.0})
    batches = [make_batch(cache, np.arange(n), KAGGLE15, 96, c, np.random.default_rng(seed)) for c in (plain, changed)]
    return cache, *batches


def test_an_occluder_covers_one_rectangle_with_another_face_and_keeps_the_points():
    cache, (x0, y0), (x1, y1) = _canonical_and_with("occlude", 1, seed=3)
    np.testing.assert_array_equal(y1, y0)  # covered points stay supervised where they are
    ys, xs = np.nonzero(x1[0, :, :, 0] != x0[0, :, :, 0])
    h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    assert 0.2 * 96 - 1 <= min(h, w) and max(h, w) <= 0.5 * 96  # one rectangle of the drawn size
    patch = x1[0, ys.min() : ys.max() + 1, xs.min() : xs.max() + 1, 0] * 255
    assert any(  # its pixels are a patch of a cached face, taken whole
        (cache.images[n][v : v + h, u : u + w] == patch.round()).all()
        for n in range(len(cache))
        for v in range(cache.images.shape[1] - h + 1)
        for u in range(cache.images.shape[2] - w + 1)
    )


def test_an_infant_shape_warp_raises_the_nose_toward_the_eyes():
    _, (_, y0), (_, y1) = _canonical_and_with("infant_shape", 4, seed=0)
    names = KAGGLE15.point_names
    eyes, nose = [names.index("left_eye_center"), names.index("right_eye_center")], names.index("nose_tip")
    p0, p1 = y0.reshape(4, 15, 2), y1.reshape(4, 15, 2)
    drop0 = p0[:, nose, 1] - p0[:, eyes, 1].mean(1)
    drop1 = p1[:, nose, 1] - p1[:, eyes, 1].mean(1)
    assert (drop1 < drop0).all()  # the nose sits closer below the eyes, as in an infant's face
    np.testing.assert_allclose(p1[..., 0], p0[..., 0])  # columns never move


def test_batches_depend_only_on_the_seed():
    cache = _cache()
    a = make_batch(cache, np.arange(4), KAGGLE15, 96, AugmentConfig(), np.random.default_rng([1, 2]))
    b = make_batch(cache, np.arange(4), KAGGLE15, 96, AugmentConfig(), np.random.default_rng([1, 2]))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_cache_of_68_point_images_converts_to_kaggle15(ytf68_like):
    ds = read_dataset(ytf68_like)
    cache = build_cache(ds, KAGGLE15, DEFAULT_CROPS["kaggle15"])
    assert cache.points.shape == (24, 15, 2) and cache.images.shape == (24, 128, 128)
    cache68 = build_cache(ds, IBUG68, DEFAULT_CROPS["ibug68"])
    assert cache68.points.shape == (24, 68, 2)
    # ibug68 crops keep every point inside the canonical 96 crop centred in the 128 cache
    inner = cache68.points - 16
    assert inner.min() > 0 and inner.max() < 96
