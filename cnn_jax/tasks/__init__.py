"""Tasks: what differs between classification, segmentation, detection, ... in the one trainer."""

from __future__ import annotations

from cnn_jax.tasks.base import ImageTask, normalize
from cnn_jax.tasks.classification import ClassificationTask

__all__ = ["ClassificationTask", "ImageTask", "create_task", "normalize"]


def create_task(config, spec):
    """The task of a run: its config and the dataset's spec (normalisation statistics)."""
    return ClassificationTask(mean=tuple(spec.mean), std=tuple(spec.std),
                              label_smoothing=float(config.loss.label_smoothing))
