"""Experiment configuration: one schema, loaded from `configs/*.py`, overridden from the command line.

Every experiment file's `get_config(arg=None)` starts from `base_config()` — a *locked* ConfigDict
holding every key the trainer reads, with its default — and changes values; a file that describes a
family of variants takes its variant as `arg` (`--config configs/cifar10_resnet.py:56`, as
big_vision's configs do). Files are loaded and overridden (`--config.optimizer.lr=0.05`) by
`ml_collections.config_flags`: a misspelt key fails at once, and values are parsed to the type of the
key they replace. Only `model.kwargs` is open (its keys are the model's constructor arguments, checked
against the model by `cnn_jax.training.validate`). This module imports nothing else of cnn_jax but
its errors: what needs the registry, the catalogue or the devices is checked above it.
"""

from __future__ import annotations

import ast
import difflib
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import jax.numpy as jnp
import ml_collections
from absl import flags
from ml_collections import config_flags

from cnn_jax.errors import ConfigError, one_line

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "lars")
LR_SCALINGS = ("none", "linear")  # optimizer.lr_scaling
SCHEDULES = ("constant", "step", "cosine", "onecycle", "plateau")
WEIGHT_DECAY_MODES = ("coupled", "decoupled")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}  # model.dtype


def base_config() -> ml_collections.ConfigDict:
    """Every key the trainer reads, with its default. Experiment files override values only."""
    c = ml_collections.ConfigDict()
    c.seed = 0  # one PRNG key, split for init, dropout, shuffling and augmentation
    # What is learnt (cnn_jax/tasks): 'classification' (labels), 'segmentation' (a class per
    # pixel) or 'saliency' (a density over the pixels); the dataset must carry the task's targets.
    c.task = "classification"

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
    # Augmentation (cnn_jax/data/augment/), applied in this order; 0 / False switches an op off.
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
    c.optimizer.plateau_metric = ""  # a validation metric of the task; '' = the task's own (accuracy, mean_iou, ...)
    c.optimizer.plateau_min_delta = 0.0
    # onecycle (Smith & Topin 2019, torch's OneCycleLR defaults): lr/div_factor -> lr -> cosine
    # down to lr/div_factor/final_div_factor, the peak after pct_start of the run.
    c.optimizer.pct_start = 0.3
    c.optimizer.div_factor = 25.0
    c.optimizer.final_div_factor = 1e4
    c.optimizer.ema_decay = 0.0  # > 0: evaluate an exponential moving average of the parameters

    # The loss (cnn_jax/losses.py; which names a task takes: cnn_jax/tasks). classification:
    # 'cross_entropy' (softmax), 'categorical_cross_entropy' (on softmax probabilities), 'mse' and
    # 'total_error' (softmax outputs against one-hot targets), 'sigmoid_binary_cross_entropy' and
    # 'focal' (a sigmoid per class); segmentation: 'cross_entropy' and 'focal' per pixel;
    # saliency: 'mse', 'ead', 'mlnet' (pixel losses), 'kl_divergence', 'bhattacharyya' (on maps
    # normalised to sum 1).
    c.loss = ml_collections.ConfigDict()
    c.loss.name = "cross_entropy"
    c.loss.label_smoothing = 0.0  # cross_entropy: 1 - eps on the label, eps / K on every class
    c.loss.class_weights = ()  # per class (segmentation's cross_entropy); () = all 1
    c.loss.focal_alpha = 0.25  # focal loss (Lin et al. 2017): alpha-balancing, -1 = off
    c.loss.focal_gamma = 2.0  # focal loss: the exponent of (1 - p_t)

    # Early stopping: end training when the validation metric has not improved for `patience`
    # epochs (0 = off); the test uses the best checkpoint by validation accuracy, as always.
    c.early_stopping = ml_collections.ConfigDict()
    c.early_stopping.patience = 0
    c.early_stopping.metric = ""  # a validation metric of the task; '' = the task's own
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

    # Train steps per jitted call (training/steps.py, StepRunner): K consecutive steps run as one
    # call, the same math with one dispatch and host round trip per K steps
    # (experiments/bench_train_step.py --chunk K measures it). Calls end where the loop logs,
    # checkpoints or evaluates, and the stop signal is checked per call.
    c.steps_per_call = 4
    # How convolutions run (passed to the model; cnn_jax/backends/onednn): 'auto' = oneDNN for a
    # program compiled for one CPU device when it is installed, XLA's convolution otherwise;
    # 'xla' = XLA's everywhere; 'onednn' = oneDNN on the CPU or an error naming the fix.
    # Every JAX transform works under each; results agree to float32 rounding.
    c.conv_impl = "auto"
    c.log_every_steps = 100
    c.checkpoint_every_steps = 0  # 0 = at the end of every epoch only
    c.keep_checkpoints = 3  # latest N; the best (by validation accuracy) is kept apart
    c.progress_bar = True
    c.lock()
    c.model.kwargs.unlock()  # open: keys are checked against the model by validate_config
    return c


def load_config(spec: str | Path, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    """`get_config()` of the file `spec` (or `get_config(arg)` for `path:arg`), locked, with the
    `key=value` overrides applied (`optimizer.lr=0.05`; a leading `--config.` is accepted)."""
    spec = str(spec)
    path = _config_path(spec)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist (configs/ holds the shipped ones)")
    pairs = [_split_override(item) for item in overrides]
    model_kwargs = [(key, raw) for key, raw in pairs if key.startswith(KWARGS_PREFIX)]
    typed = [(key, raw) for key, raw in pairs if not key.startswith(KWARGS_PREFIX)]
    config = _parse(spec, typed)
    for key, raw in model_kwargs:  # open keys: no type to parse by, so a Python literal or a string
        name = key[len(KWARGS_PREFIX):]
        if not name.isidentifier():
            raise ConfigError(f"config key {key!r}: {name!r} is not a model argument name")
        config.model.kwargs[name] = _literal(raw)
    return config


KWARGS_PREFIX = "model.kwargs."


def _config_path(spec: str) -> Path:
    path, sep, arg = spec.rpartition(":")
    return Path(path if sep and "/" not in arg else spec)


def _split_override(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not of the form key=value")
    key, raw = item.split("=", 1)
    return key.removeprefix("--").removeprefix("config."), raw


def _parse(spec: str, overrides: Sequence[tuple[str, str]]) -> ml_collections.ConfigDict:
    """The config file through `config_flags` (file, `:arg`, typed overrides, locking); its errors
    become one line that names the key and the fix."""
    argv = ["cnn-jax", f"--config={spec}", *(f"--config.{key}={raw}" for key, raw in overrides)]
    values = flags.FlagValues()  # a private set of flags: absl's global FLAGS stay untouched
    # config_flags loads every file as module 'config_config' with SourceFileLoader.load_module,
    # which reuses a module already in sys.modules: a file without get_config() would otherwise
    # run the previous file's.
    sys.modules.pop("config_config", None)
    config_flags.DEFINE_config_file("config", flag_values=values, lock_config=True, sys_argv=argv)
    try:
        values(argv)
        config = values.config
    except flags.IllegalFlagValueError as e:
        if str(e).startswith("flag --config="):  # the file itself failed: its error is the last line
            raise ConfigError(f"{_config_path(spec)}: {_config_file_error(str(e))}") from None
        raise _override_error(spec, str(e), overrides) from None
    except (AttributeError, KeyError, TypeError, ValueError, flags.Error) as e:
        if overrides:
            _check_keys(_parse(spec, ()), [key for key, _ in overrides])
        raise ConfigError(f"{_config_path(spec)}: {_config_file_error(e)}") from None
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f"{_config_path(spec)}: get_config() must return an ml_collections.ConfigDict")
    return config


def _config_file_error(e: BaseException | str) -> str:
    """One line for a config file that fails to load: the exception raised in `get_config`
    (config_flags wraps it in a traceback), without its type name when it is ours."""
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    text = lines[-1] if lines else type(e).__name__
    text = re.sub(r"^(cnn_jax\.errors\.ConfigError|ConfigError): ", "", text).strip("'\"")
    if re.search(r"get_config\(\) takes 0 positional arguments", text):
        return "its get_config() takes no argument: drop the ':...' after the file name"
    if "has no attribute 'get_config" in text:
        return "defines no get_config() function"
    missing = re.match(r'Key "(\w+)" does not exist', text)
    if missing:
        return f"config key {missing.group(1)!r} does not exist (the schema is cnn_jax.config.base_config)"
    return text


def _check_keys(config: ml_collections.ConfigDict, keys: Sequence[str]) -> None:
    """Raises the one-line error for the first override key that is not a value of `config`."""
    for key in keys:
        node, parts = config, key.split(".")
        for i, part in enumerate(parts):
            where = ".".join(parts[: i + 1])
            if not isinstance(node, ml_collections.ConfigDict):
                raise ConfigError(f"config key {'.'.join(parts[:i])!r} is a value, not a section")
            if part not in node:
                close = difflib.get_close_matches(part, list(node), n=1)
                prefix = where.rsplit(".", 1)[0] + "." if "." in where else ""
                hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
                raise ConfigError(f"unknown config key {where!r}{hint}")
            node = node[part]
        if isinstance(node, ml_collections.ConfigDict):
            raise ConfigError(f"config key {key!r} is a section; set one of its keys ({', '.join(node)})")


def _override_error(spec: str, message: str, overrides: Sequence[tuple[str, str]]) -> ConfigError:
    """`config key 'optimizer.lr' takes a number, got 'fast'` from config_flags' parse error."""
    flag = re.match(r"flag --config\.([\w.]+)=", message)
    key = flag.group(1) if flag else ""
    raw = dict(overrides).get(key)
    if raw is None:
        return ConfigError(one_line(ValueError(message)))
    current = _parse(spec, ())
    _check_keys(current, [key])
    for part in key.split("."):
        current = current[part]
    kind = {bool: "true or false", int: "an integer", float: "a number",
            tuple: "a tuple such as (30, 60)", str: "a string"}.get(type(current), type(current).__name__)
    return ConfigError(f"config key {key!r} takes {kind}, got {raw!r}")


def _literal(raw: str):
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        low = raw.lower()
        return low == "true" if low in ("true", "false") else raw


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
        if key not in node and node.is_locked:
            raise ConfigError(f"saved config has unknown key {path!r}: it was written by another version")
        if isinstance(value, dict) and key in node and isinstance(node[key], ml_collections.ConfigDict):
            _merge(node[key], value, prefix=f"{path}.")
        else:
            node[key] = tuple(value) if isinstance(value, list) else value
