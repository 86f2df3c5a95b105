"""The article's network, kept faithful: separable convolutions with valid padding shrink the
96x96 face to 1x1, BatchNorm+ReLU blocks, no Dense layer, and a sigmoid convolution whose output
(1, 1, 2K) is the K points as (x, y) / 96.
"""

from __future__ import annotations

import keras

# (filters, kernel, batch-normalised) for each SeparableConv2D, in the article's order: the
# blocks alternate BatchNorm+ReLU pairs with plain-ReLU pairs, as in its Colab notebook.
_SEED_LAYERS = (
    *[(128, 5, True)] * 2,
    *[(128, 5, False)] * 2,
    *[(128, 5, True)] * 2,
    *[(128, 5, False)] * 2,
    *[(128, 5, True)] * 2,
    *[(64, 5, False)] * 2,
    *[(64, 5, True)] * 2,
    *[(64, 3, False)] * 6,
    *[(32, 3, False)] * 11,
    (32, 2, False),
    *[(30, 2, False)] * 3,
)


def build_seed(num_points: int, input_size: int = 96) -> keras.Model:
    """The seed model for K points: 96x96x1 in, (1, 1, 2K) sigmoid out."""
    if input_size != 96:
        raise ValueError("the seed network's valid convolutions are sized for 96x96 input")
    inputs = keras.Input((input_size, input_size, 1), name="image")
    x = inputs
    for i, (filters, kernel, bn) in enumerate(_SEED_LAYERS):
        x = keras.layers.SeparableConv2D(filters, kernel, padding="valid", name=f"sep{i}")(x)
        if bn:
            x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.Activation("relu", name=f"relu{i}")(x)
    outputs = keras.layers.Conv2D(2 * num_points, 2, padding="valid", activation="sigmoid", name="points")(x)
    return keras.Model(inputs, outputs, name="seed")
