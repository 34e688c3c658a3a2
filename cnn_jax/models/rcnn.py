"""Faster R-CNN (Ren, He, Girshick & Sun 2015) and Mask R-CNN (He, Gkioxari, Dollár & Girshick
2017) on ResNet-FPN (Lin et al. 2017, §4.1-4.2), as torchvision's ``fasterrcnn_resnet50_fpn`` and
``maskrcnn_resnet50_fpn``, with fixed shapes throughout (padding + masks + counts).

* Backbone: :class:`~cnn_jax.models.fpn.ResNetFPN` over C2-C5 with P6 by subsampling (FPN §4.1);
  the input is zero-padded at the bottom and right to a multiple of ``size_divisible`` (32), as
  torchvision batches it; boxes are clipped to the unpadded image.
* RPN (Ren et al. §3.1; FPN §4.1): one anchor size per level (32 ... 512 on P2-P6) and three
  aspect ratios; a shared 3x3 convolution with ReLU, then 1x1 objectness (A) and box deltas (4A).
  Proposals: per level the ``rpn_pre_nms_top_n`` best anchors, decoded, clipped, boxes under
  1e-3 px dropped, NMS at 0.7 within each level, the ``rpn_post_nms_top_n`` best kept (a fixed
  set with a validity mask). Training: anchors with IoU >= 0.7 (and each box's best anchors) are
  positive, < 0.3 negative; 256 are sampled per image, at most half positive (§3.1.3); the
  objectness loss is the binary cross-entropy averaged over the sampled anchors of the batch, the
  box loss smooth L1 (beta 1/9) over the positive ones divided by the same count.
* RoI heads (Fast R-CNN, Girshick 2015; FPN §4.2): MultiScaleRoIAlign to 7x7 with sampling
  ratio 2 from P2-P5 (FPN eq. 1), ``TwoMLPHead`` (fc6, fc7 of 1024 with ReLU) and
  ``FastRCNNPredictor`` (K + 1 class logits, 4 (K + 1) class-specific deltas, box coder weights
  10, 10, 5, 5). Training: the proposals and the ground-truth boxes are matched at IoU 0.5; 512
  per image are sampled, at most 25% foreground; cross-entropy over the sampled RoIs of the
  batch and smooth L1 (beta 1/9) on the deltas of each foreground RoI's class, divided by the
  number sampled. Detection: softmax scores of the K classes above 0.05, class-specific boxes
  clipped, boxes under 0.01 px dropped, per-class NMS at 0.5, the ``max_detections`` (100) best.
* Mask head (He et al. §3-4): RoIAlign to 14x14, four 3x3 convolutions of 256 with ReLU, a 2x2
  stride-2 transposed convolution with ReLU and a 1x1 convolution to K + 1 mask logits of 28x28.
  Training: on the foreground RoIs among the sampled ones (at most 25% of 512 per image), binary
  cross-entropy on the mask of the RoI's ground-truth class, averaged over their pixels; the
  targets are RoIAlign (28x28, adaptive sampling, not aligned) of the matched instance's binary
  mask, torchvision's ``project_masks_on_boxes``. Detection: the mask of each detection's class,
  sigmoid, pasted into the image as torchvision's ``paste_masks_in_image`` does (one pixel of
  zero padding, boxes grown by 30/28 and truncated to integers, bilinear resize).

Fixed shapes: proposals ``(N, P, 4)`` with ``P = min(rpn_post_nms_top_n, candidates)``; sampled
RoIs ``(N, S, 4)`` with ``S = min(box_batch_size_per_image, P + max_boxes)``, in torchvision's
order (sampled ones by index, then unsampled padding rows masked out); mask RoIs ``(N, S / 4)``.
Sampling draws from the ``'dropout'`` RNG stream, which the trainer passes in training.

``__call__(images, train, targets=None)`` returns in both modes ``rpn_objectness (N, A)``,
``rpn_box_deltas (N, A, 4)`` (torchvision's RPN head outputs in its anchor order), ``proposals``
and ``proposal_valid``; in training (``targets`` required: the batch's ``boxes``, ``classes``,
``box_mask``) the sampled anchors and RoIs, their targets and the heads' outputs on them, which
``loss`` reads with the batch (its ``instances`` for the mask targets); in eval mode
``class_logits`` and ``box_regression`` on the proposals and the detections ``boxes (N, D, 4)``,
``scores``, ``classes`` (0..K-1), ``count`` and for Mask R-CNN ``masks (N, D, H, W)``, which
``detect`` returns. Eval mode computes no loss (torchvision's neither).

Names mirror torchvision's state dict (``rpn.head.conv.0.0``, ``roi_heads.box_head.fc6``,
``roi_heads.mask_predictor.conv5_mask``...): :func:`cnn_jax.convert.from_torch` converts its
weights. ``fc6`` reads the pooled features flattened channel-major, as torch flattens them.
Parameters at 90 classes (torchvision's 91 outputs with background), with trainable BatchNorm as
torchvision builds them without weights (its COCO weights freeze the backbone's BatchNorm, 53,120
fewer trainable): ``fasterrcnn_resnet50_fpn`` 41,808,406, ``maskrcnn_resnet50_fpn`` 44,454,513;
at 10 classes on one-channel input: ``fasterrcnn_resnet18_fpn`` 3,837,062,
``maskrcnn_resnet18_fpn`` 4,001,937.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cnn_jax import layers, losses, ops
from cnn_jax.models import fpn
from cnn_jax.models.registry import register_model

HEAD_INIT = layers.get_initializer("normal", stddev=0.01)
MASK_INIT = layers.get_initializer("he_normal", mode="fan_out")  # kaiming_normal_(fan_out, relu)
# torch's nn.Linear default: kaiming_uniform_(a=sqrt(5)), U(+-1/sqrt(fan_in)) for weight and bias.
LINEAR_INIT = layers.get_initializer("he_uniform", negative_slope=math.sqrt(5))
RPN_MIN_SIZE, BOX_MIN_SIZE = 1e-3, 1e-2  # torchvision's remove_small_boxes thresholds
SMOOTH_L1_BETA = 1.0 / 9


def _dense(features: int, fan_in: int, dtype: Any, name: str) -> nn.Dense:
    bias = layers.get_initializer("uniform", scale=1.0 / math.sqrt(fan_in))
    return nn.Dense(features, kernel_init=LINEAR_INIT, bias_init=bias, dtype=dtype, name=name)


class RPNHead(nn.Module):
    """A 3x3 conv + ReLU, then 1x1 ``cls_logits`` (A) and ``bbox_pred`` (4A), shared by the levels:
    ``(objectness (N, sum h w A), deltas (N, sum h w A, 4))`` in torchvision's anchor order."""

    num_anchors: int
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, features: Sequence[jax.Array]) -> tuple[jax.Array, jax.Array]:
        def conv(features, kernel, name):
            return layers.Conv(features, kernel, padding=kernel // 2, kernel_init=HEAD_INIT,
                               dtype=self.dtype, conv_impl=self.conv_impl, name=name)

        shared = conv(features[0].shape[-1], 3, "conv_0_0")
        cls_logits = conv(self.num_anchors, 1, "cls_logits")
        bbox_pred = conv(4 * self.num_anchors, 1, "bbox_pred")
        hidden = [nn.relu(shared(x)) for x in features]
        return (fpn.flatten_levels([cls_logits(t) for t in hidden], 1)[..., 0],
                fpn.flatten_levels([bbox_pred(t) for t in hidden], 4))


class TwoMLPHead(nn.Module):
    """``fc6`` and ``fc7`` with ReLU on RoI features ``(K, h, w, C)`` flattened channel-major."""

    representation_size: int = 1024
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)  # torch's (C, h, w) order
        x = nn.relu(_dense(self.representation_size, x.shape[-1], self.dtype, "fc6")(x))
        return nn.relu(_dense(self.representation_size, x.shape[-1], self.dtype, "fc7")(x))


class FastRCNNPredictor(nn.Module):
    """``cls_score`` (K + 1 logits, background first) and ``bbox_pred`` (4 (K + 1) deltas)."""

    num_outputs: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        fan_in = x.shape[-1]
        return (_dense(self.num_outputs, fan_in, self.dtype, "cls_score")(x),
                _dense(4 * self.num_outputs, fan_in, self.dtype, "bbox_pred")(x))


class MaskRCNNHeads(nn.Module):
    """3x3 convolutions with ReLU, ``<i>_0`` for each width in ``layers`` (torchvision's
    ``MaskRCNNHeads``, its ``i.0`` convolutions)."""

    layers: Sequence[int] = (256, 256, 256, 256)
    dilation: int = 1
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for i, width in enumerate(self.layers):
            x = nn.relu(layers.Conv(width, 3, padding=self.dilation, dilation=self.dilation,
                                    kernel_init=MASK_INIT, dtype=self.dtype,
                                    conv_impl=self.conv_impl, name=f"{i}_0")(x))
        return x


class MaskRCNNPredictor(nn.Module):
    """``conv5_mask`` (2x2 stride-2 transposed convolution) + ReLU, ``mask_fcn_logits`` (1x1,
    K + 1 mask logits per pixel)."""

    num_outputs: int
    dim_reduced: int = 256
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = layers.ConvTranspose(self.dim_reduced, 2, strides=2, kernel_init=MASK_INIT,
                                 dtype=self.dtype, conv_impl=self.conv_impl, name="conv5_mask")(x)
        return layers.Conv(self.num_outputs, 1, padding=0, kernel_init=MASK_INIT,
                           dtype=self.dtype, conv_impl=self.conv_impl,
                           name="mask_fcn_logits")(nn.relu(x))


def _bilinear_paste_matrix(start: jax.Array, length: jax.Array, end: jax.Array,
                           size: int, source: int) -> jax.Array:
    """``(D, size, source)``: image pixel ``p`` of a box spanning pixels ``[start, start +
    length)`` (pasted where ``max(start, 0) <= p < min(end, size)``) as torch's
    ``F.interpolate(bilinear, align_corners=False)`` of a ``source``-pixel mask to ``length``."""
    pixel = jnp.arange(size)[None, :]
    scale = jnp.float32(source) / length.astype(jnp.float32)[:, None]
    src = jnp.maximum(scale * ((pixel - start[:, None]).astype(jnp.float32) + 0.5) - 0.5, 0.0)
    low = src.astype(jnp.int32)
    frac = src - low.astype(jnp.float32)
    high = low + (low < source - 1)
    taps = jnp.arange(source)[None, None, :]
    matrix = ((taps == low[..., None]) * (1.0 - frac)[..., None]
              + (taps == high[..., None]) * frac[..., None])
    inside = (pixel >= jnp.maximum(start, 0)[:, None]) & (pixel < jnp.minimum(end, size)[:, None])
    return jnp.where(inside[..., None], matrix, 0.0)


def paste_masks(masks: jax.Array, boxes: jax.Array, image_size: tuple[int, int],
                padding: int = 1) -> jax.Array:
    """``(D, M, M)`` mask probabilities in ``(D, 4)`` boxes as ``(D, H, W)`` images, torchvision's
    ``paste_masks_in_image``: the mask padded by ``padding`` zeros, the box grown by
    ``(M + 2 padding) / M`` about its centre and truncated to integers, the mask resized
    bilinearly to the box's ``x2 - x1 + 1`` by ``y2 - y1 + 1`` pixels and pasted, clipped to the
    image. Resizing is separable: one product with a row and a column matrix per mask."""
    m = masks.shape[-1]
    masks = jnp.pad(masks, ((0, 0), (padding, padding), (padding, padding)))
    scale = float(m + 2 * padding) / m
    half = jnp.stack([(boxes[:, 2] - boxes[:, 0]) * 0.5, (boxes[:, 3] - boxes[:, 1]) * 0.5], -1)
    centre = jnp.stack([(boxes[:, 2] + boxes[:, 0]) * 0.5, (boxes[:, 3] + boxes[:, 1]) * 0.5], -1)
    # torch rounds the grown half-size before adding it to the centre. XLA:CPU contracts a
    # product feeding a sum into one fused multiply-add (one rounding), and a corner an ulp from
    # an integer then truncates to the next pixel (28 - 28 * fl(30/28): -2 in torch, -1.999999
    # fused). A minimum with a bound the compiler cannot fold stands between the two.
    half = jnp.minimum(half * scale, jnp.finfo(jnp.float32).max + 0.0 * half)
    grown = jnp.trunc(jnp.concatenate([centre - half, centre + half], -1)).astype(jnp.int32)
    length = jnp.maximum(grown[:, 2:] - grown[:, :2] + 1, 1)
    rows = _bilinear_paste_matrix(grown[:, 1], length[:, 1], grown[:, 3] + 1, image_size[0],
                                  m + 2 * padding)
    cols = _bilinear_paste_matrix(grown[:, 0], length[:, 0], grown[:, 2] + 1, image_size[1],
                                  m + 2 * padding)
    return jnp.einsum("dyi,dij,dxj->dyx", rows, masks, cols)


def project_masks(masks: jax.Array, index: jax.Array, boxes: jax.Array, size: int,
                  max_sampling_ratio: int) -> jax.Array:
    """The mask targets ``(D, size, size)`` of ``(D, 4)`` xyxy ``boxes``, box ``d`` cut from
    instance mask ``index[d]`` of ``(M, H, W)`` ``masks`` (torchvision's
    ``project_masks_on_boxes``: RoIAlign with the adaptive sampling ratio). Boxes lie inside the
    image, so ``ceil(max(H, W) / size)`` samples per bin are as many as the adaptive ratio takes;
    ``max_sampling_ratio`` bounds them (exact for boxes up to ``size`` times it in pixels)."""
    regions = jnp.concatenate([index.astype(jnp.float32)[:, None], boxes.astype(jnp.float32)], 1)
    bound = min(math.ceil(max(masks.shape[1:]) / size), max_sampling_ratio)
    return ops.roi_align(masks.astype(jnp.float32)[..., None], regions, size, 1.0, -1,
                         max_sampling_ratio=bound)[..., 0]


def _first(mask: jax.Array, k: int) -> jax.Array:
    """Indices of the first ``k`` rows, those where ``mask`` holds first (in index order)."""
    return jnp.argsort(~mask, stable=True)[:k]


class RCNN(fpn.PyramidDetector):
    """Faster R-CNN, or Mask R-CNN with ``masks=True`` (module docstring): ``__call__(images,
    train, targets=None) -> dict``, ``loss``, ``detect``.

    Fields (torchvision's defaults; ``rpn_*_train`` / ``_test`` apply to train / eval mode):
      the backbone's (:class:`~cnn_jax.models.fpn.PyramidDetector`): ResNet-50 C2-C5, 256
        channels, P6 by subsampling (``extra_blocks`` ``'maxpool'``), input padded to a multiple
        of 32; RoIs are pooled from the returned levels, not the extra one.
      num_classes: K object classes; the predictors have K + 1 outputs, background first.
      anchor_sizes, aspect_ratios: per level, the anchor sizes (one each: 32 ... 512) and the
        ratios (height / width) of all levels.
      rpn_*: proposal counts (2000/1000 before NMS per level, 2000/1000 after), NMS IoU 0.7,
        matching 0.7/0.3, 256 sampled anchors, half positive, score threshold 0.
      box_output_size, sampling_ratio, representation_size: RoIAlign 7x7 (ratio 2), fc 1024.
      box_*: detection (score 0.05, NMS 0.5, ``max_detections`` 100) and RoI sampling
        (matching 0.5/0.5, 512 per image, 25% foreground); bbox_reg_weights (10, 10, 5, 5).
      masks, mask_*: the mask branch (14x14 RoIAlign, four 256 convs, dilation 1, 256 transposed
        conv channels); ``mask_target_max_sampling_ratio`` bounds the adaptive RoIAlign of the
        mask targets (exact for RoIs up to 28 times it in pixels).
    """

    num_classes: int = 90
    anchor_sizes: Sequence[Sequence[int]] = ((32,), (64,), (128,), (256,), (512,))
    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0)
    rpn_pre_nms_top_n_train: int = 2000
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_train: int = 2000
    rpn_post_nms_top_n_test: int = 1000
    rpn_nms_thresh: float = 0.7
    rpn_fg_iou_thresh: float = 0.7
    rpn_bg_iou_thresh: float = 0.3
    rpn_batch_size_per_image: int = 256
    rpn_positive_fraction: float = 0.5
    rpn_score_thresh: float = 0.0
    box_output_size: int = 7
    sampling_ratio: int = 2
    representation_size: int = 1024
    box_score_thresh: float = 0.05
    box_nms_thresh: float = 0.5
    max_detections: int = 100
    box_fg_iou_thresh: float = 0.5
    box_bg_iou_thresh: float = 0.5
    box_batch_size_per_image: int = 512
    box_positive_fraction: float = 0.25
    bbox_reg_weights: Sequence[float] = (10.0, 10.0, 5.0, 5.0)
    masks: bool = False
    mask_output_size: int = 14
    mask_layers: Sequence[int] = (256, 256, 256, 256)
    mask_dilation: int = 1
    mask_dim_reduced: int = 256
    mask_target_max_sampling_ratio: int = 8

    def setup(self):
        self.backbone = self.resnet_fpn()
        common = dict(dtype=self.dtype, conv_impl=self.conv_impl)
        self.rpn = {"head": RPNHead(self.anchor_generator.num_anchors_per_location()[0], **common)}
        heads = {"box_head": TwoMLPHead(self.representation_size, dtype=self.dtype),
                 "box_predictor": FastRCNNPredictor(self.num_classes + 1, dtype=self.dtype)}
        if self.masks:
            heads["mask_head"] = MaskRCNNHeads(self.mask_layers, self.mask_dilation, **common)
            heads["mask_predictor"] = MaskRCNNPredictor(self.num_classes + 1,
                                                        self.mask_dim_reduced, **common)
        self.roi_heads = heads

    @property
    def anchor_generator(self) -> ops.AnchorGenerator:
        return fpn.shared_head_anchors(self.anchor_sizes, self.aspect_ratios, "the RPN head")

    # --- forward --------------------------------------------------------------------------

    def __call__(self, images: jax.Array, train: bool = False,
                 targets: dict[str, jax.Array] | None = None) -> dict[str, jax.Array]:
        if train and targets is None:
            raise ValueError("a two-stage detector samples its training RoIs from the ground "
                             "truth: pass targets={'boxes', 'classes', 'box_mask'} with train=True")
        image_size = tuple(images.shape[1:3])
        x = fpn.pad_to_multiple(jnp.asarray(images, self.dtype), self.size_divisible)
        features = self.backbone(x, train=train)
        if len(features) != len(self.anchor_sizes):
            raise ValueError(f"{len(features)} pyramid levels but anchor sizes for "
                             f"{len(self.anchor_sizes)}: give one tuple of sizes per level")
        objectness, deltas = self.rpn["head"](features)
        objectness, deltas = objectness.astype(jnp.float32), deltas.astype(jnp.float32)
        grids = [f.shape[1:3] for f in features]
        anchors = jnp.asarray(self.anchor_generator.anchors(x.shape[1:3], grids), jnp.float32)
        per_level = [h * w * self.rpn["head"].num_anchors for h, w in grids]
        select = partial(self.select_proposals, anchors=anchors, per_level=per_level,
                         image_size=image_size, train=train)
        proposals, proposal_valid = jax.vmap(select)(jax.lax.stop_gradient(objectness),
                                                     jax.lax.stop_gradient(deltas))
        outputs = {"rpn_objectness": objectness, "rpn_box_deltas": deltas,
                   "proposals": proposals, "proposal_valid": proposal_valid}
        pooled = features[:len(self.returned_layers)]
        if train:
            if not self.has_rng("dropout"):
                raise ValueError("training samples anchors and RoIs from the 'dropout' RNG "
                                 "stream: apply with rngs={'dropout': key}")
            keys = jax.random.split(self.make_rng("dropout"), (2, images.shape[0]))
            outputs.update(jax.vmap(partial(self._rpn_targets, anchors=anchors))(
                keys[0], targets["boxes"], targets["box_mask"]))
            outputs.update(jax.vmap(self._sample_rois)(keys[1], proposals, proposal_valid,
                                                       targets["boxes"], targets["classes"],
                                                       targets["box_mask"]))
            outputs.update(self.box_outputs(pooled, outputs["rois"], image_size))
            if self.masks:
                outputs.update(self._mask_training_outputs(pooled, outputs, image_size))
            return outputs
        outputs.update(self.box_outputs(pooled, proposals, image_size))
        detections = jax.vmap(partial(self.postprocess_detections, image_size=image_size))(
            outputs["class_logits"], outputs["box_regression"], proposals, proposal_valid)
        outputs.update(detections)
        if self.masks:
            logits = self.mask_logits(pooled, detections["boxes"], image_size)
            probs = jax.nn.sigmoid(_class_channel(logits, detections["classes"] + 1))
            pasted = jax.vmap(partial(paste_masks, image_size=image_size))(
                probs, detections["boxes"])
            shown = jnp.arange(self.max_detections)[None, :] < detections["count"][:, None]
            outputs["masks"] = jnp.where(shown[..., None, None], pasted, 0.0)
        return outputs

    def box_outputs(self, features: Sequence[jax.Array], boxes: jax.Array,
                    image_size: tuple[int, int]) -> dict[str, jax.Array]:
        """``class_logits (N, R, K + 1)`` and ``box_regression (N, R, 4 (K + 1))`` of the box
        head on ``(N, R, 4)`` boxes (the pooled pyramid levels as ``features``)."""
        n, r = boxes.shape[:2]
        pooled = ops.multiscale_roi_align(features, ops.boxes_to_rois(boxes), image_size,
                                          self.box_output_size, self.sampling_ratio)
        hidden = self.roi_heads["box_head"](pooled)
        class_logits, box_regression = self.roi_heads["box_predictor"](hidden)
        return {"class_logits": class_logits.astype(jnp.float32).reshape(n, r, -1),
                "box_regression": box_regression.astype(jnp.float32).reshape(n, r, -1)}

    def mask_logits(self, features: Sequence[jax.Array], boxes: jax.Array,
                    image_size: tuple[int, int]) -> jax.Array:
        """Mask logits ``(N, R, 2 m, 2 m, K + 1)`` of the mask head on ``(N, R, 4)`` boxes."""
        n, r = boxes.shape[:2]
        pooled = ops.multiscale_roi_align(features, ops.boxes_to_rois(boxes), image_size,
                                          self.mask_output_size, self.sampling_ratio)
        logits = self.roi_heads["mask_predictor"](self.roi_heads["mask_head"](pooled))
        return logits.astype(jnp.float32).reshape(n, r, *logits.shape[1:])

    # --- proposals, sampling, detection (one image each, vmapped) -------------------------------

    def select_proposals(self, objectness: jax.Array, deltas: jax.Array, *, anchors: jax.Array,
                         per_level: Sequence[int], image_size: tuple[int, int],
                         train: bool) -> tuple[jax.Array, jax.Array]:
        """One image's fixed-size proposal set ``(boxes (P, 4), valid (P,))`` from its RPN
        outputs ``(A,)``, ``(A, 4)`` on ``anchors (A, 4)`` (``per_level`` anchors per level):
        torchvision's ``RegionProposalNetwork.filter_proposals``."""
        pre = self.rpn_pre_nms_top_n_train if train else self.rpn_pre_nms_top_n_test
        post = self.rpn_post_nms_top_n_train if train else self.rpn_post_nms_top_n_test
        top, index = fpn.top_k_per_level(objectness, per_level, pre)
        level = np.concatenate([np.full(min(pre, n), i) for i, n in enumerate(per_level)])
        boxes = ops.clip_boxes_to_image(ops.decode(deltas[index], anchors[index]), image_size)
        scores = jax.nn.sigmoid(top)
        valid = ops.remove_small_boxes(boxes, RPN_MIN_SIZE) & (scores >= self.rpn_score_thresh)
        keep, count = ops.batched_nms(boxes, scores, jnp.asarray(level), self.rpn_nms_thresh,
                                      min(post, len(level)), valid)
        return fpn.take_rows(boxes, keep), jnp.arange(keep.shape[0]) < count

    def _rpn_targets(self, key, gt_boxes, gt_mask, *, anchors):
        """Sampled anchors (Ren et al. §3.1.2-3.1.3) and the deltas of the positive ones."""
        matched = ops.match(ops.box_iou(gt_boxes, anchors), self.rpn_fg_iou_thresh,
                            self.rpn_bg_iou_thresh, allow_low_quality_matches=True,
                            gt_mask=gt_mask)
        labels = jnp.where(matched >= 0, 1, jnp.where(matched == ops.BELOW_LOW_THRESHOLD, 0, -1))
        positive, negative = ops.sample_balanced(key, labels, self.rpn_batch_size_per_image,
                                                 self.rpn_positive_fraction)
        targets = ops.encode(gt_boxes[jnp.maximum(matched, 0)], anchors)
        return {"rpn_positive": positive, "rpn_negative": negative,
                "rpn_regression_targets": jnp.where(positive[:, None], targets, 0.0)}

    def _sample_rois(self, key, proposals, proposal_valid, gt_boxes, gt_classes, gt_mask):
        """The ``S`` training RoIs of one image among its proposals and ground-truth boxes."""
        candidates = jnp.concatenate([proposals, gt_boxes.astype(proposals.dtype)])
        candidate_valid = jnp.concatenate([proposal_valid, gt_mask])
        matched = ops.match(ops.box_iou(gt_boxes, candidates), self.box_fg_iou_thresh,
                            self.box_bg_iou_thresh, gt_mask=gt_mask, pred_mask=candidate_valid)
        gt = jnp.maximum(matched, 0)
        labels = jnp.where(matched >= 0, gt_classes[gt] + 1,
                           jnp.where(matched == ops.BELOW_LOW_THRESHOLD, 0, -1))
        positive, negative = ops.sample_balanced(key, labels, self.box_batch_size_per_image,
                                                 self.box_positive_fraction)
        order = _first(positive | negative, min(self.box_batch_size_per_image, len(labels)))
        rois, valid, gt = candidates[order], (positive | negative)[order], gt[order]
        foreground = valid & positive[order]
        targets = ops.encode(gt_boxes[gt], rois, self.bbox_reg_weights)
        return {"rois": rois, "roi_valid": valid, "roi_labels": jnp.where(foreground,
                                                                          labels[order], 0),
                "roi_matched": gt, "roi_regression_targets": jnp.where(foreground[:, None],
                                                                       targets, 0.0)}

    def _mask_training_outputs(self, features, outputs, image_size):
        """The foreground RoIs among the sampled ones, their matched rows and class mask logits."""
        limit = int(outputs["rois"].shape[1] * self.box_positive_fraction)
        order = jax.vmap(lambda labels: _first(labels > 0, limit))(outputs["roi_labels"])

        def pick(x):
            return jax.vmap(lambda v, i: v[i])(x, order)

        labels = pick(outputs["roi_labels"])
        rois = pick(outputs["rois"])
        logits = self.mask_logits(features, rois, image_size)
        return {"mask_rois": rois, "mask_valid": labels > 0, "mask_matched": pick(
            outputs["roi_matched"]), "mask_logits": _class_channel(logits, labels)}

    def postprocess_detections(self, class_logits: jax.Array, box_regression: jax.Array,
                               proposals: jax.Array, proposal_valid: jax.Array, *,
                               image_size: tuple[int, int]) -> dict[str, jax.Array]:
        """One image's detections from the box head's outputs ``(R, K + 1)``, ``(R, 4 (K + 1))``
        on ``proposals (R, 4)``: torchvision's ``RoIHeads.postprocess_detections``."""
        k = self.num_classes
        boxes = ops.decode(box_regression, proposals, self.bbox_reg_weights)
        boxes = ops.clip_boxes_to_image(boxes.reshape(-1, k + 1, 4), image_size)[:, 1:]
        scores = jax.nn.softmax(class_logits, axis=-1)[:, 1:]
        boxes, scores = boxes.reshape(-1, 4), scores.reshape(-1)
        classes = jnp.tile(jnp.arange(k), proposals.shape[0])
        valid = ((scores > self.box_score_thresh) & ops.remove_small_boxes(boxes, BOX_MIN_SIZE)
                 & jnp.repeat(proposal_valid, k))
        return fpn.select_detections(boxes, jnp.where(valid, scores, 0.0), classes, valid,
                                     self.box_nms_thresh, self.max_detections)

    # --- task interface ----------------------------------------------------------------------

    def detect(self, outputs: dict[str, jax.Array]) -> dict[str, jax.Array]:
        """``boxes (N, D, 4)``, ``scores``, ``classes``, ``count`` (and ``masks (N, D, H, W)``
        for Mask R-CNN) of the eval-mode outputs; rows past ``count`` are zeros."""
        return fpn.detections_of(outputs, fpn.DETECTION_KEYS + (("masks",) if self.masks else ()))

    def loss(self, outputs: dict[str, jax.Array],
             batch: dict[str, jax.Array]) -> tuple[jax.Array, dict[str, jax.Array]]:
        """``(sum of the parts, parts)``: torchvision's ``loss_objectness``, ``loss_rpn_box_reg``,
        ``loss_classifier``, ``loss_box_reg`` and ``loss_mask`` (module docstring), from the
        training-mode outputs and the batch."""
        if "rpn_positive" not in outputs:
            raise ValueError("R-CNN losses read the sampled anchors and RoIs of the training-mode "
                             "outputs: apply with train=True, targets=... and a 'dropout' rng")
        sampled = outputs["rpn_positive"] | outputs["rpn_negative"]
        count = jnp.maximum(sampled.sum(), 1).astype(jnp.float32)
        objectness = losses.sigmoid_binary_cross_entropy(outputs["rpn_objectness"],
                                                         outputs["rpn_positive"])
        rpn_box = ops.smooth_l1_loss(outputs["rpn_box_deltas"], outputs["rpn_regression_targets"],
                                     SMOOTH_L1_BETA, "none")
        parts = {"loss_objectness": jnp.sum(jnp.where(sampled, objectness, 0.0)) / count,
                 "loss_rpn_box_reg": jnp.sum(jnp.where(outputs["rpn_positive"][..., None],
                                                       rpn_box, 0.0)) / count}

        valid, labels = outputs["roi_valid"], outputs["roi_labels"]
        count = jnp.maximum(valid.sum(), 1).astype(jnp.float32)
        classifier = losses.cross_entropy(outputs["class_logits"], labels)
        deltas = outputs["box_regression"].reshape(*labels.shape, -1, 4)
        deltas = jnp.take_along_axis(deltas, labels[..., None, None], axis=-2)[..., 0, :]
        box = ops.smooth_l1_loss(deltas, outputs["roi_regression_targets"], SMOOTH_L1_BETA,
                                 "none")
        parts["loss_classifier"] = jnp.sum(jnp.where(valid, classifier, 0.0)) / count
        parts["loss_box_reg"] = jnp.sum(jnp.where((labels > 0)[..., None], box, 0.0)) / count
        if self.masks:
            parts["loss_mask"] = self._mask_loss(outputs, batch)
        return sum(parts.values()), parts

    def _mask_loss(self, outputs, batch):
        """Mean binary cross-entropy of the foreground RoIs' masks against RoIAlign of their
        instances' masks (torchvision's ``maskrcnn_loss``)."""
        instances, rois = batch["instances"], outputs["mask_rois"]
        n, r = rois.shape[:2]
        rows, size = batch["boxes"].shape[1], outputs["mask_logits"].shape[-1]
        masks = ops.instance_masks(instances, jnp.arange(rows, dtype=instances.dtype))
        masks = masks.reshape(n * rows, *instances.shape[1:])
        source = jnp.arange(n)[:, None] * rows + outputs["mask_matched"]
        targets = project_masks(masks, source.reshape(-1), rois.reshape(-1, 4), size,
                                self.mask_target_max_sampling_ratio)
        targets = targets.reshape(n, r, size, size)
        bce = losses.sigmoid_binary_cross_entropy(outputs["mask_logits"], targets)
        valid = outputs["mask_valid"]
        count = jnp.maximum(valid.sum(), 1).astype(jnp.float32) * size * size
        return jnp.sum(jnp.where(valid[..., None, None], bce, 0.0)) / count


def _class_channel(logits: jax.Array, channel: jax.Array) -> jax.Array:
    """``(N, R, h, w)`` from ``(N, R, h, w, C)`` logits: channel ``channel[n, r]`` of each."""
    return jnp.take_along_axis(logits, channel[:, :, None, None, None], axis=-1)[..., 0]


_REGISTER = dict(family="rcnn", task="detection")
_PAPER_SHAPES = dict(input_shape=(800, 800, 3), test_input_shape=(64, 64, 3), num_classes=90)


@register_model(
    "fasterrcnn_resnet50_fpn", **_REGISTER, **_PAPER_SHAPES,
    description="Faster R-CNN, ResNet-50-FPN (Ren et al. 2015, Lin et al. 2017, torchvision); "
                "41,808,406 parameters")
def fasterrcnn_resnet50_fpn(num_classes: int = 90, **kwargs: Any) -> RCNN:
    """Faster R-CNN on ResNet-50-FPN, torchvision's ``fasterrcnn_resnet50_fpn``; 41,808,406
    parameters at 90 classes (91 outputs with background)."""
    return RCNN(num_classes=num_classes, **kwargs)


@register_model(
    "maskrcnn_resnet50_fpn", **_REGISTER, **_PAPER_SHAPES,
    description="Mask R-CNN, ResNet-50-FPN (He et al. 2017, torchvision); 44,454,513 parameters")
def maskrcnn_resnet50_fpn(num_classes: int = 90, **kwargs: Any) -> RCNN:
    """Mask R-CNN on ResNet-50-FPN, torchvision's ``maskrcnn_resnet50_fpn``; 44,454,513
    parameters at 90 classes (91 outputs with background)."""
    return RCNN(num_classes=num_classes, **{"masks": True, **kwargs})


# For 64 x 64 digit scenes (digits 16-40 px tall): ResNet-18 C2-C4 to a 64-channel FPN P2-P4 plus
# P5 by subsampling, one anchor size per level (12, 24, 48, 96 px), proposal and RoI counts for
# scenes of at most a few objects, a 256-wide box head and a 64-channel mask head.
SMALL_RCNN = dict(
    **fpn.SMALL_RESNET_FPN, anchor_sizes=((12,), (24,), (48,), (96,)), rpn_pre_nms_top_n_train=1000,
    rpn_pre_nms_top_n_test=500, rpn_post_nms_top_n_train=300, rpn_post_nms_top_n_test=100,
    representation_size=256, box_batch_size_per_image=128, mask_layers=(64, 64, 64, 64),
    mask_dim_reduced=64,
)
_SMALL_SHAPES = dict(input_shape=(64, 64, 1), num_classes=10)


@register_model(
    "fasterrcnn_resnet18_fpn", **_REGISTER, **_SMALL_SHAPES,
    description="Faster R-CNN, ResNet-18-FPN P2-P5, 64 channels, for 64x64 digit scenes; "
                "3,837,062 parameters")
def fasterrcnn_resnet18_fpn(num_classes: int = 10, **kwargs: Any) -> RCNN:
    """Faster R-CNN on ResNet-18 C2-C4 with a 64-channel FPN and digit-sized anchors (fields
    override any of it); 3,837,062 parameters at 10 classes on one-channel input."""
    return RCNN(num_classes=num_classes, **{**SMALL_RCNN, **kwargs})


@register_model(
    "maskrcnn_resnet18_fpn", **_REGISTER, **_SMALL_SHAPES,
    description="Mask R-CNN, ResNet-18-FPN P2-P5, 64 channels, for 64x64 digit scenes; "
                "4,001,937 parameters")
def maskrcnn_resnet18_fpn(num_classes: int = 10, **kwargs: Any) -> RCNN:
    """Mask R-CNN on ResNet-18 C2-C4 with a 64-channel FPN, digit-sized anchors and a 64-channel
    mask head; 4,001,937 parameters at 10 classes on one-channel input."""
    return RCNN(num_classes=num_classes, **{**SMALL_RCNN, "masks": True, **kwargs})
