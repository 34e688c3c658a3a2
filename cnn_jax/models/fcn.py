"""Fully convolutional networks (Long, Shelhamer & Darrell 2015, "Fully convolutional networks for
semantic segmentation"): FCN-32s, FCN-16s and FCN-8s on VGG16.

One module, :class:`FCN`, with the layers of the paper's reference nets (voc-fcn32s/16s/8s, the
paper's Fig. 3):

* VGG16's convolutional layers (column D; :func:`cnn_jax.models.vgg.vgg_features`, named
  ``features_0`` ... ``features_28`` like torchvision's ``vgg16``);
* ``fc6``/``fc7``, the classifier "convolutionalised" (§3.1): a 7x7 convolution 512 -> 4096 over
  pool5 and a 1x1 convolution 4096 -> 4096, each followed by ReLU and dropout 0.5;
* ``score_fr``: 1x1, 4096 -> K class scores at stride 32;
* FCN-32s: ``upscore``, a transposed convolution of stride 32 (kernel 64) to the input's size;
* FCN-16s (§4.2): ``upscore2`` (stride 2, kernel 4) of score_fr plus ``score_pool4`` (1x1 on
  pool4), then ``upscore16`` (stride 16, kernel 32);
* FCN-8s: as FCN-16s up to that sum, ``upscore_pool4`` (stride 2) plus ``score_pool3`` (1x1 on
  pool3), then ``upscore8`` (stride 8, kernel 16).

Upsampling layers are K -> K transposed convolutions without bias, kernel 2f for factor f,
initialised to bilinear interpolation (§3.3) and learnable (the paper learns the x2 ones; its
reference nets also keep the last one fixed at bilinear, which an optimizer can do by freezing
``upscore*`` by parameter path). The score layers start at zero (§4.3: "we zero-initialize the class
scoring layer"; the reference does the same for score_pool4 and score_pool3), so a skip adds
nothing until it has learnt something: a new FCN-8s predicts its coarse scores, upsampled.

Alignment. The reference pads conv1_1 by 100 pixels, so that the 7x7 fc6 fits over pool5 for any
input, and then crops every skip and the output at offsets computed by Caffe from the layer geometry
(5 for score_pool4, 9 for score_pool3, 19/27/31 for the final 32s/16s/8s outputs). That computes the
first two blocks on an input grown by 200 rows and columns (for a 64x64 input, 17 times the pixels).
Here the same result, score maps aligned with the input grid and an output of the input's size,
comes from the geometry itself:

1. the input is zero-padded at its bottom and right to a multiple of 32 (nothing moves: the
   padding comes after every pixel);
2. every 3x3 convolution is padded by 1 and every 2x2 pool has stride 2, so cell ``i`` of a
   stride-s map summarises input pixels ``s i ... s i + s - 1`` and is centred at
   ``s i + (s - 1) / 2``; fc6 is padded by 3, keeping pool5's grid;
3. a transposed convolution of stride f, kernel 2f, cropped by f/2 on each side (torch's
   ``padding=f/2``) gives exactly f times its input's size, and with bilinear weights
   (:func:`cnn_jax.layers.initializers.bilinear_upsampling`) it puts input cell i at output
   position ``f i + (f - 1) / 2``: on the finer map's grid, the same place in the image. So
   upscore2 of score_fr lands on pool4's grid, upscore_pool4 on pool3's, the last one on the
   input's pixels, and the skips add without offsets;
4. the output is cropped back to the input's size (removing step 1's padding).

The receptive field of output pixel 0 is centred on input pixel 0 in every variant
(``cnn_jax.analysis.receptive_field``; tests/models/test_fcn.py asserts it).

Parameters for 21 classes (PASCAL VOC): ``fcn32s`` 136,152,917, ``fcn16s`` 134,815,994,
``fcn8s`` 134,489,759. The paper's Table 1 counts 134M for FCN-VGG16: VGG16's 14,714,688
convolution weights and biases, fc6 102,764,544, fc7 16,781,312 and score_fr 86,037, which is
134,346,581; the rest are the skips' scores (10,773 and 5,397) and the upsampling kernels
(64^2 * 21^2 = 1,806,336 for FCN-32s's single x32 layer; 4^2, 32^2 * 21^2 for FCN-16s; 4^2,
4^2, 16^2 * 21^2 for FCN-8s).

``width`` multiplies every VGG and fc channel count (rounded, at least 1), for CPU experiments:
``width=0.125`` (VGG channels 8 ... 64, fc 512) has 2,140,937 parameters at 11 classes,
``width=0.25`` (16 ... 128, fc 1024) 8,442,193. ImageNet VGG16 weights:
:func:`cnn_jax.convert.fcn_from_vgg16` (torchvision's classifier.0 and classifier.3 reshaped into
fc6's and fc7's kernels).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax import layers
from cnn_jax.models.registry import register_model
from cnn_jax.models.vgg import CFGS, vgg_features

# Stride of the finest score map -> (names of the x2 upsamplings and skips, name and factor of
# the last upsampling). Skips are taken from pool4 (stride 16) and pool3 (stride 8).
VARIANTS: dict[int, tuple[tuple[tuple[str, str], ...], str]] = {
    32: ((), "upscore"),
    16: ((("upscore2", "score_pool4"),), "upscore16"),
    8: ((("upscore2", "score_pool4"), ("upscore_pool4", "score_pool3")), "upscore8"),
}
_TOTAL_STRIDE = 32  # VGG16's five 2x2 pools


def scaled(channels: int, width: float) -> int:
    """A channel count times a width multiplier, rounded, at least 1."""
    return max(1, round(channels * width))


class FCN(nn.Module):
    """FCN-32s/16s/8s on VGG16: per-pixel logits ``(N, H, W, num_classes)`` for any input size.

    Fields:
      num_classes: K, the score layers' outputs (21 for PASCAL VOC: 20 classes and background).
      stride: 32, 16 or 8, the finest score map fused (FCN-32s, -16s, -8s).
      width: multiplier of every VGG and fc channel count.
      fc_features: fc6/fc7 channels before ``width`` (4096).
      dropout_rate: after fc6 and fc7 (0.5).
      kernel_init: VGG and fc6/fc7 convolutions; score layers start at zero, upsampling at
        bilinear interpolation (module docstring).
      conv_impl: how the convolutions (transposed ones too) run, ``'auto'`` | ``'xla'`` |
        ``'onednn'`` (:mod:`cnn_jax.layers.conv`).
    """

    num_classes: int = 21
    stride: int = 8
    width: float = 1.0
    fc_features: int = 4096
    dropout_rate: float = 0.5
    kernel_init: str | Callable = "he_normal"
    activation: str | Callable = "relu"
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    def _conv(self, features: int, kernel: int, name: str, init: str | Callable) -> layers.Conv:
        return layers.Conv(features, kernel, padding=kernel // 2, kernel_init=init,
                           dtype=self.dtype, conv_impl=self.conv_impl, name=name)

    def _upsample(self, x: jax.Array, factor: int, name: str) -> jax.Array:
        # Kernel 2f, crop f/2 per side: exactly f times the size, aligned (module docstring, 3.).
        return layers.ConvTranspose(
            self.num_classes, 2 * factor, strides=factor, padding=factor // 2, use_bias=False,
            kernel_init="bilinear", dtype=self.dtype, conv_impl=self.conv_impl, name=name,
        )(x)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        if self.stride not in VARIANTS:
            raise ValueError(
                f"FCN stride must be 32, 16 or 8 (FCN-32s, -16s, -8s), got {self.stride}")
        x = jnp.asarray(x, self.dtype)
        height, width = x.shape[1:3]
        grow = [(-size) % _TOTAL_STRIDE for size in (height, width)]
        x = jnp.pad(x, ((0, 0), (0, grow[0]), (0, grow[1]), (0, 0)))

        cfg = tuple(e if isinstance(e, str) else scaled(e, self.width) for e in CFGS["D"])
        pool3, pool4, pool5 = vgg_features(
            x, cfg, train, kernel_init=self.kernel_init, activation=self.activation,
            dtype=self.dtype, conv_impl=self.conv_impl,
        )[2:]
        fc = scaled(self.fc_features, self.width)
        y = pool5
        for name, kernel in (("fc6", 7), ("fc7", 1)):
            y = self._conv(fc, kernel, name, self.kernel_init)(y)
            y = layers.activate(y, self.activation, name=f"relu{name[2:]}")
            y = nn.Dropout(self.dropout_rate, deterministic=not train)(y)
        score = self._conv(self.num_classes, 1, "score_fr", "zeros")(y)

        skips, last = VARIANTS[self.stride]
        for (up_name, skip_name), pool in zip(skips, (pool4, pool3), strict=False):
            score = self._upsample(score, 2, up_name)
            score = score + self._conv(self.num_classes, 1, skip_name, "zeros")(pool)
        score = self._upsample(score, self.stride, last)
        return score[:, :height, :width]


_REGISTER = dict(family="fcn", input_shape=(500, 500, 3), test_input_shape=(32, 32, 3),
                 num_classes=21, task="segmentation")
_PAPER = " (Long et al. 2015)"


@register_model("fcn32s", **_REGISTER, description="FCN-32s, VGG16, single x32 upsampling" + _PAPER)
def fcn32s(num_classes: int = 21, **kwargs: Any) -> FCN:
    """FCN-32s; 136,152,917 parameters at 21 classes."""
    return FCN(num_classes=num_classes, **{"stride": 32, **kwargs})


@register_model("fcn16s", **_REGISTER, description="FCN-16s, VGG16, skip from pool4" + _PAPER)
def fcn16s(num_classes: int = 21, **kwargs: Any) -> FCN:
    """FCN-16s; 134,815,994 parameters at 21 classes."""
    return FCN(num_classes=num_classes, **{"stride": 16, **kwargs})


@register_model("fcn8s", **_REGISTER,
                description="FCN-8s, VGG16, skips from pool4 and pool3" + _PAPER)
def fcn8s(num_classes: int = 21, **kwargs: Any) -> FCN:
    """FCN-8s; 134,489,759 parameters at 21 classes."""
    return FCN(num_classes=num_classes, **{"stride": 8, **kwargs})
