"""Residual networks (He, Zhang, Ren & Sun 2016, "Deep residual learning for image recognition").

One module, :class:`ResNet`, built from :class:`BasicBlock` or :class:`Bottleneck`, covers both
families of the paper:

* ImageNet ResNets (Table 1) as torchvision defines them: 7x7/2 stem conv, 3x3/2 max pool, four
  stages of 64/128/256/512 base widths, global average pool, ``fc``. Stride 2 sits on the first 3x3
  convolution of a stage's first block ("ResNet v1.5", torchvision's choice; the paper strides the
  first 1x1 of a bottleneck); a shortcut whose shape changes is a 1x1 projection with BN (option B,
  §3.3). Parameters for 1000 classes: ``resnet18`` 11,689,512, ``resnet34`` 21,797,672,
  ``resnet50`` 25,557,032, ``resnet101`` 44,549,160, ``resnet152`` 60,192,808. Any input of at least
  32x32 works (the last stage is then 1x1).
* CIFAR ResNets (§4.2, Table 6): 3x3 stem conv with 16 filters, three stages of ``n`` basic blocks
  with 16/32/64 filters on 32/16/8 maps, global average pool, ``fc``; depth ``6n + 2``. Shortcuts are
  option A (§3.3): parameter free, the stride-2 subsampled identity with zero channels appended.
  Parameters for 10 classes: ``resnet20`` 269,722 (Table 6: 0.27M), ``resnet32`` 464,154 (0.46M),
  ``resnet44`` 658,586 (0.66M), ``resnet56`` 853,018 (0.85M), ``resnet110`` 1,727,962 (1.7M).

Segmentation backbones (torchvision's ``replace_stride_with_dilation``; Yu & Koltun 2016, Chen et
al. 2017 §3.1): a stage whose stride is replaced by dilation keeps its input's resolution and
dilates its 3x3 convolutions instead (by 2 for the first such stage, 4 for the next), its first
block keeping the previous dilation, as torchvision does; ``features_only=True`` returns every
stage's output instead of the logits (no ``fc``).

Names mirror torchvision's module tree with ``.`` before an index replaced by ``_``: ``conv1``,
``bn1``, ``layer<s>_<b>`` for block ``b`` of stage ``s`` (holding ``conv1, bn1, conv2, bn2[, conv3,
bn3]`` and, for a projection shortcut, ``downsample_0`` (1x1 conv) and ``downsample_1`` (BN)), and
``fc``. So torchvision's ``layer2.0.downsample.1.running_var`` is ``batch_stats`` entry
``layer2_0/downsample_1/var``; conv weights (O, I, kH, kW) transpose to kernels (kH, kW, I, O), BN
``weight``/``bias`` are ``scale``/``bias``. Convolutions have no bias; BN uses torch's conventions
(momentum 0.1 there, 0.9 here; epsilon 1e-5).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax import layers
from cnn_jax.models.registry import register_model

# torchvision initialises every ResNet convolution with kaiming_normal_(mode='fan_out') (He et al.
# 2015 allow normalising by either fan).
TORCHVISION_CONV_INIT = layers.get_initializer("he_normal", mode="fan_out")


def identity_shortcut_a(x: jax.Array, features: int, strides: int) -> jax.Array:
    """Option A shortcut (He et al. 2016 §3.3): subsample by ``strides``, append zero channels.

    It has no parameters: the extra ``features - C`` channels of the shortcut are zeros, so those
    channels of the block learn a plain (non-residual) mapping.
    """
    if strides > 1:
        x = x[:, ::strides, ::strides, :]
    extra = features - x.shape[-1]
    if extra < 0:
        raise ValueError(f"option A shortcut cannot reduce {x.shape[-1]} channels to {features}")
    if extra:
        x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, extra)))
    return x


class _ResidualBlock(nn.Module):
    """Shared fields and shortcut of the residual blocks; subclasses define the residual branch."""

    features: int
    strides: int = 1
    shortcut: str = "B"
    zero_init_residual: bool = False
    kernel_init: str | Callable = TORCHVISION_CONV_INIT
    activation: str | Callable = "relu"
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    dilation: int = 1
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    expansion: ClassVar[int] = 1

    def act(self, x: jax.Array, name: str) -> jax.Array:
        return layers.activate(x, self.activation, name=name)

    def conv(
        self, features: int, kernel: int, strides: int, name: str, dilation: int = 1
    ) -> layers.Conv:
        # torch pads explicitly (d * (k // 2) on both sides), which differs from 'SAME' at stride 2.
        return layers.Conv(
            features,
            kernel_size=kernel,
            strides=strides,
            padding=dilation * (kernel // 2),
            dilation=dilation,
            use_bias=False,
            kernel_init=self.kernel_init,
            dtype=self.dtype,
            conv_impl=self.conv_impl,
            name=name,
        )

    def bn(self, name: str, zero_init: bool = False) -> layers.BatchNorm:
        return layers.BatchNorm(
            momentum=self.bn_momentum,
            epsilon=self.bn_epsilon,
            scale_init="zeros" if zero_init else "ones",
            dtype=self.dtype,
            name=name,
        )

    def shortcut_branch(self, x: jax.Array, train: bool) -> jax.Array:
        out_features = self.features * self.expansion
        if self.strides == 1 and x.shape[-1] == out_features:
            return x
        if self.shortcut == "A":
            return identity_shortcut_a(x, out_features, self.strides)
        if self.shortcut == "B":
            x = self.conv(out_features, 1, self.strides, "downsample_0")(x)
            return self.bn("downsample_1")(x, train=train)
        raise ValueError(
            f"shortcut must be 'A' (zero-padded identity) or 'B' (projection), got {self.shortcut!r}"
        )


class BasicBlock(_ResidualBlock):
    """Two 3x3 convolutions with BN and ReLU, plus the shortcut (He et al. 2016 Fig. 5 left);
    ``dilation`` dilates both."""

    expansion: ClassVar[int] = 1

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        y = self.conv(self.features, 3, self.strides, "conv1", self.dilation)(x)
        y = self.act(self.bn("bn1")(y, train=train), "act1")
        y = self.conv(self.features, 3, 1, "conv2", self.dilation)(y)
        # Zero-initialising the last BN scale makes the block start as the identity (Goyal et al. 2017).
        y = self.bn("bn2", zero_init=self.zero_init_residual)(y, train=train)
        return self.act(y + self.shortcut_branch(x, train), "act_out")


class Bottleneck(_ResidualBlock):
    """1x1 reduce, 3x3 (carrying the stride, v1.5, and the dilation), 1x1 expand by 4, plus the
    shortcut (Fig. 5 right)."""

    expansion: ClassVar[int] = 4

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        y = self.conv(self.features, 1, 1, "conv1")(x)
        y = self.act(self.bn("bn1")(y, train=train), "act1")
        y = self.conv(self.features, 3, self.strides, "conv2", self.dilation)(y)
        y = self.act(self.bn("bn2")(y, train=train), "act2")
        y = self.conv(self.features * self.expansion, 1, 1, "conv3")(y)
        y = self.bn("bn3", zero_init=self.zero_init_residual)(y, train=train)
        return self.act(y + self.shortcut_branch(x, train), "act_out")


BLOCKS: dict[str, type[_ResidualBlock]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(nn.Module):
    """Residual network: stem, stages of residual blocks, global average pool, linear ``fc``.

    Fields:
      block: ``'basic'`` or ``'bottleneck'``.
      stage_sizes: blocks per stage (e.g. (3, 4, 6, 3) for ResNet-50, (3, 3, 3) for ResNet-20).
      stage_widths: base width of each stage (bottleneck outputs are 4x this).
      stem: ``'imagenet'`` (7x7/2 conv + 3x3/2 max pool) or ``'cifar'`` (3x3/1 conv, no pool).
      shortcut: ``'B'`` projection or ``'A'`` parameter-free shortcut where the shape changes.
      zero_init_residual: start each block's last BN scale at 0 (optional; off in torchvision too).
      kernel_init: convolution initialiser (name or callable); ``fc`` uses LeCun normal.
      activation: every non-linearity (name or callable, see :mod:`cnn_jax.layers.activations`;
        ``'prelu'`` learns one slope per activation layer, He et al. 2015).
      replace_stride_with_dilation: one flag per stage after the first (torchvision's; empty: none):
        that stage keeps stride 1 and dilates its 3x3 convolutions by the stride it gave up.
      features_only: return the tuple of every stage's output (a segmentation backbone) instead
        of the logits; no ``fc``.
      conv_impl: how the convolutions run, ``'auto'`` | ``'xla'`` | ``'onednn'``
        (:mod:`cnn_jax.layers.conv`).
    """

    num_classes: int = 1000
    block: str = "basic"
    stage_sizes: Sequence[int] = (2, 2, 2, 2)
    stage_widths: Sequence[int] = (64, 128, 256, 512)
    stem: str = "imagenet"
    shortcut: str = "B"
    zero_init_residual: bool = False
    kernel_init: str | Callable = TORCHVISION_CONV_INIT
    activation: str | Callable = "relu"
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    replace_stride_with_dilation: Sequence[bool] = ()
    features_only: bool = False
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array | tuple[jax.Array, ...]:
        if self.block not in BLOCKS:
            raise ValueError(f"block must be one of {sorted(BLOCKS)}, got {self.block!r}")
        if self.stem not in ("imagenet", "cifar"):
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {self.stem!r}")
        if self.shortcut not in ("A", "B"):
            raise ValueError(
                f"shortcut must be 'A' (zero-padded identity) or 'B' (projection), got {self.shortcut!r}"
            )
        if len(self.stage_widths) != len(self.stage_sizes):
            raise ValueError(
                f"stage_widths {tuple(self.stage_widths)} and stage_sizes {tuple(self.stage_sizes)} "
                "must have one entry per stage"
            )
        dilate = tuple(self.replace_stride_with_dilation) or (False,) * (len(self.stage_sizes) - 1)
        if len(dilate) != len(self.stage_sizes) - 1:
            raise ValueError(
                f"replace_stride_with_dilation {tuple(self.replace_stride_with_dilation)} needs "
                f"one flag per stage after the first ({len(self.stage_sizes) - 1})"
            )
        block_cls = BLOCKS[self.block]
        x = jnp.asarray(x, self.dtype)

        # ImageNet: 7x7/2 conv (Table 1 "conv1"); CIFAR: 3x3/1 conv with 16 filters (§4.2).
        kernel, stride = (7, 2) if self.stem == "imagenet" else (3, 1)
        x = layers.Conv(
            self.stage_widths[0],
            kernel_size=kernel,
            strides=stride,
            padding=kernel // 2,
            use_bias=False,
            kernel_init=self.kernel_init,
            dtype=self.dtype,
            conv_impl=self.conv_impl,
            name="conv1",
        )(x)
        x = layers.BatchNorm(
            momentum=self.bn_momentum, epsilon=self.bn_epsilon, dtype=self.dtype, name="bn1"
        )(x, train=train)
        x = layers.activate(x, self.activation, name="act1")
        if self.stem == "imagenet":
            x = layers.max_pool(x, 3, 2, padding=1)

        stages, dilation = [], 1
        for stage, (num_blocks, width) in enumerate(
            zip(self.stage_sizes, self.stage_widths, strict=True)
        ):
            stride, previous = (2 if stage > 0 else 1), dilation
            if stage > 0 and dilate[stage - 1]:
                stride, dilation = 1, dilation * stride
            for b in range(num_blocks):
                x = block_cls(
                    features=width,
                    strides=stride if b == 0 else 1,
                    dilation=previous if b == 0 else dilation,
                    shortcut=self.shortcut,
                    zero_init_residual=self.zero_init_residual,
                    kernel_init=self.kernel_init,
                    activation=self.activation,
                    bn_momentum=self.bn_momentum,
                    bn_epsilon=self.bn_epsilon,
                    dtype=self.dtype,
                    conv_impl=self.conv_impl,
                    name=f"layer{stage + 1}_{b}",
                )(x, train=train)
            stages.append(x)
        if self.features_only:
            return tuple(stages)

        x = layers.global_avg_pool(x)
        return nn.Dense(
            self.num_classes,
            kernel_init=layers.get_initializer("lecun_normal"),
            dtype=self.dtype,
            name="fc",
        )(x)


# ImageNet ResNets (He et al. 2016 Table 1) and CIFAR ResNets (§4.2, Table 6, depth 6n + 2). Keyword
# arguments override any field, the block layout included.
_IMAGENET = dict(family="resnet", input_shape=(224, 224, 3), test_input_shape=(32, 32, 3))
_CIFAR = dict(family="resnet_cifar", input_shape=(32, 32, 3), num_classes=10)


def _imagenet_resnet(block: str, stage_sizes: tuple[int, ...], num_classes: int, kwargs) -> ResNet:
    return ResNet(num_classes=num_classes, **{"block": block, "stage_sizes": stage_sizes, **kwargs})


def _cifar_resnet(n: int, num_classes: int, kwargs) -> ResNet:
    defaults = dict(
        block="basic", stage_sizes=(n, n, n), stage_widths=(16, 32, 64), stem="cifar", shortcut="A"
    )
    return ResNet(num_classes=num_classes, **{**defaults, **kwargs})


@register_model(
    "resnet18",
    **_IMAGENET,
    description="ResNet-18 (He et al. 2016 Table 1, torchvision v1.5); 11,689,512 parameters",
)
def resnet18(num_classes: int = 1000, **kwargs: Any) -> ResNet:
    """ResNet-18: basic blocks (2, 2, 2, 2) per stage; 11,689,512 parameters at 1000 classes."""
    return _imagenet_resnet("basic", (2, 2, 2, 2), num_classes, kwargs)


@register_model(
    "resnet34",
    **_IMAGENET,
    description="ResNet-34 (He et al. 2016 Table 1, torchvision v1.5); 21,797,672 parameters",
)
def resnet34(num_classes: int = 1000, **kwargs: Any) -> ResNet:
    """ResNet-34: basic blocks (3, 4, 6, 3) per stage; 21,797,672 parameters at 1000 classes."""
    return _imagenet_resnet("basic", (3, 4, 6, 3), num_classes, kwargs)


@register_model(
    "resnet50",
    **_IMAGENET,
    description="ResNet-50 (He et al. 2016 Table 1, torchvision v1.5); 25,557,032 parameters",
)
def resnet50(num_classes: int = 1000, **kwargs: Any) -> ResNet:
    """ResNet-50: bottleneck blocks (3, 4, 6, 3) per stage;
    25,557,032 parameters at 1000 classes."""
    return _imagenet_resnet("bottleneck", (3, 4, 6, 3), num_classes, kwargs)


@register_model(
    "resnet101",
    **_IMAGENET,
    description="ResNet-101 (He et al. 2016 Table 1, torchvision v1.5); 44,549,160 parameters",
)
def resnet101(num_classes: int = 1000, **kwargs: Any) -> ResNet:
    """ResNet-101: bottleneck blocks (3, 4, 23, 3) per stage;
    44,549,160 parameters at 1000 classes."""
    return _imagenet_resnet("bottleneck", (3, 4, 23, 3), num_classes, kwargs)


@register_model(
    "resnet152",
    **_IMAGENET,
    description="ResNet-152 (He et al. 2016 Table 1, torchvision v1.5); 60,192,808 parameters",
)
def resnet152(num_classes: int = 1000, **kwargs: Any) -> ResNet:
    """ResNet-152: bottleneck blocks (3, 8, 36, 3) per stage;
    60,192,808 parameters at 1000 classes."""
    return _imagenet_resnet("bottleneck", (3, 8, 36, 3), num_classes, kwargs)


@register_model(
    "resnet20",
    **_CIFAR,
    description="CIFAR ResNet-20 (He et al. 2016 §4.2, option A); 269,722 parameters",
)
def resnet20(num_classes: int = 10, **kwargs: Any) -> ResNet:
    """CIFAR ResNet-20: n = 3 basic blocks per stage; 269,722 parameters at 10 classes."""
    return _cifar_resnet(3, num_classes, kwargs)


@register_model(
    "resnet32",
    **_CIFAR,
    description="CIFAR ResNet-32 (He et al. 2016 §4.2, option A); 464,154 parameters",
)
def resnet32(num_classes: int = 10, **kwargs: Any) -> ResNet:
    """CIFAR ResNet-32: n = 5 basic blocks per stage; 464,154 parameters at 10 classes."""
    return _cifar_resnet(5, num_classes, kwargs)


@register_model(
    "resnet44",
    **_CIFAR,
    description="CIFAR ResNet-44 (He et al. 2016 §4.2, option A); 658,586 parameters",
)
def resnet44(num_classes: int = 10, **kwargs: Any) -> ResNet:
    """CIFAR ResNet-44: n = 7 basic blocks per stage; 658,586 parameters at 10 classes."""
    return _cifar_resnet(7, num_classes, kwargs)


@register_model(
    "resnet56",
    **_CIFAR,
    description="CIFAR ResNet-56 (He et al. 2016 §4.2, option A); 853,018 parameters",
)
def resnet56(num_classes: int = 10, **kwargs: Any) -> ResNet:
    """CIFAR ResNet-56: n = 9 basic blocks per stage; 853,018 parameters at 10 classes."""
    return _cifar_resnet(9, num_classes, kwargs)


@register_model(
    "resnet110",
    **_CIFAR,
    description="CIFAR ResNet-110 (He et al. 2016 §4.2, option A); 1,727,962 parameters",
)
def resnet110(num_classes: int = 10, **kwargs: Any) -> ResNet:
    """CIFAR ResNet-110: n = 18 basic blocks per stage; 1,727,962 parameters at 10 classes."""
    return _cifar_resnet(18, num_classes, kwargs)
