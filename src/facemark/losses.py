"""Masked landmark losses: missing points (NaN targets) contribute nothing, never a zero target.

Targets and predictions have the model's output shape (N, 1, 1, 2K), coordinates / crop size.
"""

from __future__ import annotations

import math

from facemark._tensorflow import import_keras

keras = import_keras()  # TensorFlow's native start-up notices held back
ops = keras.ops

LOSSES = ("mse", "l1", "wing", "softwing", "nme")
# "nme": a face's inter-ocular distance below this share of the crop is taken as this share, so
# a near-profile face (eye corners almost on top of each other) cannot dominate a batch.
MIN_OCULAR = 0.2


@keras.saving.register_keras_serializable(package="facemark")
class MaskedLandmarkLoss(keras.losses.Loss):
    """Mean over present coordinates of MSE, L1, Wing (Feng et al. 2018, in crop pixels), Soft
    Wing (Lin et al. 2021: L1 below `softwing_w1` crop px, where labels are noise; above it a log
    whose slope starts at w2 / (eps + w1) and falls to 1 at w2 - eps, so mid-size errors pull
    hardest and outliers least), or `nme`: mean over present points of the point distance over
    the face's inter-ocular distance, the benchmark's own error (needs the scheme's `ocular`
    point indices).

    With every point present, `mse` is exactly the article's mean squared error. With `derive`
    (a targets x points matrix, `Scheme.derivation`), targets hold more points than the model
    predicts: each is compared with the same mean of predicted points, so faces marked in a
    sparser scheme (mtfl5's pupils for an ibug68 model) supervise through the conversion.
    """

    def __init__(
        self,
        kind: str = "mse",
        crop_size: int = 96,
        wing_w: float = 4.0,
        wing_eps: float = 1.0,
        ocular: tuple[int, int] | None = None,
        derive: list[list[float]] | None = None,
        softwing_w1: float = 2.0,
        softwing_w2: float = 20.0,
        softwing_eps: float = 0.5,
        **kwargs,
    ):
        kwargs.setdefault("name", f"masked_{kind}")
        super().__init__(**kwargs)
        if kind not in LOSSES:
            raise ValueError(f"unknown loss {kind!r}; known: {', '.join(LOSSES)}")
        if kind == "nme" and ocular is None:
            raise ValueError("the nme loss needs the scheme's ocular point indices")
        self.kind = kind
        self.ocular = None if ocular is None else tuple(ocular)
        self.crop_size = crop_size
        self.wing_w = wing_w
        self.wing_eps = wing_eps
        self.softwing = (float(softwing_w1), float(softwing_w2), float(softwing_eps))
        self.derive = None if derive is None else [[float(v) for v in row] for row in derive]

    def call(self, y_true, y_pred):
        if self.derive is not None:
            d = ops.convert_to_tensor(self.derive, dtype=y_pred.dtype)
            points = ops.reshape(y_pred, (-1, len(self.derive[0]), 2))
            y_pred = ops.reshape(ops.einsum("tk,nkc->ntc", d, points), (-1, 1, 1, 2 * len(self.derive)))
        present = ops.logical_not(ops.isnan(y_true))
        # Where a target is missing, compare the prediction with itself: zero error, zero gradient.
        target = ops.where(present, y_true, ops.stop_gradient(y_pred))
        err = y_pred - target
        if self.kind == "nme":
            return self._nme(err, present, y_true)
        if self.kind == "mse":
            per = ops.square(err)
        elif self.kind == "l1":
            per = ops.abs(err)
        elif self.kind == "softwing":
            x = ops.abs(err) * self.crop_size
            w1, w2, eps = self.softwing
            b = w1 - w2 * math.log(1.0 + w1 / eps)  # joins the two pieces at w1
            per = ops.where(x < w1, x, w2 * ops.log(1.0 + x / eps) + b) / self.crop_size
        else:
            x = ops.abs(err) * self.crop_size
            w, eps = self.wing_w, self.wing_eps
            c = w - w * ops.log(1.0 + w / eps)
            per = ops.where(x < w, w * ops.log(1.0 + x / eps), x - c) / self.crop_size
        present = ops.cast(present, per.dtype)
        axes = tuple(range(1, len(per.shape)))
        # Per-sample mean over its present coordinates; a sample with none adds zero.
        return ops.sum(per * present, axis=axes) / ops.maximum(ops.sum(present, axis=axes), 1.0)

    def _nme(self, err, present, y_true):
        shape = (-1, err.shape[-1] // 2, 2)  # (N, K, 2) points
        # A tiny floor keeps the square root's gradient finite where a point is exact.
        dist = ops.sqrt(ops.sum(ops.square(ops.reshape(err, shape)), axis=-1) + 1e-12)
        here = ops.cast(ops.all(ops.reshape(present, shape), axis=-1), dist.dtype)
        truth = ops.reshape(ops.where(present, y_true, 0.0), shape)
        i, j = self.ocular
        ocular = ops.sqrt(ops.sum(ops.square(truth[:, i] - truth[:, j]), axis=-1))
        # Without both eye corners a face is scaled as a typical one (the floor is a third of that).
        known = here[:, i] * here[:, j]
        ocular = ops.maximum(ops.where(known > 0, ocular, 3 * MIN_OCULAR), MIN_OCULAR)
        per = ops.sum(dist * here, axis=1) / ops.maximum(ops.sum(here, axis=1), 1.0)
        return per / ocular

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "ocular": self.ocular,
            "kind": self.kind,
            "crop_size": self.crop_size,
            "wing_w": self.wing_w,
            "wing_eps": self.wing_eps,
            "derive": self.derive,
            "softwing_w1": self.softwing[0],
            "softwing_w2": self.softwing[1],
            "softwing_eps": self.softwing[2],
        }


@keras.saving.register_keras_serializable(package="facemark")
class HeatMapDivergence(keras.losses.Loss):
    """DSNT's regulariser (Nibali et al. 2018): the Jensen-Shannon divergence between each point's
    probability map and a Gaussian of `sigma` map cells about its target. Why: the coordinate loss
    alone is met by any map whose mean is right, including a wide one whose tails pull toward the
    map's centre; this asks for one compact blob where the point is.

    y_true: the coordinate targets (N, 1, 1, 2T), / crop size, NaN where missing; the model's K
    points are the first K of the T (further ones are derived points, `Scheme.derivation`).
    y_pred: the maps (N, H, W, K), each summing to 1. Mean over present points.
    """

    def __init__(self, sigma: float = 1.0, crop_size: int = 96, **kwargs):
        kwargs.setdefault("name", "heat_map_js")
        super().__init__(**kwargs)
        self.sigma = float(sigma)
        self.crop_size = int(crop_size)

    def call(self, y_true, y_pred):
        n, size, k = ops.shape(y_pred)[0], y_pred.shape[1], y_pred.shape[-1]
        xy = ops.reshape(y_true, (n, -1, 2))[:, :k]  # (N, K, 2)
        present = ops.cast(ops.all(ops.logical_not(ops.isnan(xy)), axis=-1), y_pred.dtype)
        xy = ops.where(ops.isnan(xy), 0.5, xy)
        # Cell centres in crop units, where fmnet's coordinate kernel puts them (pixel centres at integers).
        stride = self.crop_size / size
        centres = (ops.arange(size, dtype=y_pred.dtype) * stride + (stride - 1) / 2) / self.crop_size
        s = self.sigma / size

        def bump(v):  # (N, K) -> (N, K, size): a 1-D Gaussian along one axis
            return ops.exp(-ops.square(centres[None, None, :] - v[..., None]) / (2 * s * s))

        g = bump(xy[..., 1])[..., :, None] * bump(xy[..., 0])[..., None, :]  # (N, K, H, W)
        g = g / ops.maximum(ops.sum(g, axis=(2, 3), keepdims=True), 1e-12)
        p = ops.transpose(y_pred, (0, 3, 1, 2))
        m = (p + g) / 2
        eps = 1e-12

        def kl(a, b):
            return ops.sum(a * (ops.log(a + eps) - ops.log(b + eps)), axis=(2, 3))

        js = (kl(p, m) + kl(g, m)) / 2  # (N, K)
        return ops.sum(js * present, axis=1) / ops.maximum(ops.sum(present, axis=1), 1.0)

    def get_config(self) -> dict:
        return {**super().get_config(), "sigma": self.sigma, "crop_size": self.crop_size}
