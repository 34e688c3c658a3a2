"""Semantic segmentation: a class for every pixel (Long, Shelhamer & Darrell 2015).

Batches hold `image` (uint8 NHWC) and `segmentation` (uint8 NHW: the class of each pixel, 0 the
background, `ignore_index` where a pixel must not count: borders, void, the rim of a generated
digit); models return per-pixel logits (N, H, W, K) at the input resolution (or {'out': ..., 'aux': ...}
with torchvision's auxiliary head, whose loss then joins with weight 0.5).

The loss is the mean over the batch's counted pixels of the per-pixel softmax cross-entropy (with
optional class weights: PyTorch's `CrossEntropyLoss(weight, ignore_index)`), or the per-pixel
sigmoid focal loss against one-hot targets (Lin et al. 2017) summed over classes. Evaluation
accumulates an exact int32 confusion matrix on device (padded examples and ignored pixels
excluded), from which the host computes pixel accuracy, mean accuracy, per-class and mean IoU.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from cnn_jax import losses
from cnn_jax.metrics import confusion_counts, segmentation_scores
from cnn_jax.tasks.base import ImageTask
from cnn_jax.tasks.overlay import overlay

LOSSES = ("cross_entropy", "focal")
AUX_LOSS_WEIGHT = 0.5


@dataclasses.dataclass(frozen=True)
class SegmentationTask(ImageTask):
    num_classes: int = 2
    ignore_index: int = 255
    loss: str = "cross_entropy"
    class_weights: tuple[float, ...] = ()
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0

    metric_keys = ("loss", "count", "nonfinite", "confusion")
    reported = ("loss", "pixel_accuracy", "mean_accuracy", "mean_iou", "frequency_weighted_iou")
    watch = "mean_iou"

    def zero_sums(self) -> dict:
        sums = {k: jnp.zeros((), jnp.float32) for k in ("loss", "count", "nonfinite")}
        return {**sums, "confusion": jnp.zeros((self.num_classes, self.num_classes), jnp.int32)}

    def pixel_loss(self, logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(loss, weight) per pixel; the mean loss is sum(loss) / sum(weight)."""
        if self.loss == "cross_entropy":
            return losses.pixel_cross_entropy(logits, labels, ignore_index=self.ignore_index,
                                              class_weights=self.class_weights or None)
        if self.loss == "focal":
            valid = (labels != self.ignore_index).astype(jnp.float32)
            one_hot = jax.nn.one_hot(jnp.where(labels == self.ignore_index, 0, labels), logits.shape[-1])
            focal = losses.sigmoid_focal_loss(logits, one_hot, self.focal_alpha, self.focal_gamma)
            return jnp.sum(focal, axis=-1) * valid, valid
        raise ValueError(f"loss.name={self.loss!r} is not one of {', '.join(LOSSES)} for segmentation")

    def _sums(self, logits, labels, example_weights) -> tuple[jax.Array, dict]:
        logits = logits.astype(jnp.float32)
        loss, weight = self.pixel_loss(logits, labels)
        weight = weight * example_weights[:, None, None]
        loss = loss * example_weights[:, None, None]
        loss_sum, count = jnp.sum(loss), jnp.sum(weight)
        confusion = confusion_counts(jnp.argmax(logits, axis=-1), labels, self.num_classes,
                                     ignore_index=self.ignore_index, weights=example_weights)
        sums = {"loss": loss_sum, "count": count, "nonfinite": (~jnp.isfinite(loss_sum)).astype(jnp.float32),
                "confusion": confusion}
        return loss_sum / jnp.maximum(count, 1.0), sums

    def train_loss(self, outputs, batch: dict) -> tuple[jax.Array, dict]:
        labels = batch["segmentation"]
        weights = jnp.ones(labels.shape[:1], jnp.float32)
        main, aux = (outputs["out"], outputs.get("aux")) if isinstance(outputs, dict) else (outputs, None)
        loss, sums = self._sums(main, labels, weights)
        if aux is not None:  # torchvision's auxiliary FCN head on layer3, weighted 0.5 in its recipe
            loss = loss + AUX_LOSS_WEIGHT * self._sums(aux, labels, weights)[0]
        return loss, sums

    def eval_sums(self, outputs, batch: dict) -> dict:
        main = outputs["out"] if isinstance(outputs, dict) else outputs
        return self._sums(main, batch["segmentation"], batch["mask"].astype(jnp.float32))[1]

    def summarize(self, sums: dict) -> dict:
        """Mean loss per counted pixel, the IoU family of metrics, and the pixel count."""
        sums = jax.device_get(sums)
        count = float(sums["count"])
        return {"loss": float(sums["loss"]) / max(count, 1.0), **segmentation_scores(sums["confusion"]),
                "count": int(count)}

    def describe(self, metrics: dict) -> str:
        return (f"loss {metrics['loss']:.4f}, mean IoU {metrics['mean_iou']:.4f}, pixel accuracy "
                f"{metrics['pixel_accuracy']:.4f} ({metrics['count']} pixels)")

    def progress(self, metrics: dict) -> dict:
        return {"loss": f"{metrics['loss']:.4f}", "miou": f"{metrics['mean_iou']:.3f}"}

    def show(self, image, outputs, path, class_names=None) -> str:
        """Writes the predicted classes over the image, `<path>.segmentation.png` beside the input
        (one colour per class, background uncoloured); returns a line naming it and the classes seen."""
        outputs = outputs["out"] if isinstance(outputs, dict) else outputs
        prediction = np.asarray(jnp.argmax(jnp.asarray(outputs), axis=-1))
        target = Path(path).with_suffix(".segmentation.png")
        Image.fromarray(overlay(np.asarray(image), prediction)).save(target)
        seen = [int(c) for c in np.unique(prediction) if c != 0]
        names = [class_names[c] if class_names else str(c) for c in seen]
        return f"{path}: {target} ({', '.join(names) or 'background only'})"
