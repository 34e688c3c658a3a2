"""Metrics: classification (top-k, confusion matrices), segmentation (IoU from a confusion matrix),
detection (COCO's twelve statistics through an engine, VOC's AP), saliency (the MIT benchmark's
CC, KL, SIM, NSS and AUCs), generative (the Fréchet distance on a trained LeNet-5's features).

Steps compute metric *sums* on device (of losses, of correct predictions, of confusion counts) so
that metrics over many batches, devices and hosts — and over padded evaluation batches — are exact;
detection's AP is not a sum and is computed on the host from the gathered predictions.
"""

from cnn_jax.metrics.classification import confusion_matrix, topk_correct
from cnn_jax.metrics.detection import (
    coco_evaluate,
    error_breakdown,
    from_padded,
    voc_ap,
    voc_evaluate,
    voc_pr_curve,
)
from cnn_jax.metrics.generative import frechet_distance, lenet_features
from cnn_jax.metrics.saliency import saliency_scores
from cnn_jax.metrics.segmentation import confusion_counts, segmentation_scores

__all__ = ["coco_evaluate", "confusion_counts", "confusion_matrix", "error_breakdown",
           "frechet_distance", "from_padded",
           "lenet_features", "saliency_scores", "segmentation_scores", "topk_correct", "voc_ap",
           "voc_evaluate", "voc_pr_curve"]
