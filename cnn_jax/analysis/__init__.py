"""Model analysis: per-layer summaries (shapes, activations, parameters, multiply-adds) and
receptive fields, computed by tracing a model's forward pass on abstract shapes."""

from cnn_jax.analysis.receptive_field import (
    ReceptiveFieldRow,
    receptive_field,
    receptive_field_table,
)
from cnn_jax.analysis.summary import (
    LayerSummary,
    ModelSummary,
    summarize_model,
)

__all__ = [
    "LayerSummary",
    "ModelSummary",
    "ReceptiveFieldRow",
    "receptive_field",
    "receptive_field_table",
    "summarize_model",
]
