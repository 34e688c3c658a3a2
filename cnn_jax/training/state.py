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
    """step, params, batch_stats (BatchNorm running statistics), optimizer state, and two
    optional pieces of the recipe:

    * `lr_scale`: a factor on every update, 1 unless the plateau schedule has lowered it. It is
      a traced scalar, so the trainer changes it between epochs without recompiling. Optax
      applies the learning rate last, so scaling the update is scaling the learning rate.
    * `ema_params`: an exponential moving average of the parameters (None when
      `ema_decay` is 0), evaluated instead of the raw parameters (Polyak & Juditsky 1992).
      Early in training the decay is min(ema_decay, (1 + step) / (10 + step)), as in
      TensorFlow's ExponentialMovingAverage, so the average is not dominated by the
      initialisation.

    `apply_fn` and `tx` are static: they define the computation, not its values, so they are
    not checkpointed; `checkpoint_items` lists what is.
    """

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    lr_scale: jax.Array
    ema_params: Any
    apply_fn: Callable = struct.field(pytree_node=False)
    tx: optax.GradientTransformation = struct.field(pytree_node=False)
    ema_decay: float = struct.field(pytree_node=False, default=0.0)

    def apply_gradients(self, grads, batch_stats) -> TrainState:
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        updates = jax.tree.map(lambda u: u * self.lr_scale.astype(u.dtype), updates)
        params = optax.apply_updates(self.params, updates)
        ema_params = self.ema_params
        if self.ema_decay:
            step = self.step.astype(jnp.float32)
            decay = jnp.minimum(self.ema_decay, (1.0 + step) / (10.0 + step))
            ema_params = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema_params, params)
        return self.replace(
            step=self.step + 1,
            params=params,
            batch_stats=batch_stats,
            opt_state=opt_state,
            ema_params=ema_params,
        )

    @property
    def eval_params(self):
        """The parameters evaluation uses: the moving average when there is one."""
        return self.params if self.ema_params is None else self.ema_params

    def checkpoint_items(self) -> dict:
        # lr_scale is not here: the trainer's Monitor owns it and saves it with its own state.
        items = {"step": self.step, "params": self.params, "batch_stats": self.batch_stats,
                 "opt_state": self.opt_state}
        if self.ema_params is not None:
            items["ema_params"] = self.ema_params
        return items

    def restore_items(self, items: dict) -> TrainState:
        return self.replace(**{k: v for k, v in items.items() if k in self.checkpoint_items()})


def init_variables(model: nn.Module, rng: jax.Array, image_shape) -> dict:
    """Initialises `{'params', 'batch_stats'}` from one key on a single example."""
    params_key, dropout_key = jax.random.split(rng)
    x = jnp.zeros((1, *image_shape), jnp.float32)
    variables = model.init({"params": params_key, "dropout": dropout_key}, x, train=False)
    return {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}


def create_train_state(model: nn.Module, tx: optax.GradientTransformation, variables: dict,
                       *, ema_decay: float = 0.0) -> TrainState:
    params = variables["params"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables["batch_stats"],
        opt_state=tx.init(params),
        lr_scale=jnp.ones((), jnp.float32),
        ema_params=jax.tree.map(jnp.array, params) if ema_decay else None,
        apply_fn=model.apply,
        tx=tx,
        ema_decay=float(ema_decay),
    )


def count_params(params) -> int:
    return int(sum(x.size for x in jax.tree.leaves(params)))
