"""Image classification: one label per image, top-1 and top-5 accuracy.

Batches hold `image` (uint8 NHWC) and `label` (int); with mixup or cutmix also `targets`, the mixed
label distributions (Zhang et al. 2018; Yun et al. 2019), which the loss then uses instead of the
one-hot labels. A model may return `(logits, *aux_logits)`: GoogLeNet's auxiliary classifiers add
their losses with weight 0.3 during training (Szegedy et al. 2015, §5).

The loss (`config.loss.name`) is computed on the logits (softmax cross-entropy, optionally with
label smoothing) or on the softmax probabilities or per-class sigmoids the lectures compare:
mean squared error and the half-sum-of-squares total error against one-hot targets, categorical
cross-entropy on probabilities, one sigmoid per class with binary cross-entropy or the focal loss.
The reported `loss` is always the loss being minimised.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from cnn_jax import losses
from cnn_jax.metrics import topk_correct
from cnn_jax.tasks.base import ImageTask

AUX_LOSS_WEIGHT = 0.3
LOSSES = ("cross_entropy", "categorical_cross_entropy", "mse", "total_error",
          "sigmoid_binary_cross_entropy", "focal")


@dataclasses.dataclass(frozen=True)
class ClassificationTask(ImageTask):
    loss: str = "cross_entropy"
    label_smoothing: float = 0.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0

    metric_keys = ("loss", "correct1", "correct5", "count", "nonfinite")
    reported = ("loss", "accuracy", "top5_accuracy")
    watch = "accuracy"

    def per_example_loss(self, logits: jax.Array, targets: jax.Array) -> jax.Array:
        """The loss of each example against target distributions (one-hot labels or mixed)."""
        if self.loss == "cross_entropy":
            return losses.soft_cross_entropy(logits, targets, self.label_smoothing)
        if self.loss == "categorical_cross_entropy":
            return losses.categorical_cross_entropy(jax.nn.softmax(logits.astype(jnp.float32)), targets)
        if self.loss == "mse":
            return losses.mse(jax.nn.softmax(logits.astype(jnp.float32)), targets)
        if self.loss == "total_error":
            return losses.total_error(jax.nn.softmax(logits.astype(jnp.float32)), targets)
        if self.loss == "sigmoid_binary_cross_entropy":
            return jnp.sum(losses.sigmoid_binary_cross_entropy(logits, targets), axis=-1)
        if self.loss == "focal":
            return jnp.sum(losses.sigmoid_focal_loss(logits, targets, self.focal_alpha, self.focal_gamma),
                           axis=-1)
        raise ValueError(f"loss.name={self.loss!r} is not one of {', '.join(LOSSES)} for classification")

    def _targets(self, batch: dict, num_classes: int) -> jax.Array:
        if "targets" in batch:
            return batch["targets"]
        return jax.nn.one_hot(batch["label"], num_classes)

    def train_loss(self, outputs, batch: dict) -> tuple[jax.Array, dict]:
        aux = ()
        if isinstance(outputs, tuple):
            outputs, *aux = outputs
        targets = self._targets(batch, outputs.shape[-1])
        per_example = self.per_example_loss(outputs, targets)
        loss = jnp.mean(per_example)
        for logits in aux:
            loss = loss + AUX_LOSS_WEIGHT * jnp.mean(self.per_example_loss(logits, targets))
        mask = jnp.ones(per_example.shape, jnp.float32)
        return loss, self._sums(outputs.astype(jnp.float32), batch["label"], per_example, mask)

    def eval_sums(self, outputs, batch: dict) -> dict:
        logits = outputs.astype(jnp.float32)
        # Evaluation reports the loss without label smoothing (the test loss of the plain targets).
        plain = dataclasses.replace(self, label_smoothing=0.0)
        per_example = plain.per_example_loss(logits, jax.nn.one_hot(batch["label"], logits.shape[-1]))
        return self._sums(logits, batch["label"], per_example, batch["mask"].astype(jnp.float32))

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

    def show(self, image, outputs, path, class_names=None) -> str:
        """One line: the top-5 classes of one image with their softmax probabilities."""
        probabilities = jax.nn.softmax(jnp.asarray(outputs, jnp.float32))
        top = jnp.argsort(-probabilities)[:5]
        names = [class_names[int(i)] if class_names else str(int(i)) for i in top]
        return f"{path}: " + ", ".join(f"{n} {float(probabilities[i]):.3f}" for n, i in zip(names, top, strict=True))
