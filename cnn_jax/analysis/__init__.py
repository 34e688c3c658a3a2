"""Model analysis: per-layer summaries (shapes, activations, parameters, multiply-adds) and
receptive fields, computed by tracing a model's forward pass on abstract shapes; and what a trained
network computes and where it fails — intermediate activations and filters, attribution (gradients,
SmoothGrad, integrated gradients, Grad-CAM, occlusion), adversarial and fooling images, confusion,
calibration, training curves, and the report page of a run.

A trained run comes into a notebook with ``from cnn_jax.training import load_run`` (the trainer
sits above this package); the functions here take its model and variables, a
:class:`Classifier` (``Classifier.from_run(run)``) or the run itself.
"""

from cnn_jax.analysis.attribution import (
    grad_cam,
    integrated_gradients,
    occlusion,
    path_third_derivative,
    saliency_map,
    smoothgrad,
    vanilla_gradient,
)
from cnn_jax.analysis.calibration import (
    ReliabilityBins,
    confidences_and_correct,
    expected_calibration_error,
    reliability_bins,
)
from cnn_jax.analysis.charts import (
    confusion_matrix_figure,
    curves_figure,
    epsilon_figure,
    learning_rate_figure,
    reliability_figure,
)
from cnn_jax.analysis.classifier import Classifier, class_scores, predict_logits
from cnn_jax.analysis.confusion import (
    Misclassified,
    Predictions,
    collect_predictions,
    images_at,
    misclassified,
    most_confused_pairs,
)
from cnn_jax.analysis.curves import Curves, epoch_curves, read_metrics
from cnn_jax.analysis.fooling import accuracy_under_attack, fgsm, fooling_images, pgd
from cnn_jax.analysis.intermediates import (
    apply_with_offset,
    conv_layers,
    feature_maps,
    filters,
    intermediates,
    layer_names,
)
from cnn_jax.analysis.plots import (
    feature_map_grid,
    filter_grid,
    heatmap_grid,
    image_grid,
    receptive_field_figure,
)
from cnn_jax.analysis.receptive_field import (
    ReceptiveFieldRow,
    receptive_field,
    receptive_field_table,
)
from cnn_jax.analysis.report import write_report
from cnn_jax.analysis.summary import (
    LayerSummary,
    ModelSummary,
    summarize_model,
)
from cnn_jax.analysis.unit_field import FieldBox, gradient_support, unit_field

__all__ = [
    "Classifier",
    "Curves",
    "FieldBox",
    "LayerSummary",
    "Misclassified",
    "ModelSummary",
    "Predictions",
    "ReceptiveFieldRow",
    "ReliabilityBins",
    "accuracy_under_attack",
    "apply_with_offset",
    "class_scores",
    "collect_predictions",
    "confidences_and_correct",
    "confusion_matrix_figure",
    "conv_layers",
    "curves_figure",
    "epoch_curves",
    "epsilon_figure",
    "expected_calibration_error",
    "feature_map_grid",
    "feature_maps",
    "fgsm",
    "filter_grid",
    "filters",
    "fooling_images",
    "grad_cam",
    "gradient_support",
    "heatmap_grid",
    "image_grid",
    "images_at",
    "integrated_gradients",
    "intermediates",
    "layer_names",
    "learning_rate_figure",
    "misclassified",
    "most_confused_pairs",
    "occlusion",
    "path_third_derivative",
    "pgd",
    "predict_logits",
    "read_metrics",
    "receptive_field",
    "receptive_field_figure",
    "receptive_field_table",
    "reliability_bins",
    "reliability_figure",
    "saliency_map",
    "smoothgrad",
    "summarize_model",
    "unit_field",
    "vanilla_gradient",
    "write_report",
]
