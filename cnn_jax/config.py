"""Experiment configuration: one schema, loaded from `configs/*.py`, overridden from the command line.

Every experiment file's `get_config()` starts from `base_config()` — a *locked* ConfigDict holding
every key the trainer reads, with its default — and changes values. Because the dict is locked, a
misspelt key in a config file or on the command line fails at once, and ConfigDict's own type
checks reject a string where a number belongs. `validate_config` then checks what needs the
registry, the catalogue and the devices (model and dataset names, batch divisibility, whether the
model accepts the dataset's images) so that a bad run fails before any training starts, with one
line that names the fix.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import ml_collections

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "step", "cosine")
DTYPES = ("float32", "bfloat16", "float16")


class ConfigError(ValueError):
    """A configuration that cannot run; the message is one line that says what to change."""


def base_config() -> ml_collections.ConfigDict:
    """Every key the trainer reads, with its default. Experiment files override values only."""
    c = ml_collections.ConfigDict()
    c.seed = 0  # one PRNG key, split for init, dropout, shuffling and augmentation

    c.data = ml_collections.ConfigDict()
    c.data.name = "mnist"
    c.data.data_dir = ""  # '' -> $TFDS_DATA_DIR or ~/tensorflow_datasets
    c.data.download = True  # let tfds download when the dataset is missing (network + TF)
    c.data.val_size = 10_000  # held out of the training split, fixed by split_seed
    c.data.split_seed = 0
    c.data.train_subset = 0  # first N training examples only (0 = all)
    c.data.cache = True  # decode each split once into memory (MNIST, CIFAR)
    c.data.num_workers = 0  # Grain worker processes when cache is False (0 = threads)
    c.data.image_size = 0  # training crop of ImageNet-style datasets (0 = 224); MNIST/CIFAR: native
    c.data.eval_resize = 256  # evaluation: shorter side to this, then center crop image_size
    c.data.augment = ml_collections.ConfigDict()
    c.data.augment.random_crop_padding = 0
    c.data.augment.horizontal_flip = False
    c.data.augment.random_resized_crop = False  # Inception-style crop (ImageNet-style datasets)

    c.model = ml_collections.ConfigDict()
    c.model.name = "lenet5"
    c.model.dtype = "float32"  # compute dtype; parameters stay float32
    # Model-specific constructor arguments (activation, kernel_init, dropout_rate, ...): any key
    # the model's module accepts. Checked by building the model in validate_config.
    c.model.kwargs = ml_collections.ConfigDict()

    c.num_epochs = 10
    c.batch_size = 128  # global: split over every device of the mesh
    c.eval_batch_size = 1000

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.name = "sgd"
    c.optimizer.lr = 0.1  # peak learning rate for the global batch
    c.optimizer.momentum = 0.9  # sgd (0 = plain gradient descent), rmsprop
    c.optimizer.nesterov = False
    c.optimizer.b1 = 0.9  # adam, adamw
    c.optimizer.b2 = 0.999
    c.optimizer.eps = 1e-8
    c.optimizer.weight_decay = 0.0  # L2 on kernels (coupled: added to the gradient) / AdamW decay
    c.optimizer.grad_clip_norm = 0.0  # 0 = no clipping
    c.optimizer.schedule = "cosine"
    c.optimizer.warmup_epochs = 0.0  # linear warmup from 0 to lr
    c.optimizer.decay_epochs = ()  # step schedule: multiply by decay_factor at each of these epochs
    c.optimizer.decay_factor = 0.1

    c.loss = ml_collections.ConfigDict()
    c.loss.label_smoothing = 0.0

    c.log_every_steps = 100
    c.checkpoint_every_steps = 0  # 0 = at the end of every epoch only
    c.keep_checkpoints = 3  # latest N; the best (by validation accuracy) is kept apart
    c.progress_bar = True
    c.lock()
    c.model.kwargs.unlock()  # open: keys are checked against the model by validate_config
    return c


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    """Loads `get_config()` from a config file and applies `key=value` overrides."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist (configs/ holds the shipped ones)")
    spec = importlib.util.spec_from_file_location(f"cnn_jax_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        if not hasattr(module, "get_config"):
            raise ConfigError(f"{path} defines no get_config() function")
        config = module.get_config()
    except (AttributeError, KeyError, TypeError) as e:
        raise ConfigError(f"{path}: {_one_line(e)}") from None
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f"{path}: get_config() must return an ml_collections.ConfigDict")
    apply_overrides(config, overrides)
    return config


def apply_overrides(config: ml_collections.ConfigDict, overrides: Sequence[str]) -> None:
    """Applies overrides such as `optimizer.lr=0.05` or `data.augment.horizontal_flip=true`.

    Values are parsed as Python literals and must fit the type of the key they replace. Keys under
    `model.kwargs` may be new (they are checked against the model when the config is validated).
    """
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        key = key.removeprefix("--").removeprefix("config.")
        node, leaf = _walk(config, key)
        if leaf in node:
            current = node[leaf]
            if isinstance(current, ml_collections.ConfigDict):
                raise ConfigError(f"config key {key!r} is a section; set one of its keys ({', '.join(current)})")
            value = _parse_like(raw, current, key)
        elif _is_open(node):
            value = _parse_literal(raw)
        else:
            raise ConfigError(f"unknown config key {key!r}{_did_you_mean(leaf, node, key)}")
        try:
            # Plain assignment: a locked dict accepts new values for its keys, and `unlocked()`
            # would re-lock every sub-dict on exit, closing the open `model.kwargs`.
            node[leaf] = value
        except TypeError as e:
            raise ConfigError(f"config key {key!r}: {_one_line(e)}") from None


def validate_config(config: ml_collections.ConfigDict, *, num_devices: int) -> None:
    """Checks everything that can be checked before loading data or compiling.

    Raises ConfigError with one line naming the fix.
    """
    from cnn_jax.data.pipeline import dataset_spec_from_config
    from cnn_jax.models import create_model, get_model_spec

    try:
        # Catalogue names, `folder:ROOT` trees (classes listed from disk), crop sizes.
        spec = dataset_spec_from_config(config.data)
    except ValueError as e:
        raise ConfigError(_one_line(e)) from None
    try:
        get_model_spec(config.model.name)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    _check_choice(config.model.dtype, DTYPES, "model.dtype")
    _check_choice(config.optimizer.name, OPTIMIZERS, "optimizer.name")
    _check_choice(config.optimizer.schedule, SCHEDULES, "optimizer.schedule")
    for key in ("num_epochs", "batch_size", "eval_batch_size", "log_every_steps", "keep_checkpoints"):
        if config[key] < 1:
            raise ConfigError(f"config key {key!r} must be at least 1, got {config[key]}")
    if config.optimizer.lr <= 0:
        raise ConfigError(f"optimizer.lr must be positive, got {config.optimizer.lr}")
    for key in ("batch_size", "eval_batch_size"):
        if config[key] % num_devices:
            raise ConfigError(
                f"{key}={config[key]} does not split over {num_devices} devices: "
                f"use a multiple of {num_devices}"
            )
    if config.data.val_size < 0 or config.data.train_subset < 0:
        raise ConfigError("data.val_size and data.train_subset must not be negative")

    try:
        model = create_model(config.model.name, num_classes=spec.num_classes, **config.model.kwargs.to_dict())
    except TypeError as e:
        raise ConfigError(f"model.kwargs do not fit model {config.model.name!r}: {_one_line(e)}") from None
    check_input_shape(model, config.model.name, spec.image_shape, spec.name)


def check_input_shape(model, model_name: str, image_shape: Sequence[int], source: str) -> None:
    """Traces the model on one image (no compute, no memory) to catch impossible shapes early."""
    import jax
    import jax.numpy as jnp

    x = jax.ShapeDtypeStruct((1, *image_shape), jnp.float32)
    try:
        jax.eval_shape(lambda x: model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, x), x)
    except Exception as e:  # any tracing failure here means the shapes cannot work
        shape = "x".join(map(str, image_shape))
        raise ConfigError(
            f"model {model_name!r} cannot take {shape} images from {source}: {_one_line(e)}"
        ) from None


def to_dict(config: ml_collections.ConfigDict) -> dict:
    """Plain, JSON-serialisable form of a config (saved in every workdir)."""
    return config.to_dict()


def from_dict(d: dict) -> ml_collections.ConfigDict:
    """Rebuilds a config saved by `to_dict`, checking it against the current schema."""
    config = base_config()
    _merge(config, d, prefix="")
    return config


def _merge(node: ml_collections.ConfigDict, d: dict, prefix: str) -> None:
    for key, value in d.items():
        path = f"{prefix}{key}"
        if key not in node and not _is_open(node):
            raise ConfigError(f"saved config has unknown key {path!r}: it was written by another version")
        if isinstance(value, dict) and key in node and isinstance(node[key], ml_collections.ConfigDict):
            _merge(node[key], value, prefix=f"{path}.")
        else:
            if isinstance(value, list):
                value = tuple(value)
            node[key] = value


def _walk(config: ml_collections.ConfigDict, key: str):
    parts = key.split(".")
    node = config
    for i, part in enumerate(parts[:-1]):
        if part not in node:
            where = ".".join(parts[: i + 1])
            raise ConfigError(f"unknown config key {where!r}{_did_you_mean(part, node, where)}")
        node = node[part]
        if not isinstance(node, ml_collections.ConfigDict):
            raise ConfigError(f"config key {'.'.join(parts[: i + 1])!r} is a value, not a section")
    return node, parts[-1]


def _is_open(node: ml_collections.ConfigDict) -> bool:
    return not node.is_locked


def _parse_literal(raw: str):
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        low = raw.lower()
        if low in ("true", "false"):
            return low == "true"
        return raw


def _parse_like(raw: str, current, key: str):
    """Parses `raw` into the type of the value it replaces."""
    if isinstance(current, bool):
        low = raw.strip().lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise ConfigError(f"config key {key!r} takes true or false, got {raw!r}")
    if isinstance(current, str):
        return raw
    value = _parse_literal(raw)
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(current, tuple) and isinstance(value, (int, float)):
        return (value,)
    if isinstance(current, tuple) and isinstance(value, list):
        return tuple(value)
    if current is not None and not isinstance(value, type(current)):
        raise ConfigError(
            f"config key {key!r} takes {_article(type(current).__name__)}, got {raw!r}"
        )
    return value


def _article(type_name: str) -> str:
    names = {"int": "an integer", "float": "a number", "tuple": "a tuple such as (30, 60)"}
    return names.get(type_name, f"a {type_name}")


def _check_choice(value: str, choices: Sequence[str], key: str) -> None:
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not one of {', '.join(choices)}")


def _did_you_mean(name: str, candidates, where: str) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1)
    if not close:
        return ""
    prefix = where.rsplit(".", 1)[0] + "." if "." in where else ""
    return f"; did you mean '{prefix}{close[0]}'?"


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
