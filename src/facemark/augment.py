"""Training samples: faces decoded and cropped once into a cache, then augmented per batch.

Geometric augmentation is one similarity transform per sample (scale, roll, shift, mirror)
applied to the image and points together; a mirror also swaps left/right labels through the
scheme's flip pairs. Photometric changes (brightness, contrast, blur, noise) and occluders touch
pixels only. An infant-shape warp (`facemark.infant_shape`), when asked for, moves rows of the
cached face before the similarity, points with them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import cv2
import numpy as np

from facemark.imaging import CropSpec, apply, compose, crop_face, to_bgr
from facemark.infant_shape import toward_infant
from facemark.readers import Dataset
from facemark.schemes import Scheme, training_points

CACHE_MARGIN = 4 / 3  # the cache covers 4/3 of the crop, so shifts and rolls find real pixels
OCCLUDER_SIDES = (0.2, 0.5)  # an occluder's width and height, each a fraction of the crop side


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random changes; `none()` gives the canonical crop (validation, the seed)."""

    flip: float = 0.5  # probability of a mirror
    rotate: float = 30.0  # degrees, hard limit; drawn from N(0, rotate / 2.5)
    scale: float = 0.1  # crop size x [1 - scale, 1 + scale]
    shift: float = 0.06  # fraction of the crop side, each axis
    brightness: float = 0.2  # fraction of 255
    contrast: float = 0.3  # gain x [1 - contrast, 1 + contrast]
    blur: float = 0.3  # probability of a Gaussian blur (sigma up to 1.5 px)
    noise: float = 0.3  # probability of Gaussian noise (sd up to 8 grey levels)
    # Probability of an occluder: a rectangle (OCCLUDER_SIDES of the crop side, each axis) inside
    # the crop, filled with a patch of another training face, as a hand or a bottle covers part
    # of a face; its points stay supervised, so the model learns where covered points are.
    occlude: float = 0.0
    # Probability of warping a face part of the way (uniform strength) toward the infant mean
    # face's rows (`facemark.infant_shape`): more infant-like faces than the data holds.
    infant_shape: float = 0.0
    # How far right of the mirror-symmetric spot the data's labels sit, in crop pixels: a mirrored
    # face's labels move by twice this, so flipped and unflipped targets agree (ytf68: about 1.1).
    mirror_offset: float = 0.0

    @classmethod
    def none(cls) -> AugmentConfig:
        return cls(**{f.name: 0.0 for f in fields(cls)})

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FaceCache:
    """Decoded, cropped training faces (uint8) with points in cache pixels (NaN where missing)."""

    images: np.ndarray  # (N, C, C) gray or (N, C, C, 3) BGR, uint8
    points: np.ndarray  # (N, K, 2) float32 in cache pixels
    identities: list[str | None]
    # The faces' common 68-point box in cache pixels: its centre's row and its side.
    box: tuple[float, float] = (float("nan"), float("nan"))

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, idx: np.ndarray) -> FaceCache:
        return FaceCache(self.images[idx], self.points[idx], [self.identities[i] for i in idx], self.box)

    @classmethod
    def concatenate(cls, caches: list[FaceCache]) -> FaceCache:
        """Several data sets' caches as one (same scheme and crop)."""
        return cls(
            np.concatenate([c.images for c in caches]),
            np.concatenate([c.points for c in caches]),
            [i for c in caches for i in c.identities],
            caches[0].box,
        )


def build_cache(dataset: Dataset, scheme: Scheme, spec: CropSpec, colour: bool = False) -> FaceCache:
    """Crop every face once around its ground-truth box; Kaggle-style crops are used as they are.
    `colour`: BGR crops (gray images become three equal channels)."""
    size = round(spec.size * CACHE_MARGIN)
    cache_spec = CropSpec(size=size, scale=spec.scale * CACHE_MARGIN, shift=spec.shift)
    images, points = [], []
    for s in dataset.samples:
        pts = np.where(s.mask[:, None], s.points, np.nan).astype(np.float32)
        if dataset.crops:
            # Already the model's crop: centre it in a cache of the same resolution.
            offset = (size - s.image.shape[0]) / 2
            matrix = np.array([[1.0, 0.0, offset], [0.0, 1.0, offset]])
            image = to_bgr(s.image) if colour else s.image
            img = cv2.warpAffine(image, matrix, (size, size), borderMode=cv2.BORDER_REPLICATE)
        else:
            img, matrix = crop_face(s.image, s.box(dataset.scheme), cache_spec, exact=True, colour=colour)
        pts = apply(matrix, pts)
        pts, _ = training_points(pts, np.isfinite(pts[:, 0]), dataset.scheme, scheme)
        images.append(img)
        points.append(pts)
    side = size / cache_spec.scale  # every face's box is where the crop spec put it
    box = ((size - 1) / 2 - cache_spec.shift[1] * side, side)
    return FaceCache(np.stack(images), np.stack(points).astype(np.float32), [s.identity for s in dataset.samples], box)


def _similarity(rng: np.random.Generator, cfg: AugmentConfig, cache_size: int, size: int) -> tuple[np.ndarray, bool]:
    """Cache -> crop matrix: the canonical centred crop, then a random scale, roll, shift, mirror."""
    angle = float(np.clip(rng.normal(0.0, cfg.rotate / 2.5), -cfg.rotate, cfg.rotate)) if cfg.rotate else 0.0
    scale = float(rng.uniform(1 - cfg.scale, 1 + cfg.scale)) if cfg.scale else 1.0
    shift = rng.uniform(-cfg.shift, cfg.shift, size=2) * size if cfg.shift else np.zeros(2)
    flip = bool(rng.random() < cfg.flip)
    c_in, c_out = (cache_size - 1) / 2, (size - 1) / 2
    m = cv2.getRotationMatrix2D((c_in, c_in), angle, scale)
    m[:, 2] += c_out - c_in + shift
    if flip:
        m = compose(np.array([[-1.0, 0.0, size - 1.0], [0.0, 1.0, 0.0]]), m)
    return m, flip


def make_batch(
    cache: FaceCache, idx: np.ndarray, scheme: Scheme, size: int, cfg: AugmentConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs (B, size, size, channels) in [0, 1] (1 channel for a gray cache, 3 for BGR)
    and targets (B, 1, 1, 2K) / size, NaN if missing. Photometric changes hit every channel alike."""
    perm = scheme.flip_permutation()
    cache_size = cache.images.shape[1]
    xs = np.empty((len(idx), size, size, *cache.images.shape[3:]), dtype=np.float32)
    ys = np.empty((len(idx), scheme.num_points, 2), dtype=np.float32)
    for j, i in enumerate(idx):
        face, pts = cache.images[i], cache.points[i]
        if cfg.infant_shape and rng.random() < cfg.infant_shape:  # no draw when off: older recipes stay bit-identical
            face, pts, _ = toward_infant(face, pts, *cache.box, float(rng.uniform()), recentre=True)
        m, flip = _similarity(rng, cfg, cache_size, size)
        img = cv2.warpAffine(face, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        pts = apply(m, pts)
        if flip:
            pts = pts[perm]
            pts[:, 0] += 2 * cfg.mirror_offset
        if cfg.occlude and rng.random() < cfg.occlude:  # no draw when off: older recipes stay bit-identical
            _occlude(img, cache.images[rng.integers(len(cache))], rng)
        img = img.astype(np.float32)
        if cfg.blur and rng.random() < cfg.blur:
            img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.3, 1.5)))
        xs[j] = img
        ys[j] = pts
    each = (len(idx),) + (1,) * (xs.ndim - 1)  # one draw per sample, for all its pixels
    if cfg.contrast or cfg.brightness:
        gain = rng.uniform(1 - cfg.contrast, 1 + cfg.contrast, size=each)
        bias = rng.uniform(-cfg.brightness, cfg.brightness, size=each) * 255
        mean = xs.mean(axis=tuple(range(1, xs.ndim)), keepdims=True)
        xs = (xs - mean) * gain + mean + bias
    if cfg.noise:
        noisy = rng.random(len(idx)) < cfg.noise
        sd = rng.uniform(0, 8, size=each) * noisy.reshape(each)
        xs = xs + rng.normal(size=xs.shape).astype(np.float32) * sd
    xs = np.clip(xs, 0, 255) / 255.0
    xs = xs if xs.ndim == 4 else xs[..., None]
    return xs.astype(np.float32), (ys / size).reshape(len(idx), 1, 1, -1)


def _occlude(img: np.ndarray, other: np.ndarray, rng: np.random.Generator) -> None:
    """Cover a random rectangle of `img` (in place) with the same-sized patch of `other`, a cached
    face (larger than the crop) taken at a random spot: skin and hair textures, not a flat block."""
    size, source = img.shape[0], other.shape[0]
    w, h = (rng.uniform(*OCCLUDER_SIDES, size=2) * size).astype(int)
    x, y = rng.integers(0, size - w + 1), rng.integers(0, size - h + 1)
    u, v = rng.integers(0, source - w + 1), rng.integers(0, source - h + 1)
    img[y : y + h, x : x + w] = other[v : v + h, u : u + w]
