"""Image classification: softmax cross-entropy on integer labels, top-1 and top-5 accuracy.

Batches hold `image` (uint8 NHWC) and `label` (int); with mixup or cutmix also `targets`, the mixed
label distributions (Zhang et al. 2018; Yun et al. 2019), which the loss then uses instead of the
one-hot labels. A model may return `(logits, *aux_logits)`: GoogLeNet's auxiliary classifiers add
their losses with weight 0.3 during training (Szegedy et al. 2015, §5).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from cnn_jax.losses import cross_entropy, soft_cross_entropy
from cnn_jax.metrics import topk_correct
from cnn_jax.tasks.base import ImageTask

AUX_LOSS_WEIGHT = 0.3


@dataclasses.dataclass(frozen=True)
class ClassificationTask(ImageTask):
    label_smoothing: float = 0.0

    metric_keys = ("loss", "correct1", "correct5", "count", "nonfinite")
    watch = "accuracy"

    def train_loss(self, outputs, batch: dict) -> tuple[jax.Array, dict]:
        aux = ()
        if isinstance(outputs, tuple):
            outputs, *aux = outputs
        if "targets" in batch:
            def criterion(logits):
                return soft_cross_entropy(logits, batch["targets"], self.label_smoothing)
        else:
            def criterion(logits):
                return cross_entropy(logits, batch["label"], self.label_smoothing)
        per_example = criterion(outputs)
        loss = jnp.mean(per_example)
        for logits in aux:
            loss = loss + AUX_LOSS_WEIGHT * jnp.mean(criterion(logits))
        mask = jnp.ones(per_example.shape, jnp.float32)
        return loss, self._sums(outputs.astype(jnp.float32), batch["label"], per_example, mask)

    def eval_sums(self, outputs, batch: dict) -> dict:
        logits = outputs.astype(jnp.float32)
        return self._sums(logits, batch["label"], cross_entropy(logits, batch["label"]),
                          batch["mask"].astype(jnp.float32))

    @staticmethod
    def _sums(logits, labels, loss_per_example, mask) -> dict:
        loss_sum = jnp.sum(loss_per_example * mask)
        return {
            "loss": loss_sum,
            "correct1": jnp.sum(topk_correct(logits, labels, 1) * mask),
            "correct5": jnp.sum(topk_correct(logits, labels, 5) * mask),
            "count": jnp.sum(mask),
            "nonfinite": (~jnp.isfinite(loss_sum)).astype(jnp.float32),
        }

    def summarize(self, sums: dict) -> dict:
        """Averages of the summed metrics: loss, accuracy (top-1), top5_accuracy, and the count."""
        sums = {k: float(v) for k, v in jax.device_get(sums).items()}
        count = max(sums["count"], 1.0)
        return {"loss": sums["loss"] / count, "accuracy": sums["correct1"] / count,
                "top5_accuracy": sums["correct5"] / count, "count": int(sums["count"])}

    def describe(self, metrics: dict) -> str:
        return (f"loss {metrics['loss']:.4f}, accuracy {metrics['accuracy']:.4f}, "
                f"top-5 {metrics['top5_accuracy']:.4f} ({metrics['count']} examples)")

    def progress(self, metrics: dict) -> dict:
        """What the progress bar shows."""
        return {"loss": f"{metrics['loss']:.4f}", "acc": f"{metrics['accuracy']:.4f}"}
