"""A config checked against the registry, the catalogue, the backends and the devices, before any
data is read or anything compiles: a run that cannot work fails with one line that names the fix.

`cnn_jax.config` holds the schema (every key and its type); this module sits above the parts a
config names, so that checking them needs no import the other way round.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections

from cnn_jax.backends import onednn
from cnn_jax.config import (
    DTYPES,
)
from cnn_jax.data import dataset_spec_from_config
from cnn_jax.errors import BackendUnavailableError, ConfigError, check_choice, one_line
from cnn_jax.layers import CONV_IMPLS
from cnn_jax.models import create_model, get_model_spec
from cnn_jax.optim import check_optimizer_config
from cnn_jax.tasks import check_task, model_classes
from cnn_jax.training.sharding import parse_rules

POSITIVE_KEYS = ("num_epochs", "batch_size", "eval_batch_size", "log_every_steps", "keep_checkpoints",
                 "steps_per_call")


def validate_config(config: ml_collections.ConfigDict, *, num_devices: int) -> None:
    """Checks everything that can be checked before loading data or compiling; `num_devices` is
    the mesh's size (batches split over its `data` axis, num_devices / sharding.model_axis).

    Raises ConfigError with one line naming the fix.
    """
    try:
        spec = dataset_spec_from_config(config.data)  # catalogue names, folder:ROOT trees, crop sizes
        model_task = get_model_spec(config.model.name).task
    except ValueError as e:
        raise ConfigError(one_line(e)) from None
    if model_task != config.task:
        raise ConfigError(f"model {config.model.name!r} is a {model_task} model and the run's task is "
                          f"{config.task!r}: set task={model_task!r} or choose a {config.task} model "
                          f"(`cnn-jax models`)")
    check_optimizer_config(config.optimizer)
    check_task(config, spec)
    check_choice(config.model.dtype, DTYPES, "model.dtype")
    check_choice(config.conv_impl, CONV_IMPLS, "conv_impl")
    if config.conv_impl == "onednn":
        try:
            onednn.require()
        except BackendUnavailableError as e:
            raise ConfigError(one_line(e)) from None
    _check_regex(config.init.exclude_regex, "init.exclude_regex")
    if config.optimizer.schedule == "plateau" or config.early_stopping.patience > 0:
        if config.data.val_size == 0:
            raise ConfigError("optimizer.schedule='plateau' and early_stopping watch the validation split, "
                              "but data.val_size=0: hold out a validation set")
    for key in POSITIVE_KEYS:
        if config[key] < 1:
            raise ConfigError(f"config key {key!r} must be at least 1, got {config[key]}")
    if config.data.val_size < 0 or config.data.train_subset < 0:
        raise ConfigError("data.val_size and data.train_subset must not be negative")
    _check_devices(config, num_devices)
    try:
        model = create_model(config.model.name, num_classes=model_classes(config, spec), conv_impl=config.conv_impl,
                             **config.model.kwargs.to_dict())
    except TypeError as e:
        raise ConfigError(f"model.kwargs do not fit model {config.model.name!r}: {one_line(e)}") from None
    check_input_shape(model, config.model.name, spec.image_shape, spec.name)


def _check_devices(config: ml_collections.ConfigDict, num_devices: int) -> None:
    """The mesh `data` x `model` and the batch sizes that must split over it."""
    model_axis = config.sharding.model_axis
    if model_axis < 1 or num_devices % model_axis:
        raise ConfigError(f"sharding.model_axis={model_axis} does not divide the {num_devices} devices: "
                          f"use a divisor of {num_devices}")
    try:
        parse_rules(config.sharding.rules)
    except ValueError as e:
        raise ConfigError(one_line(e)) from None
    data_devices = num_devices // model_axis  # batches split over the `data` axis only
    for key in ("batch_size", "eval_batch_size"):
        if config[key] % data_devices:
            raise ConfigError(f"{key}={config[key]} does not split over {data_devices} devices: "
                              f"use a multiple of {data_devices}")
    k = config.optimizer.grad_accum_steps
    if config.batch_size % k or (config.batch_size // k) % data_devices:
        raise ConfigError(f"batch_size={config.batch_size} does not split into {k} micro-batches of a "
                          f"multiple of {data_devices} devices: change optimizer.grad_accum_steps")


def _check_regex(pattern: str, key: str) -> None:
    try:
        re.compile(pattern)
    except re.error as e:
        raise ConfigError(f"{key}={pattern!r} is not a valid regular expression ({e})") from None


def check_input_shape(model, model_name: str, image_shape: Sequence[int], source: str) -> None:
    """Traces the model on one image (no compute, no memory) to catch impossible shapes early."""
    x = jax.ShapeDtypeStruct((1, *image_shape), jnp.float32)
    try:
        jax.eval_shape(lambda x: model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, x), x)
    except Exception as e:  # any tracing failure here means the shapes cannot work
        shape = "x".join(map(str, image_shape))
        raise ConfigError(f"model {model_name!r} cannot take {shape} images from {source}: {one_line(e)}") from None
