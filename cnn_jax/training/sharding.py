"""Device mesh and shardings for jax.jit (no pmap): data parallelism, and parameters sharded by
config rules for models too large for one device.

The mesh is 2-D, `data` x `model`, over every device of every process (`create_mesh`):
`sharding.model_axis` devices along `model` (1 by default), the rest along `data`. Batches are
split over `data` and repeated over `model`. Parameters are replicated unless a rule of
`config.sharding.rules` shards them: a rule is (regex, spec), the regex searched in the
parameter's path ('classifier_0/kernel', see cnn_jax.optim.param_paths; the first matching rule
wins) and the spec one entry per leading dimension of the parameter, each None (whole) or a mesh
axis name, as in `jax.sharding.PartitionSpec`. E.g. VGG-16's fc6 kernel, 25088 x 4096 =
102.8 M of its 138.4 M parameters, split by its output columns over 4 devices:

    --config.sharding.model_axis=4 --config.sharding.rules="((r'classifier_0/kernel', (None, 'model')),)"

Optimizer state (momentum, Adam's moments) and the EMA parameters are sharded like the parameter
they belong to (`state_shardings`); BatchNorm statistics, the step and scalars are replicated.
XLA's SPMD partitioner then inserts the collectives: the gradient all-reduce over `data` (the
loss is a mean over the sharded batch) and the gathers and reductions a sharded matmul needs
over `model`. The result is the replicated computation's, up to float summation order.

Multi-host: `jax.devices()` lists the devices of process 0 first, then process 1, ...; the mesh
keeps that order, so each process holds a contiguous block of `data` rows, which is the slice
of every global batch its input pipeline reads (`shard_batch`). So `model_axis` must divide each
process's device count (a `model` group never spans two hosts).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from cnn_jax.errors import ConfigError
from cnn_jax.tree import param_paths, path_of

DATA_AXIS = "data"
MODEL_AXIS = "model"
AXES = (DATA_AXIS, MODEL_AXIS)


# --------------------------------------------------------------------------------------------
# Mesh and batches
# --------------------------------------------------------------------------------------------
def create_mesh(devices=None, model_axis: int = 1) -> Mesh:
    """A `data` x `model` mesh over `devices` (default: all devices of all processes)."""
    devices = jax.devices() if devices is None else list(devices)
    n = len(devices)
    if model_axis < 1 or n % model_axis:
        raise ConfigError(f"sharding.model_axis={model_axis} does not divide the {n} devices: "
                          f"use a divisor of {n}")
    local = jax.local_device_count()
    if jax.process_count() > 1 and local % model_axis:
        raise ConfigError(f"sharding.model_axis={model_axis} does not divide the {local} devices of "
                          f"each process: a model group must not span two processes")
    return Mesh(np.asarray(devices).reshape(n // model_axis, model_axis), AXES)


def data_axis_size(mesh: Mesh) -> int:
    return mesh.shape[DATA_AXIS]


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over `data`, the rest whole (and repeated over `model`)."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def shard_batch(batch: dict, mesh: Mesh) -> dict:
    """Turns this process's slice of a global batch (numpy) into global sharded jax.Arrays."""
    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in batch.items()}


def to_host(tree) -> dict:
    """The global arrays of `tree` as numpy arrays on this host: every process gets the whole of
    each array (its own rows and the other processes'), as `shard_batch` split them."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)


def replicate(tree, mesh: Mesh):
    """Places every leaf of `tree` on every device of the mesh."""
    return jax.device_put(tree, replicated(mesh))


# --------------------------------------------------------------------------------------------
# Parameter rules
# --------------------------------------------------------------------------------------------
def parse_rules(rules) -> list[tuple[str, PartitionSpec]]:
    """`config.sharding.rules` -> [(regex, PartitionSpec)], checking their form (ValueError)."""
    parsed = []
    for item in rules or ():
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)
                and isinstance(item[1], (tuple, list))):
            raise ValueError(f"sharding.rules holds {item!r}: give (regex, spec) pairs such as "
                             f"(r'classifier_0/kernel', (None, 'model'))")
        regex, spec = item
        try:
            re.compile(regex)
        except re.error as e:
            raise ValueError(f"sharding.rules regex {regex!r} is not a valid regular expression ({e})") from None
        entries = []
        for entry in spec:
            names = entry if isinstance(entry, (tuple, list)) else (entry,)
            if any(n is not None and n not in AXES for n in names):
                raise ValueError(f"sharding.rules spec {tuple(spec)!r} for {regex!r}: each entry is "
                                 f"None or a mesh axis ({', '.join(map(repr, AXES))})")
            entries.append(tuple(names) if isinstance(entry, (tuple, list)) else entry)
        parsed.append((regex, PartitionSpec(*entries)))
    return parsed


def param_specs(params, rules) -> dict:
    """A tree like `params` (arrays or shapes) of PartitionSpecs: the first rule whose regex
    matches the parameter's path, else replicated. Raises ValueError for a rule that matches no
    parameter, or a spec longer than its parameter's rank."""
    parsed = parse_rules(rules)
    used = [False] * len(parsed)

    def spec_of(keypath, leaf):
        path = path_of(keypath)
        for i, (regex, spec) in enumerate(parsed):
            if re.search(regex, path):
                used[i] = True
                if len(spec) > len(leaf.shape):
                    raise ValueError(f"sharding.rules spec {tuple(spec)!r} has {len(spec)} entries but "
                                     f"parameter {path!r} has shape {tuple(leaf.shape)}")
                return spec
        return PartitionSpec()

    specs = jax.tree_util.tree_map_with_path(spec_of, params)
    for (regex, _), hit in zip(parsed, used, strict=True):
        if not hit:
            paths = param_paths(params)
            raise ValueError(f"sharding.rules regex {regex!r} matches no parameter (paths look like "
                             f"{', '.join(map(repr, paths[:3] + paths[-1:]))}): fix the regex")
    return specs


def param_shardings(params, mesh: Mesh, rules) -> dict:
    """NamedShardings of `params` by `rules` (see `param_specs`), checked against the mesh: a
    sharded dimension must split evenly over its axes (ValueError naming the parameter)."""
    specs = param_specs(params, rules)

    def check(keypath, leaf, spec):
        for dim, entry in zip(leaf.shape, spec, strict=False):
            names = entry if isinstance(entry, tuple) else (entry,)
            size = math.prod(mesh.shape[n] for n in names if n is not None)
            if dim % size:
                raise ValueError(f"parameter {path_of(keypath)!r} of shape {tuple(leaf.shape)} does not "
                                 f"split over {size} devices ({tuple(spec)!r}): change the rule or "
                                 f"sharding.model_axis")
        return NamedSharding(mesh, spec)

    return jax.tree_util.tree_map_with_path(check, params, specs,
                                            is_leaf=lambda x: isinstance(x, PartitionSpec))


def like_params(tree, params, param_sharding, mesh: Mesh):
    """Shardings for a tree whose leaves mirror parameters (optimizer state, EMA parameters): a
    leaf whose path ends with a parameter's path and has its shape gets that parameter's
    sharding (the longest such path), any other leaf (counters, scalars) is replicated."""
    by_path = {}
    for (kp, p), (_, s) in zip(jax.tree_util.tree_leaves_with_path(params),
                               jax.tree_util.tree_leaves_with_path(param_sharding), strict=True):
        by_path[path_of(kp)] = (tuple(p.shape), s)
    rep = replicated(mesh)

    def sharding_of(keypath, leaf):
        path = path_of(keypath)
        best = None
        for param_path, (shape, s) in by_path.items():
            if (path == param_path or path.endswith("/" + param_path)) and tuple(leaf.shape) == shape:
                if best is None or len(param_path) > len(best[0]):
                    best = (param_path, s)
        return best[1] if best else rep

    return jax.tree_util.tree_map_with_path(sharding_of, tree)


def state_shardings(state, mesh: Mesh, rules):
    """Shardings of a TrainState (arrays or shapes): parameters by `rules`, optimizer state and
    EMA parameters like their parameters, everything else replicated."""
    rep = replicated(mesh)
    params = param_shardings(state.params, mesh, rules)
    return state.replace(
        step=rep,
        params=params,
        batch_stats=jax.tree.map(lambda _: rep, state.batch_stats),
        opt_state=like_params(state.opt_state, state.params, params, mesh),
        lr_scale=rep,
        ema_params=None if state.ema_params is None else like_params(state.ema_params, state.params,
                                                                     params, mesh),
    )


def bytes_per_device(tree, shardings=None) -> int:
    """Bytes one device holds of `tree` (the largest shard of each leaf, summed over leaves);
    `shardings` defaults to the leaves' own (jax.Arrays)."""
    leaves = jax.tree.leaves(tree)
    shards = jax.tree.leaves(shardings) if shardings is not None else [x.sharding for x in leaves]
    return int(sum(math.prod(s.shard_shape(tuple(x.shape))) * np.dtype(x.dtype).itemsize
                   for x, s in zip(leaves, shards, strict=True)))


def sharded_paths(param_sharding) -> Sequence[str]:
    """Paths of the parameters that are not replicated."""
    return [path_of(kp) for kp, s in jax.tree_util.tree_leaves_with_path(param_sharding)
            if not s.is_fully_replicated]
