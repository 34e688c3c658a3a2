"""YOLOv1 (Redmon, Divvala, Girshick & Farhadi 2016, "You only look once: unified, real-time
object detection"): one network maps the image to an S x S grid of B boxes and C class
probabilities per cell, trained with the five-term sum-squared error of eq. 3.

Architecture (Fig. 3): 24 convolutional layers and 2 fully connected ones on a 448x448x3 image::

    7x7x64-s-2, maxpool, 3x3x192, maxpool,
    1x1x128, 3x3x256, 1x1x256, 3x3x512, maxpool,
    4 x (1x1x256, 3x3x512), 1x1x512, 3x3x1024, maxpool,
    2 x (1x1x512, 3x3x1024), 3x3x1024, 3x3x1024-s-2,
    3x3x1024, 3x3x1024, FC 4096, FC 7x7x30.

Feature maps 224, 112, 56, 28, 14 and 7 pixels wide; every layer but the last uses the leaky ReLU
of slope 0.1, the last is linear, and dropout 0.5 follows the first FC (§2.2). The 2x2
pools have stride 2, every convolution is padded by ``k // 2`` and has a bias (the paper predates
YOLOv2's batch normalisation). ``yolov1`` (S = 7, B = 2, C = 20) has 271,703,550 parameters:
60,155,968 in the convolutions, 205,524,992 in FC 4096 (7 * 7 * 1024 inputs) and 6,022,590 in
FC 1470. The network's stride is 64 and FC 4096 reads the whole last map, so the input's size
sets its inputs, (H / 64) (W / 64) 1024: a 64x64 input (the registry's small test input) ends on
a 1x1x1024 map; the output grid is S x S whatever the input.

Output: the last layer's S * S * (5 B + C) numbers as ``grid`` (N, S, S, 5 B + C); per cell B
times ``(x, y, sqrt(w), sqrt(h), confidence)`` then C class probabilities. As in §2 ``x, y`` are
the box centre as offsets within the cell and ``w, h`` fractions of the image's width and height;
the network predicts their square roots directly (the reference implementation, darknet, does
the same and squares them to decode), so eq. 3's ``sqrt(w)`` term is a plain squared error and a
negative prediction cannot produce a nan. ``boxes`` (N, S, S, B, 4) are those boxes decoded to
xyxy pixels of the input and clipped to it.

Loss (eq. 3; hats are the targets), summed over an image's grid and averaged over the images
(examples whose ``mask`` is False in an evaluation batch do not count):

    lambda_coord sum_ij 1obj_ij [(x - x^)^2 + (y - y^)^2 + (sqrt w - sqrt w^)^2
                                 + (sqrt h - sqrt h^)^2]
    + sum_ij 1obj_ij (C - C^)^2 + lambda_noobj sum_ij 1noobj_ij C^2
    + sum_i 1obj_i sum_c (p(c) - p^(c))^2,

lambda_coord = 5, lambda_noobj = 0.5 (§2.2). The cell holding an object's centre is responsible for
it (``1obj_i``); of its B predictors the one whose predicted box has the highest IoU with the
ground truth is responsible (``1obj_ij``; ties go to the lower index, so before any box overlaps
the object predictor 0 learns it), the others count as no-object (``1noobj_ij``). The confidence
target is that IoU ("Pr(Object) * IOU", §2), held constant for the gradient
(``jax.lax.stop_gradient``), as the reference implementations do. Class probabilities are
regressed onto the one-hot class by squared error, in object cells only.

One object per cell (§2.4: "each grid cell only predicts two boxes and can only have one
class"): when the centres of several boxes fall in one cell, the first of them in the batch's box
order owns the cell and the others are not targets at all (no term of the loss sees them), as in
darknet, which skips a box whose cell is already taken. The digit scenes list boxes back to front.

Decoding (:meth:`YOLOv1.detect`, §2 "at test time"): class-specific confidence
``C * p(c)`` for every box and class, those above ``score_threshold`` kept, NMS per class
(:func:`cnn_jax.ops.batched_nms`, IoU above ``nms_iou`` suppressed), the best
``max_detections`` returned with fixed shapes.

``yolov1_small`` is the same design for 64x64x1 digit scenes on a CPU (C = 10): six
convolutions (3x3x16, maxpool, 3x3x32, maxpool, 1x1x16, 3x3x64, maxpool, 1x1x32, 3x3x128: maps
of 64, 32, 16 and 8 pixels), FC 512, FC 8x8x20 (S = 8, B = 2); 4,905,136 parameters. S = 8
(8-pixel cells) rather than 4: the scenes' digits are 16 to 40 pixels tall and may overlap up to
IoU 0.3, so 16-pixel cells would often hold two digits' centres, of which only one can be
detected there. The last map is the grid's size, as Fig. 3's 7x7 map is for S = 7, so FC 512
reads one 128-vector per cell.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax import layers
from cnn_jax.models.registry import register_model
from cnn_jax.ops import batched_nms, box_iou

POOL = "M"  # a 2x2 max pool of stride 2
ConvSpec = tuple[int, int, int]  # (kernel, filters, stride)

# Fig. 3, left to right.
YOLOV1_CONVS: tuple[ConvSpec | str, ...] = (
    (7, 64, 2), POOL,
    (3, 192, 1), POOL,
    (1, 128, 1), (3, 256, 1), (1, 256, 1), (3, 512, 1), POOL,
    *((1, 256, 1), (3, 512, 1)) * 4, (1, 512, 1), (3, 1024, 1), POOL,
    *((1, 512, 1), (3, 1024, 1)) * 2, (3, 1024, 1), (3, 1024, 2),
    (3, 1024, 1), (3, 1024, 1),
)
SMALL_CONVS: tuple[ConvSpec | str, ...] = (
    (3, 16, 1), POOL,
    (3, 32, 1), POOL,
    (1, 16, 1), (3, 64, 1), POOL,
    (1, 32, 1), (3, 128, 1),
)
BOX_FIELDS = 5  # x, y, sqrt(w), sqrt(h), confidence


def split_grid(grid: jax.Array, boxes_per_cell: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``grid`` (N, S, S, 5 B + C) as (box numbers (N, S, S, B, 4): x, y, sqrt w, sqrt h;
    confidences (N, S, S, B); class probabilities (N, S, S, C))."""
    n, s = grid.shape[0], grid.shape[1]
    per_box = grid[..., : BOX_FIELDS * boxes_per_cell].reshape(n, s, s, boxes_per_cell, BOX_FIELDS)
    return per_box[..., :4], per_box[..., 4], grid[..., BOX_FIELDS * boxes_per_cell:]


def unit_boxes(numbers: jax.Array, rows: jax.Array, cols: jax.Array, grid_size: int) -> jax.Array:
    """xyxy boxes in fractions of the image from predicted (..., 4) (x, y, sqrt w, sqrt h) of the
    cells (``rows``, ``cols``, broadcast against ``numbers[..., 0]``) of an S x S grid."""
    cx = (cols + numbers[..., 0]) / grid_size
    cy = (rows + numbers[..., 1]) / grid_size
    half_w, half_h = numbers[..., 2] ** 2 / 2, numbers[..., 3] ** 2 / 2
    return jnp.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=-1)


def decode_boxes(grid: jax.Array, boxes_per_cell: int, image_size: tuple[int, int]) -> jax.Array:
    """Every predicted box of ``grid`` (N, S, S, 5 B + C) as xyxy pixels (N, S, S, B, 4) of an
    image of ``image_size`` (H, W), clipped to the image."""
    s = grid.shape[1]
    rows, cols = jnp.meshgrid(jnp.arange(s), jnp.arange(s), indexing="ij")
    unit = unit_boxes(split_grid(grid, boxes_per_cell)[0], rows[..., None], cols[..., None], s)
    height, width = image_size
    scale = jnp.asarray([width, height, width, height], unit.dtype)
    return jnp.clip(unit * scale, 0, scale)


def yolo_loss_terms(
    grid: jax.Array,
    boxes: jax.Array,
    classes: jax.Array,
    box_mask: jax.Array,
    image_size: tuple[int, int],
    boxes_per_cell: int,
    lambda_coord: float = 5.0,
    lambda_noobj: float = 0.5,
) -> dict[str, jax.Array]:
    """The four sums of eq. 3 per image (module docstring), each (N,) float32, weights included:
    ``coord`` (lambda_coord times the x, y, sqrt w, sqrt h errors), ``object`` (confidence of the
    responsible predictors against their IoU), ``no_object`` (lambda_noobj times the other
    confidences squared) and ``class``.

    ``grid`` (N, S, S, 5 B + C) is the network's output; ``boxes`` (N, M, 4) xyxy pixels of an
    image of ``image_size`` (H, W), ``classes`` (N, M) in 0..C-1 and ``box_mask`` (N, M) the
    ground truth, padding rows False.
    """
    grid = grid.astype(jnp.float32)
    n, s = grid.shape[:2]
    numbers, confidence, probs = split_grid(grid, boxes_per_cell)
    height, width = image_size
    gt = boxes.astype(jnp.float32) / jnp.asarray([width, height, width, height], jnp.float32)
    cx, cy = (gt[..., 0] + gt[..., 2]) / 2, (gt[..., 1] + gt[..., 3]) / 2
    w, h = gt[..., 2] - gt[..., 0], gt[..., 3] - gt[..., 1]
    col = jnp.clip(jnp.floor(cx * s), 0, s - 1).astype(jnp.int32)
    row = jnp.clip(jnp.floor(cy * s), 0, s - 1).astype(jnp.int32)
    cell = row * s + col  # (N, M)

    # One object per cell: the first valid box whose centre falls in a cell owns it.
    valid = jnp.asarray(box_mask, bool)
    m = boxes.shape[1]
    earlier = jnp.arange(m)[None, :] < jnp.arange(m)[:, None]  # [i, j]: box j comes before box i
    taken = (cell[:, :, None] == cell[:, None, :]) & valid[:, None, :] & earlier
    owner = (valid & ~jnp.any(taken, axis=2)).astype(jnp.float32)

    # The predictions of each box's cell: (N, M, B, 4), (N, M, B), (N, M, C).
    at = cell[:, :, None]
    numbers_m = jnp.take_along_axis(numbers.reshape(n, s * s, -1), at, axis=1)
    numbers_m = numbers_m.reshape(n, m, boxes_per_cell, 4)
    confidence_m = jnp.take_along_axis(confidence.reshape(n, s * s, -1), at, axis=1)
    probs_m = jnp.take_along_axis(probs.reshape(n, s * s, -1), at, axis=1)

    # Responsibility: the predictor whose box overlaps the ground truth most (ties: lower index).
    predicted = unit_boxes(numbers_m, row[..., None], col[..., None], s)
    iou = jax.lax.stop_gradient(box_iou(predicted, gt[:, :, None, :])[..., 0])
    iou = jnp.where(owner[..., None] > 0, jnp.nan_to_num(iou), 0.0)  # padding rows: 0/0
    responsible = jax.nn.one_hot(jnp.argmax(iou, axis=-1), boxes_per_cell)  # (N, M, B)

    target = jnp.stack([cx * s - col, cy * s - row, jnp.sqrt(w), jnp.sqrt(h)], axis=-1)
    coord_error = jnp.sum((numbers_m - target[:, :, None, :]) ** 2, axis=-1)
    coord = jnp.sum(owner * jnp.sum(responsible * coord_error, axis=-1), axis=1)
    obj = jnp.sum(owner * jnp.sum(responsible * (confidence_m - iou) ** 2, axis=-1), axis=1)
    one_hot = jax.nn.one_hot(classes, probs.shape[-1])
    cls = jnp.sum(owner * jnp.sum((probs_m - one_hot) ** 2, axis=-1), axis=1)

    # Every predictor that is not responsible for an object is trained towards confidence 0.
    in_cell = jax.nn.one_hot(cell, s * s) * owner[..., None]  # (N, M, S * S)
    responsible_grid = jnp.einsum("nmk,nmb->nkb", in_cell, responsible)
    no_obj = jnp.sum((1.0 - responsible_grid) * confidence.reshape(n, s * s, -1) ** 2, axis=(1, 2))
    return {"coord": lambda_coord * coord, "object": obj, "no_object": lambda_noobj * no_obj,
            "class": cls}


def yolo_detect(
    grid: jax.Array,
    boxes: jax.Array,
    boxes_per_cell: int,
    score_threshold: float,
    nms_iou: float,
    max_detections: int,
) -> dict[str, jax.Array]:
    """Detections of ``grid`` (N, S, S, 5 B + C) whose boxes are ``boxes`` (N, S, S, B, 4) xyxy:
    every (box, class) pair scored by C * p(c), kept above ``score_threshold``, per-class NMS at
    ``nms_iou``, the best ``max_detections`` in decreasing score order. Returns ``boxes`` (N, D, 4),
    ``scores`` (N, D), ``classes`` (N, D) int32 and ``count`` (N,) int32; rows >= count are 0."""
    _, confidence, probs = split_grid(grid.astype(jnp.float32), boxes_per_cell)
    n, num_classes = grid.shape[0], probs.shape[-1]
    scores = (confidence[..., :, None] * probs[..., None, :]).reshape(n, -1)  # (N, S S B C)
    candidates = jnp.broadcast_to(boxes[..., None, :], (*boxes.shape[:-1], num_classes, 4))
    candidates = candidates.reshape(n, -1, 4).astype(jnp.float32)
    labels = jnp.tile(jnp.arange(num_classes, dtype=jnp.int32), scores.shape[1] // num_classes)

    def per_image(b, sc):
        return batched_nms(b, sc, labels, nms_iou, max_detections, valid=sc > score_threshold)

    keep, count = jax.vmap(per_image)(candidates, scores)
    real = jnp.arange(max_detections)[None, :] < count[:, None]
    index = jnp.maximum(keep, 0)
    kept_boxes = jnp.take_along_axis(candidates, index[..., None], axis=1)
    return {
        "boxes": jnp.where(real[..., None], kept_boxes, 0.0),
        "scores": jnp.where(real, jnp.take_along_axis(scores, index, axis=1), 0.0),
        "classes": jnp.where(real, index % num_classes, 0).astype(jnp.int32),
        "count": count.astype(jnp.int32),
    }


class ConvTrunk(nn.Module):
    """The convolutions of a YOLOv1 network and of its pretraining classifier, and the fields they
    share: ``convs`` (``(kernel, filters, stride)`` or ``'M'`` for a 2x2 pool), each followed by
    the leaky ReLU of ``negative_slope`` and, with ``batch_norm``, a BatchNorm before it (the conv
    then has no bias); ``kernel_init``, ``dtype``, ``conv_impl`` of the convolutions. Both networks
    name the layers ``conv1``, ``bn1``, ``conv2``, ... (:meth:`trunk`), so a run of one initialises
    the other."""

    convs: Sequence[ConvSpec | str] = YOLOV1_CONVS
    negative_slope: float = 0.1
    kernel_init: str | Callable = "he_normal"
    batch_norm: bool = False
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    def trunk(self, x: jax.Array, train: bool) -> jax.Array:
        """``convs`` on ``x``; called from the subclass's compact ``__call__``."""
        index = 0
        for layer in self.convs:
            if layer == POOL:
                x = layers.max_pool(x, 2, 2)
                continue
            kernel, features, stride = layer
            index += 1
            x = layers.Conv(features, kernel, strides=stride, padding=kernel // 2,
                            use_bias=not self.batch_norm, kernel_init=self.kernel_init,
                            dtype=self.dtype, conv_impl=self.conv_impl, name=f"conv{index}")(x)
            if self.batch_norm:
                x = layers.BatchNorm(dtype=self.dtype, name=f"bn{index}")(x, train=train)
            x = jax.nn.leaky_relu(x, self.negative_slope)
        return x


class YOLOv1(ConvTrunk):
    """YOLOv1: convolutions, FC, FC to the S x S x (5 B + C) grid (module docstring).

    Fields:
      num_classes: C, the object classes (background is not one).
      grid_size: S; boxes_per_cell: B.
      convs: the convolutional layers, ``(kernel, filters, stride)`` or ``'M'`` for a 2x2 pool.
      fc_features: the first FC layer's width (4096).
      dropout_rate: after the first FC layer, in training (0.5).
      negative_slope: of the leaky ReLU after every layer but the last (0.1).
      lambda_coord, lambda_noobj: the loss weights of eq. 3 (5 and 0.5).
      score_threshold, nms_iou, max_detections: decoding (:meth:`detect`).
      kernel_init: convolutions and the first FC layer; the last (linear) layer uses LeCun normal.
      batch_norm: BatchNorm after every convolution, which then has no bias (YOLOv2's first change,
        Redmon & Farhadi 2017 §2: "+2% mAP", and it "can remove dropout"); False in YOLOv1.
      conv_impl: how the convolutions run, ``'auto'`` | ``'xla'`` | ``'onednn'``
        (:mod:`cnn_jax.layers.conv`).
    """

    num_classes: int = 20
    grid_size: int = 7
    boxes_per_cell: int = 2
    fc_features: int = 4096
    dropout_rate: float = 0.5
    lambda_coord: float = 5.0
    lambda_noobj: float = 0.5
    score_threshold: float = 0.05
    nms_iou: float = 0.5
    max_detections: int = 100

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> dict[str, jax.Array]:
        x = jnp.asarray(x, self.dtype)
        image_size = x.shape[1:3]
        x = self.trunk(x, train)
        x = x.reshape((x.shape[0], -1))
        x = nn.Dense(self.fc_features, kernel_init=layers.get_initializer(self.kernel_init),
                     dtype=self.dtype, name="fc1")(x)
        x = jax.nn.leaky_relu(x, self.negative_slope)
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        s, depth = self.grid_size, BOX_FIELDS * self.boxes_per_cell + self.num_classes
        x = nn.Dense(s * s * depth, kernel_init=layers.get_initializer("lecun_normal"),
                     dtype=self.dtype, name="fc2")(x)
        grid = x.reshape((x.shape[0], s, s, depth)).astype(jnp.float32)
        return {"grid": grid, "boxes": decode_boxes(grid, self.boxes_per_cell, image_size)}

    def loss(self, outputs: dict, batch: dict) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Eq. 3 summed over each image's grid, averaged over the batch's images (those whose
        ``mask`` is True when the batch has one); the parts add up to the loss. The image size is
        that of ``batch['image']``."""
        terms = yolo_loss_terms(
            outputs["grid"], batch["boxes"], batch["classes"], batch["box_mask"],
            batch["image"].shape[1:3], self.boxes_per_cell, self.lambda_coord, self.lambda_noobj,
        )
        weights = jnp.asarray(batch.get("mask", jnp.ones(batch["boxes"].shape[:1])), jnp.float32)
        total_weight = jnp.maximum(jnp.sum(weights), 1.0)
        parts = {k: jnp.sum(v * weights) / total_weight for k, v in terms.items()}
        return sum(parts.values()), parts

    def detect(self, outputs: dict) -> dict[str, jax.Array]:
        """Fixed-shape detections (:func:`yolo_detect`) with this model's thresholds."""
        return yolo_detect(outputs["grid"], outputs["boxes"], self.boxes_per_cell,
                           self.score_threshold, self.nms_iou, self.max_detections)


class YOLOv1Classifier(ConvTrunk):
    """The network YOLOv1's convolutions are pretrained in (§2.2: "the first 20 convolutional
    layers ... followed by a average-pooling layer and a fully connected layer", trained on
    ImageNet classification before detection): ``convs`` as in :class:`YOLOv1` (same layer names,
    :class:`ConvTrunk`), global average pooling and one linear layer, ``classifier``, to
    ``num_classes`` logits. A run of it initialises a YOLOv1 run with the same first convolutions
    (``init.checkpoint``, with ``init.exclude_regex`` naming the layers either side has alone).
    """

    num_classes: int = 1000

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = self.trunk(jnp.asarray(x, self.dtype), train)
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(self.num_classes, kernel_init=layers.get_initializer("lecun_normal"),
                        dtype=self.dtype, name="classifier")(x).astype(jnp.float32)


_DESCRIPTION = ("YOLOv1 (Redmon et al. 2016 Fig. 3): 24 conv + 2 FC, S=7, B=2, C=20; "
                "271,703,550 parameters")


@register_model("yolov1", family="yolo", input_shape=(448, 448, 3), test_input_shape=(64, 64, 3),
                num_classes=20, task="detection", description=_DESCRIPTION)
def yolov1(num_classes: int = 20, **kwargs: Any) -> YOLOv1:
    """YOLOv1 as in Fig. 3: 448x448x3 in, a 7x7x30 grid out for the 20 VOC classes."""
    return YOLOv1(num_classes=num_classes, **kwargs)


@register_model("yolov1_small", family="yolo", input_shape=(64, 64, 1), num_classes=10,
                task="detection",
                description="YOLOv1 for 64x64x1 digit scenes: 6 conv + 2 FC, S=8, B=2, C=10; "
                            "4,905,136 parameters")
def yolov1_small(num_classes: int = 10, **kwargs: Any) -> YOLOv1:
    """YOLOv1 reduced for 64x64x1 digit scenes on a CPU (module docstring): S = 8, FC 512."""
    defaults = dict(convs=SMALL_CONVS, fc_features=512, grid_size=8)
    return YOLOv1(num_classes=num_classes, **{**defaults, **kwargs})


@register_model("yolov1_classifier", family="yolo", input_shape=(224, 224, 3),
                test_input_shape=(64, 64, 3), num_classes=1000, task="classification",
                description="YOLOv1's pretraining network (§2.2): its first 20 convolutions, "
                            "average pooling, FC 1000")
def yolov1_classifier(num_classes: int = 1000, **kwargs: Any) -> YOLOv1Classifier:
    """The first 20 convolutions of Fig. 3 (through the second 1x1x512, 3x3x1024 pair), average
    pooling and a linear classifier: what YOLOv1 pretrains on ImageNet at 224x224 (§2.2)."""
    return YOLOv1Classifier(num_classes=num_classes, **{"convs": YOLOV1_CONVS[:24], **kwargs})


@register_model("yolov1_small_classifier", family="yolo", input_shape=(64, 64, 1), num_classes=10,
                task="classification",
                description="yolov1_small's six convolutions, average pooling, FC 10: its "
                            "pretraining network")
def yolov1_small_classifier(num_classes: int = 10, **kwargs: Any) -> YOLOv1Classifier:
    """``yolov1_small``'s convolutions with average pooling and a linear classifier, to pretrain
    them on digit classification as YOLOv1 pretrains its own on ImageNet (§2.2)."""
    return YOLOv1Classifier(num_classes=num_classes, **{"convs": SMALL_CONVS, **kwargs})
