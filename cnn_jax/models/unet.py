"""U-Net (Ronneberger, Fischer & Brox 2015, "U-Net: convolutional networks for biomedical image
segmentation"), the network of the paper's Fig. 1.

* Contracting path: four levels of two 3x3 convolutions, each followed by ReLU, then a 2x2 max pool
  of stride 2; 64 channels at the first level (``base_width``), doubling per level (64, 128, 256,
  512), 1024 in the two convolutions at the bottom.
* Expanding path: per level a 2x2 "up-convolution" (a transposed convolution of stride 2) that
  halves the channels, concatenated with the contracting path's map of that level (its centre
  cropped to the up-sampled size: unpadded convolutions lose the border, §2), then two 3x3
  convolutions with ReLU.
* A 1x1 convolution maps the last 64 channels to the classes.

``padding='valid'`` (the paper): every 3x3 convolution loses a pixel on each side, so the paper's
572x572 tile gives 388x388 logits: 572 -> 570 -> 568, pool 284 -> 282 -> 280, 140 -> 138 -> 136,
68 -> 66 -> 64, 32 -> 30 -> 28 at the bottom (1024 channels), then up 56 -> 54 -> 52, 104 -> 102 ->
100, 200 -> 198 -> 196, 392 -> 390 -> 388. Every pooled map must be even: the input is
``16 b + 124`` and the output ``16 b - 60`` for a bottom map of ``b >= 4`` (572 and 388 for b = 28;
the smallest is 188 -> 4). ``padding='same'`` pads every 3x3 convolution by 1: the output has the
input's size, which must be divisible by 16; nothing is cropped.

Parameters: 31,030,658 for 1 input channel, 2 classes and ``base_width=64`` (weights and biases of
the 23 convolutions of Fig. 1; the padding does not change them); ``batch_norm=True`` (not in the
paper) adds BatchNorm after every 3x3 convolution in place of its bias.

Initialisation: He normal, "a Gaussian distribution with a standard deviation of sqrt(2/N), where N
denotes the number of incoming nodes of one neuron" (§3.1). ``dropout_rate`` applies dropout to the
output of the bottom level ("Drop-out layers at the end of the contracting path", §3.1; the paper
gives no rate; 0 by default).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax import layers
from cnn_jax.errors import check_choice
from cnn_jax.models.registry import register_model

PADDINGS = ("valid", "same")


class DoubleConv(nn.Module):
    """Two 3x3 convolutions, each followed by [BatchNorm and] ReLU: one level of the U (Fig. 1's
    pair of blue arrows). Submodules ``conv1``, ``conv2`` (and ``bn1``, ``bn2``)."""

    features: int
    padding: str = "valid"
    batch_norm: bool = False
    kernel_init: str | Callable = "he_normal"
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        for i in (1, 2):
            x = layers.Conv(
                self.features, 3, padding=1 if self.padding == "same" else 0,
                use_bias=not self.batch_norm, kernel_init=self.kernel_init, dtype=self.dtype,
                conv_impl=self.conv_impl, name=f"conv{i}",
            )(x)
            if self.batch_norm:
                x = layers.BatchNorm(dtype=self.dtype, name=f"bn{i}")(x, train=train)
            x = nn.relu(x)
        return x


class UNet(nn.Module):
    """U-Net: per-pixel logits ``(N, H', W', num_classes)``; ``H' = H`` for ``padding='same'``,
    ``H - 184`` for the paper's ``'valid'`` (module docstring).

    Fields:
      num_classes: outputs of the final 1x1 convolution (2 in the paper: cell and background).
      base_width: channels of the first level, doubled at each of the ``depth`` levels below.
      depth: pooling steps (4 in Fig. 1).
      padding: ``'valid'`` (the paper) or ``'same'``.
      batch_norm: BatchNorm after every 3x3 convolution (not in the paper).
      dropout_rate: dropout on the bottom level's output (§3.1; 0 by default).
      conv_impl: how the convolutions (up-convolutions too) run, ``'auto'`` | ``'xla'`` |
        ``'onednn'`` (:mod:`cnn_jax.layers.conv`).
    """

    num_classes: int = 2
    base_width: int = 64
    depth: int = 4
    padding: str = "valid"
    batch_norm: bool = False
    dropout_rate: float = 0.0
    kernel_init: str | Callable = "he_normal"
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    def _block(self, features: int, name: str) -> DoubleConv:
        return DoubleConv(features, padding=self.padding, batch_norm=self.batch_norm,
                          kernel_init=self.kernel_init, dtype=self.dtype,
                          conv_impl=self.conv_impl, name=name)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        check_choice(self.padding, PADDINGS, "U-Net padding")
        if self.padding == "same" and any(size % 2**self.depth for size in x.shape[1:3]):
            raise ValueError(f"a U-Net with padding='same' and depth {self.depth} needs an input "
                             f"divisible by {2**self.depth}, got {x.shape[1:3]}")
        x = jnp.asarray(x, self.dtype)
        skips = []
        for level in range(self.depth):
            x = self._block(self.base_width * 2**level, f"down{level + 1}")(x, train)
            skips.append(x)
            if any(size % 2 for size in x.shape[1:3]):
                raise ValueError(f"U-Net level {level + 1} map {x.shape[1:3]} is odd and cannot be "
                                 "pooled 2x2: with padding='valid' the input must be 16 b + 124 "
                                 "(e.g. 572, 188; module docstring)")
            x = layers.max_pool(x, 2, 2)
        x = self._block(self.base_width * 2**self.depth, "bottom")(x, train)
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        for level in reversed(range(self.depth)):
            features = self.base_width * 2**level
            x = layers.ConvTranspose(
                features, 2, strides=2, kernel_init=self.kernel_init, dtype=self.dtype,
                conv_impl=self.conv_impl, name=f"upconv{level + 1}",
            )(x)
            skip = layers.center_crop(skips[level], x.shape[1:3])
            x = self._block(features, f"up{level + 1}")(jnp.concatenate([skip, x], axis=-1), train)
        return layers.Conv(self.num_classes, 1, padding=0, kernel_init=self.kernel_init,
                           dtype=self.dtype, conv_impl=self.conv_impl, name="classifier")(x)


@register_model(
    "unet",
    family="unet",
    input_shape=(572, 572, 1),
    test_input_shape=(188, 188, 1),
    num_classes=2,
    task="segmentation",
    description="U-Net, 4 levels of 64-1024 channels, valid convolutions (Ronneberger et al. 2015)",
)
def unet(num_classes: int = 2, **kwargs: Any) -> UNet:
    """U-Net of Fig. 1; 31,030,658 parameters for 1 input channel and 2 classes."""
    return UNet(num_classes=num_classes, **kwargs)
