"""MobileNet v1 (Howard et al. 2017) and MobileNetV2 (Sandler et al. 2018).

MobileNet v1 (Table 1 body): a 3x3/2 conv with 32 filters, then 13 depthwise separable layers,
each a 3x3 depthwise conv -> BN -> ReLU followed by a 1x1 pointwise conv -> BN -> ReLU (Fig. 3),
global average pooling and a fully connected classifier. Table 1 lists the second-to-last
depthwise layer as "Conv dw / s2" but its input and output are both 7x7; it is stride 1 here, as
in every released model. The width multiplier alpha (Sec. 4.2) scales every layer's channels
(``mobilenet_v1``, ``_075``, ``_050``, ``_025`` = alpha 1, 0.75, 0.5, 0.25; Table 6: 4.2M, 2.6M,
1.3M, 0.5M parameters). The resolution multiplier rho (Sec. 4.3) is not a parameter of the network:
it is the input size, 224 * rho in {224, 192, 160, 128} (Table 7), which the global pool absorbs.
alpha = 1 at 224 has 4,231,976 parameters (Table 8's "4.2M": convolutions without bias, BN scale
and bias, and the 1000-way FC with bias).

Parameter names (there is no torchvision MobileNet v1; names follow the MobileNetV2 layout):

    features_0/{conv,bn}                                    first 3x3/2 conv
    features_1 .. features_13/{depthwise,pointwise}/{conv,bn}   depthwise separable layers
    classifier                                              FC

MobileNetV2 (Table 2), in torchvision's form: a 3x3/2 conv with 32 filters, 17 inverted residual
blocks (t, c, n, s) = (1,16,1,1) (6,24,2,2) (6,32,3,2) (6,64,4,2) (6,96,3,1) (6,160,3,2)
(6,320,1,1), a 1x1 conv to 1280, global average pooling, dropout 0.2 and a linear classifier.
Each block expands with a 1x1 conv to t * C_in channels (BN, ReLU6; omitted when t = 1), filters
with a 3x3 depthwise conv (BN, ReLU6; stride s on the first block of a stage) and projects with a
*linear* 1x1 conv + BN (Sec. 3.2); the input is added when the stride is 1 and C_in == C_out.
The width multiplier rounds every width to a multiple of 8 and never scales the last 1280 down
(Sec. 6.1). ``mobilenet_v2`` has 3,504,872 parameters.

Parameter names mirror torchvision's ``mobilenet_v2`` with ``.`` -> ``_`` inside numbered lists:

    torchvision                                  here
    features.0.0 / features.0.1                  features_0/conv, features_0/bn
    features.1.conv.0.0 / .conv.0.1 (t = 1)      features_1/conv_0/{conv,bn}   (depthwise)
    features.1.conv.1 / .conv.2                  features_1/conv_1 (Conv), features_1/conv_2 (BN)
    features.i.conv.0.{0,1} (t > 1, i = 2..17)   features_i/conv_0/{conv,bn}   (expand)
    features.i.conv.1.{0,1}                      features_i/conv_1/{conv,bn}   (depthwise)
    features.i.conv.2 / .conv.3                  features_i/conv_2 (Conv), features_i/conv_3 (BN)
    features.18.0 / features.18.1                features_18/conv, features_18/bn
    classifier.1 (classifier.0 = Dropout)        classifier_1

A converter transposes conv kernels (O, I/groups, kH, kW) -> (kH, kW, I/groups, O) and linear
weights (O, I) -> (I, O); BN ``weight``/``bias``/``running_*`` -> ``scale``/``bias`` and batch_stats
``mean``/``var``.

Stride-2 convolutions pad 1 on every side as torch does (TensorFlow's 'SAME' pads 0 before and 1
after on even inputs, so TF-trained weights would see shifted windows).

Depthwise convolutions are grouped convolutions with ``groups = channels``; on a CPU they run on
oneDNN or as shifted multiply-adds (:mod:`cnn_jax.layers.depthwise`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cnn_jax.layers import BatchNorm, Conv, ConvBNAct, get_initializer
from cnn_jax.models.registry import register_model

# torchvision's MobileNetV2 init (used for both versions): convolutions kaiming_normal_ with
# mode='fan_out', the classifier N(0, 0.01) with zero bias.
_CONV_INIT = get_initializer("he_normal", mode="fan_out")
_FC_INIT = nn.initializers.normal(stddev=0.01)

# MobileNet v1 body, Howard et al. 2017 Table 1: (pointwise output channels, depthwise stride).
MOBILENET_V1_LAYERS: tuple[tuple[int, int], ...] = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),  # Table 1 says s2; a 7x7 -> 7x7 layer is stride 1
)

# MobileNetV2 bottleneck stages, Sandler et al. 2018 Table 2: (expansion t, channels c, repeats n,
# stride s of the first repeat).
MOBILENET_V2_STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Rounds a scaled channel count to the nearest multiple of ``divisor`` (MobileNetV2 widths).

    Never goes below ``min_value`` (default ``divisor``) nor more than 10% below ``value``, so that
    rounding down does not remove more than a tenth of a layer.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def _conv_bn(
    features: int,
    kernel_size: int,
    *,
    strides: int = 1,
    groups: int = 1,
    act: str | None,
    dtype: Any,
    conv_impl: str,
    name: str,
) -> ConvBNAct:
    """Conv (no bias, torch padding (k - 1) // 2) -> BN -> act, children named 'conv' and 'bn'."""
    return ConvBNAct(
        features,
        kernel_size=kernel_size,
        strides=strides,
        padding=(kernel_size - 1) // 2,
        groups=groups,
        act=act,
        kernel_init=_CONV_INIT,
        dtype=dtype,
        conv_impl=conv_impl,
        name=name,
    )


class DepthwiseSeparableBlock(nn.Module):
    """MobileNet v1 layer (Fig. 3 right): 3x3 depthwise -> BN -> ReLU -> 1x1 -> BN -> ReLU."""

    features: int
    strides: int = 1
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        channels = x.shape[-1]
        x = _conv_bn(
            channels,
            3,
            strides=self.strides,
            groups=channels,
            act="relu",
            dtype=self.dtype,
            conv_impl=self.conv_impl,
            name="depthwise",
        )(x, train=train)
        return _conv_bn(
            self.features,
            1,
            act="relu",
            dtype=self.dtype,
            conv_impl=self.conv_impl,
            name="pointwise",
        )(x, train=train)


class MobileNetV1(nn.Module):
    """MobileNet v1 (Howard et al. 2017 Table 1) with width multiplier ``alpha``; ``conv_impl``:
    how the convolutions run (:mod:`cnn_jax.layers.conv`)."""

    num_classes: int = 1000
    alpha: float = 1.0
    dropout_rate: float = 0.0  # the paper uses little regularisation and names no dropout
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    def width(self, channels: int) -> int:
        """Channels of a layer under the width multiplier: alpha * channels (Sec. 4.2)."""
        return max(1, int(round(channels * self.alpha)))

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        if self.alpha <= 0:
            raise ValueError(f"width multiplier alpha must be positive, got {self.alpha}")
        conv_kw = dict(dtype=self.dtype, conv_impl=self.conv_impl)
        x = _conv_bn(self.width(32), 3, strides=2, act="relu", name="features_0", **conv_kw)(
            x, train=train
        )
        for index, (channels, strides) in enumerate(MOBILENET_V1_LAYERS, start=1):
            x = DepthwiseSeparableBlock(
                self.width(channels), strides, name=f"features_{index}", **conv_kw
            )(x, train=train)
        x = jnp.mean(x, axis=(1, 2))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return nn.Dense(
            self.num_classes, dtype=self.dtype, kernel_init=_FC_INIT, name="classifier"
        )(x)


class InvertedResidual(nn.Module):
    """MobileNetV2 bottleneck (Table 1): expand 1x1 -> depthwise 3x3 -> linear 1x1 projection."""

    features: int
    strides: int
    expand_ratio: int
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        in_features = x.shape[-1]
        hidden = int(round(in_features * self.expand_ratio))
        y = x
        index = 0  # torchvision's position in the block's `conv` Sequential
        conv_kw = dict(dtype=self.dtype, conv_impl=self.conv_impl)
        if self.expand_ratio != 1:
            y = _conv_bn(hidden, 1, act="relu6", name="conv_0", **conv_kw)(y, train=train)
            index = 1
        y = _conv_bn(
            hidden,
            3,
            strides=self.strides,
            groups=hidden,
            act="relu6",
            name=f"conv_{index}",
            **conv_kw,
        )(y, train=train)
        # Linear bottleneck (Sec. 3.2): no activation after the projection.
        y = Conv(
            self.features,
            1,
            padding=0,
            use_bias=False,
            kernel_init=_CONV_INIT,
            name=f"conv_{index + 1}",
            **conv_kw,
        )(y)
        y = BatchNorm(dtype=self.dtype, name=f"conv_{index + 2}")(y, train=train)
        if self.strides == 1 and in_features == self.features:
            y = x + y
        return y


class MobileNetV2(nn.Module):
    """MobileNetV2 (Sandler et al. 2018 Table 2), torchvision's form, with a width multiplier;
    ``conv_impl``: how the convolutions run (:mod:`cnn_jax.layers.conv`)."""

    num_classes: int = 1000
    width_mult: float = 1.0
    stages: Sequence[tuple[int, int, int, int]] = MOBILENET_V2_STAGES
    last_channel: int = 1280
    dropout_rate: float = 0.2
    round_nearest: int = 8
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        if self.width_mult <= 0:
            raise ValueError(f"width_mult must be positive, got {self.width_mult}")
        stem = make_divisible(32 * self.width_mult, self.round_nearest)
        # Sec. 6.1: the last layer is not thinned for multipliers below 1.
        last = make_divisible(self.last_channel * max(1.0, self.width_mult), self.round_nearest)
        conv_kw = dict(dtype=self.dtype, conv_impl=self.conv_impl)
        x = _conv_bn(stem, 3, strides=2, act="relu6", name="features_0", **conv_kw)(x, train=train)
        index = 1
        for expand_ratio, channels, repeats, stride in self.stages:
            features = make_divisible(channels * self.width_mult, self.round_nearest)
            for repeat in range(repeats):
                x = InvertedResidual(
                    features,
                    stride if repeat == 0 else 1,
                    expand_ratio,
                    name=f"features_{index}",
                    **conv_kw,
                )(x, train=train)
                index += 1
        x = _conv_bn(last, 1, act="relu6", name=f"features_{index}", **conv_kw)(x, train=train)
        x = jnp.mean(x, axis=(1, 2))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return nn.Dense(
            self.num_classes, dtype=self.dtype, kernel_init=_FC_INIT, name="classifier_1"
        )(x)


_REGISTER = dict(input_shape=(224, 224, 3), test_input_shape=(32, 32, 3), num_classes=1000)


@register_model(
    "mobilenet_v1",
    family="mobilenet",
    **_REGISTER,
    description="MobileNet v1, alpha 1.0 (Howard et al. 2017, Table 1)",
)
def mobilenet_v1(num_classes: int = 1000, **kwargs: Any) -> MobileNetV1:
    """MobileNet v1 1.0 (Howard et al. 2017 Table 1): 4,231,976 parameters at 1000 classes."""
    kwargs.setdefault("alpha", 1.0)
    return MobileNetV1(num_classes=num_classes, **kwargs)


@register_model(
    "mobilenet_v1_075",
    family="mobilenet",
    **_REGISTER,
    description="MobileNet v1, alpha 0.75 (Howard et al. 2017, Tables 1 and 6)",
)
def mobilenet_v1_075(num_classes: int = 1000, **kwargs: Any) -> MobileNetV1:
    """MobileNet v1 with width multiplier 0.75 (Howard et al. 2017 Table 6: 2.6M parameters)."""
    return MobileNetV1(num_classes=num_classes, alpha=0.75, **kwargs)


@register_model(
    "mobilenet_v1_050",
    family="mobilenet",
    **_REGISTER,
    description="MobileNet v1, alpha 0.5 (Howard et al. 2017, Tables 1 and 6)",
)
def mobilenet_v1_050(num_classes: int = 1000, **kwargs: Any) -> MobileNetV1:
    """MobileNet v1 with width multiplier 0.5 (Howard et al. 2017 Table 6: 1.3M parameters)."""
    return MobileNetV1(num_classes=num_classes, alpha=0.5, **kwargs)


@register_model(
    "mobilenet_v1_025",
    family="mobilenet",
    **_REGISTER,
    description="MobileNet v1, alpha 0.25 (Howard et al. 2017, Tables 1 and 6)",
)
def mobilenet_v1_025(num_classes: int = 1000, **kwargs: Any) -> MobileNetV1:
    """MobileNet v1 with width multiplier 0.25 (Howard et al. 2017 Table 6: 0.5M parameters)."""
    return MobileNetV1(num_classes=num_classes, alpha=0.25, **kwargs)


@register_model(
    "mobilenet_v2",
    family="mobilenet",
    **_REGISTER,
    description="MobileNetV2 1.0 (Sandler et al. 2018, Table 2; torchvision form)",
)
def mobilenet_v2(num_classes: int = 1000, **kwargs: Any) -> MobileNetV2:
    """MobileNetV2 1.0 (Sandler et al. 2018 Table 2): 3,504,872 parameters at 1000 classes."""
    return MobileNetV2(num_classes=num_classes, **kwargs)
