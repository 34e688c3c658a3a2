"""RetinaNet (Lin, Goyal, Girshick, He & Dollár 2017, "Focal Loss for Dense Object Detection"), as
torchvision's ``retinanet_resnet50_fpn`` (v1), with fixed shapes throughout.

* Backbone (§4, "Feature Pyramid Network Backbone"): ResNet + FPN over C3-C5 with P6 and P7
  (:class:`~cnn_jax.models.fpn.ResNetFPN`, ``extra_blocks='p6p7'``; P6 reads P5 as torchvision's
  v1 does). The input is zero-padded at the bottom and right to a multiple of ``size_divisible``
  (32), as torchvision batches it; boxes are clipped to the unpadded image.
* Anchors (§4, "Anchors"): per level three sizes ``s, int(s 2^(1/3)), int(s 2^(2/3))`` with
  ``s = 32 ... 512`` on P3-P7, and aspect ratios 1:2, 1:1, 2:1, A = 9 per position
  (:class:`cnn_jax.ops.AnchorGenerator`, torchvision's rounding).
* Heads (§4, "Classification Subnet", "Box Regression Subnet"): shared over the levels, each four
  3x3 convolutions of ``C`` channels with bias and ReLU (no normalisation: torchvision's v1; v2
  adds GroupNorm) and a 3x3 output convolution, ``A K`` logits or ``A 4`` box deltas. Weights
  start at N(0, 0.01^2), biases at zero except the classification output's, ``-log((1 - pi) /
  pi)`` with the prior ``pi = 0.01`` (§4.1, "Initialization").
* Loss (§3.2, §4.1): each anchor takes the ground truth it overlaps most; IoU >= 0.5 is
  foreground, < 0.4 background, in between ignored, and every ground-truth box keeps its best
  anchors (torchvision's ``allow_low_quality_matches=True``). The focal loss (eq. 5,
  ``focal_gamma = 2``, ``focal_alpha = 0.25``; :func:`cnn_jax.losses.sigmoid_focal_loss`) is
  summed over the non-ignored anchors and the K classes and divided by the image's number of
  foreground anchors (at least 1); the box loss is L1 (torchvision's v1; the paper's smooth L1
  with ``box_loss='smooth_l1'``) on the deltas of the foreground anchors (box coder weights
  1, 1, 1, 1), divided the same way; both are averaged over the images. ``focal_gamma = 0``
  is the alpha-balanced cross-entropy of Table 1a.
* Detection (§4, "Inference"): per level the ``topk_candidates`` (1000) highest class scores
  above ``score_thresh`` (0.05), decoded and clipped, then per-class NMS at 0.5 and the
  ``max_detections`` (300) best: torchvision's ``postprocess_detections``. It runs in the
  eval-mode forward pass with fixed shapes (padding + ``count``); ``detect`` returns it.

Outputs of ``__call__``: ``cls_logits`` ``(N, A_total, K)``, ``bbox_regression``
``(N, A_total, 4)`` (torchvision's head outputs, in its anchor order) and ``anchors``
``(N, A_total, 4)``; in eval mode also ``boxes (N, D, 4)``, ``scores (N, D)``, ``classes (N, D)``
(0..K-1) and ``count (N,)``. ``K`` is the number of classes, without a background class.

Names mirror torchvision's state dict (``head.classification_head.conv.0.0``,
``head.regression_head.bbox_reg``...): :func:`cnn_jax.convert.from_torch` converts its weights.
torchvision's COCO model has 91 outputs indexed by COCO category id (0 unused).
Parameters: ``retinanet_resnet50_fpn`` 34,068,119 at 91 classes (torchvision's count with
trainable BatchNorm; its COCO weights freeze the backbone's BatchNorm, 34,014,999 trainable);
``retinanet_resnet18_fpn`` 3,284,286 at 10 classes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax import layers, losses, ops
from cnn_jax.models import fpn
from cnn_jax.models.registry import register_model

HEAD_INIT = layers.get_initializer("normal", stddev=0.01)
BOX_LOSSES = ("l1", "smooth_l1")


def retinanet_anchor_sizes(base_sizes: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """Three anchor sizes per level, ``(s, int(s 2^(1/3)), int(s 2^(2/3)))`` for each base size
    ``s``, as torchvision computes them (Lin et al. 2017b §4: "three scales per level")."""
    return tuple((s, int(s * 2 ** (1.0 / 3)), int(s * 2 ** (2.0 / 3))) for s in base_sizes)


class _Subnet(nn.Module):
    """Four 3x3 conv + ReLU then a 3x3 output conv of ``outputs`` channels, shared by every level;
    returns the levels' outputs flattened to ``(N, sum h w A, outputs / A)``."""

    outputs: int
    per_anchor: int
    output_name: str
    output_bias: float = 0.0
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, features: Sequence[jax.Array]) -> jax.Array:
        def conv(features, name, bias_init="zeros"):
            return layers.Conv(features, 3, padding=1, kernel_init=HEAD_INIT, bias_init=bias_init,
                               dtype=self.dtype, conv_impl=self.conv_impl, name=name)

        channels = features[0].shape[-1]
        tower = [conv(channels, f"conv_{i}_0") for i in range(4)]
        last = conv(self.outputs, self.output_name,
                    layers.get_initializer("constant", value=self.output_bias))
        per_level = []
        for x in features:
            for layer in tower:
                x = nn.relu(layer(x))
            per_level.append(last(x))
        return fpn.flatten_levels(per_level, self.per_anchor)


class RetinaNetHead(nn.Module):
    """``classification_head`` and ``regression_head`` of Lin et al. 2017b Fig. 3 (c), (d)."""

    num_anchors: int
    num_classes: int
    prior_probability: float = 0.01
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, features: Sequence[jax.Array]) -> tuple[jax.Array, jax.Array]:
        common = dict(dtype=self.dtype, conv_impl=self.conv_impl)
        prior = -math.log((1 - self.prior_probability) / self.prior_probability)
        cls_logits = _Subnet(self.num_anchors * self.num_classes, self.num_classes, "cls_logits",
                             prior, name="classification_head", **common)(features)
        bbox_regression = _Subnet(self.num_anchors * 4, 4, "bbox_reg", name="regression_head",
                                  **common)(features)
        return cls_logits, bbox_regression


class RetinaNet(fpn.PyramidDetector):
    """RetinaNet (module docstring): ``__call__(images, train, targets=None) -> dict``, ``loss``,
    ``detect``.

    Fields:
      the backbone's (:class:`~cnn_jax.models.fpn.PyramidDetector`): ResNet-50, C3-C5
        (``returned_layers`` (2, 3, 4)), 256 channels, ``extra_blocks`` ``'p6p7'``, input padded
        to a multiple of 32.
      num_classes: K, one sigmoid output per class (no background).
      p6p7_from: what P6 reads (``'p5'``, torchvision's).
      anchor_sizes: per level, the anchor sizes in pixels; aspect_ratios: height / width.
      prior_probability: pi of the classification bias (0.01).
      focal_gamma, focal_alpha: the focal loss (2, 0.25); gamma 0 is alpha-balanced CE.
      fg_iou_thresh, bg_iou_thresh: matching (0.5, 0.4).
      box_loss: ``'l1'`` (torchvision) or ``'smooth_l1'`` with ``smooth_l1_beta`` (the paper's
        0.11, Detectron's 1/9).
      score_thresh, nms_thresh, topk_candidates, max_detections: detection (0.05, 0.5, 1000, 300).
    """

    returned_layers: Sequence[int] = (2, 3, 4)
    extra_blocks: str = "p6p7"
    num_classes: int = 91
    p6p7_from: str = "p5"
    anchor_sizes: Sequence[Sequence[int]] = retinanet_anchor_sizes((32, 64, 128, 256, 512))
    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0)
    prior_probability: float = 0.01
    focal_gamma: float = 2.0
    focal_alpha: float = 0.25
    fg_iou_thresh: float = 0.5
    bg_iou_thresh: float = 0.4
    box_loss: str = "l1"
    smooth_l1_beta: float = 1.0 / 9
    score_thresh: float = 0.05
    nms_thresh: float = 0.5
    topk_candidates: int = 1000
    max_detections: int = 300

    def setup(self):
        self.backbone = self.resnet_fpn(p6p7_from=self.p6p7_from)
        self.head = RetinaNetHead(self.anchor_generator.num_anchors_per_location()[0],
                                  self.num_classes, self.prior_probability, dtype=self.dtype,
                                  conv_impl=self.conv_impl)

    @property
    def anchor_generator(self) -> ops.AnchorGenerator:
        return fpn.shared_head_anchors(self.anchor_sizes, self.aspect_ratios, "RetinaNet's head")

    def __call__(self, images: jax.Array, train: bool = False,
                 targets: dict[str, jax.Array] | None = None) -> dict[str, jax.Array]:
        del targets  # anchors are matched to the ground truth in `loss`
        height, width = images.shape[1:3]
        x = fpn.pad_to_multiple(jnp.asarray(images, self.dtype), self.size_divisible)
        features = self.backbone(x, train=train)
        if len(features) != len(self.anchor_sizes):
            raise ValueError(f"{len(features)} pyramid levels but anchor sizes for "
                             f"{len(self.anchor_sizes)}: give one tuple of sizes per level")
        cls_logits, bbox_regression = self.head(features)
        grids = [f.shape[1:3] for f in features]
        anchors = jnp.asarray(self.anchor_generator.anchors(x.shape[1:3], grids), jnp.float32)
        n = images.shape[0]
        outputs = {"cls_logits": cls_logits.astype(jnp.float32),
                   "bbox_regression": bbox_regression.astype(jnp.float32),
                   "anchors": jnp.broadcast_to(anchors, (n, *anchors.shape))}
        if not train:
            per_level = [h * w * self.head.num_anchors for h, w in grids]
            outputs.update(jax.vmap(lambda c, b: self.postprocess_detections(
                c, b, anchors, per_level, (height, width)))(outputs["cls_logits"],
                                                             outputs["bbox_regression"]))
        return outputs

    def postprocess_detections(self, cls_logits: jax.Array, bbox_regression: jax.Array,
                               anchors: jax.Array, per_level: Sequence[int],
                               image_size: tuple[int, int]) -> dict[str, jax.Array]:
        """One image's detections from its head outputs ``(A, K)``, ``(A, 4)`` on ``anchors``
        (``per_level`` anchors per level): torchvision's ``postprocess_detections``."""
        k = self.num_classes
        scores = jax.nn.sigmoid(cls_logits).reshape(-1)
        above = jnp.where(scores > self.score_thresh, scores, -jnp.inf)
        top, index = fpn.top_k_per_level(above, [a * k for a in per_level], self.topk_candidates)
        anchor, label = index // k, index % k
        boxes = ops.decode(bbox_regression[anchor], anchors[anchor])
        boxes = ops.clip_boxes_to_image(boxes, image_size)
        valid = top > self.score_thresh
        return fpn.select_detections(boxes, jnp.where(valid, top, 0.0), label, valid,
                                     self.nms_thresh, self.max_detections)

    def detect(self, outputs: dict[str, jax.Array]) -> dict[str, jax.Array]:
        """``boxes (N, D, 4)``, ``scores (N, D)``, ``classes (N, D)``, ``count (N,)`` of the
        eval-mode outputs (D = ``max_detections``; rows past ``count`` are zeros)."""
        return fpn.detections_of(outputs)

    def loss(self, outputs: dict[str, jax.Array],
             batch: dict[str, jax.Array]) -> tuple[jax.Array, dict[str, jax.Array]]:
        """``(classification + bbox_regression, parts)`` (module docstring), torchvision's
        ``RetinaNet.compute_loss``; examples whose ``batch['mask']`` is False do not count."""
        if self.box_loss not in BOX_LOSSES:
            raise ValueError(f"box_loss={self.box_loss!r} is not one of {', '.join(BOX_LOSSES)}")
        parts = jax.vmap(self._image_loss)(outputs["cls_logits"], outputs["bbox_regression"],
                                           outputs["anchors"], batch["boxes"], batch["classes"],
                                           batch["box_mask"])
        weight = jnp.asarray(batch.get("mask", jnp.ones(batch["boxes"].shape[0])), jnp.float32)
        parts = {name: jnp.sum(v * weight) / jnp.maximum(weight.sum(), 1.0)
                 for name, v in parts.items()}
        return parts["classification"] + parts["bbox_regression"], parts

    def _image_loss(self, cls_logits, bbox_regression, anchors, boxes, classes, box_mask):
        matched = ops.match(ops.box_iou(boxes, anchors), self.fg_iou_thresh, self.bg_iou_thresh,
                            allow_low_quality_matches=True, gt_mask=box_mask)
        foreground = matched >= 0
        normaliser = jnp.maximum(foreground.sum(), 1).astype(jnp.float32)
        gt = jnp.maximum(matched, 0)
        target = jax.nn.one_hot(classes[gt], self.num_classes) * foreground[:, None]
        counted = (matched != ops.BETWEEN_THRESHOLDS)[:, None]
        focal = losses.sigmoid_focal_loss(cls_logits, target, self.focal_alpha, self.focal_gamma)
        classification = jnp.sum(jnp.where(counted, focal, 0.0)) / normaliser
        # Background anchors get finite stand-in targets: a NaN there would poison the gradient.
        deltas = jnp.where(foreground[:, None], ops.encode(boxes[gt], anchors), 0.0)
        if self.box_loss == "l1":
            box = ops.l1_loss(bbox_regression, deltas, reduction="none")
        else:
            box = ops.smooth_l1_loss(bbox_regression, deltas, self.smooth_l1_beta, "none")
        regression = jnp.sum(jnp.where(foreground[:, None], box, 0.0)) / normaliser
        return {"classification": classification, "bbox_regression": regression}


_REGISTER = dict(family="retinanet", task="detection")


@register_model(
    "retinanet_resnet50_fpn", **_REGISTER, input_shape=(800, 800, 3),
    test_input_shape=(64, 64, 3), num_classes=91,
    description="RetinaNet, ResNet-50-FPN P3-P7 (Lin et al. 2017b, torchvision v1); "
                "34,068,119 parameters")
def retinanet_resnet50_fpn(num_classes: int = 91, **kwargs: Any) -> RetinaNet:
    """RetinaNet on ResNet-50-FPN, torchvision's ``retinanet_resnet50_fpn``; 34,068,119 parameters
    at 91 classes."""
    return RetinaNet(num_classes=num_classes, **kwargs)


# For 64 x 64 digit scenes (digits 16-40 px tall, boxes about 4-32 px wide): ResNet-18 C2-C4 to a
# 64-channel FPN P2-P4 (strides 4, 8, 16; no P5-P7, whose maps would be 2 x 2 and smaller), three
# anchor sizes per level from 12, 24 and 48 px (12-76 px), the detection counts of a scene of at
# most a few objects.
SMALL_RETINANET = dict(
    **fpn.SMALL_RESNET_FPN, extra_blocks="none", anchor_sizes=retinanet_anchor_sizes((12, 24, 48)),
    topk_candidates=300, max_detections=100,
)


@register_model(
    "retinanet_resnet18_fpn", **_REGISTER, input_shape=(64, 64, 1), num_classes=10,
    description="RetinaNet, ResNet-18-FPN P2-P4, 64 channels, anchors for 64x64 digit scenes; "
                "3,284,286 parameters")
def retinanet_resnet18_fpn(num_classes: int = 10, **kwargs: Any) -> RetinaNet:
    """RetinaNet on ResNet-18 C2-C4 with a 64-channel FPN P2-P4 and anchors of 12-76 px (fields
    override any of it); 3,284,286 parameters at 10 classes on one-channel input."""
    return RetinaNet(num_classes=num_classes, **{**SMALL_RETINANET, **kwargs})
