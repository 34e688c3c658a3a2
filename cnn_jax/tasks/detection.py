"""Object detection and localisation: boxes around the objects of an image and their classes.

Batches hold `image`, `boxes` (N, max_boxes, 4: xyxy pixels), `classes` (N, max_boxes: 0..K-1,
background is not a class), `box_mask` (N, max_boxes: real rows) and, for instance segmentation,
`instances` (N, H, W: 0 none, i + 1 box row i). The detector defines its own loss and decoding
(YOLO's, RetinaNet's focal loss, the R-CNN losses): a detector module provides
`loss(outputs, batch) -> (loss, parts)` and `detect(outputs) -> {boxes, scores, classes, count[,
masks]}` with fixed shapes; the task calls them on the run's (unbound) model, and gives two-stage
detectors the ground truth in training (`model_kwargs`).

Evaluation gathers the detections and the ground truth of every image on the host and reports
COCO's twelve statistics (cnn_jax.metrics.coco_evaluate; with masks also `mask_`-prefixed
statistics from COCO's segm IoU) and Pascal VOC's mAP at IoU 0.5 (all-point). AP50 picks the best
checkpoint.

Localisation (one object per image: the lecture's "N x K + N x 4" outputs) is classification plus
one box: accuracy, the mean IoU of the predicted box with the true one, and the fraction of images
with both the class right and IoU >= 0.5, all as sums on device.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from cnn_jax.metrics import coco_evaluate, error_breakdown, topk_correct, voc_evaluate
from cnn_jax.ops import box_iou, instance_masks
from cnn_jax.tasks.base import ImageTask
from cnn_jax.tasks.overlay import draw_boxes

COCO_KEYS = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR1", "AR10", "AR100",
             "AR_small", "AR_medium", "AR_large")
GROUND_TRUTH = ("boxes", "classes", "box_mask")


def _loss_sums(loss, count, counted: bool) -> dict:
    return {"loss": loss * count if counted else jnp.zeros((), jnp.float32),
            "loss_count": count if counted else jnp.zeros((), jnp.float32),
            "count": count, "nonfinite": (~jnp.isfinite(loss)).astype(jnp.float32)}


@dataclasses.dataclass(frozen=True)
class DetectionTask(ImageTask):
    model: Any = None  # the run's detector module (unbound): its loss and detect methods
    loss: str = "detector"
    masks: bool = False  # also evaluate instance masks (Mask R-CNN)

    metric_keys = ("loss", "loss_count", "count", "nonfinite")
    reported = ("loss", *COCO_KEYS, "voc_mAP")
    watch = "AP50"

    def model_kwargs(self, batch: dict, train: bool) -> dict:
        """Two-stage detectors sample their training proposals from the ground truth."""
        if train and "targets" in inspect.signature(self.model.__call__).parameters:
            keys = (*GROUND_TRUTH, "instances") if "instances" in batch else GROUND_TRUTH
            return {"targets": {k: batch[k] for k in keys}}
        return {}

    def train_loss(self, outputs, batch: dict) -> tuple[jax.Array, dict]:
        loss, _ = self.model.loss(outputs, batch)
        count = jnp.asarray(batch["image"].shape[0], jnp.float32)
        return loss, _loss_sums(loss.astype(jnp.float32), count, True)

    def eval_sums(self, outputs, batch: dict) -> dict:
        # In evaluation a detector's outputs are its detections: the metrics are computed on the
        # host (host_metrics); the device only counts the images.
        return _loss_sums(jnp.zeros((), jnp.float32), jnp.sum(batch["mask"].astype(jnp.float32)), False)

    def host_outputs(self, outputs, batch: dict) -> dict:
        found = self.model.detect(outputs)
        out = {"det_boxes": found["boxes"], "det_scores": found["scores"],
               "det_classes": found["classes"], "det_count": found["count"], "mask": batch["mask"]}
        out.update({k: batch[k] for k in GROUND_TRUTH})
        for key in ("crowd", "difficult"):
            if key in batch:
                out[key] = batch[key]
        if self.masks:
            out["det_masks"] = (found["masks"] >= 0.5).astype(jnp.uint8)
            out["instances"] = batch["instances"]
        return out

    def host_metrics(self, gathered: dict) -> dict:
        if not gathered:
            return {}
        targets, predictions, difficult = [], [], []
        for i in np.flatnonzero(np.asarray(gathered["mask"]) > 0):
            real = np.asarray(gathered["box_mask"][i]).astype(bool)
            target = {"boxes": gathered["boxes"][i][real], "labels": gathered["classes"][i][real]}
            if "crowd" in gathered:
                target["iscrowd"] = gathered["crowd"][i][real].astype(np.int64)
            n = int(gathered["det_count"][i])
            prediction = {"boxes": gathered["det_boxes"][i][:n], "scores": gathered["det_scores"][i][:n],
                          "labels": gathered["det_classes"][i][:n]}
            if self.masks:
                rows = np.flatnonzero(real)
                target["masks"] = instance_masks(gathered["instances"][i], rows).astype(np.uint8)
                prediction["masks"] = gathered["det_masks"][i][:n]
            targets.append(target)
            predictions.append(prediction)
            difficult.append(gathered["difficult"][i][real] if "difficult" in gathered else np.zeros(real.sum(), bool))
        metrics = coco_evaluate(targets, predictions, iou_type="bbox")
        if self.masks:
            metrics.update({f"mask_{k}": v for k, v in coco_evaluate(targets, predictions, "segm").items()})
        metrics["voc_mAP"] = voc_evaluate(targets, predictions, difficult=difficult)["mAP"]
        # Where the misses at IoU 0.5 come from: localisation or class (error_breakdown).
        breakdown = error_breakdown(targets, predictions, iou_threshold=0.5)
        metrics.update({f"{key}50": breakdown[key] for key in ("found", "found_class", "top_class")})
        return metrics

    def summarize(self, sums: dict) -> dict:
        sums = {k: float(v) for k, v in jax.device_get(sums).items()}
        out = {"count": int(sums["count"])}
        if sums["loss_count"] > 0:
            out["loss"] = sums["loss"] / sums["loss_count"]
        return out

    def describe(self, metrics: dict) -> str:
        parts = [f"{k} {metrics[k]:.4f}" for k in ("loss", "AP", "AP50", "mask_AP") if k in metrics]
        return f"{', '.join(parts)} ({metrics['count']} images)"

    def progress(self, metrics: dict) -> dict:
        return {"loss": f"{metrics['loss']:.4f}"} if "loss" in metrics else {}

    def show(self, image, outputs, path, class_names=None) -> str:
        """Writes the detections drawn over the image beside it (`<path>.detections.png`)."""
        found = jax.device_get(self.model.detect(jax.tree.map(lambda x: jnp.asarray(x)[None], outputs)))
        n = int(found["count"][0])
        boxes, classes, scores = found["boxes"][0][:n], found["classes"][0][:n], found["scores"][0][:n]
        names = [class_names[int(c)] if class_names else str(int(c)) for c in classes]
        target = draw_boxes(image, boxes, [f"{a} {s:.2f}" for a, s in zip(names, scores, strict=True)], path)
        return f"{path}: {target} ({', '.join(names) or 'nothing found'})"


@dataclasses.dataclass(frozen=True)
class LocalizationTask(ImageTask):
    model: Any = None  # the run's localiser module (unbound): its loss method
    loss: str = "localizer"

    metric_keys = ("loss", "loss_count", "correct1", "iou", "located", "count", "nonfinite")
    reported = ("loss", "accuracy", "mean_iou", "localization_accuracy")
    watch = "localization_accuracy"

    @staticmethod
    def _sums(outputs, batch, weights) -> dict:
        iou = jnp.nan_to_num(jnp.diagonal(box_iou(outputs["box"], batch["boxes"][:, 0])).astype(jnp.float32))
        correct = topk_correct(outputs["logits"].astype(jnp.float32), batch["label"], 1)
        return {"correct1": jnp.sum(correct * weights), "iou": jnp.sum(iou * weights),
                "located": jnp.sum(correct * (iou >= 0.5) * weights)}

    def train_loss(self, outputs, batch: dict) -> tuple[jax.Array, dict]:
        loss, _ = self.model.loss(outputs, batch)
        count = jnp.asarray(batch["label"].shape[0], jnp.float32)
        return loss, {**self._sums(outputs, batch, jnp.ones_like(count)), **_loss_sums(loss, count, True)}

    def eval_sums(self, outputs, batch: dict) -> dict:
        # the model's loss is a mean over the whole (padded) batch: evaluation reports the metrics
        weights = batch["mask"].astype(jnp.float32)
        return {**self._sums(outputs, batch, weights),
                **_loss_sums(jnp.zeros((), jnp.float32), jnp.sum(weights), False)}

    def summarize(self, sums: dict) -> dict:
        sums = {k: float(v) for k, v in jax.device_get(sums).items()}
        n = max(sums["count"], 1.0)
        out = {"accuracy": sums["correct1"] / n, "mean_iou": sums["iou"] / n,
               "localization_accuracy": sums["located"] / n, "count": int(sums["count"])}
        if sums["loss_count"] > 0:
            out["loss"] = sums["loss"] / sums["loss_count"]
        return out

    def describe(self, metrics: dict) -> str:
        loss = f"loss {metrics['loss']:.4f}, " if "loss" in metrics else ""
        return (f"{loss}accuracy {metrics['accuracy']:.4f}, box IoU {metrics['mean_iou']:.4f} "
                f"({metrics['count']} images)")

    def progress(self, metrics: dict) -> dict:
        return {"loss": f"{metrics['loss']:.4f}", "iou": f"{metrics['mean_iou']:.3f}"}

    def show(self, image, outputs, path, class_names=None) -> str:
        """Writes the predicted box with its class and probability over the image
        (`<path>.detections.png`)."""
        probabilities = np.asarray(jax.nn.softmax(jnp.asarray(outputs["logits"], jnp.float32)))
        c = int(np.argmax(probabilities))
        name = class_names[c] if class_names else str(c)
        box = np.asarray(outputs["box"], np.float32)[None]
        target = draw_boxes(image, box, [f"{name} {probabilities[c]:.2f}"], path)
        return f"{path}: {target} ({name} {probabilities[c]:.2f}, box {np.round(box[0], 1).tolist()})"
