"""DenseNet-BC for ImageNet (Huang et al. 2017, "Densely connected convolutional networks", Table 1).

Each dense layer sees the concatenation of all earlier feature maps of its block and adds
``growth_rate`` (k) new ones through the bottleneck BN-ReLU-1x1 conv(4k)-BN-ReLU-3x3 conv(k)
(Sec. 3, "Bottleneck layers"). Between blocks a transition layer BN-ReLU-1x1 conv-2x2 avg pool
halves the channels (compression theta = 0.5, "DenseNet-BC") and the resolution. The stem is
7x7/2 conv -> BN -> ReLU -> 3x3/2 max pool (padding 1); after the last block a final BN -> ReLU ->
global average pool -> linear classifier (torchvision's ``norm5``; the paper's Table 1 leaves that
BN implicit). Convolutions have no bias.

Variants (Table 1, k = 32, 64 stem features): ``densenet121`` (6, 12, 24, 16), ``densenet169``
(6, 12, 32, 32), ``densenet201`` (6, 12, 48, 32), ``densenet264`` (6, 12, 64, 48). torchvision has
no DenseNet-264; ours is the same recipe with Table 1's block sizes, 33,337,704 parameters for
1000 classes (computed here, asserted in the tests).

Parameter names mirror torchvision's module tree with ``.`` -> ``_`` at the top level:

    torchvision                                   here
    features.conv0 / features.norm0               features_conv0 / features_norm0
    features.denseblock1.denselayer1.norm1        features_denseblock1_denselayer1/norm1
        .conv1 / .norm2 / .conv2                      .../conv1, .../norm2, .../conv2
    features.transition1.norm / .conv             features_transition1/norm, .../conv
    features.norm5                                features_norm5
    classifier                                    classifier

Blocks and layers count from 1 as in torchvision. A converter transposes conv kernels (O, I, kH, kW)
-> (kH, kW, I, O) and the classifier weight (O, I) -> (I, O); BN ``weight``/``bias`` ->
``scale``/``bias``, ``running_mean``/``running_var`` -> batch_stats ``mean``/``var``.

The dense connectivity is implemented by growing one concatenated tensor, which is what the
concatenation of the list of earlier outputs amounts to.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cnn_jax.layers import BatchNorm, Conv, avg_pool, get_initializer, max_pool
from cnn_jax.models.registry import register_model

# torchvision initialises convolutions with kaiming_normal_ (fan_in, ReLU gain) and the classifier
# bias with zeros; the paper does not state its initialisation.
_CONV_INIT = get_initializer("he_normal")


class DenseLayer(nn.Module):
    """Bottleneck dense layer BN-ReLU-1x1 conv(bn_size*k)-BN-ReLU-3x3 conv(k); returns k new maps."""

    growth_rate: int
    bn_size: int = 4
    drop_rate: float = 0.0
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        y = BatchNorm(dtype=self.dtype, name="norm1")(x, train=train)
        y = nn.relu(y)
        y = Conv(
            self.bn_size * self.growth_rate,
            1,
            padding=0,
            use_bias=False,
            kernel_init=_CONV_INIT,
            dtype=self.dtype,
            conv_impl=self.conv_impl,
            name="conv1",
        )(y)
        y = BatchNorm(dtype=self.dtype, name="norm2")(y, train=train)
        y = nn.relu(y)
        y = Conv(
            self.growth_rate,
            3,
            padding=1,
            use_bias=False,
            kernel_init=_CONV_INIT,
            dtype=self.dtype,
            conv_impl=self.conv_impl,
            name="conv2",
        )(y)
        if self.drop_rate > 0:
            # The paper uses dropout 0.2 after each conv only for C10/C100/SVHN without augmentation.
            y = nn.Dropout(self.drop_rate, deterministic=not train)(y)
        return y


class Transition(nn.Module):
    """Transition layer BN-ReLU-1x1 conv-2x2/2 avg pool between dense blocks."""

    features: int
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        x = BatchNorm(dtype=self.dtype, name="norm")(x, train=train)
        x = nn.relu(x)
        x = Conv(
            self.features,
            1,
            padding=0,
            use_bias=False,
            kernel_init=_CONV_INIT,
            dtype=self.dtype,
            conv_impl=self.conv_impl,
            name="conv",
        )(x)
        return avg_pool(x, window=2, strides=2)


class DenseNet(nn.Module):
    """DenseNet-BC (Huang et al. 2017 Table 1); see the module docstring for names and variants.
    ``conv_impl``: how the convolutions run (:mod:`cnn_jax.layers.conv`)."""

    num_classes: int = 1000
    block_config: Sequence[int] = (6, 12, 24, 16)
    growth_rate: int = 32
    num_init_features: int = 64
    bn_size: int = 4  # bottleneck width = bn_size * growth_rate ("4k", Sec. 3)
    compression: float = 0.5  # theta, Sec. 3 "Compression"
    drop_rate: float = 0.0
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        x = Conv(
            self.num_init_features,
            7,
            strides=2,
            padding=3,
            use_bias=False,
            kernel_init=_CONV_INIT,
            dtype=self.dtype,
            conv_impl=self.conv_impl,
            name="features_conv0",
        )(x)
        x = BatchNorm(dtype=self.dtype, name="features_norm0")(x, train=train)
        x = nn.relu(x)
        x = max_pool(x, window=3, strides=2, padding=1)

        num_features = self.num_init_features
        for block, num_layers in enumerate(self.block_config, start=1):
            for layer in range(1, num_layers + 1):
                new = DenseLayer(
                    self.growth_rate,
                    self.bn_size,
                    self.drop_rate,
                    dtype=self.dtype,
                    conv_impl=self.conv_impl,
                    name=f"features_denseblock{block}_denselayer{layer}",
                )(x, train=train)
                x = jnp.concatenate([x, new], axis=-1)
            num_features += num_layers * self.growth_rate
            if block != len(self.block_config):
                num_features = int(num_features * self.compression)
                x = Transition(
                    num_features,
                    dtype=self.dtype,
                    conv_impl=self.conv_impl,
                    name=f"features_transition{block}",
                )(x, train=train)

        x = BatchNorm(dtype=self.dtype, name="features_norm5")(x, train=train)
        x = nn.relu(x)
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(self.num_classes, dtype=self.dtype, name="classifier")(x)


_REGISTER = dict(family="densenet", input_shape=(224, 224, 3), test_input_shape=(32, 32, 3))


@register_model("densenet121", **_REGISTER, description="DenseNet-121 (Huang et al. 2017, Table 1)")
def densenet121(num_classes: int = 1000, **kwargs: Any) -> DenseNet:
    """DenseNet-121: blocks (6, 12, 24, 16), k = 32 (Huang et al. 2017, Table 1)."""
    return DenseNet(num_classes=num_classes, block_config=(6, 12, 24, 16), **kwargs)


@register_model("densenet169", **_REGISTER, description="DenseNet-169 (Huang et al. 2017, Table 1)")
def densenet169(num_classes: int = 1000, **kwargs: Any) -> DenseNet:
    """DenseNet-169: blocks (6, 12, 32, 32), k = 32 (Huang et al. 2017, Table 1)."""
    return DenseNet(num_classes=num_classes, block_config=(6, 12, 32, 32), **kwargs)


@register_model("densenet201", **_REGISTER, description="DenseNet-201 (Huang et al. 2017, Table 1)")
def densenet201(num_classes: int = 1000, **kwargs: Any) -> DenseNet:
    """DenseNet-201: blocks (6, 12, 48, 32), k = 32 (Huang et al. 2017, Table 1)."""
    return DenseNet(num_classes=num_classes, block_config=(6, 12, 48, 32), **kwargs)


@register_model("densenet264", **_REGISTER, description="DenseNet-264 (Huang et al. 2017, Table 1)")
def densenet264(num_classes: int = 1000, **kwargs: Any) -> DenseNet:
    """DenseNet-264: blocks (6, 12, 64, 48), k = 32 (Huang et al. 2017, Table 1; not in torchvision)."""
    return DenseNet(num_classes=num_classes, block_config=(6, 12, 64, 48), **kwargs)
