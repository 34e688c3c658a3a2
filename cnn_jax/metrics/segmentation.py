"""Semantic segmentation metrics from an exactly accumulated confusion matrix (Long, Shelhamer &
Darrell 2015, §5).

With n_ij the number of pixels of class i predicted as class j and t_i = sum_j n_ij the pixels of
class i: pixel accuracy sum_i n_ii / sum_i t_i; mean accuracy (1/n_cl) sum_i n_ii / t_i; the
intersection over union of class i, IoU_i = n_ii / (t_i + sum_j n_ji - n_ii); mean IoU the mean of
IoU_i; frequency-weighted IoU (sum_k t_k)^-1 sum_i t_i IoU_i. A class with no pixel in the ground
truth and none predicted has no IoU and is left out of the means (as FCN's evaluation code does).

`confusion_counts` runs on device inside an evaluation step, in int32 (exact up to 2^31 pixels a
cell: float32 would stop counting exactly at 2^24, a few hundred VOC images); `segmentation_scores`
turns the summed matrix into the metrics on the host.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def confusion_counts(predictions: jax.Array, labels: jax.Array, num_classes: int, *,
                     ignore_index: int = 255, weights: jax.Array | None = None) -> jax.Array:
    """(num_classes, num_classes) int32 counts of (label, prediction) pixel pairs.

    Pixels whose label is `ignore_index` (or outside [0, num_classes)) and pixels of padding
    examples (`weights` 0, broadcast against the labels from the left) are not counted.
    """
    labels = labels.astype(jnp.int32)
    valid = (labels >= 0) & (labels < num_classes) & (labels != ignore_index)
    if weights is not None:
        valid = valid & (weights.reshape(weights.shape + (1,) * (labels.ndim - weights.ndim)) > 0)
    index = jnp.where(valid, labels * num_classes + predictions.astype(jnp.int32), num_classes * num_classes)
    counts = jnp.bincount(index.reshape(-1), length=num_classes * num_classes + 1)
    return counts[:-1].reshape(num_classes, num_classes).astype(jnp.int32)


def segmentation_scores(confusion: np.ndarray) -> dict:
    """Pixel accuracy, mean accuracy, mean IoU, frequency-weighted IoU and the per-class IoU
    (None for a class absent from both labels and predictions) of a summed confusion matrix."""
    n = np.asarray(confusion, dtype=np.float64)
    truth, predicted, hits = n.sum(axis=1), n.sum(axis=0), np.diag(n)
    union = truth + predicted - hits
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, hits / union, np.nan)
        class_accuracy = np.where(truth > 0, hits / truth, np.nan)
    total = truth.sum()
    present = ~np.isnan(iou)
    return {
        "pixel_accuracy": float(hits.sum() / total) if total else 0.0,
        "mean_accuracy": float(np.nanmean(class_accuracy)) if np.any(truth > 0) else 0.0,
        "mean_iou": float(np.mean(iou[present])) if present.any() else 0.0,
        "frequency_weighted_iou": float(np.sum(truth[present] * iou[present]) / total) if total else 0.0,
        "per_class_iou": [None if np.isnan(v) else float(v) for v in iou],
    }
