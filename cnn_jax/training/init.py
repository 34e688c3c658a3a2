"""Where training starts: per-layer-type initialisers, then weights of another run or of torchvision.

``initialize_from_config(config.init, variables, ...)`` takes the model's freshly initialised
``{'params', 'batch_stats'}`` and returns the variables to train from, in two steps:

1. **Initialisers per layer type** (``init.conv_kernel``, ``init.dense_kernel``, ``init.bias``; names
   of :func:`cnn_jax.layers.initializers.get_initializer`, ``''`` keeps the model's own). A ``kernel``
   with three or more axes is a convolution's (1-D, 2-D, 3-D, depthwise: Flax's ``(..., in, out)``
   layout lets the initialiser compute the fan-in from the shape), one with two axes a dense layer's;
   ``bias`` is the bias of such a layer (a ``bias`` beside a ``kernel``); a BatchNorm shift, a PReLU
   slope and every other parameter keep their values. Each array draws from its own key, the run's
   key folded with a hash of its path, so the result depends on neither the order of the tree nor
   which other layers exist.

2. **Transfer** (``init.checkpoint``): the parameters (and, with ``init.batch_stats``, the BatchNorm
   running statistics) of a cnn-jax run's workdir — its best checkpoint by validation accuracy, else
   its newest — or of a torchvision ``.pth`` / ``.safetensors`` file converted by
   :func:`cnn_jax.convert.from_torch`. Every array whose path matches ``init.exclude_regex`` keeps its
   fresh value (a new head for another number of classes, as in the transfer experiments of
   Yosinski et al. 2014, "How transferable are features in deep neural networks?"); every other one
   must be in the source with the same shape, and the source must hold nothing else, or the run stops
   with one line naming the arrays and the fix. Loaded arrays win over step 1.

Only ``params`` and ``batch_stats`` are read from another run's checkpoint (an Orbax partial
restore), so its optimizer, schedule and step count do not matter; a run that kept a moving average
of its parameters (``optimizer.ema_decay``) evaluated that average, so the average is what is loaded.
``check_init_config`` rejects bad names and paths before any data is read.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from cnn_jax.convert import from_torch, load_torch_weights
from cnn_jax.errors import ConfigError
from cnn_jax.layers.initializers import INITIALIZER_NAMES, get_initializer
from cnn_jax.models import get_model_spec
from cnn_jax.training.checkpoint import best_metric

log = logging.getLogger("cnn_jax")

COLLECTIONS = ("params", "batch_stats")  # what a checkpoint contributes to the model's variables
# A run with optimizer.ema_decay > 0 checkpoints the moving average of its parameters under this
# name and evaluates it (so its best checkpoint is best by the average): that is what is loaded.
EMA_ITEM = "ema_params"
LAYER_TYPES = ("conv_kernel", "dense_kernel", "bias")  # the init.* keys naming initialisers
TORCH_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")  # files cnn_jax.convert reads
_MAX_NAMED = 4  # arrays named per problem in an error line before "(+N more)"

Path_ = tuple[str, ...]  # (collection, *module names, leaf name)


def initialize_from_config(
    init_cfg: Any,
    variables: Mapping[str, Any],
    *,
    rng: jax.Array,
    model_name: str,
    image_shape: Sequence[int],
    num_classes: int | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
) -> dict:
    """The variables to start training from: ``variables`` re-initialised and loaded as ``init_cfg`` says.

    Args:
      init_cfg: the config's ``init`` section (``checkpoint``, ``exclude_regex``, ``batch_stats``,
        ``conv_kernel``, ``dense_kernel``, ``bias``).
      variables: the model's fresh ``{'params': ..., 'batch_stats': ...}`` (numpy or jax arrays);
        other collections pass through.
      rng: key of the per-layer-type initialisers (unused when none is set).
      model_name: the registered model, for converting torchvision weights.
      image_shape: (H, W, C) this run feeds the model (named when torchvision weights do not fit).
      num_classes: this run's head size: torchvision weights are converted for it first, then for
        the registry's default (ImageNet's 1000), whichever the file holds.
      model_kwargs: the model's constructor arguments (``config.model.kwargs``), for the conversion.

    Returns:
      The same structure, every array a jax array of its fresh dtype. With all options at their
      defaults the values are ``variables``' own.

    Raises:
      ConfigError (a ValueError): one line naming the fix — an unknown initialiser name, a path that
        is neither a run nor a weights file, a run without checkpoints, or arrays that do not match.
    """
    check_init_config(init_cfg)
    flat = {collection: traverse_util.flatten_dict(dict(variables.get(collection) or {}))
            for collection in COLLECTIONS}
    flat = {c: {(c, *path): leaf for path, leaf in leaves.items()} for c, leaves in flat.items()}
    fresh: dict[Path_, Any] = {**flat["params"], **flat["batch_stats"]}

    values = _apply_layer_initializers(init_cfg, fresh, rng)
    if init_cfg.checkpoint:
        values = _load_checkpoint(init_cfg, values, model_name=model_name, image_shape=tuple(image_shape),
                                  num_classes=num_classes, model_kwargs=dict(model_kwargs or {}))

    out = {k: v for k, v in variables.items() if k not in COLLECTIONS}
    for collection in COLLECTIONS:
        leaves = {path[1:]: _as_jax(values[path], _dtype(fresh[path]))
                  for path in fresh if path[0] == collection}
        if collection in variables or leaves:
            out[collection] = traverse_util.unflatten_dict(leaves) if leaves else {}
    return out


def init_requested(init_cfg: Any) -> bool:
    """Whether `config.init` asks for anything beyond the model's own initialisation."""
    return bool(init_cfg.checkpoint or init_cfg.conv_kernel or init_cfg.dense_kernel or init_cfg.bias)


def check_init_config(init_cfg: Any) -> None:
    """Fails fast, before data and compilation, on what `initialize_from_config` would reject
    without reading weights: unknown initialiser names, a checkpoint path that is not there, a
    folder that is not a run, a file that is not a weights file."""
    for kind in LAYER_TYPES:
        _initializer(init_cfg, kind)
    if not init_cfg.checkpoint:
        return
    source = Path(init_cfg.checkpoint).expanduser()
    formats = f"a cnn-jax run's --workdir or a torchvision weights file ({', '.join(TORCH_SUFFIXES)})"
    if not source.exists():
        raise ConfigError(f"init.checkpoint={str(source)!r} does not exist: give {formats}; a "
                          f"config that names an earlier stage's run there needs that run "
                          f"trained first (its header gives the command)")
    if source.is_dir() and not (source / "config.json").is_file():
        raise ConfigError(f"init.checkpoint={str(source)!r} is not a cnn-jax run (no config.json): give "
                          f"the --workdir of a `cnn-jax train` run (the folder holding config.json), or "
                          f"a torchvision weights file ({', '.join(TORCH_SUFFIXES)})")
    if not source.is_dir() and not source.name.endswith(TORCH_SUFFIXES):
        raise ConfigError(f"init.checkpoint={str(source)!r} is neither a run's workdir nor a weights file: "
                          f"give {formats}")


def _dtype(leaf: Any) -> np.dtype:
    return leaf.dtype if hasattr(leaf, "dtype") else np.asarray(leaf).dtype


def _as_jax(value: Any, dtype: np.dtype) -> jax.Array:
    """`value` as a jax array of `dtype`; host arrays are cast on the host (no device program)."""
    if isinstance(value, jax.Array):
        return value if value.dtype == dtype else value.astype(dtype)
    return jnp.asarray(np.asarray(value, dtype=dtype))


# --------------------------------------------------------------------------------------------
# Initialisers per layer type
# --------------------------------------------------------------------------------------------
def layer_type(path: Path_, shape: Sequence[int], siblings: set[str]) -> str | None:
    """'conv_kernel', 'dense_kernel', 'bias' (of a conv or dense layer) or None for a parameter.

    ``siblings`` are the leaf names of the same module: a ``bias`` is a layer's bias only beside a
    ``kernel`` (a BatchNorm's ``bias`` sits beside ``scale``).
    """
    if path[0] != "params":
        return None
    leaf = path[-1]
    if leaf == "kernel" and len(shape) >= 3:
        return "conv_kernel"
    if leaf == "kernel" and len(shape) == 2:
        return "dense_kernel"
    if leaf == "bias" and "kernel" in siblings:
        return "bias"
    return None


def _path_key(rng: jax.Array, path: Path_) -> jax.Array:
    """A key that depends on the array's path only (CRC-32 is stable across processes and runs)."""
    return jax.random.fold_in(rng, zlib.crc32("/".join(path).encode()) & 0x7FFFFFFF)


def _initializer(init_cfg: Any, kind: str):
    name = init_cfg[kind]
    if not name:
        return None
    try:
        return get_initializer(name)
    except ValueError:
        raise ConfigError(f"init.{kind}={name!r} is not an initialiser: use one of "
                          f"{', '.join(n for n in INITIALIZER_NAMES if n != 'constant')}") from None
    except TypeError as e:  # 'constant' needs a value a config string cannot give
        raise ConfigError(f"init.{kind}={name!r}: {str(e).splitlines()[0]}; use 'zeros' or 'ones' "
                          "here, or the model's kernel_init/bias_init keyword") from None


def _apply_layer_initializers(init_cfg: Any, fresh: dict[Path_, Any], rng: jax.Array) -> dict[Path_, Any]:
    initializers = {kind: _initializer(init_cfg, kind) for kind in LAYER_TYPES}
    values = dict(fresh)
    if not any(initializers.values()):
        return values
    siblings: dict[Path_, set[str]] = {}
    for path in fresh:
        siblings.setdefault(path[:-1], set()).add(path[-1])
    chosen: dict[Path_, tuple[str, tuple[int, ...], str]] = {}
    for path, leaf in fresh.items():
        shape = tuple(np.shape(leaf))
        kind = layer_type(path, shape, siblings[path[:-1]])
        if kind is not None and initializers[kind] is not None:
            chosen[path] = (kind, shape, np.dtype(_dtype(leaf)).name)
    names = tuple((kind, init_cfg[kind]) for kind in initializers)
    values.update(_drawer(names, tuple(chosen.items()))(rng))
    counts = {kind: sum(k == kind for k, _, _ in chosen.values()) for kind in initializers}
    labels = {"conv_kernel": "conv kernels", "dense_kernel": "dense kernels", "bias": "layer biases"}
    log.info("init: %s", ", ".join(f"{counts[k]} {labels[k]} {init_cfg[k]}"
                                   for k, init in initializers.items() if init))
    return values


@functools.lru_cache(maxsize=8)
def _drawer(names: tuple[tuple[str, str], ...], chosen: tuple[tuple[Path_, tuple[str, tuple, str]], ...]):
    """One compiled program that draws every chosen array from `rng` (eager calls would compile
    each shape separately); cached, so the same model and names compile once per process."""
    initializers = {kind: get_initializer(name) for kind, name in names if name}

    @jax.jit
    def draw(rng: jax.Array) -> dict[Path_, jax.Array]:
        return {path: initializers[kind](_path_key(rng, path), shape, jnp.dtype(dtype))
                for path, (kind, shape, dtype) in chosen}

    return draw


# --------------------------------------------------------------------------------------------
# Transfer from another run or from torchvision weights
# --------------------------------------------------------------------------------------------
def _load_checkpoint(init_cfg, values: dict[Path_, Any], *, model_name: str, image_shape: tuple,
                     num_classes: int | None, model_kwargs: dict) -> dict[Path_, Any]:
    source = Path(init_cfg.checkpoint).expanduser()
    if source.is_dir():
        loaded, where = _load_run(source)
    else:
        loaded, where = _load_torch(source, model_name, image_shape, num_classes, model_kwargs), str(source)
    collections = COLLECTIONS if init_cfg.batch_stats else ("params",)
    exclude = re.compile(init_cfg.exclude_regex) if init_cfg.exclude_regex else None

    def excluded(path: Path_) -> bool:
        return exclude is not None and exclude.search("/".join(path[1:])) is not None

    ours = [p for p in values if p[0] in collections]
    theirs = [p for p in loaded if p[0] in collections]
    missing = [p for p in ours if p not in loaded and not excluded(p)]
    extra = [p for p in theirs if p not in values and not excluded(p)]
    mismatched = [p for p in ours if p in loaded and not excluded(p)
                  and tuple(np.shape(loaded[p])) != tuple(np.shape(values[p]))]
    if missing or extra or mismatched:
        raise ConfigError(_mismatch_message(where, missing, extra, mismatched, loaded, values))

    out = dict(values)
    taken = [p for p in ours if not excluded(p)]
    for path in taken:
        out[path] = loaded[path]
    kept = [p for p in ours if excluded(p)]
    log.info(
        "init.checkpoint: loaded %d arrays (%s values) from %s; %d kept fresh%s%s",
        len(taken), f"{sum(int(np.size(values[p])) for p in taken):,}", where, len(kept),
        f" (init.exclude_regex={init_cfg.exclude_regex!r}: {_name_some(kept)})" if kept else "",
        "" if init_cfg.batch_stats or not any(p[0] == "batch_stats" for p in values)
        else "; BatchNorm statistics kept fresh (init.batch_stats=False)",
    )
    return out


def _load_run(workdir: Path) -> tuple[dict[Path_, np.ndarray], str]:
    """params and batch_stats of a run's best checkpoint (else its newest that restores)."""
    import orbax.checkpoint as ocp

    try:
        source_model = json.loads((workdir / "config.json").read_text())["model"]["name"]
    except (ValueError, KeyError, TypeError):
        source_model = "?"
    candidates: list[tuple[Path, int, str]] = []  # (manager directory, step, which)
    for folder, which in (("best", "best"), ("checkpoints", "latest")):
        if not (workdir / folder).is_dir():
            continue
        manager = ocp.CheckpointManager(
            (workdir / folder).absolute(),
            options=ocp.CheckpointManagerOptions(read_only=True, best_fn=best_metric, best_mode="max")
            if which == "best"
            else ocp.CheckpointManagerOptions(read_only=True),
        )
        try:
            if which == "best":
                step = manager.best_step()
                steps = [] if step is None else [step]
            else:
                steps = sorted(manager.all_steps(), reverse=True)
            candidates += [(manager.directory, s, which) for s in steps]
        finally:
            manager.close()
    if not candidates:
        raise ConfigError(f"init.checkpoint={str(workdir)!r} holds no checkpoint yet: train that run first "
                          "(or point at another)")
    for directory, step, which in candidates:
        try:
            restored = _restore_subset(Path(directory) / str(step) / "default")
        except Exception as e:  # a damaged checkpoint: say so and use the next one
            log.warning("init.checkpoint: %s checkpoint at step %d in %s cannot be restored (%s); "
                        "trying the next one", which, step, workdir, str(e).splitlines()[0] if str(e) else
                        type(e).__name__)
            continue
        averaged = restored.get(EMA_ITEM) is not None
        if averaged:  # the parameters that run evaluated, and its validation accuracy measured
            restored["params"] = restored[EMA_ITEM]
        flat = {}
        for collection in COLLECTIONS:
            for path, leaf in traverse_util.flatten_dict(dict(restored.get(collection) or {})).items():
                flat[(collection, *path)] = leaf
        ema = ", its moving average of the parameters" if averaged else ""
        return flat, f"{workdir} ({which} checkpoint, step {step}, model {source_model!r}{ema})"
    raise ConfigError(f"init.checkpoint={str(workdir)!r}: none of its checkpoints can be restored "
                      "(see the warnings above): point at another run")


def _restore_subset(item_dir: Path) -> dict:
    """params, batch_stats and ema_params (when saved) of one Orbax checkpoint, as numpy arrays.

    A partial restore: the abstract target is read from the checkpoint's own metadata, so nothing about the other run
    (its optimizer state above all) needs to be known.
    """
    import orbax.checkpoint as ocp

    checkpointer = ocp.PyTreeCheckpointer()
    metadata = checkpointer.metadata(item_dir)
    metadata = getattr(metadata, "item_metadata", metadata)
    tree = getattr(metadata, "tree", metadata)
    if "params" not in tree:
        raise ValueError(f"{item_dir} holds no 'params' (keys: {sorted(tree)})")
    target = {c: jax.tree.map(lambda m: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype), tree[c])
              for c in (*COLLECTIONS, EMA_ITEM) if tree.get(c) is not None}
    restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), target)
    return checkpointer.restore(
        item_dir, args=ocp.args.PyTreeRestore(item=target, restore_args=restore_args, partial_restore=True)
    )


def _load_torch(path: Path, model_name: str, image_shape: tuple, num_classes: int | None,
                model_kwargs: dict) -> dict[Path_, Any]:
    """torchvision weights converted by `cnn_jax.convert.from_torch`, for this run's head or the default."""

    try:
        state = load_torch_weights(path)
    except (ValueError, ImportError) as e:
        raise ConfigError(f"init.checkpoint={str(path)!r}: {str(e).splitlines()[0]}") from None
    # A file fine-tuned for this run's classes converts with our head; an ImageNet one with the
    # registry's (then init.exclude_regex leaves our head fresh).
    heads = list(dict.fromkeys([num_classes, None]))
    first_error = None
    for head in heads:
        try:
            converted = from_torch(model_name, state, num_classes=head, **model_kwargs)
            break
        except ValueError as e:
            first_error = first_error or str(e).splitlines()[0]
    else:
        spec_shape = get_model_spec(model_name).input_shape
        hint = (f" (converted for {model_name!r}'s registered input {spec_shape}; this run's images are "
                f"{image_shape})" if tuple(spec_shape) != tuple(image_shape) else "")
        raise ConfigError(f"init.checkpoint={str(path)!r}: {first_error}{hint}")
    return {(c, *p): leaf for c in COLLECTIONS
            for p, leaf in traverse_util.flatten_dict(dict(converted.get(c) or {})).items()}


def _display(path: Path_) -> str:
    name = "/".join(path[1:])
    return name if path[0] == "params" else f"{name} ({path[0]})"


def _name_some(paths: Sequence[Path_]) -> str:
    named = ", ".join(f"'{_display(p)}'" for p in paths[:_MAX_NAMED])
    return named + (f" (+{len(paths) - _MAX_NAMED} more)" if len(paths) > _MAX_NAMED else "")


def _exclude_suggestion(paths: Sequence[Path_]) -> str:
    """'^output/' for the arrays of module 'output'; '^(fc|aux1/fc2)/' for several modules."""
    patterns = list(dict.fromkeys(re.escape("/".join(p[1:-1])) + "/" if len(p) > 2 else re.escape(p[-1]) + "$"
                                  for p in paths))
    return "^" + (patterns[0] if len(patterns) == 1 else "(" + "|".join(patterns) + ")")


def _mismatch_message(where: str, missing, extra, mismatched, loaded, values) -> str:
    problems, fixable = [], []
    if mismatched:
        shapes = "; ".join(
            f"'{_display(p)}' has shape {tuple(np.shape(loaded[p]))} there and {tuple(np.shape(values[p]))} here"
            for p in mismatched[:_MAX_NAMED]
        )
        more = f" (+{len(mismatched) - _MAX_NAMED} more)" if len(mismatched) > _MAX_NAMED else ""
        problems.append(shapes + more)
        fixable += mismatched
    if missing:
        problems.append(f"{len(missing)} arrays here are not there: {_name_some(missing)}")
        fixable += missing
    if extra:
        problems.append(f"{len(extra)} arrays there are not here: {_name_some(extra)}")
        fixable += extra
    them = "it" if len(fixable) == 1 else "them"
    regex = f"init.exclude_regex='{_exclude_suggestion(fixable)}'"
    if missing or extra:  # not a head swap: another model altogether, most likely
        fix = (f"it holds another architecture: point init.checkpoint at weights of this model, or add "
               f"{them} to init.exclude_regex to keep ours fresh and skip theirs (e.g. {regex})")
    else:
        fix = f"add {them} to init.exclude_regex to keep ours fresh (e.g. {regex})"
    return f"init.checkpoint {where}: " + "; ".join(problems) + ": " + fix
