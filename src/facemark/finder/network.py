"""The finder network: an all-convolutional encoder to 1/32 with a small top-down path back to
1/8, where each cell predicts whether a face centre lies in it and that face's geometry.

Why this shape: faces from ~20 px to the whole frame must share one output scale (stride 8);
the 1/32 features give large faces the context a cell needs, the 1/8 skip gives small faces
their detail. Input size is free (multiples of 32), so a photo runs at a size chosen from its own.
"""

from __future__ import annotations

import keras

from facemark.finder.maps import CHANNELS, PRIOR_LOGIT
from facemark.models.fmnet import _conv_bn, _separable, _up_merge

L = keras.layers
BRANCHES = ("conv", "separable", "separable2")  # kinds of score/geometry branch (`build_finder`)
STEMS = ("conv", "patch")  # and of the layers that take the input to 1/4
STRIDE4_BLOCKS = (1, 2)  # how many layers at 1/4


def build_finder(width: float = 1.0, branch: str = "conv", stride4_blocks: int = 2, stem: str = "conv") -> keras.Model:
    """(N, H, W, 1) gray / 255 -> (N, H/8, W/8, CHANNELS) raw maps (see `facemark.finder.maps`).

    The first pyramid level is most of a photo's time, and there the layers at 1/2 and 1/4 of
    the input and the two 3x3 branches at stride 8 cost most. Cheaper kinds, priced by
    `benchmarks/finder.py --price`: `stem="patch"` reaches 1/4 in one 4x4 convolution of stride
    4 (each cell sees its own 16 pixels, as a vision transformer's patches) instead of a 3x3 at
    1/2 and a separable block; `stride4_blocks` counts the layers at 1/4, the one that gets
    there included (1: no other); `branch="separable"` makes each branch a depthwise 3x3 and a
    1x1 instead of a full 3x3, `"separable2"` two of those (a 5x5 receptive field for about a
    quarter of the full 3x3's arithmetic).
    """
    if stem not in STEMS or branch not in BRANCHES or stride4_blocks not in STRIDE4_BLOCKS:
        raise ValueError(f"unknown finder stem {stem!r}, branch {branch!r} or stride4_blocks {stride4_blocks!r}")
    w = [round(c * width) for c in (16, 24, 32, 64, 96)]
    inputs = keras.Input((None, None, 1), name="image")
    if stem == "patch":
        x = _conv_bn(inputs, w[1], 4, 4, "stem")  # 1/4
    else:
        x = _conv_bn(inputs, w[0], 3, 2, "stem")  # 1/2
        x = _separable(x, w[1], 2, "s4a")  # 1/4
    if stride4_blocks == 2:
        x = _separable(x, w[1], 1, "s4b")
    x = _separable(x, w[2], 2, "s8a")  # 1/8
    x = s8 = _separable(x, w[2], 1, "s8b")
    x = _separable(x, w[3], 2, "s16a")  # 1/16
    x = s16 = _separable(x, w[3], 1, "s16b")
    x = _separable(x, w[4], 2, "s32a")  # 1/32
    x = _separable(x, w[4], 1, "s32b")
    x = _separable(x, w[4], 1, "s32c")
    x = _up_merge(x, s16, w[3], "u16")
    x = _up_merge(x, s8, w[2], "u8")
    x = _separable(x, w[2], 1, "head")
    # One branch per task, each with features of its own: through the shared ReLU features alone,
    # face centres came out where features are zero and the score could only learn slowly. Each
    # branch normalises before its ReLU: without, every geometry unit died early in training
    # (0 of 32 ever positive) and box sizes and keypoints came out constant.
    score = _branch(x, w[2], "score", branch)
    score = L.Conv2D(1, 1, bias_initializer=keras.initializers.Constant(PRIOR_LOGIT), name="score")(score)
    geometry = _branch(x, w[2], "geometry", branch)
    geometry = L.Conv2D(CHANNELS - 1, 1, name="geometry")(geometry)
    outputs = L.Concatenate(name="maps")([score, geometry])
    return keras.Model(inputs, outputs, name="finder")


def _branch(x, width: int, name: str, kind: str):
    if kind == "conv":
        return _branch_step(L.Conv2D(width, 3, padding="same", use_bias=False, name=f"{name}_conv")(x), name)
    for i in range(2 if kind == "separable2" else 1):
        step = name if i == 0 else f"{name}{i + 1}"  # the first keeps the one-step kind's layer names
        x = L.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{step}_dw")(x)
        x = _branch_step(L.Conv2D(width, 1, use_bias=False, name=f"{step}_conv")(x), step)
    return x


def _branch_step(x, name: str):
    x = L.BatchNormalization(name=f"{name}_bn")(x)
    return L.ReLU(name=f"{name}_relu")(x)
