"""facemark's own network: a small encoder-decoder whose last layer is a fixed convolution that
turns per-point heat maps into coordinates (integral regression, trained end to end on points).

Why: a global regression head like the seed's averages towards the mean face on unusual poses,
and a small network fits it slowly. Here each point gets a 24x24 map of logits; a spatial
softmax makes it a probability map, and a depthwise convolution whose kernels are the x and y
pixel grids (frozen) returns its expected position as (1, 1, 2K): (x, y) / crop size, the same
contract as the seed. The loss is still on coordinates; the maps are never supervised directly.
"""

from __future__ import annotations

import keras
import numpy as np

L = keras.layers
# The layer whose output is the per-point probability maps (a training loss may look at them).
HEAT_MAPS = "softmax"
# Few steps per epoch on small data sets: a faster moving average keeps inference statistics
# in step with the weights (at Keras' default 0.99 validation lags training by epochs).
BN_MOMENTUM = 0.9


def _bn(name: str):
    return L.BatchNormalization(momentum=BN_MOMENTUM, name=name)


def _conv_bn(x, filters: int, kernel: int, strides: int, name: str):
    x = L.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = _bn(f"{name}_bn")(x)
    return L.ReLU(name=f"{name}_relu")(x)


def _separable(x, filters: int, strides: int, name: str):
    """Depthwise 3x3 + pointwise 1x1, each batch-normalised; residual when shapes allow."""
    shortcut = x
    y = L.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False, name=f"{name}_dw")(x)
    y = _bn(f"{name}_dw_bn")(y)
    y = L.ReLU(name=f"{name}_dw_relu")(y)
    y = L.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(y)
    y = _bn(f"{name}_pw_bn")(y)
    if strides == 1 and shortcut.shape[-1] == filters:
        y = L.Add(name=f"{name}_add")([y, shortcut])
    return L.ReLU(name=f"{name}_relu")(y)


def _up_merge(x, skip, filters: int, name: str):
    """Project, upsample x2, add the encoder's skip, refine: detail back at the finer scale.

    The 1x1 projection and its BatchNorm act on each cell alone, so they commute with nearest
    upsampling: run first, they cost a quarter as much for the same function.
    """
    x = L.Conv2D(filters, 1, use_bias=False, name=f"{name}_proj")(x)
    x = _bn(f"{name}_proj_bn")(x)
    x = NearestUpsampling2D(name=f"{name}_up")(x)
    s = L.Conv2D(filters, 1, use_bias=False, name=f"{name}_skip")(skip)
    s = _bn(f"{name}_skip_bn")(s)
    x = L.ReLU(name=f"{name}_relu")(L.Add(name=f"{name}_add")([x, s]))
    return _separable(x, filters, 1, f"{name}_ref")


def coordinate_kernel(size: int, stride: int, num_points: int) -> np.ndarray:
    """Depthwise kernel (size, size, K, 2): each map cell's pixel-centre x and y over the crop size."""
    crop = size * stride
    centres = (np.arange(size) * stride + (stride - 1) / 2) / crop
    k = np.zeros((size, size, num_points, 2), np.float32)
    k[:, :, :, 0] = centres[None, :, None]  # x varies along columns
    k[:, :, :, 1] = centres[:, None, None]  # y varies along rows
    return k


@keras.saving.register_keras_serializable(package="facemark")
class NearestUpsampling2D(keras.layers.Layer):
    """x2 nearest upsampling as one image resize (`keras.layers.UpSampling2D` repeats each axis).

    Why: a resize exports to a single ONNX Resize, which ONNX Runtime runs in its blocked
    layout; UpSampling2D's Tile/Reshape chain forces layout reorders around it. On an input of
    free size (the finder) Keras's resize wants fixed sizes, so it repeats each axis, and the
    export turns that chain into one Resize (`facemark.export.for_onnx_runtime`).
    `keras.layers.Resizing` would do the same sum,
    but exported through tf2onnx it left the BatchNorms after it in training mode.
    """

    def call(self, x):
        if x.shape[1] is None or x.shape[2] is None:  # an input of free size (the finder)
            return keras.ops.repeat(keras.ops.repeat(x, 2, axis=1), 2, axis=2)
        return keras.ops.image.resize(x, (x.shape[1] * 2, x.shape[2] * 2), interpolation="nearest")

    def compute_output_shape(self, input_shape):
        h, w = (None if d is None else d * 2 for d in input_shape[1:3])
        return (input_shape[0], h, w, input_shape[3])


@keras.saving.register_keras_serializable(package="facemark")
class SpatialSoftmax(keras.layers.Layer):
    """Softmax over each channel's H x W cells: one probability map per point."""

    def call(self, x):
        shape = keras.ops.shape(x)
        flat = keras.ops.reshape(x, (shape[0], shape[1] * shape[2], shape[3]))
        return keras.ops.reshape(keras.ops.softmax(flat, axis=1), shape)


@keras.saving.register_keras_serializable(package="facemark")
class CoordinateConv(keras.layers.DepthwiseConv2D):
    """The depthwise convolution (valid, kernel = whole map, 2 outputs per map) of `points`,
    computed as one product: TensorFlow's depthwise kernel is slow for a 24x24 window.

    Every point's slice of the fixed kernel is the same x / y grid (`coordinate_kernel`), so the
    product uses the first one, as (2, HW) @ (B, HW, K): exported, the model holds one grid
    instead of K (ibug68's ONNX file 0.68 -> 0.37 MB) and ONNX Runtime transposes no map (0.28
    -> 0.19 ms a face). The kernel keeps its depthwise shape, so saved models load unchanged, and
    Keras' outputs and one-thread training are bit-identical to the former einsum's."""

    def call(self, x):
        h, w, k = x.shape[1], x.shape[2], x.shape[3]
        grid = keras.ops.transpose(keras.ops.reshape(self.kernel[:, :, 0, :], (h * w, 2)))  # (2, HW)
        out = keras.ops.matmul(grid, keras.ops.reshape(x, (-1, h * w, k)))  # (B, 2, K): no transpose of x
        return keras.ops.reshape(keras.ops.transpose(out, (0, 2, 1)), (-1, 1, 1, 2 * k))


@keras.saving.register_keras_serializable(package="facemark")
class AxisExpectation(keras.layers.Layer):
    """Logits (B, K, 2 * bins), the x then the y bins of each point, to (B, 1, 1, 2K): each axis'
    softmax over its bins, and the expected bin centre / crop size (the points' contract).

    SimCC's 1-D classification read as an integral: the x and y of a point are two distributions
    over pixel bins, not one 2-D map, and each is trained through its expected value."""

    def __init__(self, bins: int, **kwargs):
        super().__init__(**kwargs)
        self.bins = bins

    def call(self, x):
        k = x.shape[1]
        probs = keras.ops.softmax(keras.ops.reshape(x, (-1, k, 2, self.bins)), axis=-1)
        centres = keras.ops.convert_to_tensor((np.arange(self.bins, dtype=np.float32) + 0.5) / self.bins)
        return keras.ops.reshape(keras.ops.sum(probs * centres, axis=-1), (-1, 1, 1, 2 * k))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1, 1, 2 * input_shape[1])

    def get_config(self):
        return {**super().get_config(), "bins": self.bins}


def build_fmnet(
    num_points: int, input_size: int = 96, width: float = 1.0, head: str = "maps", channels: int = 1
) -> keras.Model:
    """fmnet for K points: 96x96x1 in (x3 with `channels=3`: BGR), 24x24 maps inside, (1, 1, 2K)
    coordinates out.

    `width` multiplies every stage's channels: accuracy grows with it, and so do cost and size
    (docs/training.md); the shipped models use 1. `head="xy"` ends instead at the 12x12 stage in
    a SimCC-style head: each point's 12x12 logits, flattened, through one dense layer shared by
    all points to one bin a crop pixel on each axis (`AxisExpectation`).
    """
    w = [round(c * width) for c in (16, 32, 64, 96, 128)]
    inputs = keras.Input((input_size, input_size, channels), name="image")
    x = _conv_bn(inputs, w[0], 3, 2, "stem")  # 48
    x = _separable(x, w[1], 2, "e1a")  # 24
    x = s24 = _separable(x, w[1], 1, "e1b")
    x = _separable(x, w[2], 2, "e2a")  # 12
    x = _separable(x, w[2], 1, "e2b")
    x = s12 = _separable(x, w[2], 1, "e2c")
    x = _separable(x, w[3], 2, "e3a")  # 6: every cell sees the whole face
    x = _separable(x, w[3], 1, "e3b")
    x = _separable(x, w[4], 1, "e3c")
    x = _separable(x, w[4], 1, "e3d")
    x = _up_merge(x, s12, w[2], "d12")
    if head == "xy":
        return _xy_head(inputs, x, num_points, input_size)
    x = _up_merge(x, s24, w[1], "d24")
    logits = L.Conv2D(num_points, 1, name="heatmaps")(x)
    probs = SpatialSoftmax(name=HEAT_MAPS)(logits)
    size = probs.shape[1]
    points = CoordinateConv(size, depth_multiplier=2, use_bias=False, trainable=False, name="points")
    outputs = points(probs)
    points.set_weights([coordinate_kernel(size, input_size // size, num_points)])
    return keras.Model(inputs, outputs, name="fmnet")


def _xy_head(inputs, x, num_points: int, input_size: int) -> keras.Model:
    """The SimCC-style end of `build_fmnet(head="xy")` on the 12x12 features `x`."""
    cells = x.shape[1] * x.shape[2]
    logits = L.Conv2D(num_points, 1, name="point_logits")(x)  # (12, 12, K)
    per_point = L.Permute((2, 1), name="per_point")(L.Reshape((cells, num_points), name="cells")(logits))
    bins = L.Dense(2 * input_size, name="axis_bins")(per_point)  # (K, 2 * bins), shared by every point
    outputs = AxisExpectation(input_size, name="points")(bins)
    return keras.Model(inputs, outputs, name="fmnet_xy")
