"""facemark's own network: MobileNet-style inverted-free separable blocks, small and CPU-cheap.

All-convolutional like the seed: stride-2 stages bring 96x96 down to 3x3, a depthwise 3x3 with
valid padding makes it 1x1 (every output sees the whole face at its own weights, no pooling that
throws position away), and a 1x1 convolution gives (1, 1, 2K). The output is linear: points
slightly outside the crop stay reachable, which a sigmoid would squash.
"""

from __future__ import annotations

import keras

L = keras.layers


def _conv_bn(x, filters: int, kernel: int, strides: int, name: str):
    x = L.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = L.BatchNormalization(name=f"{name}_bn")(x)
    return L.ReLU(name=f"{name}_relu")(x)


def _separable(x, filters: int, strides: int, name: str):
    """Depthwise 3x3 + pointwise 1x1, each batch-normalised; residual when shapes allow."""
    shortcut = x
    y = L.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False, name=f"{name}_dw")(x)
    y = L.BatchNormalization(name=f"{name}_dw_bn")(y)
    y = L.ReLU(name=f"{name}_dw_relu")(y)
    y = L.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(y)
    y = L.BatchNormalization(name=f"{name}_pw_bn")(y)
    if strides == 1 and shortcut.shape[-1] == filters:
        y = L.Add(name=f"{name}_add")([y, shortcut])
    return L.ReLU(name=f"{name}_relu")(y)


# (filters, blocks) per stage; each stage starts with a stride-2 block.
DEFAULT_STAGES = ((32, 2), (64, 3), (96, 3), (128, 2))


def build_fmnet(
    num_points: int,
    input_size: int = 96,
    stem: int = 24,
    stages: tuple[tuple[int, int], ...] = DEFAULT_STAGES,
    head: int = 256,
) -> keras.Model:
    """fmnet for K points: 96x96x1 in, (1, 1, 2K) linear out, about 1/40 of the seed's MACs."""
    inputs = keras.Input((input_size, input_size, 1), name="image")
    x = _conv_bn(inputs, stem, 3, 2, "stem")
    for s, (filters, blocks) in enumerate(stages):
        for b in range(blocks):
            x = _separable(x, filters, 2 if b == 0 else 1, f"s{s}b{b}")
    size = x.shape[1]
    # Valid depthwise over the whole remaining map: 1x1 out, position-aware weights.
    x = L.DepthwiseConv2D(size, padding="valid", use_bias=False, name="head_dw")(x)
    x = L.BatchNormalization(name="head_dw_bn")(x)
    x = _conv_bn(x, head, 1, 1, "head")
    outputs = L.Conv2D(2 * num_points, 1, name="points")(x)
    return keras.Model(inputs, outputs, name="fmnet")
