"""Box regression targets and the losses on them, equal to torchvision's ``BoxCoder`` and torch's
``smooth_l1_loss`` / ``l1_loss``.

The parameterisation is R-CNN's (Girshick et al. 2014, appendix C; Ren et al. 2015, eq. 2): a box
is coded relative to a reference box (anchor or proposal) of centre ``(x_a, y_a)`` and size
``(w_a, h_a)`` as ``t_x = (x - x_a) / w_a``, ``t_y = (y - y_a) / h_a``, ``t_w = log(w / w_a)``,
``t_h = log(h / h_a)``, each multiplied by a weight (Fast/Faster R-CNN's box head uses
``(10, 10, 5, 5)``, the RPN and RetinaNet ``(1, 1, 1, 1)``). Decoding clamps ``t_w`` and ``t_h``
at ``log(1000 / 16)`` before the exponential, so no box grows more than 1000/16 times its
reference. The smooth L1 loss is Fast R-CNN's (Girshick 2015, eq. 3) with torch's ``beta``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from cnn_jax.ops._numerics import divide

BBOX_XFORM_CLIP = math.log(1000.0 / 16)
REDUCTIONS = ("none", "mean", "sum")


def encode(
    reference_boxes: jax.Array,
    proposals: jax.Array,
    weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
) -> jax.Array:
    """Regression targets ``(..., 4)`` that take ``proposals`` (anchors) to ``reference_boxes``
    (matched ground truth), both ``(..., 4)`` xyxy: torchvision's ``BoxCoder.encode_single``."""
    reference_boxes, proposals = jnp.asarray(reference_boxes), jnp.asarray(proposals)
    wx, wy, ww, wh = (jnp.asarray(w, reference_boxes.dtype) for w in weights)
    ex_w = proposals[..., 2] - proposals[..., 0]
    ex_h = proposals[..., 3] - proposals[..., 1]
    ex_x = proposals[..., 0] + 0.5 * ex_w
    ex_y = proposals[..., 1] + 0.5 * ex_h
    gt_w = reference_boxes[..., 2] - reference_boxes[..., 0]
    gt_h = reference_boxes[..., 3] - reference_boxes[..., 1]
    gt_x = reference_boxes[..., 0] + 0.5 * gt_w
    gt_y = reference_boxes[..., 1] + 0.5 * gt_h
    return jnp.stack([wx * (gt_x - ex_x) / ex_w,
                      wy * (gt_y - ex_y) / ex_h,
                      ww * jnp.log(gt_w / ex_w),
                      wh * jnp.log(gt_h / ex_h)], axis=-1)


def decode(
    rel_codes: jax.Array,
    boxes: jax.Array,
    weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
    bbox_xform_clip: float = BBOX_XFORM_CLIP,
) -> jax.Array:
    """Boxes ``(..., 4 k)`` xyxy from codes ``(..., 4 k)`` (``k`` boxes per reference, e.g. one
    per class) relative to reference ``boxes`` ``(..., 4)``: torchvision's
    ``BoxCoder.decode_single``."""
    rel_codes = jnp.asarray(rel_codes)
    boxes = jnp.asarray(boxes).astype(rel_codes.dtype)
    widths = boxes[..., 2] - boxes[..., 0]
    heights = boxes[..., 3] - boxes[..., 1]
    ctr_x = (boxes[..., 0] + 0.5 * widths)[..., None]
    ctr_y = (boxes[..., 1] + 0.5 * heights)[..., None]
    wx, wy, ww, wh = weights
    dx = divide(rel_codes[..., 0::4], wx)
    dy = divide(rel_codes[..., 1::4], wy)
    dw = jnp.minimum(divide(rel_codes[..., 2::4], ww), bbox_xform_clip)
    dh = jnp.minimum(divide(rel_codes[..., 3::4], wh), bbox_xform_clip)
    pred_x = dx * widths[..., None] + ctr_x
    pred_y = dy * heights[..., None] + ctr_y
    half_w = 0.5 * (jnp.exp(dw) * widths[..., None])
    half_h = 0.5 * (jnp.exp(dh) * heights[..., None])
    pred = jnp.stack([pred_x - half_w, pred_y - half_h, pred_x + half_w, pred_y + half_h], axis=-1)
    return pred.reshape(rel_codes.shape)


def _reduce(loss: jax.Array, reduction: str) -> jax.Array:
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    raise ValueError(f"reduction={reduction!r} is not one of {', '.join(REDUCTIONS)}")


def smooth_l1_loss(
    input: jax.Array, target: jax.Array, beta: float = 1.0, reduction: str = "mean"
) -> jax.Array:
    """Smooth L1 (Huber-like) loss: ``0.5 d^2 / beta`` where ``|d| < beta``, else
    ``|d| - 0.5 beta`` (``beta = 0`` is L1), as torch's; the detectors use ``beta = 1/9`` with
    ``reduction='sum'`` and divide by the sampled count themselves."""
    d = jnp.abs(jnp.asarray(input) - jnp.asarray(target))
    if beta == 0:
        return _reduce(d, reduction)
    return _reduce(jnp.where(d < beta, divide(0.5 * d * d, beta), d - 0.5 * beta), reduction)


def l1_loss(input: jax.Array, target: jax.Array, reduction: str = "mean") -> jax.Array:
    """``|input - target|`` with torch's reductions."""
    return _reduce(jnp.abs(jnp.asarray(input) - jnp.asarray(target)), reduction)
