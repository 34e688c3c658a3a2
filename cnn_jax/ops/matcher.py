"""Assigning ground truth to anchors or proposals, and sampling a balanced training set from them.

:func:`match` is torchvision's ``Matcher`` (Faster R-CNN's rule, Ren et al. 2015, section 3.1.2):
each prediction takes the ground-truth box it overlaps most; overlaps below ``low`` make it
background (:data:`BELOW_LOW_THRESHOLD`), overlaps in ``[low, high)`` leave it out of the loss
(:data:`BETWEEN_THRESHOLDS`). With ``allow_low_quality_matches`` every ground-truth box also keeps
the predictions it overlaps most (ties included) even below ``high``, the paper's "anchor with the
highest IoU" rule that leaves no object without an anchor.

:func:`sample_balanced` is ``BalancedPositiveNegativeSampler`` (Ren et al. 2015, section 3.1.3:
256 anchors per image, up to half of them positive; Girshick 2015, section 2.3: 25% foreground
RoIs) with a JAX key and masks of fixed shape.

Ground truth and predictions may be padded: ``gt_mask`` / ``pred_mask`` mark the real rows. A
padded ground-truth row is never matched; a padded prediction gets :data:`BETWEEN_THRESHOLDS`, the
label the samplers ignore; with no real ground truth every real prediction is background (the
torchvision detectors' rule for images without objects; its ``Matcher`` refuses them).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

BELOW_LOW_THRESHOLD = -1
BETWEEN_THRESHOLDS = -2


def match(
    quality: jax.Array,
    high: float,
    low: float,
    allow_low_quality_matches: bool = False,
    gt_mask: jax.Array | None = None,
    pred_mask: jax.Array | None = None,
) -> jax.Array:
    """Index of the matched ground-truth row for each prediction, or a negative label.

    ``quality`` is ``(M, N)``: ground truth by prediction (e.g. ``box_iou(gt, anchors)``).
    Returns ``(N,)`` int32: in ``[0, M)`` for a match (quality ``>= high``),
    :data:`BELOW_LOW_THRESHOLD` (-1) below ``low``, :data:`BETWEEN_THRESHOLDS` (-2) in between.
    Ties between ground-truth rows go to the lower index, as in torch's ``max``.
    """
    if low > high:
        raise ValueError(f"match: low={low} is above high={high}: pass low <= high")
    quality = jnp.asarray(quality)
    m, n = quality.shape
    if gt_mask is not None:
        quality = jnp.where(jnp.asarray(gt_mask, bool)[:, None], quality, -jnp.inf)
    if m == 0 or n == 0:
        matches = jnp.full((n,), BELOW_LOW_THRESHOLD, jnp.int32)
    else:
        matched_vals = quality.max(axis=0)
        all_matches = jnp.argmax(quality, axis=0).astype(jnp.int32)
        matches = jnp.where(matched_vals < low, BELOW_LOW_THRESHOLD,
                            jnp.where(matched_vals < high, BETWEEN_THRESHOLDS, all_matches))
        if allow_low_quality_matches:
            real = quality if pred_mask is None else jnp.where(pred_mask, quality, -jnp.inf)
            best_for_gt = real.max(axis=1, keepdims=True)
            # A padded ground-truth row is all -inf: its "best" must not select anything.
            is_best = (real == best_for_gt) & (best_for_gt > -jnp.inf)
            matches = jnp.where(is_best.any(axis=0), all_matches, matches)
    if pred_mask is not None:
        matches = jnp.where(jnp.asarray(pred_mask, bool), matches, BETWEEN_THRESHOLDS)
    return matches


def sample_balanced(
    key: jax.Array,
    labels: jax.Array,
    batch_size_per_image: int,
    positive_fraction: float,
) -> tuple[jax.Array, jax.Array]:
    """A random training subset of one image's ``(N,)`` ``labels`` (``>= 1`` positive, ``0``
    negative, ``-1`` ignored): ``(positive_mask, negative_mask)``, both ``(N,)`` bool.

    Up to ``int(batch_size_per_image * positive_fraction)`` positives, drawn uniformly without
    replacement, then negatives up to ``batch_size_per_image`` in all, as torchvision's sampler
    does. Each subset is the lowest-ranked members under a uniform random key per element.
    """
    labels = jnp.asarray(labels)
    positive, negative = labels >= 1, labels == 0
    num_pos = jnp.minimum(positive.sum(), int(batch_size_per_image * positive_fraction))
    num_neg = jnp.minimum(negative.sum(), batch_size_per_image - num_pos)
    key_pos, key_neg = jax.random.split(key)

    def draw(key, members, k):
        priority = jnp.where(members, jax.random.uniform(key, labels.shape), 2.0)
        rank = jnp.argsort(jnp.argsort(priority, stable=True), stable=True)
        return members & (rank < k)

    return draw(key_pos, positive, num_pos), draw(key_neg, negative, num_neg)
