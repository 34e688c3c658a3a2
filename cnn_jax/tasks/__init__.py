"""Tasks: what differs between classification, segmentation, saliency, ... in the one trainer.

`create_task(config, spec)` builds the task `config.task` names for a dataset spec; `TASKS` maps each
name to its task class, the batch targets it needs and the loss names it takes.
"""

from __future__ import annotations

from cnn_jax.config import DTYPES
from cnn_jax.errors import ConfigError, check_choice
from cnn_jax.models import create_model
from cnn_jax.optim import per_part
from cnn_jax.tasks import classification, saliency, segmentation
from cnn_jax.tasks.base import ImageTask, normalize
from cnn_jax.tasks.classification import ClassificationTask
from cnn_jax.tasks.detection import DetectionTask, LocalizationTask
from cnn_jax.tasks.generative import GANTask, ReconstructionTask, VAETask
from cnn_jax.tasks.saliency import SaliencyTask
from cnn_jax.tasks.segmentation import SegmentationTask

# name: (task class, the dataset targets it reads, the loss names it takes; None: the loss is the
# model's or the task's own and config.loss.name is not read)
TASKS = {
    "classification": (ClassificationTask, ("label",), classification.LOSSES),
    "segmentation": (SegmentationTask, ("segmentation",), segmentation.LOSSES),
    "saliency": (SaliencyTask, ("saliency", "fixations"), saliency.LOSSES),
    "detection": (DetectionTask, ("boxes", "classes", "box_mask"), None),  # the detector's loss
    "localization": (LocalizationTask, ("label", "boxes"), None),  # the localiser's loss
    "reconstruction": (ReconstructionTask, (), None),  # Bernoulli likelihood of the pixels
    "vae": (VAETask, (), None),  # the negative ELBO of the model
    "gan": (GANTask, (), None),  # the players' cross-entropies
}

__all__ = ["TASKS", "ClassificationTask", "DetectionTask", "GANTask", "ImageTask", "LocalizationTask",
           "ReconstructionTask", "SaliencyTask", "SegmentationTask", "VAETask", "check_task", "create_task",
           "model_classes", "normalize", "task_optimizer"]


def model_classes(config, spec) -> int:
    """The number of outputs per prediction the run's model is built with: the dataset's classes
    (segmentation: pixel classes with the background), its object classes for detection (the
    background is not a class), one map for saliency."""
    if config.task == "detection":
        return spec.object_classes
    if config.task == "saliency":
        return 1
    if config.task in ("reconstruction", "vae", "gan"):
        return 0  # no class head
    return spec.num_classes


def task_optimizer(config, tx):
    """The optimizer a task steps: `tx`, or for a GAN one `tx` per player (optim.per_part)."""
    return per_part(tx, GANTask.parts) if config.task == "gan" else tx


def check_task(config, spec) -> None:
    """ConfigError unless the task exists, takes `config.loss.name`, the dataset carries its
    targets and the watched metrics are the task's."""
    check_choice(config.task, TASKS, "task")
    task_class, targets, loss_names = TASKS[config.task]
    if loss_names is not None and config.loss.name not in loss_names:
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
    if config.task == "gan" and (config.optimizer.ema_decay or config.optimizer.grad_accum_steps > 1):
        raise ConfigError("task 'gan' steps its two players itself: set optimizer.ema_decay=0 and "
                          "optimizer.grad_accum_steps=1")
    weights = config.loss.class_weights
    if weights and len(weights) != spec.num_classes:
        raise ConfigError(f"loss.class_weights has {len(weights)} entries for the {spec.num_classes} "
                          f"classes of {spec.name!r}: give one weight per class")


def create_task(config, spec):
    """The task of a run: its config and the dataset's spec (normalisation statistics, classes)."""
    check_task(config, spec)
    common = dict(mean=tuple(spec.mean), std=tuple(spec.std), input_key=spec.input_key)
    focal = dict(focal_alpha=float(config.loss.focal_alpha), focal_gamma=float(config.loss.focal_gamma))
    if config.task == "classification":
        return ClassificationTask(**common, **focal, loss=config.loss.name,
                                  label_smoothing=float(config.loss.label_smoothing))
    if config.task == "segmentation":
        return SegmentationTask(**common, **focal, loss=config.loss.name, num_classes=spec.num_classes,
                                ignore_index=int(spec.ignore_index),
                                class_weights=tuple(float(w) for w in config.loss.class_weights))
    if config.task == "saliency":
        return SaliencyTask(**common, loss=config.loss.name)
    if config.task == "reconstruction":
        return ReconstructionTask(**common)
    # Tasks whose loss or decoding is the model's: they hold the run's (unbound) model.
    model = create_model(config.model.name, num_classes=model_classes(config, spec),
                         dtype=DTYPES[config.model.dtype], conv_impl=config.conv_impl,
                         **config.model.kwargs.to_dict())
    if config.task == "vae":
        return VAETask(**common, model=model)
    if config.task == "gan":
        return GANTask(**common, latent=int(model.latent))
    if config.task == "localization":
        return LocalizationTask(**common, model=model)
    return DetectionTask(**common, model=model, masks="instances" in spec.targets and getattr(model, "masks", False))
