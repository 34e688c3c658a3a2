"""Saliency prediction: ML-Net (Cornia, Baraldi, Serra & Cucchiara 2016, "A deep multi-level network
for saliency prediction", §III) and encoder-decoder saliency heads on zoo backbones.

Every model here maps images ``(N, H, W, 3)`` to one map ``(N, H, W)`` at the input's resolution:
the **logits of a per-pixel sigmoid** (``sigmoid(logits)`` is a map in [0, 1] for the pixel losses;
``softmax`` over the pixels of one image is a fixation distribution for the distribution losses).

ML-Net (the authors' code, ``marcellacornia/mlnet``, gives the details the paper leaves out):

* Feature extraction (§III-A): VGG16's thirteen convolutions
  (:func:`cnn_jax.models.vgg.vgg_features`, named ``features_0`` ... ``features_28`` like
  torchvision's ``vgg16``, so its ImageNet weights load as they are), with pool4's stride changed to
  1 (2x2 window, one row and column of padding at the bottom and right, as the reference's
  ``'same'`` pooling) and no pool5: conv5 works at 1/8 of the input like conv4, without dilation.
  Three levels are taken at 1/8 resolution: pool3 (256 channels), pool4 (512) and conv5_3 (512),
  concatenated to 1,280 channels (60x80 for the paper's 480x640 input).
* Encoding network (§III-B): dropout 0.5, a 3x3 convolution to 64 channels with ReLU
  (``encoding_conv``), a 1x1 convolution to one channel (``saliency_conv``).
* Prior learning (§III-C): a learned ``prior_shape`` map (6x8 for 480x640: the map's size over 10)
  upsampled bilinearly to the map's size and multiplied with it. The reference multiplies its
  non-negative map by ``1 + W`` with ``W`` starting at 0; here the map is logits, so the prior is
  added as a log-prior, ``logits + upsample(W)`` with ``W`` (``prior``) starting at 0: under the
  softmax over pixels that is exactly the product of the two maps, ``exp(logits) exp(W)``, with a
  prior that starts at 1 and stays positive. (The paper regularises ``W`` with an L2 penalty of
  weight ``1 / (6 * 8)``: an optimizer's weight decay on ``prior``.)
* The map, at 1/8 of the input, is resized bilinearly to the input's size. The reference's last
  ReLUs (after the 1x1 convolution and after the prior) are left out: the output is logits.
* Departure for training from scratch: the 1x1 convolution that gives the logits starts as
  RetinaNet's classifier (Lin et al. 2017, §4.1), weights normal with standard deviation 0.01 and
  bias ``-log((1 - pi) / pi)``, ``pi = prior_probability`` (0.01): every pixel's sigmoid starts near
  the small mean of a sparse saliency map. (From Glorot's initialisation the logits start with a
  spread of a few units; on the generated scenes Adam's first steps then drove them into the
  sigmoid's flat tails, where the pixel losses have no gradient, and training stopped.)

Parameters (``width=1``): VGG16's convolutions 14,714,688, ``encoding_conv`` 1280 * 9 * 64 + 64 =
737,344, ``saliency_conv`` 65, ``prior`` 48; in all 15,452,145. ``width`` multiplies every channel
count (VGG's and the encoding's, rounded, at least 1) for CPU training on 64x64 scenes:
``width=0.25`` has 966,945 parameters.

Saliency heads (``saliency_resnet18``, ``saliency_resnet50``): the last stage of a zoo backbone
built with ``features_only=True`` (stride 32, named ``backbone/...`` with torchvision's names below
it), then a light decoder: ``len(decoder_widths)`` 4x4 transposed convolutions of stride 2, each
with BatchNorm and ReLU, a 1x1 convolution to one channel, and a bilinear resize to the input's
size. With the default decoder (256, 128, 64): ``saliency_resnet18`` 13,929,985 parameters
(ResNet-18 without ``fc`` 11,176,512, decoder 2,753,473), ``saliency_resnet50`` 32,552,961
(23,508,032 and 9,044,929).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax import layers
from cnn_jax.models.fcn import scaled
from cnn_jax.models.registry import get_model_spec, register_model
from cnn_jax.models.vgg import CFGS, vgg_features

# VGG16 (column D) from conv1_1 to conv4_3, before pool4: vgg_features returns pool1, pool2, pool3
# and conv4_3. pool4 (stride 1 here) and conv5 follow in MLNet.
VGG16_TO_CONV4 = CFGS["D"][:13]
CONV5 = (("features_24", 512), ("features_26", 512), ("features_28", 512))  # torchvision's indices


def one_map(model: str, num_classes: int) -> None:
    """Saliency models predict one map: ``num_classes`` must be 1."""
    if num_classes != 1:
        raise ValueError(f"{model} predicts one saliency map: num_classes must be 1, "
                         f"got {num_classes}")


def saliency_logits(y: jax.Array, prior_probability: float, dtype: Any, conv_impl: str) -> jax.Array:
    """``(N, h, w, C)`` features to ``(N, h, w)`` logits by a 1x1 convolution, ``saliency_conv``,
    started as RetinaNet's classifier (module docstring). Call it inside a compact module."""
    prior = -math.log((1 - prior_probability) / prior_probability)
    conv = layers.Conv(1, 1, padding=0, kernel_init=layers.get_initializer("normal", stddev=0.01),
                       bias_init=layers.get_initializer("constant", value=prior), dtype=dtype,
                       conv_impl=conv_impl, name="saliency_conv")
    return conv(y)[..., 0]


class MLNet(nn.Module):
    """ML-Net: multi-level VGG16 features, an encoding network and a learned prior.

    Fields:
      width: multiplier of every channel count (VGG16's and the encoding network's).
      encoding_features: channels of the 3x3 encoding convolution (64).
      prior_shape: (rows, columns) of the learned prior (6x8 for 480x640 inputs).
      dropout_rate: on the concatenated features (0.5).
      kernel_init: VGG's convolutions; the encoding convolutions use Glorot normal, as the
        reference.
      prior_probability: the sigmoid's starting value at every pixel (0.01; module docstring).
      conv_impl: how the convolutions run, ``'auto'`` | ``'xla'`` | ``'onednn'``
        (:mod:`cnn_jax.layers.conv`).
    Returns saliency logits ``(N, H, W)``.
    """

    width: float = 1.0
    encoding_features: int = 64
    prior_shape: Sequence[int] = (6, 8)
    dropout_rate: float = 0.5
    kernel_init: str | Callable = "he_normal"
    prior_probability: float = 0.01
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    def _conv(self, features: int, kernel: int, init: str | Callable, name: str) -> layers.Conv:
        return layers.Conv(features, kernel, padding=kernel // 2, kernel_init=init,
                           dtype=self.dtype, conv_impl=self.conv_impl, name=name)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        size = x.shape[1:3]
        x = jnp.asarray(x, self.dtype)
        cfg = tuple(e if isinstance(e, str) else scaled(e, self.width) for e in VGG16_TO_CONV4)
        *_, pool3, conv4 = vgg_features(x, cfg, train, kernel_init=self.kernel_init,
                                        dtype=self.dtype, conv_impl=self.conv_impl)
        pool4 = layers.max_pool(conv4, 2, strides=1, padding=((0, 1), (0, 1)))
        y = pool4
        for name, features in CONV5:
            y = nn.relu(self._conv(scaled(features, self.width), 3, self.kernel_init, name)(y))
        y = jnp.concatenate([pool3, pool4, y], axis=-1)
        y = nn.Dropout(self.dropout_rate, deterministic=not train)(y)
        y = self._conv(scaled(self.encoding_features, self.width), 3, "glorot_normal",
                       "encoding_conv")(y)
        logits = saliency_logits(nn.relu(y), self.prior_probability, self.dtype, self.conv_impl)
        log_prior = self.param("prior", layers.get_initializer("zeros"), tuple(self.prior_shape))
        log_prior = layers.resize_bilinear(log_prior[None, :, :, None], logits.shape[1:3])
        logits = logits + jnp.asarray(log_prior[..., 0], logits.dtype)
        return layers.resize_bilinear(logits[..., None], size)[..., 0]


class SaliencyHead(nn.Module):
    """A zoo backbone's last stage, a decoder of stride-2 transposed convolutions and a 1x1
    convolution to one channel, resized to the input: saliency logits ``(N, H, W)``.

    Fields:
      backbone: a registered model accepting ``features_only=True`` (the ResNets).
      decoder_widths: output channels of the transposed convolutions (each upsamples by 2).
      prior_probability: the sigmoid's starting value at every pixel (0.01; module docstring).
      conv_impl: how every convolution runs, the backbone's too.
    """

    backbone: str = "resnet18"
    decoder_widths: Sequence[int] = (256, 128, 64)
    prior_probability: float = 0.01
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        size = x.shape[1:3]
        # The registered factory (create_model's `name` is the model's): the module is "backbone".
        build = get_model_spec(self.backbone).factory
        stages = build(features_only=True, dtype=self.dtype, conv_impl=self.conv_impl,
                       name="backbone")(x, train=train)
        y = stages[-1]
        for i, features in enumerate(self.decoder_widths):
            y = layers.ConvTranspose(features, 4, strides=2, padding=1, use_bias=False,
                                     kernel_init="he_normal", dtype=self.dtype,
                                     conv_impl=self.conv_impl, name=f"decoder{i + 1}")(y)
            y = layers.BatchNorm(dtype=self.dtype, name=f"decoder{i + 1}_bn")(y, train=train)
            y = nn.relu(y)
        y = saliency_logits(y, self.prior_probability, self.dtype, self.conv_impl)
        return layers.resize_bilinear(y[..., None], size)[..., 0]


_SALIENCY = dict(num_classes=1, task="saliency", test_input_shape=(32, 32, 3))


@register_model("mlnet", family="mlnet", input_shape=(480, 640, 3), **_SALIENCY,
                description="ML-Net, multi-level VGG16 features + learned prior (Cornia et al. "
                            "2016); 15,452,145 parameters")
def mlnet(num_classes: int = 1, **kwargs: Any) -> MLNet:
    """ML-Net; 15,452,145 parameters (``width=0.25``: 966,945)."""
    one_map("mlnet", num_classes)
    return MLNet(**kwargs)


_HEAD = dict(family="saliency_head", input_shape=(240, 320, 3), **_SALIENCY)


@register_model("saliency_resnet18", **_HEAD,
                description="ResNet-18 features + a transposed-convolution decoder to one map")
def saliency_resnet18(num_classes: int = 1, **kwargs: Any) -> SaliencyHead:
    """Saliency head on ResNet-18's last stage; 13,929,985 parameters."""
    one_map("saliency_resnet18", num_classes)
    return SaliencyHead(**{"backbone": "resnet18", **kwargs})


@register_model("saliency_resnet50", **_HEAD,
                description="ResNet-50 features + a transposed-convolution decoder to one map")
def saliency_resnet50(num_classes: int = 1, **kwargs: Any) -> SaliencyHead:
    """Saliency head on ResNet-50's last stage; 32,552,961 parameters."""
    one_map("saliency_resnet50", num_classes)
    return SaliencyHead(**{"backbone": "resnet50", **kwargs})
