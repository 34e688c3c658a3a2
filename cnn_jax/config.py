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

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "lars")
LR_SCALINGS = ("none", "linear")  # optimizer.lr_scaling
SCHEDULES = ("constant", "step", "cosine", "onecycle", "plateau")
WEIGHT_DECAY_MODES = ("coupled", "decoupled")
MONITOR_METRICS = ("accuracy", "loss")  # validation metric watched by plateau / early stopping
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
    c.data.test_size = 0  # N > 0: hold N examples out of the train split as the test set
    # (instead of the dataset's test split), e.g. 60/20/20 of one split with val_size and test_size
    # Augmentation (cnn_jax/data/augment.py), applied in this order; 0 / False switches an op off.
    # Identical across runs with the same seed: a batch is a pure function of (seed, epoch, step).
    c.data.augment = ml_collections.ConfigDict()
    c.data.augment.random_resized_crop = False  # Inception-style crop (ImageNet-style datasets)
    c.data.augment.random_crop_padding = 0  # zero-pad P pixels, random crop back (CIFAR ResNets)
    # One random affine map per image (LeCun et al. 1998 "distortions"; Keras-style ranges):
    c.data.augment.rotation = 0.0  # degrees, uniform in [-r, r]
    c.data.augment.translate = 0.0  # fraction of height/width, uniform in [-t, t]
    c.data.augment.shear = 0.0  # degrees of horizontal shear, uniform in [-s, s]
    c.data.augment.zoom = 0.0  # scale uniform in [1 - z, 1 + z]
    c.data.augment.squeeze = 0.0  # x scaled by k, y by 1/k, log k uniform in [-log(1+q), log(1+q)]
    c.data.augment.elastic_alpha = 0.0  # elastic distortion strength in pixels (Simard 2003: 34)
    c.data.augment.elastic_sigma = 4.0  # Gaussian smoothing of the displacement field (pixels)
    c.data.augment.horizontal_flip = False
    c.data.augment.vertical_flip = False
    c.data.augment.brightness = 0.0  # multiply by U[1 - b, 1 + b]
    c.data.augment.contrast = 0.0  # blend with the image mean by U[1 - c, 1 + c]
    c.data.augment.saturation = 0.0  # blend with grayscale by U[1 - s, 1 + s] (RGB only)
    c.data.augment.channel_shift = 0.0  # add U[-v, v] (0-255 scale) to each channel
    c.data.augment.cutout = 0  # zero a random square of this side (DeVries & Taylor 2017)
    c.data.augment.mixup_alpha = 0.0  # Beta(a, a) mixing of image pairs and targets (Zhang 2018)
    c.data.augment.cutmix_alpha = 0.0  # paste a Beta(a, a)-sized box (Yun 2019); with mixup: 50/50

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
    c.optimizer.lr = 0.1  # peak learning rate for the global batch (for base_batch_size: see lr_scaling)
    # Large batches (Goyal et al. 2017, "Accurate, large minibatch SGD", §2.1): with 'linear' the
    # peak learning rate is lr * batch_size / base_batch_size, and a warm-up (warmup_epochs)
    # starts from lr itself (§2.2, "gradual warmup"); 'none' uses lr as given.
    c.optimizer.lr_scaling = "none"
    c.optimizer.base_batch_size = 256  # the batch `lr` is meant for when lr_scaling='linear'
    # lars (You, Gitman & Ginsburg 2017): SGD with momentum whose update of each decay_regex
    # parameter (kernels) is scaled by trust_coefficient * |w| / |g + weight_decay * w|; biases
    # and BatchNorm parameters get plain momentum SGD (weight decay is coupled, inside the ratio).
    c.optimizer.lars_trust_coefficient = 0.001
    c.optimizer.momentum = 0.9  # sgd (0 = plain gradient descent), rmsprop
    c.optimizer.nesterov = False
    c.optimizer.b1 = 0.9  # adam, adamw
    c.optimizer.b2 = 0.999
    c.optimizer.eps = 1e-8
    c.optimizer.weight_decay = 0.0  # L2 on the parameters matched by decay_regex
    # coupled: wd * w joins the gradient (= wd/2 |w|^2 added to the loss; AlexNet, VGG, ResNet);
    # decoupled: w shrinks by lr * wd after the optimizer's update (Loshchilov & Hutter 2019).
    # adamw is always decoupled.
    c.optimizer.weight_decay_mode = "coupled"
    c.optimizer.l1 = 0.0  # L1: l1 * sign(w) joins the gradient of the decay_regex parameters
    # Parameters weight decay and L1 apply to, a regex over paths such as 'conv1/kernel':
    # kernels only, so no decay on biases and BatchNorm/PReLU parameters.
    c.optimizer.decay_regex = r"(^|/)kernel$"
    c.optimizer.grad_clip_norm = 0.0  # 0 = no clipping
    c.optimizer.grad_accum_steps = 1  # split each batch into k micro-batches, one update (same result)
    c.optimizer.freeze_regex = ""  # parameters whose path matches are not updated at all
    c.optimizer.lr_multipliers = ()  # ((regex, factor), ...): first match scales that parameter's lr
    c.optimizer.schedule = "cosine"
    c.optimizer.warmup_epochs = 0.0  # linear warmup from 0 to lr (all schedules but onecycle)
    c.optimizer.decay_epochs = ()  # step schedule: multiply by decay_factor at each of these epochs
    c.optimizer.decay_factor = 0.1  # step and plateau schedules
    # plateau: lr * decay_factor when the validation metric has not improved for `patience` epochs
    c.optimizer.plateau_patience = 2
    c.optimizer.plateau_metric = "accuracy"  # or 'loss'
    c.optimizer.plateau_min_delta = 0.0
    # onecycle (Smith & Topin 2019, torch's OneCycleLR defaults): lr/div_factor -> lr -> cosine
    # down to lr/div_factor/final_div_factor, the peak after pct_start of the run.
    c.optimizer.pct_start = 0.3
    c.optimizer.div_factor = 25.0
    c.optimizer.final_div_factor = 1e4
    c.optimizer.ema_decay = 0.0  # > 0: evaluate an exponential moving average of the parameters

    c.loss = ml_collections.ConfigDict()
    c.loss.label_smoothing = 0.0

    # Early stopping: end training when the validation metric has not improved for `patience`
    # epochs (0 = off); the test uses the best checkpoint by validation accuracy, as always.
    c.early_stopping = ml_collections.ConfigDict()
    c.early_stopping.patience = 0
    c.early_stopping.metric = "accuracy"  # or 'loss'
    c.early_stopping.min_delta = 0.0

    # Initialisation (cnn_jax/training/init.py): from another run or torchvision weights
    # (transfer learning), and per layer type from cnn_jax.layers.initializers names.
    c.init = ml_collections.ConfigDict()
    c.init.checkpoint = ""  # a cnn-jax run's workdir (its best checkpoint, else the latest), or a
    # torchvision .pth / .safetensors file of the same architecture
    c.init.exclude_regex = ""  # parameters not loaded (kept freshly initialised), e.g. the head
    c.init.batch_stats = True  # also load BatchNorm running statistics
    c.init.conv_kernel = ""  # e.g. 'he_normal'; '' keeps the model's own initialiser
    c.init.dense_kernel = ""  # e.g. 'glorot_uniform'
    c.init.bias = ""  # e.g. 'zeros'

    # Device mesh `data` x `model` and parameter sharding (cnn_jax/training/sharding.py).
    c.sharding = ml_collections.ConfigDict()
    c.sharding.model_axis = 1  # devices along `model` (dividing each process's); `data` gets the rest
    # ((regex, spec), ...): parameters whose path matches regex (first match) are split as spec,
    # one entry per leading dimension, None or 'model' (or 'data'), e.g.
    # ((r'classifier_0/kernel', (None, 'model')),) splits VGG's fc6 kernel by output columns.
    # Unmatched parameters are replicated; optimizer state and EMA follow their parameter.
    c.sharding.rules = ()

    # Train steps per jitted call: K consecutive steps run as one call (steps.make_multi_step),
    # the same math with one dispatch and host round trip per K steps (LeNet-5 even, ResNet-20
    # +15%, MobileNet +45% on 2 CPU cores: experiments/bench_train_step.py --chunk 4). Calls
    # end where the loop logs, checkpoints or evaluates, and the stop signal is checked per call.
    c.steps_per_call = 4
    # How convolutions run (cnn_jax.layers.conv.set_conv_impl): 'auto' = oneDNN on a CPU backend
    # (2-3x faster than XLA's own there: README "Performance"), XLA's on GPUs/TPUs or when oneDNN
    # cannot be built; 'xla' = XLA's everywhere (needed for forward-mode autodiff, jax.jvp);
    # 'onednn' = oneDNN on the CPU or an error.
    c.conv_impl = "auto"
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
    """Checks everything that can be checked before loading data or compiling; `num_devices`
    is the mesh's size (batches split over its `data` axis, num_devices / sharding.model_axis).

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
    _check_choice(config.optimizer.lr_scaling, LR_SCALINGS, "optimizer.lr_scaling")
    if config.optimizer.base_batch_size < 1:
        raise ConfigError(f"optimizer.base_batch_size must be at least 1, got {config.optimizer.base_batch_size}")
    if config.optimizer.name == "lars":
        if config.optimizer.lars_trust_coefficient <= 0:
            raise ConfigError("optimizer.lars_trust_coefficient must be positive (You et al. 2017: 0.001)")
        if config.optimizer.weight_decay_mode != "coupled":
            raise ConfigError("optimizer.name='lars' takes weight decay inside its trust ratio: set "
                              "optimizer.weight_decay_mode='coupled'")
    _check_choice(config.optimizer.schedule, SCHEDULES, "optimizer.schedule")
    _check_choice(config.optimizer.weight_decay_mode, WEIGHT_DECAY_MODES, "optimizer.weight_decay_mode")
    _check_choice(config.optimizer.plateau_metric, MONITOR_METRICS, "optimizer.plateau_metric")
    _check_choice(config.early_stopping.metric, MONITOR_METRICS, "early_stopping.metric")
    for key in ("optimizer.decay_regex", "optimizer.freeze_regex", "init.exclude_regex"):
        _check_regex(_lookup(config, key), key)
    for item in config.optimizer.lr_multipliers:
        if (not isinstance(item, (tuple, list)) or len(item) != 2 or not isinstance(item[0], str)
                or not isinstance(item[1], (int, float))):
            raise ConfigError(
                f"optimizer.lr_multipliers holds {item!r}: give (regex, factor) pairs, "
                "e.g. ((r'^head/', 10.0),)"
            )
        _check_regex(item[0], "optimizer.lr_multipliers")
    if config.optimizer.grad_accum_steps < 1:
        raise ConfigError(f"optimizer.grad_accum_steps must be at least 1, got {config.optimizer.grad_accum_steps}")
    if config.optimizer.schedule == "plateau" or config.early_stopping.patience > 0:
        if config.data.val_size == 0:
            raise ConfigError(
                "optimizer.schedule='plateau' and early_stopping watch the validation split, "
                "but data.val_size=0: hold out a validation set"
            )
    if config.optimizer.ema_decay and not 0.0 < config.optimizer.ema_decay < 1.0:
        raise ConfigError(f"optimizer.ema_decay must be in (0, 1), got {config.optimizer.ema_decay}")
    for key in ("num_epochs", "batch_size", "eval_batch_size", "log_every_steps", "keep_checkpoints",
                "steps_per_call"):
        if config[key] < 1:
            raise ConfigError(f"config key {key!r} must be at least 1, got {config[key]}")
    from cnn_jax.layers.conv import CONV_IMPLS
    from cnn_jax.layers.onednn import OneDNNUnavailableError, require

    if config.conv_impl not in CONV_IMPLS:
        raise ConfigError(f"conv_impl={config.conv_impl!r} is not one of {', '.join(CONV_IMPLS)}")
    if config.conv_impl == "onednn":
        try:
            require()
        except OneDNNUnavailableError as e:
            raise ConfigError(str(e)) from None
    if config.optimizer.lr <= 0:
        raise ConfigError(f"optimizer.lr must be positive, got {config.optimizer.lr}")
    model_axis = config.sharding.model_axis
    if model_axis < 1 or num_devices % model_axis:
        raise ConfigError(f"sharding.model_axis={model_axis} does not divide the {num_devices} devices: "
                          f"use a divisor of {num_devices}")
    from cnn_jax.training.sharding import parse_rules

    try:
        parse_rules(config.sharding.rules)
    except ValueError as e:
        raise ConfigError(_one_line(e)) from None
    # Batches split over the mesh's `data` axis: the devices not on the `model` axis.
    num_devices //= model_axis
    for key in ("batch_size", "eval_batch_size"):
        if config[key] % num_devices:
            raise ConfigError(
                f"{key}={config[key]} does not split over {num_devices} devices: "
                f"use a multiple of {num_devices}"
            )
    micro = config.batch_size // config.optimizer.grad_accum_steps
    if config.batch_size % config.optimizer.grad_accum_steps or micro % num_devices:
        raise ConfigError(
            f"batch_size={config.batch_size} does not split into {config.optimizer.grad_accum_steps} "
            f"micro-batches of a multiple of {num_devices} devices: change optimizer.grad_accum_steps"
        )
    if config.data.val_size < 0 or config.data.train_subset < 0:
        raise ConfigError("data.val_size and data.train_subset must not be negative")

    try:
        model = create_model(config.model.name, num_classes=spec.num_classes, **config.model.kwargs.to_dict())
    except TypeError as e:
        raise ConfigError(f"model.kwargs do not fit model {config.model.name!r}: {_one_line(e)}") from None
    check_input_shape(model, config.model.name, spec.image_shape, spec.name)


def _lookup(config, dotted: str):
    for part in dotted.split("."):
        config = config[part]
    return config


def _check_regex(pattern: str, key: str) -> None:
    import re

    try:
        re.compile(pattern)
    except re.error as e:
        raise ConfigError(f"{key}={pattern!r} is not a valid regular expression ({e})") from None


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
