"""Box arithmetic with torchvision's semantics: formats, areas, the IoU family and its losses.

Boxes are ``xyxy`` (``x1, y1, x2, y2``, pixels) unless a function takes a format. Every function
works on fixed shapes, so padded rows pass through and are masked by the caller; nothing here
drops a row.

Degenerate boxes behave as torchvision's do, including its 0/0 cases: the IoU of two zero-area
boxes is ``nan`` (intersection and union are both 0), and so are their generalized, distance and
complete IoUs (``eps`` enters only the enclosing diagonal). The losses add ``eps`` to the union and
the enclosing area and stay finite, except the complete IoU loss of a box with zero width and
height, whose aspect term ``atan(0/0)`` is ``nan``.

- generalized IoU: Rezatofighi et al. 2019, "Generalized Intersection over Union", Algorithm 1
  and Algorithm 2 (the loss ``1 - GIoU``);
- distance and complete IoU: Zheng et al. 2020, "Distance-IoU Loss" (DIoU's centre-distance
  penalty, CIoU's aspect-ratio term ``v`` and its trade-off ``alpha``, which is held constant for
  the gradient, as torchvision does).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

BOX_FORMATS = ("xyxy", "xywh", "cxcywh")
REDUCTIONS = ("none", "mean", "sum")


def _check_format(fmt: str, name: str) -> None:
    if fmt not in BOX_FORMATS:
        raise ValueError(f"{name}={fmt!r} is not a box format: use one of {', '.join(BOX_FORMATS)}")


def _upcast(boxes: jax.Array) -> jax.Array:
    """Narrow floats to float32 and narrow ints to int32, so that products of coordinates do not
    overflow (torchvision's rule)."""
    boxes = jnp.asarray(boxes)
    if boxes.dtype in (jnp.float32, jnp.float64, jnp.int32, jnp.int64):
        return boxes
    wide = jnp.float32 if jnp.issubdtype(boxes.dtype, jnp.floating) else jnp.int32
    return boxes.astype(wide)


def box_convert(boxes: jax.Array, in_fmt: str, out_fmt: str) -> jax.Array:
    """Converts ``(..., 4)`` boxes between ``xyxy``, ``xywh`` (corner + size) and ``cxcywh``
    (centre + size). Conversions between the two size formats pass through ``xyxy``, as
    torchvision's do, so results agree to the last bit."""
    _check_format(in_fmt, "in_fmt")
    _check_format(out_fmt, "out_fmt")
    boxes = jnp.asarray(boxes)
    if in_fmt == out_fmt:
        return boxes
    if in_fmt != "xyxy":
        a, b, c, d = jnp.moveaxis(boxes, -1, 0)
        if in_fmt == "xywh":
            boxes = jnp.stack([a, b, a + c, b + d], axis=-1)
        else:
            boxes = jnp.stack([a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d], axis=-1)
    if out_fmt == "xyxy":
        return boxes
    x1, y1, x2, y2 = jnp.moveaxis(boxes, -1, 0)
    if out_fmt == "xywh":
        return jnp.stack([x1, y1, x2 - x1, y2 - y1], axis=-1)
    return jnp.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=-1)


def box_area(boxes: jax.Array) -> jax.Array:
    """Areas ``(x2 - x1) (y2 - y1)`` of ``(..., 4)`` xyxy boxes; negative for inverted boxes."""
    boxes = _upcast(boxes)
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def _pairwise_inter_union(boxes1: jax.Array, boxes2: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Pairwise intersection and union areas of ``(..., N, 4)`` and ``(..., M, 4)`` boxes."""
    area1, area2 = box_area(boxes1), box_area(boxes2)
    lt = jnp.maximum(boxes1[..., :, None, :2], boxes2[..., None, :, :2])
    rb = jnp.minimum(boxes1[..., :, None, 2:], boxes2[..., None, :, 2:])
    wh = jnp.maximum(_upcast(rb - lt), 0)
    inter = wh[..., 0] * wh[..., 1]
    return inter, area1[..., :, None] + area2[..., None, :] - inter


def _pairwise_enclosing_wh(boxes1: jax.Array, boxes2: jax.Array) -> jax.Array:
    """Width and height of the smallest box enclosing each pair, ``(..., N, M, 2)``."""
    lti = jnp.minimum(boxes1[..., :, None, :2], boxes2[..., None, :, :2])
    rbi = jnp.maximum(boxes1[..., :, None, 2:], boxes2[..., None, :, 2:])
    return jnp.maximum(_upcast(rbi - lti), 0)


def box_iou(boxes1: jax.Array, boxes2: jax.Array) -> jax.Array:
    """Pairwise IoU (Jaccard index) of ``(..., N, 4)`` and ``(..., M, 4)`` boxes:
    ``(..., N, M)``."""
    inter, union = _pairwise_inter_union(boxes1, boxes2)
    return inter / union


def generalized_box_iou(boxes1: jax.Array, boxes2: jax.Array) -> jax.Array:
    """Pairwise generalized IoU, ``IoU - (|C| - |A u B|) / |C|`` with ``C`` the enclosing box
    (Rezatofighi et al. 2019, Algorithm 1): ``(..., N, M)`` in ``[-1, 1]``."""
    inter, union = _pairwise_inter_union(boxes1, boxes2)
    whi = _pairwise_enclosing_wh(boxes1, boxes2)
    areai = whi[..., 0] * whi[..., 1]
    return inter / union - (areai - union) / areai


def _pairwise_diou_iou(
    boxes1: jax.Array, boxes2: jax.Array, eps: float
) -> tuple[jax.Array, jax.Array]:
    iou = box_iou(boxes1, boxes2)
    whi = _pairwise_enclosing_wh(boxes1, boxes2)
    diagonal_squared = whi[..., 0] ** 2 + whi[..., 1] ** 2 + eps
    cx1 = (boxes1[..., 0] + boxes1[..., 2]) / 2
    cy1 = (boxes1[..., 1] + boxes1[..., 3]) / 2
    cx2 = (boxes2[..., 0] + boxes2[..., 2]) / 2
    cy2 = (boxes2[..., 1] + boxes2[..., 3]) / 2
    centres_squared = (
        _upcast(cx1[..., :, None] - cx2[..., None, :]) ** 2
        + _upcast(cy1[..., :, None] - cy2[..., None, :]) ** 2
    )
    return iou - centres_squared / diagonal_squared, iou


def distance_box_iou(boxes1: jax.Array, boxes2: jax.Array, eps: float = 1e-7) -> jax.Array:
    """Pairwise distance IoU, ``IoU - rho^2(b1, b2) / c^2`` with ``rho`` the distance between the
    centres and ``c`` the enclosing box's diagonal (Zheng et al. 2020): ``(..., N, M)``."""
    boxes1, boxes2 = _upcast(boxes1), _upcast(boxes2)
    return _pairwise_diou_iou(boxes1, boxes2, eps)[0]


def complete_box_iou(boxes1: jax.Array, boxes2: jax.Array, eps: float = 1e-7) -> jax.Array:
    """Pairwise complete IoU, ``DIoU - alpha v`` with the aspect-ratio term
    ``v = 4/pi^2 (atan(w1/h1) - atan(w2/h2))^2`` and ``alpha = v / (1 - IoU + v)``
    (Zheng et al. 2020; ``alpha`` carries no gradient): ``(..., N, M)``."""
    boxes1, boxes2 = _upcast(boxes1), _upcast(boxes2)
    diou, iou = _pairwise_diou_iou(boxes1, boxes2, eps)
    w1 = boxes1[..., :, None, 2] - boxes1[..., :, None, 0]
    h1 = boxes1[..., :, None, 3] - boxes1[..., :, None, 1]
    w2 = boxes2[..., None, :, 2] - boxes2[..., None, :, 0]
    h2 = boxes2[..., None, :, 3] - boxes2[..., None, :, 1]
    v = (4 / math.pi**2) * (jnp.arctan(w1 / h1) - jnp.arctan(w2 / h2)) ** 2
    alpha = jax.lax.stop_gradient(v / (1 - iou + v + eps))
    return diou - alpha * v


def clip_boxes_to_image(boxes: jax.Array, size: tuple[int, int] | jax.Array) -> jax.Array:
    """Clamps ``(..., 4)`` xyxy boxes into an image of ``size = (height, width)``: x into
    ``[0, width]``, y into ``[0, height]`` (the size may be a traced array)."""
    boxes = jnp.asarray(boxes)
    height, width = size[0], size[1]
    x = jnp.clip(boxes[..., 0::2], 0, width)
    y = jnp.clip(boxes[..., 1::2], 0, height)
    return jnp.stack([x, y], axis=-1).reshape(boxes.shape)


def remove_small_boxes(boxes: jax.Array, min_size: float) -> jax.Array:
    """Mask of the ``(..., 4)`` xyxy boxes whose width and height are both at least ``min_size``.

    torchvision returns the indices ``where(mask)``; a mask keeps the shape fixed under jit.
    """
    boxes = jnp.asarray(boxes)
    ws, hs = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
    return (ws >= min_size) & (hs >= min_size)


# --- Elementwise losses: boxes1[i] against boxes2[i], shapes (..., 4) ---------------------------


def _reduce(loss: jax.Array, reduction: str) -> jax.Array:
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        # torchvision's mean of no boxes is 0 (it returns 0 * sum), not nan.
        return loss.mean() if loss.size else loss.sum() * 0.0
    raise ValueError(f"reduction={reduction!r} is not one of {', '.join(REDUCTIONS)}")


def _float_boxes(boxes: jax.Array) -> jax.Array:
    boxes = jnp.asarray(boxes)
    return boxes if boxes.dtype in (jnp.float32, jnp.float64) else boxes.astype(jnp.float32)


def _elementwise_inter_union(boxes1: jax.Array, boxes2: jax.Array) -> tuple[jax.Array, jax.Array]:
    x1, y1, x2, y2 = jnp.moveaxis(boxes1, -1, 0)
    x1g, y1g, x2g, y2g = jnp.moveaxis(boxes2, -1, 0)
    xk1, yk1 = jnp.maximum(x1, x1g), jnp.maximum(y1, y1g)
    xk2, yk2 = jnp.minimum(x2, x2g), jnp.minimum(y2, y2g)
    overlaps = (yk2 > yk1) & (xk2 > xk1)
    inter = jnp.where(overlaps, (xk2 - xk1) * (yk2 - yk1), 0.0)
    union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - inter
    return inter, union


def _enclosing_corners(boxes1: jax.Array, boxes2: jax.Array) -> tuple[jax.Array, ...]:
    return (
        jnp.minimum(boxes1[..., 0], boxes2[..., 0]),
        jnp.minimum(boxes1[..., 1], boxes2[..., 1]),
        jnp.maximum(boxes1[..., 2], boxes2[..., 2]),
        jnp.maximum(boxes1[..., 3], boxes2[..., 3]),
    )


def generalized_box_iou_loss(
    boxes1: jax.Array, boxes2: jax.Array, reduction: str = "none", eps: float = 1e-7
) -> jax.Array:
    """``1 - GIoU`` of corresponding boxes (Rezatofighi et al. 2019, Algorithm 2), with
    ``eps`` added to the union and the enclosing area; ``reduction`` is none, mean or sum."""
    boxes1, boxes2 = _float_boxes(boxes1), _float_boxes(boxes2)
    inter, union = _elementwise_inter_union(boxes1, boxes2)
    iou = inter / (union + eps)
    xc1, yc1, xc2, yc2 = _enclosing_corners(boxes1, boxes2)
    area_c = (xc2 - xc1) * (yc2 - yc1)
    return _reduce(1 - (iou - (area_c - union) / (area_c + eps)), reduction)


def _diou_loss_and_iou(
    boxes1: jax.Array, boxes2: jax.Array, eps: float
) -> tuple[jax.Array, jax.Array]:
    inter, union = _elementwise_inter_union(boxes1, boxes2)
    iou = inter / (union + eps)
    xc1, yc1, xc2, yc2 = _enclosing_corners(boxes1, boxes2)
    diagonal_squared = (xc2 - xc1) ** 2 + (yc2 - yc1) ** 2 + eps
    dx = (boxes1[..., 2] + boxes1[..., 0]) / 2 - (boxes2[..., 0] + boxes2[..., 2]) / 2
    dy = (boxes1[..., 3] + boxes1[..., 1]) / 2 - (boxes2[..., 1] + boxes2[..., 3]) / 2
    return 1 - iou + (dx**2 + dy**2) / diagonal_squared, iou


def distance_box_iou_loss(
    boxes1: jax.Array, boxes2: jax.Array, reduction: str = "none", eps: float = 1e-7
) -> jax.Array:
    """``1 - DIoU`` of corresponding boxes (Zheng et al. 2020); ``reduction`` is none, mean or
    sum."""
    boxes1, boxes2 = _float_boxes(boxes1), _float_boxes(boxes2)
    return _reduce(_diou_loss_and_iou(boxes1, boxes2, eps)[0], reduction)


def complete_box_iou_loss(
    boxes1: jax.Array, boxes2: jax.Array, reduction: str = "none", eps: float = 1e-7
) -> jax.Array:
    """``1 - CIoU`` of corresponding boxes (Zheng et al. 2020; ``alpha`` carries no gradient).
    As in torchvision, ``eps`` enters ``alpha`` but the DIoU part keeps its default 1e-7."""
    boxes1, boxes2 = _float_boxes(boxes1), _float_boxes(boxes2)
    diou_loss, iou = _diou_loss_and_iou(boxes1, boxes2, 1e-7)
    w1 = boxes1[..., 2] - boxes1[..., 0]
    h1 = boxes1[..., 3] - boxes1[..., 1]
    w2 = boxes2[..., 2] - boxes2[..., 0]
    h2 = boxes2[..., 3] - boxes2[..., 1]
    v = (4 / math.pi**2) * (jnp.arctan(w2 / h2) - jnp.arctan(w1 / h1)) ** 2
    alpha = jax.lax.stop_gradient(v / (1 - iou + v + eps))
    return _reduce(diou_loss + alpha * v, reduction)
