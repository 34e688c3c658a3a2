"""GoogLeNet / Inception v1 (Szegedy et al. 2015, "Going deeper with convolutions", Table 1).

Built in torchvision's form, so its ImageNet weights can be mapped onto ours:

* every convolution is conv (no bias) -> BatchNorm (eps 1e-3) -> ReLU, torchvision's ``BasicConv2d``
  (the paper predates BatchNorm and has local response normalisation after the stem; torchvision
  dropped LRN and added BN everywhere);
* max pools use ``ceil_mode=True`` (the paper's Caffe model rounds pooled sizes up);
* the paper's "5x5" branch is a 3x3 convolution in torchvision (a known mismatch of its ported
  weights); ``branch3_kernel_size=5`` restores the paper's 5x5 (padding 2);
* the pool between inception 4e and 5a is 2x2/2 in torchvision where Table 1 has 3x3/2; with
  ceil mode both give 7x7 from 14x14 and neither has parameters;
* dropout before the classifier is 0.2 (torchvision) where the paper uses 0.4.

Inception widths (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj) are Table 1's.

Auxiliary classifiers (paper Sec. 5): on the outputs of 4a and 4d, avg pool to 4x4 -> 1x1 conv
128 -> FC 1024 -> ReLU -> dropout 0.7 -> FC num_classes. They exist only with ``aux_logits=True``
and only run in training: ``model.apply(v, x, train=True)`` then returns ``(logits, aux1, aux2)``
(the paper adds the auxiliary losses with weight 0.3); with ``train=False`` it returns logits only.
torchvision pools the auxiliary input with ``adaptive_avg_pool2d(x, (4, 4))``, which on a 14x14
map has windows of 4 at offsets 0, 3, 7, 10 (the paper's 5x5/3 pool has windows of 5); we follow
torchvision.

``transform_input=True`` re-normalises ImageNet-standardised inputs to the [-1, 1] scaling that
Google's original weights expect (torchvision's flag of the same name); off by default.

Parameter names mirror torchvision's module tree (``.`` -> ``_`` only where a flat name is needed):

    torchvision                          here
    conv1.conv / conv1.bn                conv1/conv/kernel, conv1/bn/{scale,bias}
    conv2, conv3                         conv2, conv3
    inception3a.branch1.{conv,bn}        inception3a/branch1/{conv,bn}
    inception3a.branch2.0 / .1           inception3a/branch2_0, inception3a/branch2_1
    inception3a.branch3.0 / .1           inception3a/branch3_0, inception3a/branch3_1
    inception3a.branch4.1 (4.0 = pool)   inception3a/branch4_1
    ... inception3b, 4a-4e, 5a, 5b
    aux1.conv, aux1.fc1, aux1.fc2        aux1/conv, aux1/fc1, aux1/fc2   (aux2 likewise)
    fc                                   fc

A converter transposes conv kernels (O, I, kH, kW) -> (kH, kW, I, O) and linear weights (O, I) ->
(I, O); ``aux*.fc1`` additionally needs its 2048 input rows permuted from torch's (C, H, W) flatten
order to our (H, W, C) order. BN ``weight``/``bias``/``running_mean``/``running_var`` map to
``scale``/``bias`` and batch_stats ``mean``/``var``.

Smallest input: torch accepts 15x15 (its ceil-mode pools still emit one window when the window
overhangs the input by less than a stride); ``cnn_jax.layers``' pools require every window to
start inside the input, so here the smallest is 31x31. The registry's test input is 32x32
(CIFAR-sized: 1x1 after inception 5b); 224x224 is the paper's.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cnn_jax.layers import ConvBNAct, max_pool
from cnn_jax.layers.adaptive_pool import adaptive_avg_pool
from cnn_jax.models.registry import register_model

# (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj), Szegedy et al. 2015 Table 1.
INCEPTION_WIDTHS: dict[str, tuple[int, int, int, int, int, int]] = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}

# torchvision initialises conv and linear weights from N(0, 0.01) truncated at +-2 (absolute, so
# effectively untruncated); the paper does not state an initialisation.
_KERNEL_INIT = nn.initializers.normal(stddev=0.01)
_BN_EPS = 1e-3  # torchvision's BasicConv2d; the other models use torch's default 1e-5

# ImageNet channel statistics; used only by transform_input.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def inception_input_transform(x: jnp.ndarray) -> jnp.ndarray:
    """Maps ImageNet-standardised input ``(pixel - mean) / std`` to ``(pixel - 0.5) / 0.5``.

    Google's original Inception weights were trained on pixels scaled to [-1, 1]; torchvision's
    ``transform_input`` converts its usual normalisation to that one, channel by channel.
    """
    mean = jnp.asarray(_IMAGENET_MEAN, x.dtype)
    std = jnp.asarray(_IMAGENET_STD, x.dtype)
    return x * (std / 0.5) + (mean - 0.5) / 0.5


def _conv_bn_relu(dtype: Any, conv_impl: str):
    """Factory for torchvision's ``BasicConv2d``: conv (no bias) -> BN(eps 1e-3) -> ReLU.

    ConvBNAct names its children 'conv' and 'bn', so ``name`` gives exactly torchvision's
    ``<name>.conv`` / ``<name>.bn`` paths.
    """

    def make(features: int, kernel_size: int, padding: int = 0, strides: int = 1, *, name: str):
        return ConvBNAct(
            features,
            kernel_size=kernel_size,
            strides=strides,
            padding=padding,
            act="relu",
            bn_epsilon=_BN_EPS,
            kernel_init=_KERNEL_INIT,
            dtype=dtype,
            conv_impl=conv_impl,
            name=name,
        )

    return make


class Inception(nn.Module):
    """One inception module (Fig. 2b): four parallel branches concatenated on channels."""

    widths: tuple[int, int, int, int, int, int]
    branch3_kernel_size: int = 3
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj = self.widths
        conv = _conv_bn_relu(self.dtype, self.conv_impl)
        k3 = self.branch3_kernel_size
        branch1 = conv(ch1x1, 1, name="branch1")(x, train=train)
        branch2 = conv(ch3x3red, 1, name="branch2_0")(x, train=train)
        branch2 = conv(ch3x3, 3, padding=1, name="branch2_1")(branch2, train=train)
        branch3 = conv(ch5x5red, 1, name="branch3_0")(x, train=train)
        branch3 = conv(ch5x5, k3, padding=k3 // 2, name="branch3_1")(branch3, train=train)
        branch4 = max_pool(x, window=3, strides=1, padding=1, ceil_mode=True)
        branch4 = conv(pool_proj, 1, name="branch4_1")(branch4, train=train)
        return jnp.concatenate([branch1, branch2, branch3, branch4], axis=-1)


class InceptionAux(nn.Module):
    """Auxiliary classifier (Sec. 5) in torchvision's form: adaptive avg pool to 4x4 first."""

    num_classes: int
    dropout_rate: float = 0.7
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        x = adaptive_avg_pool(x, (4, 4))
        x = _conv_bn_relu(self.dtype, self.conv_impl)(128, 1, name="conv")(x, train=train)
        x = x.reshape(x.shape[0], -1)  # (H, W, C) order; torch's fc1 rows are (C, H, W)
        x = nn.Dense(1024, dtype=self.dtype, kernel_init=_KERNEL_INIT, name="fc1")(x)
        x = nn.relu(x)
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return nn.Dense(self.num_classes, dtype=self.dtype, kernel_init=_KERNEL_INIT, name="fc2")(x)


class GoogLeNet(nn.Module):
    """GoogLeNet (Inception v1), torchvision's BN variant; see the module docstring.

    ``__call__(x, train)`` returns logits ``(N, num_classes)``, or ``(logits, aux1, aux2)`` when
    ``train`` and ``aux_logits`` are both true. ``conv_impl``: how the convolutions run
    (:mod:`cnn_jax.layers.conv`).
    """

    num_classes: int = 1000
    aux_logits: bool = False
    transform_input: bool = False
    branch3_kernel_size: int = 3  # torchvision's 3x3; 5 = the paper's 5x5
    dropout_rate: float = 0.2
    aux_dropout_rate: float = 0.7
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    @nn.compact
    def __call__(
        self, x: jnp.ndarray, train: bool = False
    ) -> jnp.ndarray | tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
        if self.branch3_kernel_size not in (3, 5):
            raise ValueError(
                f"branch3_kernel_size must be 3 (torchvision) or 5 (paper), got {self.branch3_kernel_size}"
            )
        if self.transform_input:
            x = inception_input_transform(x)

        conv = _conv_bn_relu(self.dtype, self.conv_impl)

        def inception(key: str, h: jnp.ndarray) -> jnp.ndarray:
            return Inception(
                INCEPTION_WIDTHS[key],
                self.branch3_kernel_size,
                dtype=self.dtype,
                conv_impl=self.conv_impl,
                name=f"inception{key}",
            )(h, train=train)

        # Aux heads are built whenever they exist (also at init with train=False, so that their
        # parameters are created) but evaluated only when training.
        run_aux = self.aux_logits and (train or self.is_initializing())

        def aux(name: str, h: jnp.ndarray) -> jnp.ndarray:
            return InceptionAux(
                self.num_classes,
                self.aux_dropout_rate,
                dtype=self.dtype,
                conv_impl=self.conv_impl,
                name=name,
            )(h, train=train)

        x = conv(64, 7, strides=2, padding=3, name="conv1")(x, train=train)
        x = max_pool(x, window=3, strides=2, ceil_mode=True)
        x = conv(64, 1, name="conv2")(x, train=train)
        x = conv(192, 3, padding=1, name="conv3")(x, train=train)
        x = max_pool(x, window=3, strides=2, ceil_mode=True)
        x = inception("3a", x)
        x = inception("3b", x)
        x = max_pool(x, window=3, strides=2, ceil_mode=True)
        x = inception("4a", x)
        aux1 = aux("aux1", x) if run_aux else None
        x = inception("4b", x)
        x = inception("4c", x)
        x = inception("4d", x)
        aux2 = aux("aux2", x) if run_aux else None
        x = inception("4e", x)
        x = max_pool(x, window=2, strides=2, ceil_mode=True)
        x = inception("5a", x)
        x = inception("5b", x)
        x = jnp.mean(x, axis=(1, 2))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        logits = nn.Dense(self.num_classes, dtype=self.dtype, kernel_init=_KERNEL_INIT, name="fc")(
            x
        )
        if self.aux_logits and train:
            return logits, aux1, aux2
        return logits


@register_model(
    "googlenet",
    family="googlenet",
    input_shape=(224, 224, 3),
    test_input_shape=(32, 32, 3),
    num_classes=1000,
    description="GoogLeNet / Inception v1, BN variant (Szegedy et al. 2015, Table 1; torchvision form)",
)
def googlenet(num_classes: int = 1000, **kwargs: Any) -> GoogLeNet:
    """GoogLeNet / Inception v1 (Szegedy et al. 2015 Table 1), torchvision's BN form."""
    return GoogLeNet(num_classes=num_classes, **kwargs)
