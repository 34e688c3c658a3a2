"""Greedy non-maximum suppression under jit, with torchvision's semantics and fixed shapes.

NMS keeps the highest-scoring box, discards every remaining box whose IoU with it is strictly
greater than the threshold, and repeats on what is left (the greedy procedure of Felzenszwalb et
al. 2010 and of the R-CNN detectors: Girshick et al. 2014, Ren et al. 2015). Results equal
``torchvision.ops.nms`` on the CPU: boxes are visited in decreasing score order with ties taken
lower index first (as torchvision's CPU kernel takes them), the IoU is computed with the kernel's
own arithmetic, ``inter / (area_i + area_j - inter)``, and compared with the threshold as the
kernel compares it, in double precision. Two zero-area boxes have IoU ``0/0 = nan``, which is not
greater than any threshold, so they never suppress each other.

Fixed shapes: the kept indices come back padded with ``-1`` to ``max_output_size`` entries,
with their ``count``; an optional ``valid`` mask leaves padding rows out entirely.

The loop runs once per *kept* box, not once per box: each step takes the first still-alive box in
score order (an argmax over a boolean vector), computes its IoU with all ``N`` boxes and clears
the ones it suppresses. Work is ``O(kept x N)``, as in torchvision's kernel, and memory is
``O(N)``: no ``N x N`` IoU matrix is built (at 10k boxes that would be 400 MB of float32, or a
100 MB boolean matrix). The loop stops early once ``max_output_size`` boxes are kept.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


def _threshold_below(threshold: float, dtype: np.dtype) -> float:
    """The largest ``dtype`` value not above ``threshold``.

    torchvision compares the float32 IoU with the threshold as a double; for a float32 ``x``,
    ``x > t`` holds exactly when ``x`` exceeds the largest float32 not above ``t``. Rounding ``t``
    to nearest instead would disagree when the IoU equals that rounded value (e.g. ``t = 0.3``).
    """
    t = np.asarray(threshold, np.float64)
    below = t.astype(dtype)
    if below > t:
        below = np.nextafter(below, np.asarray(-np.inf, dtype))
    return float(below)


def _greedy_nms(
    boxes: jax.Array,
    scores: jax.Array,
    iou_threshold: float | jax.Array,
    max_output_size: int,
    valid: jax.Array | None,
    classes: jax.Array | None,
) -> tuple[jax.Array, jax.Array]:
    boxes = jnp.asarray(boxes)
    scores = jnp.asarray(scores)
    n = boxes.shape[0]
    if boxes.ndim != 2 or boxes.shape[-1] != 4 or scores.shape != (n,):
        raise ValueError(f"nms expects boxes (N, 4) and scores (N,), got {boxes.shape} and "
                         f"{scores.shape}: pass one image's boxes (vmap over a batch)")
    if max_output_size < 0:
        raise ValueError(f"max_output_size={max_output_size} must be >= 0")
    empty = jnp.full((max_output_size,), -1, jnp.int32)
    if n == 0 or max_output_size == 0:
        return empty, jnp.zeros((), jnp.int32)

    order = jnp.argsort(scores, descending=True, stable=True).astype(jnp.int32)
    x1, y1, x2, y2 = jnp.moveaxis(boxes[order], -1, 0)
    areas = (x2 - x1) * (y2 - y1)
    iou_dtype = areas.dtype if jnp.issubdtype(areas.dtype, jnp.floating) else jnp.float32
    if isinstance(iou_threshold, int | float):
        iou_threshold = _threshold_below(iou_threshold, np.dtype(iou_dtype))
    alive = jnp.ones((n,), bool) if valid is None else jnp.asarray(valid, bool)[order]
    sorted_classes = None if classes is None else jnp.asarray(classes)[order]

    def still_running(state):
        count, alive, _ = state
        return (count < max_output_size) & jnp.any(alive)

    def keep_next(state):
        count, alive, keep = state
        i = jnp.argmax(alive)  # the first alive box in score order
        keep = keep.at[count].set(order[i])
        w = jnp.maximum(0, jnp.minimum(x2[i], x2) - jnp.maximum(x1[i], x1))
        h = jnp.maximum(0, jnp.minimum(y2[i], y2) - jnp.maximum(y1[i], y1))
        inter = w * h
        suppress = inter / (areas[i] + areas - inter) > iou_threshold
        if sorted_classes is not None:
            suppress &= sorted_classes == sorted_classes[i]
        alive = alive & ~suppress
        return count + 1, alive.at[i].set(False), keep

    count, _, keep = lax.while_loop(
        still_running, keep_next, (jnp.zeros((), jnp.int32), alive, empty)
    )
    return keep, count


def nms(
    boxes: jax.Array,
    scores: jax.Array,
    iou_threshold: float | jax.Array,
    max_output_size: int,
    valid: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Greedy NMS of ``(N, 4)`` xyxy ``boxes`` with ``(N,)`` ``scores``.

    Returns ``(indices, count)``: ``indices`` is ``(max_output_size,)`` int32, the kept boxes in
    decreasing score order (ties: lower index first) followed by ``-1``; ``count`` is how many are
    kept. A box is suppressed by a kept box when their IoU is strictly greater than
    ``iou_threshold``. Rows where ``valid`` is False are never kept and never suppress.
    ``max_output_size`` is static; ``iou_threshold`` may be traced (a Python number is compared
    as torchvision compares it, in double precision).
    """
    return _greedy_nms(boxes, scores, iou_threshold, max_output_size, valid, None)


def batched_nms(
    boxes: jax.Array,
    scores: jax.Array,
    idxs: jax.Array,
    iou_threshold: float | jax.Array,
    max_output_size: int,
    valid: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """NMS within each category ``idxs`` (``(N,)`` ints): boxes of different categories never
    suppress each other. Returns ``(indices, count)`` as :func:`nms` does.

    torchvision gets the same result by shifting each category's boxes by
    ``idx * (max coordinate + 1)`` and running one NMS (or, for many boxes on the CPU, by one NMS
    per category). Here the category test sits inside the suppression step instead: the IoUs are
    those of the original coordinates (a shift by a large offset rounds them in float32), and
    boxes with negative coordinates, which the shift can make overlap across categories, are
    handled too.
    """
    idxs = jnp.asarray(idxs)
    if idxs.shape != (jnp.shape(boxes)[0],):
        raise ValueError(f"batched_nms expects idxs of shape ({jnp.shape(boxes)[0]},), got "
                         f"{idxs.shape}: pass one category per box")
    return _greedy_nms(boxes, scores, iou_threshold, max_output_size, valid, idxs)
