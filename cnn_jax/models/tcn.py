"""Temporal convolutional network (Bai, Kolter & Koltun 2018, "An empirical evaluation of generic
convolutional and recurrent networks for sequence modeling", §3 and Fig. 1).

A stack of residual blocks (§3.4, Fig. 1b), block ``i`` with dilation ``2^i`` (§3.3): two dilated
causal 1-D convolutions (:class:`cnn_jax.layers.CausalConv1D`), each with weight normalisation, ReLU
and dropout; a 1x1 convolution on the skip where the channel count changes; ReLU of the sum. Every
convolution pads only on the left, so output step ``t`` sees inputs ``0 ... t`` and nothing later.
With kernel ``k`` and ``L`` blocks of two convolutions the receptive field is
``1 + 2 (k - 1) (2^L - 1)`` steps (§3.3: each convolution adds ``(k - 1) d``).

Sequential MNIST (Table 1): the 28x28 image is read pixel by pixel in raster order, a sequence of
784 one-channel steps, and the class is read from the last step by a linear layer. The configuration
of the paper's experiment (the defaults of the authors' ``TCN/mnist_pixel`` code): 8 blocks of 25
channels, kernel 7, dropout 0.05 (trained there with Adam, learning rate 2e-3, batch 64, 20 epochs,
the rate divided by 10 after epoch 10); receptive field 1 + 2 * 6 * 255 = 3,061 >= 784 steps. 66,910
parameters for 10 classes: block 1 has 4,700 (175 + 4,375 kernel entries, 2 x 25 weight-norm scales
and 2 x 25 biases, a 25 + 25 skip projection), blocks 2-8 8,850 each, the classifier 260 (Table 1
rounds the model to 70K). Permuted sequential MNIST reads the pixels in one fixed random order
instead (``permuted=True``: the permutation of ``permutation_seed``, a constant of the model, never
a parameter). The paper reports 99.0% and 97.2% test accuracy.

The model takes images ``(N, 28, 28, 1)`` (any ``(N, H, W, C)``: ``H * W`` steps of ``C``
channels) and returns logits ``(N, num_classes)``; :meth:`TCN.sequence_features` gives every
step's features ``(N, H * W, channels)``, the map whose step ``t`` depends on no input after ``t``.

Weight normalisation (Salimans & Kingma 2016, eq. 2): ``w = g v / ||v||``, one scale ``g`` per
output channel and ``||v||`` over that channel's taps and inputs. A convolution is linear in its
kernel, so :class:`WeightNormCausalConv1D` convolves with ``v`` and multiplies each output channel
by ``g / ||v||``: the same function and the same gradients as convolving with ``w``. As torch's
``weight_norm`` (which the authors' code uses), ``g`` starts at ``||v||``, so a new layer computes
the convolution with ``v``; ``v`` starts as torch's default convolution initialisation (uniform in
``+-1/sqrt(fan_in)``), which is what the authors' code ends up with: its N(0, 0.01) initialisation
writes to ``conv.weight``, which weight normalisation recomputes from ``g`` and ``v`` before every
call, so it has no effect. The skip projection and the classifier are N(0, 0.01) as there; biases
start at 0. Parameters of a weight-normed convolution: ``conv/kernel`` (``v``), ``scale`` (``g``)
and ``bias``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cnn_jax import layers
from cnn_jax.models.registry import register_model

# torch's default Conv1d/Linear weight initialisation, kaiming_uniform_(a=sqrt(5)):
# U(+-1/sqrt(fan_in)).
TORCH_DEFAULT_INIT = layers.get_initializer("he_uniform", negative_slope=math.sqrt(5))
SMALL_NORMAL_INIT = layers.get_initializer("normal", stddev=0.01)


def receptive_field(kernel_size: int, num_levels: int) -> int:
    """Steps of input one output step sees: two causal convolutions per level, dilations 2^i."""
    return 1 + 2 * (kernel_size - 1) * (2**num_levels - 1)


def pixel_permutation(length: int, seed: int) -> np.ndarray:
    """The fixed order in which permuted sequential MNIST reads the ``length`` pixels."""
    return np.random.default_rng(seed).permutation(length)


class WeightNormCausalConv1D(nn.Module):
    """A causal convolution with weight normalisation, ``w = g v / ||v||`` (module docstring)."""

    features: int
    kernel_size: int
    dilation: int = 1
    kernel_init: str | Callable = TORCH_DEFAULT_INIT
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        conv = layers.CausalConv1D(self.features, self.kernel_size, dilation=self.dilation,
                                   use_bias=False, kernel_init=self.kernel_init, dtype=self.dtype,
                                   conv_impl=self.conv_impl, name="conv")
        y = conv(x)
        v = conv.variables["params"]["kernel"]  # (k, C_in, features)
        norm = jnp.sqrt(jnp.sum(jnp.square(v), axis=(0, 1)))
        g = self.param("scale", lambda _key: norm)  # torch's weight_norm starts g at ||v||
        bias = self.param("bias", layers.get_initializer("zeros"), (self.features,))
        return y * jnp.asarray(g / norm, y.dtype) + jnp.asarray(bias, y.dtype)


class TemporalBlock(nn.Module):
    """Residual block of Fig. 1b: (weight-normed dilated causal conv, ReLU, dropout) twice, plus
    the input (projected by a 1x1 convolution if the channels change), then ReLU."""

    features: int
    kernel_size: int
    dilation: int
    dropout_rate: float = 0.0
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        y = x
        for name in ("conv1", "conv2"):
            y = WeightNormCausalConv1D(self.features, self.kernel_size, self.dilation,
                                       dtype=self.dtype, conv_impl=self.conv_impl, name=name)(y)
            y = nn.Dropout(self.dropout_rate, deterministic=not train)(nn.relu(y))
        if x.shape[-1] != self.features:
            x = layers.Conv(self.features, (1,), padding=0, kernel_init=SMALL_NORMAL_INIT,
                            dtype=self.dtype, conv_impl=self.conv_impl, name="downsample")(x)
        return nn.relu(y + x)


class TCN(nn.Module):
    """Temporal convolutional network classifying an image read as a sequence of pixels.

    Fields:
      num_classes: outputs of the linear layer on the last step.
      channels: channels of every level (25 for sequential MNIST).
      num_levels: residual blocks, with dilations 1, 2, ..., 2^(num_levels - 1).
      kernel_size: taps of every causal convolution (7 for sequential MNIST).
      dropout_rate: after every convolution's ReLU.
      permuted: read the pixels in the fixed order ``pixel_permutation(H * W, permutation_seed)``.
      conv_impl: how the convolutions run, ``'auto'`` | ``'xla'`` | ``'onednn'``
        (:mod:`cnn_jax.layers.conv`).
    """

    num_classes: int = 10
    channels: int = 25
    num_levels: int = 8
    kernel_size: int = 7
    dropout_rate: float = 0.05
    permuted: bool = False
    permutation_seed: int = 0
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    def sequence(self, images: jax.Array) -> jax.Array:
        """Images ``(N, H, W, C)`` as sequences ``(N, H * W, C)`` in raster (or permuted) order."""
        if images.ndim != 4:
            raise ValueError("TCN reads images (N, H, W, C) pixel by pixel, got shape "
                             f"{images.shape}")
        n, h, w, c = images.shape
        x = images.reshape(n, h * w, c)
        if self.permuted:
            x = x[:, pixel_permutation(h * w, self.permutation_seed)]
        return x

    def setup(self) -> None:
        self.levels = [
            TemporalBlock(self.channels, self.kernel_size, 2**level, self.dropout_rate,
                          dtype=self.dtype, conv_impl=self.conv_impl)
            for level in range(self.num_levels)
        ]
        self.linear = nn.Dense(self.num_classes, kernel_init=SMALL_NORMAL_INIT, dtype=self.dtype)

    def sequence_features(self, images: jax.Array, train: bool = False) -> jax.Array:
        """Every step's features ``(N, H * W, channels)`` of the last level."""
        x = jnp.asarray(self.sequence(images), self.dtype)
        for block in self.levels:
            x = block(x, train)
        return x

    def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
        return self.linear(self.sequence_features(images, train)[:, -1])


_SEQ_MNIST = dict(family="tcn", input_shape=(28, 28, 1), test_input_shape=(8, 8, 1), num_classes=10)


@register_model("tcn_seq_mnist", **_SEQ_MNIST,
                description="TCN, 8 levels x 25 channels, kernel 7, on sequential MNIST "
                            "(Bai et al. 2018); 66,910 parameters")
def tcn_seq_mnist(num_classes: int = 10, **kwargs: Any) -> TCN:
    """TCN reading MNIST pixel by pixel (784 steps); 66,910 parameters at 10 classes."""
    return TCN(num_classes=num_classes, **kwargs)


@register_model("tcn_pmnist", **_SEQ_MNIST,
                description="TCN, 8 levels x 25 channels, kernel 7, on permuted sequential MNIST "
                            "(Bai et al. 2018); 66,910 parameters")
def tcn_pmnist(num_classes: int = 10, **kwargs: Any) -> TCN:
    """TCN reading MNIST's pixels in one fixed random order; 66,910 parameters at 10 classes."""
    return TCN(num_classes=num_classes, **{"permuted": True, **kwargs})
