"""Masked landmark losses: missing points (NaN targets) contribute nothing, never a zero target.

Targets and predictions have the model's output shape (N, 1, 1, 2K), coordinates / crop size.
"""

from __future__ import annotations

from facemark._tensorflow import import_keras

keras = import_keras()  # TensorFlow's native start-up notices held back
ops = keras.ops

LOSSES = ("mse", "l1", "wing")


@keras.saving.register_keras_serializable(package="facemark")
class MaskedLandmarkLoss(keras.losses.Loss):
    """Mean over present coordinates of MSE, L1 or Wing (Feng et al. 2018, in crop pixels).

    With every point present, `mse` is exactly the article's mean squared error.
    """

    def __init__(self, kind: str = "mse", crop_size: int = 96, wing_w: float = 4.0, wing_eps: float = 1.0, **kwargs):
        kwargs.setdefault("name", f"masked_{kind}")
        super().__init__(**kwargs)
        if kind not in LOSSES:
            raise ValueError(f"unknown loss {kind!r}; known: {', '.join(LOSSES)}")
        self.kind = kind
        self.crop_size = crop_size
        self.wing_w = wing_w
        self.wing_eps = wing_eps

    def call(self, y_true, y_pred):
        present = ops.logical_not(ops.isnan(y_true))
        # Where a target is missing, compare the prediction with itself: zero error, zero gradient.
        target = ops.where(present, y_true, ops.stop_gradient(y_pred))
        err = y_pred - target
        if self.kind == "mse":
            per = ops.square(err)
        elif self.kind == "l1":
            per = ops.abs(err)
        else:
            x = ops.abs(err) * self.crop_size
            w, eps = self.wing_w, self.wing_eps
            c = w - w * ops.log(1.0 + w / eps)
            per = ops.where(x < w, w * ops.log(1.0 + x / eps), x - c) / self.crop_size
        present = ops.cast(present, per.dtype)
        axes = tuple(range(1, len(per.shape)))
        # Per-sample mean over its present coordinates; a sample with none adds zero.
        return ops.sum(per * present, axis=axes) / ops.maximum(ops.sum(present, axis=axes), 1.0)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "kind": self.kind,
            "crop_size": self.crop_size,
            "wing_w": self.wing_w,
            "wing_eps": self.wing_eps,
        }
