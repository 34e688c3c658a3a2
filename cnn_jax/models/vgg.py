"""VGG (Simonyan & Zisserman 2015, "Very deep convolutional networks for large-scale image recognition").

All six columns of the paper's Table 1 are configurations (``cfg``) of one module, :class:`VGG`:

======================  =====  ===================================================  ============
name                    col.   layers                                               parameters
======================  =====  ===================================================  ============
``vgg11``               A      8 conv + 3 FC                                        132,863,336
``vgg11_lrn``           A-LRN  A with LRN after the first convolution               132,863,336
``vgg13``               B      10 conv + 3 FC                                       133,047,848
``vgg16_c``             C      B + a 1x1 conv as third layer of blocks 3-5          133,638,952
``vgg16``               D      B + a 3x3 conv as third layer of blocks 3-5          138,357,544
``vgg19``               E      D + a fourth 3x3 conv in blocks 3-5                  143,667,240
======================  =====  ===================================================  ============

(1000 classes; Table 2 rounds these to 133, 133, 133, 134, 138 and 144 million.) Each column except
A-LRN also comes with batch normalisation after every convolution, as torchvision builds it
(conv with bias -> BN -> ReLU): ``vgg11_bn`` 132,868,840, ``vgg13_bn`` 133,053,736, ``vgg16_c_bn``,
``vgg16_bn`` 138,365,992, ``vgg19_bn`` 143,678,248. (LRN and BN both normalise; the paper's A-LRN
was its experiment showing LRN does not help, §4.1, so it has no BN twin.)

All convolutions are stride 1 with padding ``k // 2`` (3x3 pad 1, 1x1 pad 0), every block ends in 2x2
stride-2 max pooling (§2.1), and the head is torchvision's: adaptive average pool to 7x7 (the
identity at 224x224), then 4096-4096-classes with ReLU and dropout 0.5 (§2.1, §3.1). The smallest
input is 32x32 (five halvings down to 1x1, which the adaptive pool repeats to 7x7).

Names mirror torchvision's module tree: ``features_<i>`` with ``i`` the layer's position in
torchvision's ``features`` Sequential (conv, [BN], ReLU, [LRN], max pool each take one index; e.g.
vgg16 convolutions are ``features_0, 2, 5, 7, 10, ...``, vgg16_bn's ``features_0, 3, 7, ...`` with
their BNs at ``features_1, 4, 8, ...``), and ``classifier_0``, ``classifier_3``, ``classifier_6`` for
the linear layers (linear, ReLU, dropout, linear, ReLU, dropout, linear). Weights port by
transposing; the feature map is flattened in torch's (C, H, W) order so ``classifier.0`` does too.
BN ``weight``/``bias`` are ``scale``/``bias`` in ``params``, ``running_mean``/``running_var`` are
``mean``/``var`` in ``batch_stats``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax import layers
from cnn_jax.layers.adaptive_pool import adaptive_avg_pool
from cnn_jax.models.registry import register_model

# A cfg entry: an int is a 3x3 convolution with that many filters, (filters, k) a kxk convolution,
# 'M' a 2x2/2 max pool, 'LRN' local response normalisation.
CfgEntry = int | tuple[int, int] | str

# fmt: off
CFGS: dict[str, tuple[CfgEntry, ...]] = {
    "A": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "A-LRN": (64, "LRN", "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "B": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "C": (64, 64, "M", 128, 128, "M", 256, 256, (256, 1), "M", 512, 512, (512, 1), "M",
          512, 512, (512, 1), "M"),
    "D": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "E": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"),
}
# fmt: on


def vgg_features(
    x: jax.Array,
    cfg: Sequence[CfgEntry],
    train: bool,
    *,
    batch_norm: bool = False,
    kernel_init: str | Callable = "he_normal",
    activation: str | Callable = "relu",
    bn_momentum: float = 0.9,
    bn_epsilon: float = 1e-5,
    dtype: Any = jnp.float32,
    conv_impl: str = "auto",
) -> list[jax.Array]:
    """The convolutional part of a VGG column (``cfg`` as in ``CFGS``): the output of every max
    pool, in order (pool1 ... pool5 for the paper's columns), and last the final layer's output
    if the column does not end in a pool.

    Called from a compact method, it creates its layers in the caller (``features_<i>``, numbered
    as torchvision's ``features`` Sequential): :class:`VGG` and the FCNs of
    :mod:`cnn_jax.models.fcn` share it, so torchvision's ``features.*`` weights fit both.
    """
    pools = []
    index = 0  # position in torchvision's `features` Sequential
    for entry in cfg:
        if entry == "M":
            x = layers.max_pool(x, 2, 2)
            pools.append(x)
            index += 1
        elif entry == "LRN":
            # §2.1: "the parameters for the LRN layer are those of (Krizhevsky et al., 2012)".
            x = layers.LocalResponseNorm(
                size=5, alpha=1e-4, beta=0.75, k=2.0, name=f"features_{index}"
            )(x)
            index += 1
        else:
            features, kernel = (entry, 3) if isinstance(entry, int) else entry
            # torchvision keeps the conv bias even when BN follows; keep it for weight parity.
            x = layers.Conv(
                features,
                kernel_size=kernel,
                padding=kernel // 2,
                kernel_init=kernel_init,
                dtype=dtype,
                conv_impl=conv_impl,
                name=f"features_{index}",
            )(x)
            index += 1
            if batch_norm:
                x = layers.BatchNorm(
                    momentum=bn_momentum, epsilon=bn_epsilon, dtype=dtype, name=f"features_{index}"
                )(x, train=train)
                index += 1
            x = layers.activate(x, activation, name=f"features_{index}")
            index += 1
    if not cfg or cfg[-1] != "M":
        pools.append(x)
    return pools


class VGG(nn.Module):
    """VGG: stacks of small stride-1 convolutions between max pools, then a 3-layer classifier.

    Fields:
      cfg: the layer list (see ``CFGS``; a column letter of Table 1 may be given instead).
      batch_norm: BN after every convolution (torchvision's ``*_bn`` models).
      pooled_size: side of the adaptive average pool before the classifier (None: no pool).
      hidden_sizes / dropout_rate: fully connected hidden layers, each followed by ReLU and dropout.
      kernel_init: initialiser (name or callable) of every convolution and linear layer.
      activation: every non-linearity (ReLU in the paper), by name or callable.
      bn_momentum / bn_epsilon: torch's conventions (torch momentum 0.1 == 0.9 here).
      conv_impl: how the convolutions run, ``'auto'`` | ``'xla'`` | ``'onednn'``
        (:mod:`cnn_jax.layers.conv`).
    """

    num_classes: int = 1000
    cfg: str | Sequence[CfgEntry] = "D"
    batch_norm: bool = False
    pooled_size: int | None = 7
    hidden_sizes: Sequence[int] = (4096, 4096)
    dropout_rate: float = 0.5
    kernel_init: str | Callable = "he_normal"
    activation: str | Callable = "relu"
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        cfg = CFGS[self.cfg] if isinstance(self.cfg, str) else self.cfg
        x = jnp.asarray(x, self.dtype)
        x = vgg_features(
            x,
            cfg,
            train,
            batch_norm=self.batch_norm,
            kernel_init=self.kernel_init,
            activation=self.activation,
            bn_momentum=self.bn_momentum,
            bn_epsilon=self.bn_epsilon,
            dtype=self.dtype,
            conv_impl=self.conv_impl,
        )[-1]

        if self.pooled_size is not None:
            x = adaptive_avg_pool(x, self.pooled_size)
        # Flatten channel-major like torch's NCHW `flatten`, so torchvision's classifier.0 weight
        # ports by a transpose instead of a permutation of its 25088 inputs.
        x = jnp.transpose(x, (0, 3, 1, 2)).reshape((x.shape[0], -1))

        dense_init = layers.get_initializer(self.kernel_init)
        index = 0  # position in torchvision's `classifier` Sequential
        for features in self.hidden_sizes:
            x = nn.Dense(
                features, kernel_init=dense_init, dtype=self.dtype, name=f"classifier_{index}"
            )(x)
            x = layers.activate(x, self.activation, name=f"classifier_{index + 1}")
            x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
            index += 3
        return nn.Dense(
            self.num_classes, kernel_init=dense_init, dtype=self.dtype, name=f"classifier_{index}"
        )(x)


# The columns of Table 1, each without and (except A-LRN) with batch norm. Keyword arguments
# override any field, the configuration included.
_REGISTER = dict(family="vgg", input_shape=(224, 224, 3), test_input_shape=(32, 32, 3))
_TABLE1 = " (Simonyan & Zisserman 2015 Table 1)"
_BN = ", with batch norm (torchvision)"


def _vgg(column: str, batch_norm: bool, num_classes: int, kwargs) -> VGG:
    return VGG(num_classes=num_classes, **{"cfg": column, "batch_norm": batch_norm, **kwargs})


@register_model("vgg11", **_REGISTER, description="VGG-A, 11 weight layers" + _TABLE1)
def vgg11(num_classes: int = 1000, **kwargs: Any) -> VGG:
    """VGG column A; 132,863,336 parameters."""
    return _vgg("A", False, num_classes, kwargs)


@register_model("vgg11_bn", **_REGISTER, description="VGG-A, 11 weight layers" + _TABLE1 + _BN)
def vgg11_bn(num_classes: int = 1000, **kwargs: Any) -> VGG:
    """VGG column A with BN after every convolution; 132,868,840 parameters."""
    return _vgg("A", True, num_classes, kwargs)


@register_model("vgg11_lrn", **_REGISTER, description="VGG-A-LRN, A with LRN after conv1" + _TABLE1)
def vgg11_lrn(num_classes: int = 1000, **kwargs: Any) -> VGG:
    """VGG column A-LRN; 132,863,336 parameters."""
    return _vgg("A-LRN", False, num_classes, kwargs)


@register_model("vgg13", **_REGISTER, description="VGG-B, 13 weight layers" + _TABLE1)
def vgg13(num_classes: int = 1000, **kwargs: Any) -> VGG:
    """VGG column B; 133,047,848 parameters."""
    return _vgg("B", False, num_classes, kwargs)


@register_model("vgg13_bn", **_REGISTER, description="VGG-B, 13 weight layers" + _TABLE1 + _BN)
def vgg13_bn(num_classes: int = 1000, **kwargs: Any) -> VGG:
    """VGG column B with BN after every convolution; 133,053,736 parameters."""
    return _vgg("B", True, num_classes, kwargs)


@register_model(
    "vgg16_c", **_REGISTER, description="VGG-C, 16 weight layers with 1x1 convs" + _TABLE1
)
def vgg16_c(num_classes: int = 1000, **kwargs: Any) -> VGG:
    """VGG column C; 133,638,952 parameters."""
    return _vgg("C", False, num_classes, kwargs)


@register_model(
    "vgg16_c_bn",
    **_REGISTER,
    description="VGG-C, 16 weight layers with 1x1 convs" + _TABLE1 + _BN,
)
def vgg16_c_bn(num_classes: int = 1000, **kwargs: Any) -> VGG:
    """VGG column C with BN after every convolution; 133,647,400 parameters."""
    return _vgg("C", True, num_classes, kwargs)


@register_model("vgg16", **_REGISTER, description="VGG-D, 16 weight layers" + _TABLE1)
def vgg16(num_classes: int = 1000, **kwargs: Any) -> VGG:
    """VGG column D; 138,357,544 parameters."""
    return _vgg("D", False, num_classes, kwargs)


@register_model("vgg16_bn", **_REGISTER, description="VGG-D, 16 weight layers" + _TABLE1 + _BN)
def vgg16_bn(num_classes: int = 1000, **kwargs: Any) -> VGG:
    """VGG column D with BN after every convolution; 138,365,992 parameters."""
    return _vgg("D", True, num_classes, kwargs)


@register_model("vgg19", **_REGISTER, description="VGG-E, 19 weight layers" + _TABLE1)
def vgg19(num_classes: int = 1000, **kwargs: Any) -> VGG:
    """VGG column E; 143,667,240 parameters."""
    return _vgg("E", False, num_classes, kwargs)


@register_model("vgg19_bn", **_REGISTER, description="VGG-E, 19 weight layers" + _TABLE1 + _BN)
def vgg19_bn(num_classes: int = 1000, **kwargs: Any) -> VGG:
    """VGG column E with BN after every convolution; 143,678,248 parameters."""
    return _vgg("E", True, num_classes, kwargs)
