"""ResNet + feature pyramid backbones (Lin, Dollár, Girshick, He, Hariharan & Belongie 2017,
"Feature Pyramid Networks for Object Detection"), as torchvision's ``resnet_fpn_backbone``, and
the fixed-shape pieces the pyramid detectors (:mod:`~cnn_jax.models.retinanet`,
:mod:`~cnn_jax.models.rcnn`) share.

:class:`ResNetFPN` is torchvision's ``BackboneWithFPN``: ``body``, a :class:`ResNet` returning its
stage outputs C2-C5 (strides 4-32), and ``fpn``, a :class:`FeaturePyramidNetwork` over the stages
in ``returned_layers`` (1-based, as torchvision's). FPN §3: a 1x1 lateral convolution per stage
(``inner_blocks_<i>_0``), a top-down pathway that upsamples the coarser merged map by nearest
neighbour and adds it, and a 3x3 convolution on each merged map (``layer_blocks_<i>_0``), all with
bias and ``out_channels`` outputs. Extra levels:

* ``'maxpool'`` (torchvision's ``LastLevelMaxPool``, FPN §4.1's P6 for the RPN): P6 is P5
  subsampled by 2 (a 1x1 max pool of stride 2);
* ``'p6p7'`` (``LastLevelP6P7``, RetinaNet, Lin et al. 2017b §4): P6 = 3x3/2 convolution, P7 =
  3x3/2 convolution of ReLU(P6); P6 reads P5 (``p6p7_from='p5'``: torchvision's
  ``retinanet_resnet50_fpn`` builds ``LastLevelP6P7(256, 256)``, which reads P5) or C5
  (``'c5'``, the paper's choice);
* ``'none'``.

Names mirror torchvision's state dict (``backbone.body.layer1.0.conv1``,
``backbone.fpn.inner_blocks.0.0``, ``backbone.fpn.extra_blocks.p6``), so
:func:`cnn_jax.convert.from_torch` maps it by name. FPN convolutions start from torchvision's
``kaiming_uniform_(a=1)``, which is LeCun uniform. Parameters of torchvision's FPN on ResNet-50
C2-C5 (256 channels): 3,344,384.

Shared detector pieces: padding the batch to a multiple of the coarsest stride (torchvision's
``GeneralizedRCNNTransform`` pads to 32), flattening per-level head outputs in torchvision's
anchor order, per-level top-k candidates and the fixed-size detection set after NMS.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cnn_jax import layers, ops
from cnn_jax.models.resnet import TORCHVISION_CONV_INIT, ResNet

EXTRA_BLOCKS = ("maxpool", "p6p7", "none")
FPN_CONV_INIT = "lecun_uniform"  # torch's kaiming_uniform_(a=1): Var = 1 / fan_in, uniform


def nearest_resize(x: jax.Array, size: Sequence[int]) -> jax.Array:
    """Nearest-neighbour resize of NHWC ``x`` to ``size = (h, w)``, torch's
    ``F.interpolate(mode='nearest')``: output ``o`` reads input ``min(floor(o n / m), n - 1)``."""
    for axis, out in zip((1, 2), size, strict=True):
        n = x.shape[axis]
        if n != out:
            scale = np.float32(n) / np.float32(out)
            index = np.minimum(np.floor(np.arange(out, dtype=np.float32) * scale), n - 1)
            x = jnp.take(x, index.astype(np.int32), axis=axis)
    return x


class FeaturePyramidNetwork(nn.Module):
    """FPN over backbone maps ``[C_i, ...]`` (finest first): returns ``[P_i, ...]`` plus the extra
    levels, each with ``out_channels`` channels (module docstring)."""

    out_channels: int = 256
    extra_blocks: str = "maxpool"
    p6p7_from: str = "p5"  # or 'c5'
    kernel_init: str | Callable = FPN_CONV_INIT
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    def _conv(self, kernel: int, strides: int, name: str) -> layers.Conv:
        return layers.Conv(self.out_channels, kernel, strides=strides, padding=kernel // 2,
                           kernel_init=self.kernel_init, dtype=self.dtype,
                           conv_impl=self.conv_impl, name=name)

    @nn.compact
    def __call__(self, features: Sequence[jax.Array]) -> list[jax.Array]:
        if self.extra_blocks not in EXTRA_BLOCKS:
            raise ValueError(f"extra_blocks={self.extra_blocks!r} is not one of "
                             f"{', '.join(EXTRA_BLOCKS)}")
        inner = [self._conv(1, 1, f"inner_blocks_{i}_0") for i in range(len(features))]
        outer = [self._conv(3, 1, f"layer_blocks_{i}_0") for i in range(len(features))]
        last_inner = inner[-1](features[-1])
        results = [outer[-1](last_inner)]
        for i in range(len(features) - 2, -1, -1):
            lateral = inner[i](features[i])
            last_inner = lateral + nearest_resize(last_inner, lateral.shape[1:3])
            results.insert(0, outer[i](last_inner))

        if self.extra_blocks == "maxpool":
            results.append(results[-1][:, ::2, ::2])  # max_pool2d(kernel 1, stride 2)
        elif self.extra_blocks == "p6p7":
            if self.p6p7_from not in ("p5", "c5"):
                raise ValueError(f"p6p7_from={self.p6p7_from!r} is not one of p5, c5")
            source = results[-1] if self.p6p7_from == "p5" else features[-1]
            p6 = self._conv(3, 2, "extra_blocks_p6")(source)
            p7 = self._conv(3, 2, "extra_blocks_p7")(nn.relu(p6))
            results += [p6, p7]
        return results


class ResNetFPN(nn.Module):
    """A ResNet body and an FPN over its stages ``returned_layers`` (torchvision's
    ``BackboneWithFPN``): ``__call__(images, train) -> [P_l, ...]`` finest first, NHWC."""

    block: str = "bottleneck"
    stage_sizes: Sequence[int] = (3, 4, 6, 3)
    stage_widths: Sequence[int] = (64, 128, 256, 512)
    returned_layers: Sequence[int] = (1, 2, 3, 4)
    out_channels: int = 256
    extra_blocks: str = "maxpool"
    p6p7_from: str = "p5"
    kernel_init: str | Callable = TORCHVISION_CONV_INIT
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    def setup(self):
        if not self.returned_layers or not all(
                1 <= s <= len(self.stage_sizes) for s in self.returned_layers):
            raise ValueError(f"returned_layers {tuple(self.returned_layers)} must name stages "
                             f"1..{len(self.stage_sizes)} (torchvision's numbering)")
        # The body ends at the last returned stage, as torchvision's IntermediateLayerGetter does.
        depth = max(self.returned_layers)
        self.body = ResNet(block=self.block, stage_sizes=tuple(self.stage_sizes)[:depth],
                           stage_widths=tuple(self.stage_widths)[:depth],
                           kernel_init=self.kernel_init,
                           bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon,
                           features_only=True, dtype=self.dtype, conv_impl=self.conv_impl)
        self.fpn = FeaturePyramidNetwork(out_channels=self.out_channels,
                                         extra_blocks=self.extra_blocks,
                                         p6p7_from=self.p6p7_from, dtype=self.dtype,
                                         conv_impl=self.conv_impl)

    def __call__(self, images: jax.Array, train: bool = False) -> list[jax.Array]:
        stages = self.body(images, train=train)
        return self.fpn([stages[s - 1] for s in self.returned_layers])


# --- What the pyramid detectors share ----------------------------------------------------------


class PyramidDetector(nn.Module):
    """The fields of a detector on a :class:`ResNetFPN` (RetinaNet, Faster and Mask R-CNN), and
    :meth:`resnet_fpn`, which builds that backbone from them. Subclasses set their own defaults.

    Fields:
      block, stage_sizes, stage_widths: the ResNet (bottleneck (3, 4, 6, 3) is ResNet-50).
      returned_layers: ResNet stages (1-based) feeding the FPN.
      fpn_channels: FPN and head width.
      extra_blocks: the FPN's extra levels (:data:`EXTRA_BLOCKS`).
      size_divisible: the input is padded to a multiple of it (:func:`pad_to_multiple`).
      kernel_init: the ResNet's convolutions' initialiser.
      conv_impl: how every convolution runs, ``'auto'`` | ``'xla'`` | ``'onednn'``.
    """

    block: str = "bottleneck"
    stage_sizes: Sequence[int] = (3, 4, 6, 3)
    stage_widths: Sequence[int] = (64, 128, 256, 512)
    returned_layers: Sequence[int] = (1, 2, 3, 4)
    fpn_channels: int = 256
    extra_blocks: str = "maxpool"
    size_divisible: int = 32
    kernel_init: str | Callable = TORCHVISION_CONV_INIT
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    def resnet_fpn(self, **fields: Any) -> ResNetFPN:
        """The backbone of these fields (call in ``setup``); ``fields`` adds others of
        :class:`ResNetFPN`'s."""
        return ResNetFPN(block=self.block, stage_sizes=self.stage_sizes,
                         stage_widths=self.stage_widths, returned_layers=self.returned_layers,
                         out_channels=self.fpn_channels, extra_blocks=self.extra_blocks,
                         kernel_init=self.kernel_init, dtype=self.dtype, conv_impl=self.conv_impl,
                         **fields)


# ResNet-18 C2-C4 under a 64-channel FPN: the backbone of the detectors for 64 x 64 digit scenes.
SMALL_RESNET_FPN = dict(block="basic", stage_sizes=(2, 2, 2, 2), returned_layers=(1, 2, 3),
                        fpn_channels=64)


def shared_head_anchors(sizes: Sequence[Sequence[int]], aspect_ratios: Sequence[float],
                        head: str) -> ops.AnchorGenerator:
    """The anchor generator of a head shared by the pyramid's levels (RetinaNet's, the RPN's),
    which needs as many anchors at every location of every level; `head` names it in the error."""
    generator = ops.AnchorGenerator(tuple(map(tuple, sizes)), tuple(aspect_ratios))
    if len(set(generator.num_anchors_per_location())) != 1:
        raise ValueError(f"{head} is shared by the levels: give every level the same number of "
                         f"anchor sizes, got {sizes}")
    return generator


def pad_to_multiple(images: jax.Array, divisor: int) -> jax.Array:
    """NHWC ``images`` zero-padded at the bottom and right to a multiple of ``divisor`` (the
    batching of torchvision's ``GeneralizedRCNNTransform``, ``size_divisible=32``: every stride-2
    layer then halves exactly). Boxes stay where they are."""
    pad = [(-size) % divisor for size in images.shape[1:3]]
    if not any(pad):
        return images
    return jnp.pad(images, ((0, 0), (0, pad[0]), (0, pad[1]), (0, 0)))


def flatten_levels(per_level: Sequence[jax.Array], channels: int) -> jax.Array:
    """Per-level head outputs ``(N, h, w, A * channels)`` as ``(N, sum h w A, channels)`` in
    torchvision's anchor order: level by level, row-major over positions, anchors innermost (a
    torch head's ``view(N, A, C, H, W).permute(0, 3, 4, 1, 2)``; a conv's output channel
    ``a * channels + c`` is value ``c`` of anchor ``a`` on both sides)."""
    return jnp.concatenate([x.reshape(x.shape[0], -1, channels) for x in per_level], axis=1)


def level_slices(sizes: Sequence[int]) -> list[slice]:
    """Consecutive slices of lengths ``sizes``."""
    ends = np.cumsum([0, *sizes])
    return [slice(int(a), int(b)) for a, b in zip(ends[:-1], ends[1:], strict=True)]


def top_k_per_level(
    scores: jax.Array, sizes: Sequence[int], k: int
) -> tuple[jax.Array, jax.Array]:
    """The ``min(k, size_l)`` highest of each level's consecutive slice of ``(..., sum sizes)``
    ``scores``, in decreasing order per level: ``(values, indices into scores)`` concatenated over
    the levels (torchvision's per-level ``topk`` of the RPN and of RetinaNet's post-processing)."""
    values, indices = [], []
    for part in level_slices(sizes):
        top, index = jax.lax.top_k(scores[..., part], min(k, part.stop - part.start))
        values.append(top)
        indices.append(index + part.start)
    return jnp.concatenate(values, axis=-1), jnp.concatenate(indices, axis=-1)


def take_rows(x: jax.Array, index: jax.Array) -> jax.Array:
    """Rows ``x[index]`` along the first axis, zeros where ``index`` is -1 (padding)."""
    rows = jnp.take(x, jnp.maximum(index, 0), axis=0)
    return jnp.where((index >= 0).reshape(index.shape + (1,) * (x.ndim - 1)), rows, 0)


def select_detections(
    boxes: jax.Array,
    scores: jax.Array,
    classes: jax.Array,
    valid: jax.Array,
    iou_threshold: float,
    max_detections: int,
) -> dict[str, jax.Array]:
    """One image's candidates ``(M, 4)``, ``(M,)``, ``(M,)``, ``(M,)`` after per-class NMS, as
    the fixed-size detection set: ``boxes (D, 4)``, ``scores (D,)``, ``classes (D,)`` int32 in
    decreasing score order, zeros past ``count``, with ``D = max_detections`` (torchvision keeps
    ``batched_nms(...)[:detections_per_img]``, which these equal)."""
    keep, count = ops.batched_nms(boxes, scores, classes, iou_threshold, max_detections, valid)
    return {"boxes": take_rows(boxes, keep), "scores": take_rows(scores, keep),
            "classes": take_rows(classes, keep).astype(jnp.int32), "count": count}


DETECTION_KEYS = ("boxes", "scores", "classes", "count")


def detections_of(outputs: dict[str, jax.Array], keys: Sequence[str] = DETECTION_KEYS) -> dict:
    """The detection entries of a detector's eval-mode outputs (its ``detect``)."""
    missing = [k for k in keys if k not in outputs]
    if missing:
        raise ValueError(f"outputs hold no {', '.join(missing)}: detections are computed by the "
                         "eval-mode forward pass (apply with train=False)")
    return {k: outputs[k] for k in keys}
