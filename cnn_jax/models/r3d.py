"""R3D-18 (Tran, Wang, Torresani, Ray, LeCun & Paluri 2018, "A closer look at spatiotemporal
convolutions for action recognition", §3.3 and Table 1) as torchvision builds it
(``torchvision.models.video.r3d_18``).

A ResNet-18 with every convolution 3-D: the stem is a 3x7x7 convolution of stride (1, 2, 2) with 64
filters (no max pool); four stages of two basic blocks (two 3x3x3 convolutions with BatchNorm, ReLU
after the first and after the sum) of 64, 128, 256 and 512 filters; stages 2-4 halve time, height
and width in their first convolution, and their first block's shortcut is a 1x1x1 convolution of the
same stride with BatchNorm; then global average pooling over (T, H, W) and ``fc``. 33,371,472
parameters for Kinetics-400 (torchvision's count). Input clips ``(N, T, H, W, C)``; any clip of at
least 1 x 32 x 32 works. Every convolution has no bias and torchvision's initialisation (He normal,
fan out); ``fc`` is N(0, 0.01) with zero bias.

Convolution + BatchNorm pairs are :class:`cnn_jax.layers.ConvBNAct` blocks named after torchvision's
``Sequential`` s: ``stem`` (torchvision ``stem.0``, ``stem.1``), ``layer<s>_<b>/conv1`` and
``conv2`` (``layer<s>.<b>.conv1.0`` and ``.1``) and ``downsample``; each holds ``conv`` and ``bn``.
:func:`cnn_jax.convert.from_torch` renames torchvision's ``.0``/``.1`` children to these
(``TORCH_KEY_RENAMES['r3d']``), so torchvision's state dicts convert as they are.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax import layers
from cnn_jax.models.c3d import clip_batch
from cnn_jax.models.registry import register_model
from cnn_jax.models.resnet import TORCHVISION_CONV_INIT


class VideoBasicBlock(nn.Module):
    """Two 3x3x3 convolutions with BatchNorm and the shortcut (torchvision's video ``BasicBlock``
    with ``Conv3DSimple``): the first carries the stride in time and space, the shortcut is a
    strided 1x1x1 projection where the shape changes."""

    features: int
    strides: int = 1
    kernel_init: str | Callable = TORCHVISION_CONV_INIT
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        block = functools.partial(layers.ConvBNAct, self.features, kernel_init=self.kernel_init,
                                  dtype=self.dtype, conv_impl=self.conv_impl)
        y = block((3, 3, 3), strides=self.strides, name="conv1")(x, train)
        y = block((3, 3, 3), act=None, name="conv2")(y, train)
        if self.strides != 1 or x.shape[-1] != self.features:
            x = block((1, 1, 1), strides=self.strides, act=None, name="downsample")(x, train)
        return nn.relu(y + x)


class VideoResNet(nn.Module):
    """torchvision's ``VideoResNet`` with basic blocks and 3-D convolutions throughout (R3D).

    Fields:
      num_classes: outputs of ``fc`` (400 for Kinetics-400).
      stage_sizes: blocks per stage ((2, 2, 2, 2): R3D-18).
      stage_widths: filters of each stage.
      conv_impl: how the convolutions run, ``'auto'`` | ``'xla'`` | ``'onednn'``
        (:mod:`cnn_jax.layers.conv`).
    """

    num_classes: int = 400
    stage_sizes: Sequence[int] = (2, 2, 2, 2)
    stage_widths: Sequence[int] = (64, 128, 256, 512)
    kernel_init: str | Callable = TORCHVISION_CONV_INIT
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = clip_batch(x, self.dtype, "VideoResNet")
        x = layers.ConvBNAct(self.stage_widths[0], (3, 7, 7), strides=(1, 2, 2),
                             kernel_init=self.kernel_init, dtype=self.dtype,
                             conv_impl=self.conv_impl, name="stem")(x, train)
        for stage, (num_blocks, width) in enumerate(
            zip(self.stage_sizes, self.stage_widths, strict=True)
        ):
            for b in range(num_blocks):
                x = VideoBasicBlock(
                    width, strides=2 if stage > 0 and b == 0 else 1, kernel_init=self.kernel_init,
                    dtype=self.dtype, conv_impl=self.conv_impl, name=f"layer{stage + 1}_{b}",
                )(x, train)
        x = layers.global_avg_pool(x)
        return nn.Dense(self.num_classes, kernel_init=layers.get_initializer("normal", stddev=0.01),
                        dtype=self.dtype, name="fc")(x)


@register_model("r3d_18", family="r3d", input_shape=(16, 112, 112, 3),
                test_input_shape=(4, 32, 32, 3), num_classes=400,
                description="R3D-18, a ResNet-18 of 3-D convolutions (Tran et al. 2018, "
                            "torchvision); 33,371,472 parameters")
def r3d_18(num_classes: int = 400, **kwargs: Any) -> VideoResNet:
    """torchvision's r3d_18; 33,371,472 parameters at 400 classes."""
    return VideoResNet(num_classes=num_classes, **kwargs)
