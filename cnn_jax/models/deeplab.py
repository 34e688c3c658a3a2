"""Dilated-ResNet segmentation networks as torchvision builds them: the DeepLab backbone (Chen et
al. 2017, "Rethinking atrous convolution for semantic image segmentation", §3.1) under an FCN head
(``fcn_resnet50``) or the DeepLabV3 head with atrous spatial pyramid pooling
(``deeplabv3_resnet50``, §3.3).

* Backbone: ResNet-50 (:class:`cnn_jax.models.resnet.ResNet`, ``features_only``) with the strides
  of its last two stages replaced by dilation (``replace_stride_with_dilation=(False, True,
  True)``): output stride 8, layer3's 3x3 convolutions dilated by 2 and layer4's by 4 (each stage's
  first block keeping the previous dilation, as torchvision does). No ``fc``.
* FCN head (torchvision's ``FCNHead``): 3x3 convolution 2048 -> 512 without bias, BatchNorm, ReLU,
  dropout 0.1, 1x1 convolution to the classes.
* DeepLabV3 head (``DeepLabHead``): ASPP of five branches of 256 channels, each a convolution
  without bias, BatchNorm and ReLU: a 1x1, three 3x3 with dilation (atrous rates) 12, 24 and 36, and
  image pooling (global average, 1x1, upsampled back); concatenated, projected by a 1x1 to 256
  (BatchNorm, ReLU, dropout 0.5); then a 3x3 convolution, BatchNorm, ReLU and a 1x1 to the classes.
* The logits are resized to the input's size bilinearly, with torch's ``align_corners=False``
  sampling (:func:`cnn_jax.layers.resize_bilinear`).
* ``aux_loss=True`` adds torchvision's auxiliary FCN head on layer3 (1024 -> 256 -> classes) and
  returns ``{"out": logits, "aux": aux_logits}``; off by default, as for torchvision's models
  built with ``weights=None``.

Names mirror torchvision's module tree with ``.`` before an index replaced by ``_``:
``backbone/layer3_0/conv2`` is ``backbone.layer3.0.conv2``, ``classifier_0/convs_1_0`` the ASPP's
first atrous convolution ``classifier.0.convs.1.0``, ``classifier_4`` the last 1x1. So
``cnn_jax.convert.from_torch`` converts torchvision's state dicts as they are. Parameters for 21
classes: ``fcn_resnet50`` 32,957,013, ``deeplabv3_resnet50`` 39,638,869 (torchvision's counts);
with ``aux_loss`` 35,322,218 and 42,004,074. Convolutions use torchvision's ResNet initialisation
(He normal, fan out).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax import layers
from cnn_jax.layers.adaptive_pool import adaptive_avg_pool
from cnn_jax.models.registry import register_model
from cnn_jax.models.resnet import TORCHVISION_CONV_INIT, ResNet

HEADS = ("fcn", "deeplabv3")


def conv_bn_relu(
    x: jax.Array,
    features: int,
    kernel: int,
    names: tuple[str, str],
    train: bool,
    *,
    dilation: int = 1,
    dtype: Any = jnp.float32,
    conv_impl: str = "auto",
) -> jax.Array:
    """Convolution without bias, BatchNorm, ReLU: a torchvision ``Sequential`` of three, its
    convolution and BatchNorm named ``names`` in the calling module (so ``('convs_1_0',
    'convs_1_1')`` stand for ``convs.1.0`` and ``convs.1.1``)."""
    x = layers.Conv(features, kernel, padding=dilation * (kernel // 2), dilation=dilation,
                    use_bias=False, kernel_init=TORCHVISION_CONV_INIT, dtype=dtype,
                    conv_impl=conv_impl, name=names[0])(x)
    return nn.relu(layers.BatchNorm(dtype=dtype, name=names[1])(x, train=train))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (Chen et al. 2017 §3.3, torchvision's ``ASPP``): a 1x1 branch,
    one 3x3 branch per rate, and image pooling, each to ``features`` channels; concatenated and
    projected by a 1x1 convolution (BatchNorm, ReLU, dropout 0.5)."""

    rates: Sequence[int] = (12, 24, 36)
    features: int = 256
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        common = dict(dtype=self.dtype, conv_impl=self.conv_impl)
        branches = [conv_bn_relu(x, self.features, 1, ("convs_0_0", "convs_0_1"), train, **common)]
        for i, rate in enumerate(self.rates, start=1):
            names = (f"convs_{i}_0", f"convs_{i}_1")
            branches.append(conv_bn_relu(x, self.features, 3, names, train, dilation=rate,
                                         **common))
        # Image pooling: convs.<n>.0 is the (parameter-free) adaptive average pool to 1x1.
        n = len(self.rates) + 1
        pooled = adaptive_avg_pool(x, 1)
        pooled = conv_bn_relu(pooled, self.features, 1, (f"convs_{n}_1", f"convs_{n}_2"), train,
                              **common)
        branches.append(layers.resize_bilinear(pooled, x.shape[1:3]))
        y = conv_bn_relu(jnp.concatenate(branches, axis=-1), self.features, 1,
                         ("project_0", "project_1"), train, **common)
        return nn.Dropout(0.5, deterministic=not train)(y)


class SegmentationResNet(nn.Module):
    """Dilated ResNet with an FCN or DeepLabV3 head: per-pixel logits ``(N, H, W, num_classes)``
    (module docstring).

    Fields:
      num_classes: outputs of the last 1x1 convolution (21 for PASCAL VOC).
      head: ``'fcn'`` or ``'deeplabv3'``.
      block, stage_sizes, stage_widths: the backbone's residual block ('bottleneck' or 'basic'),
        blocks per stage and base width per stage ((3, 4, 6, 3) bottlenecks of (64, 128, 256,
        512): ResNet-50; a narrower basic-block backbone makes a model for CPU experiments).
      replace_stride_with_dilation: per stage after the first (output stride 8 by default).
      aspp_features, aspp_rates: the DeepLabV3 head's channels and dilation rates (256 and
        (12, 24, 36): torchvision's).
      aux_loss: also return the auxiliary FCN head's logits on layer3.
      conv_impl: how the convolutions run, ``'auto'`` | ``'xla'`` | ``'onednn'``.
    """

    num_classes: int = 21
    head: str = "fcn"
    block: str = "bottleneck"
    stage_sizes: Sequence[int] = (3, 4, 6, 3)
    stage_widths: Sequence[int] = (64, 128, 256, 512)
    replace_stride_with_dilation: Sequence[bool] = (False, True, True)
    aspp_features: int = 256
    aspp_rates: Sequence[int] = (12, 24, 36)
    aux_loss: bool = False
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    def _fcn_head(self, x: jax.Array, prefix: str, train: bool) -> jax.Array:
        # torchvision's FCNHead: Sequential(conv 3x3, BN, ReLU, Dropout(0.1), conv 1x1).
        x = conv_bn_relu(x, x.shape[-1] // 4, 3, (f"{prefix}_0", f"{prefix}_1"), train,
                         dtype=self.dtype, conv_impl=self.conv_impl)
        x = nn.Dropout(0.1, deterministic=not train)(x)
        return self._classes(x, f"{prefix}_4")

    def _classes(self, x: jax.Array, name: str) -> jax.Array:
        return layers.Conv(self.num_classes, 1, padding=0, kernel_init=TORCHVISION_CONV_INIT,
                           dtype=self.dtype, conv_impl=self.conv_impl, name=name)(x)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array | dict[str, jax.Array]:
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got {self.head!r}")
        size = x.shape[1:3]
        *_, layer3, layer4 = ResNet(
            block=self.block, stage_sizes=self.stage_sizes, stage_widths=self.stage_widths,
            replace_stride_with_dilation=self.replace_stride_with_dilation, features_only=True,
            dtype=self.dtype, conv_impl=self.conv_impl, name="backbone",
        )(x, train=train)
        if self.head == "fcn":
            y = self._fcn_head(layer4, "classifier", train)
        else:
            # torchvision's DeepLabHead: Sequential(ASPP, conv 3x3, BN, ReLU, conv 1x1).
            y = ASPP(rates=self.aspp_rates, features=self.aspp_features, dtype=self.dtype,
                     conv_impl=self.conv_impl, name="classifier_0")(layer4, train)
            y = conv_bn_relu(y, y.shape[-1], 3, ("classifier_1", "classifier_2"), train,
                             dtype=self.dtype, conv_impl=self.conv_impl)
            y = self._classes(y, "classifier_4")
        out = layers.resize_bilinear(y, size)
        if not self.aux_loss:
            return out
        aux = layers.resize_bilinear(self._fcn_head(layer3, "aux_classifier", train), size)
        return {"out": out, "aux": aux}


_REGISTER = dict(family="deeplab", input_shape=(520, 520, 3), test_input_shape=(32, 32, 3),
                 num_classes=21, task="segmentation")


@register_model("fcn_resnet50", **_REGISTER,
                description="FCN head on a dilated ResNet-50, output stride 8 (torchvision)")
def fcn_resnet50(num_classes: int = 21, **kwargs: Any) -> SegmentationResNet:
    """torchvision's fcn_resnet50; 32,957,013 parameters at 21 classes."""
    return SegmentationResNet(num_classes=num_classes, **{"head": "fcn", **kwargs})


@register_model("deeplabv3_resnet50", **_REGISTER,
                description="DeepLabV3 (ASPP) on a dilated ResNet-50, output stride 8 "
                            "(Chen et al. 2017, torchvision)")
def deeplabv3_resnet50(num_classes: int = 21, **kwargs: Any) -> SegmentationResNet:
    """torchvision's deeplabv3_resnet50; 39,638,869 parameters at 21 classes."""
    return SegmentationResNet(num_classes=num_classes, **{"head": "deeplabv3", **kwargs})

