"""The train state: everything a step reads and writes, and nothing else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct


@struct.dataclass
class TrainState:
    """step, params, batch_stats (BatchNorm running statistics) and optimizer state.

    `apply_fn` and `tx` are static: they define the computation, not its values, so they are
    not checkpointed; `checkpoint_items` lists what is.
    """

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    apply_fn: Callable = struct.field(pytree_node=False)
    tx: optax.GradientTransformation = struct.field(pytree_node=False)

    def apply_gradients(self, grads, batch_stats) -> TrainState:
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        return self.replace(
            step=self.step + 1,
            params=optax.apply_updates(self.params, updates),
            batch_stats=batch_stats,
            opt_state=opt_state,
        )

    def checkpoint_items(self) -> dict:
        return {"step": self.step, "params": self.params, "batch_stats": self.batch_stats, "opt_state": self.opt_state}

    def restore_items(self, items: dict) -> TrainState:
        return self.replace(**items)


def init_variables(model: nn.Module, rng: jax.Array, image_shape) -> dict:
    """Initialises `{'params', 'batch_stats'}` from one key on a single example."""
    params_key, dropout_key = jax.random.split(rng)
    x = jnp.zeros((1, *image_shape), jnp.float32)
    variables = model.init({"params": params_key, "dropout": dropout_key}, x, train=False)
    return {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}


def create_train_state(model: nn.Module, tx: optax.GradientTransformation, variables: dict) -> TrainState:
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=variables["params"],
        batch_stats=variables["batch_stats"],
        opt_state=tx.init(variables["params"]),
        apply_fn=model.apply,
        tx=tx,
    )


def count_params(params) -> int:
    return int(sum(x.size for x in jax.tree.leaves(params)))
