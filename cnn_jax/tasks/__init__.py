"""Tasks: what differs between classification, segmentation, saliency, ... in the one trainer.

`create_task(config, spec)` builds the task `config.task` names for a dataset spec; `TASKS` maps each
name to its task class, the batch targets it needs and the loss names it takes.
"""

from __future__ import annotations

from cnn_jax.config import DTYPES
from cnn_jax.errors import ConfigError, check_choice
from cnn_jax.models import create_model
from cnn_jax.tasks import classification, saliency, segmentation
from cnn_jax.tasks.base import ImageTask, normalize
from cnn_jax.tasks.classification import ClassificationTask
from cnn_jax.tasks.detection import DetectionTask, LocalizationTask
from cnn_jax.tasks.saliency import SaliencyTask
from cnn_jax.tasks.segmentation import SegmentationTask

# name: (task class, the dataset targets it reads, the loss names it takes)
TASKS = {
    "classification": (ClassificationTask, ("label",), classification.LOSSES),
    "segmentation": (SegmentationTask, ("segmentation",), segmentation.LOSSES),
    "saliency": (SaliencyTask, ("saliency", "fixations"), saliency.LOSSES),
    # the detector's own loss (YOLO's, focal + box, the R-CNN losses): loss.name is not read
    "detection": (DetectionTask, ("boxes", "classes", "box_mask"), ("cross_entropy",)),
    "localization": (LocalizationTask, ("label", "boxes"), ("cross_entropy",)),
}

__all__ = ["TASKS", "ClassificationTask", "DetectionTask", "ImageTask", "LocalizationTask", "SaliencyTask",
           "SegmentationTask", "check_task", "create_task", "model_classes", "normalize"]


def model_classes(config, spec) -> int:
    """The number of outputs per prediction the run's model is built with: the dataset's classes
    (segmentation: pixel classes with the background), its object classes for detection (the
    background is not a class), one map for saliency."""
    if config.task == "detection":
        return spec.object_classes
    if config.task == "saliency":
        return 1
    return spec.num_classes


def check_task(config, spec) -> None:
    """ConfigError unless the task exists, takes `config.loss.name`, the dataset carries its
    targets and the watched metrics are the task's."""
    check_choice(config.task, TASKS, "task")
    task_class, targets, loss_names = TASKS[config.task]
    if config.loss.name not in loss_names:
        raise ConfigError(f"loss.name={config.loss.name!r} is not a loss of task {config.task!r}: "
                          f"use one of {', '.join(loss_names)}")
    missing = [t for t in targets if t not in spec.targets]
    if missing:
        raise ConfigError(f"task {config.task!r} needs {', '.join(missing)} targets, which dataset "
                          f"{spec.name!r} does not carry: choose a {config.task} dataset")
    for key, metric in (("optimizer.plateau_metric", config.optimizer.plateau_metric),
                        ("early_stopping.metric", config.early_stopping.metric)):
        if metric and metric not in task_class.reported:
            raise ConfigError(f"{key}={metric!r} is not a metric of task {config.task!r}: use one of "
                              f"{', '.join(task_class.reported)} (or '' for {task_class.watch})")
    weights = config.loss.class_weights
    if weights and len(weights) != spec.num_classes:
        raise ConfigError(f"loss.class_weights has {len(weights)} entries for the {spec.num_classes} "
                          f"classes of {spec.name!r}: give one weight per class")


def create_task(config, spec):
    """The task of a run: its config and the dataset's spec (normalisation statistics, classes)."""
    check_task(config, spec)
    common = dict(mean=tuple(spec.mean), std=tuple(spec.std), input_key=spec.input_key, loss=config.loss.name)
    focal = dict(focal_alpha=float(config.loss.focal_alpha), focal_gamma=float(config.loss.focal_gamma))
    if config.task == "segmentation":
        return SegmentationTask(**common, **focal, num_classes=spec.num_classes,
                                ignore_index=int(spec.ignore_index),
                                class_weights=tuple(float(w) for w in config.loss.class_weights))
    if config.task == "saliency":
        return SaliencyTask(**common)
    if config.task in ("detection", "localization"):
        model = create_model(config.model.name, num_classes=model_classes(config, spec),
                             dtype=DTYPES[config.model.dtype], conv_impl=config.conv_impl,
                             **config.model.kwargs.to_dict())
        if config.task == "localization":
            return LocalizationTask(mean=common["mean"], std=common["std"], input_key=spec.input_key, model=model)
        return DetectionTask(mean=common["mean"], std=common["std"], input_key=spec.input_key, model=model,
                             masks="instances" in spec.targets and hasattr(model, "mask_head"))
    return ClassificationTask(**common, **focal, label_smoothing=float(config.loss.label_smoothing))
