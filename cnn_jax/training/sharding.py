"""Device mesh and shardings for data-parallel training with jax.jit (no pmap).

The mesh has one `data` axis over every device of every process. Batches are sharded over it
(each device holds batch/devices examples); parameters and optimizer state are replicated. XLA
inserts the gradient all-reduce itself because the loss is a mean over the sharded batch.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def create_mesh(devices=None) -> Mesh:
    """A 1-D mesh named `data` over all devices (of all processes)."""
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over `data`, the rest whole."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def shard_batch(batch: dict, mesh: Mesh) -> dict:
    """Turns this process's slice of a global batch (numpy) into global sharded jax.Arrays."""
    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in batch.items()}


def replicate(tree, mesh: Mesh):
    """Places every leaf of `tree` on every device of the mesh."""
    return jax.device_put(tree, replicated(mesh))
