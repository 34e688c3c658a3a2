"""Saliency prediction: where people look in an image (Itti, Koch & Niebur 1998; the MIT saliency
benchmark, Bylinskii et al. 2019).

Batches hold `image`, the ground-truth density `saliency` (float32 NHW in [0, 1]) and the binary
`fixations` map. The model returns one logit per pixel ((N, H, W) or (N, H, W, 1)); its prediction
is the sigmoid of the logits. The loss (`config.loss.name`) is one of the lecture's dense losses,
per image (cnn_jax/losses.py): the pixel losses 'mse', 'ead' and 'mlnet' compare the prediction
with the density in [0, 1]; the distribution losses 'kl_divergence' and 'bhattacharyya' compare
both maps normalised to sum 1.

Evaluation reports the mean loss on device and, on the host from the gathered predictions, the
benchmark's six metrics (CC, KL, SIM, NSS, AUC-Judd, AUC-Borji) and the shuffled AUC
(cnn_jax.metrics.saliency); CC picks the best checkpoint.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from cnn_jax import losses
from cnn_jax.metrics.saliency import METRICS, saliency_scores
from cnn_jax.tasks.base import ImageTask

LOSSES = ("mse", "ead", "mlnet", "kl_divergence", "bhattacharyya")
_LOSS_FUNCTIONS = {"mse": losses.mse, "ead": losses.ead, "mlnet": losses.mlnet_loss,
                   "kl_divergence": losses.kl_divergence, "bhattacharyya": losses.bhattacharyya}
# Random-negative AUCs draw this many splits per image in evaluation (the benchmark's code uses 100;
# the mean over fewer splits has the same expectation).
AUC_SPLITS = 20


@dataclasses.dataclass(frozen=True)
class SaliencyTask(ImageTask):
    loss: str = "kl_divergence"

    reported = ("loss", *METRICS)
    lower_is_better = ("loss", "kl")
    watch = "cc"

    @staticmethod
    def prediction(outputs) -> jax.Array:
        """The predicted map in [0, 1], (N, H, W)."""
        outputs = jnp.asarray(outputs).astype(jnp.float32)
        if outputs.ndim == 4:
            outputs = outputs[..., 0]
        return jax.nn.sigmoid(outputs)

    def _per_image_loss(self, outputs, batch) -> jax.Array:
        if self.loss not in _LOSS_FUNCTIONS:
            raise ValueError(f"loss.name={self.loss!r} is not one of {', '.join(LOSSES)} for saliency")
        return _LOSS_FUNCTIONS[self.loss](self.prediction(outputs), batch["saliency"])

    def train_loss(self, outputs, batch: dict) -> tuple[jax.Array, dict]:
        per_image = self._per_image_loss(outputs, batch)
        loss_sum = jnp.sum(per_image)
        return jnp.mean(per_image), {"loss": loss_sum, "count": jnp.asarray(per_image.shape[0], jnp.float32),
                                     "nonfinite": (~jnp.isfinite(loss_sum)).astype(jnp.float32)}

    def eval_sums(self, outputs, batch: dict) -> dict:
        weights = batch["mask"].astype(jnp.float32)
        loss_sum = jnp.sum(self._per_image_loss(outputs, batch) * weights)
        return {"loss": loss_sum, "count": jnp.sum(weights),
                "nonfinite": (~jnp.isfinite(loss_sum)).astype(jnp.float32)}

    def host_outputs(self, outputs, batch: dict) -> dict:
        return {"prediction": self.prediction(outputs), "saliency": batch["saliency"],
                "fixations": batch["fixations"], "mask": batch["mask"]}

    def host_metrics(self, gathered: dict) -> dict:
        if not gathered:
            return {}
        real = np.asarray(gathered["mask"]) > 0
        scores = saliency_scores(gathered["prediction"][real], gathered["saliency"][real],
                                 gathered["fixations"][real], splits=AUC_SPLITS)
        scores.pop("count")
        return scores

    def summarize(self, sums: dict) -> dict:
        sums = {k: float(v) for k, v in jax.device_get(sums).items()}
        return {"loss": sums["loss"] / max(sums["count"], 1.0), "count": int(sums["count"])}

    def describe(self, metrics: dict) -> str:
        extra = "".join(f", {k} {metrics[k]:.4f}" for k in ("cc", "nss", "auc_judd") if k in metrics)
        return f"loss {metrics['loss']:.4f}{extra} ({metrics['count']} images)"

    def progress(self, metrics: dict) -> dict:
        return {"loss": f"{metrics['loss']:.4f}"}

    def show(self, image, outputs, path, class_names=None) -> str:
        """Writes the predicted map beside the input (`<path>.saliency.png`, white = salient)."""
        target = Path(path).with_suffix(".saliency.png")
        heat = np.asarray(self.prediction(jnp.asarray(outputs)[None]))[0]
        Image.fromarray((heat * 255).round().astype(np.uint8)).save(target)
        return f"{path}: {target} (peak at row {int(np.argmax(heat) // heat.shape[1])}, " \
               f"column {int(np.argmax(heat) % heat.shape[1])})"
