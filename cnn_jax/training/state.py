"""The train state: everything a step reads and writes, and nothing else; and how a run builds it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import struct

from cnn_jax.config import DTYPES
from cnn_jax.errors import ConfigError, one_line
from cnn_jax.models import create_model
from cnn_jax.optim import create_optimizer
from cnn_jax.tasks import model_classes, task_optimizer
from cnn_jax.training import sharding
from cnn_jax.training.init import init_requested, initialize_from_config


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


def build_train_state(config: ml_collections.ConfigDict, spec, steps_per_epoch: int, mesh, *,
                      initialize: bool = True):
    """The model's initial train state on `mesh` (parameters replicated, or sharded by
    `config.sharding.rules`; optimizer state like its parameters), its schedule and dropout key.

    One PRNG key from `config.seed` gives the initial parameters and the dropout stream. With
    `initialize`, `config.init` then applies (per-layer-type initialisers, weights of another
    run or of torchvision); a resumed run skips that, its checkpoint replaces everything anyway.
    """
    model = create_model(config.model.name, num_classes=model_classes(config, spec), dtype=DTYPES[config.model.dtype],
                         conv_impl=config.conv_impl, **config.model.kwargs.to_dict())
    init_key, dropout_key = jax.random.split(jax.random.key(config.seed))
    replicated = sharding.replicated(mesh)

    def init(key):
        return init_variables(model, key, spec.image_shape)

    # Each parameter is created where the rules place it: a model too large for one device is
    # never assembled on one.
    shapes = jax.eval_shape(init, init_key)
    try:
        variable_sharding = {"params": sharding.param_shardings(shapes["params"], mesh, config.sharding.rules),
                             "batch_stats": jax.tree.map(lambda _: replicated, shapes["batch_stats"])}
        tx, schedule = create_optimizer(config.optimizer, steps_per_epoch, config.num_epochs,
                                        params=shapes["params"], batch_size=config.batch_size)
        tx = task_optimizer(config, tx)
    except ValueError as e:
        raise ConfigError(one_line(e)) from None

    def new_state(v):
        return create_train_state(model, tx, v, ema_decay=config.optimizer.ema_decay)

    if initialize and init_requested(config.init):
        variables = jax.jit(init, out_shardings=variable_sharding)(init_key)
        try:
            variables = initialize_from_config(
                config.init, variables, rng=jax.random.fold_in(init_key, 1), model_name=config.model.name,
                image_shape=spec.image_shape, num_classes=model_classes(config, spec),
                model_kwargs=config.model.kwargs.to_dict())
        except ValueError as e:
            raise ConfigError(one_line(e)) from None
        variables = jax.device_put(variables, variable_sharding)
        state_sharding = sharding.state_shardings(jax.eval_shape(new_state, variables), mesh,
                                                  config.sharding.rules)
        return jax.jit(new_state, out_shardings=state_sharding)(variables), schedule, dropout_key

    def new_state_from_key(key):  # parameters and optimizer state in one program (one compile)
        return new_state(init(key))

    state_sharding = sharding.state_shardings(jax.eval_shape(new_state_from_key, init_key), mesh,
                                              config.sharding.rules)
    # Compiled without XLA's backend optimisations: the program runs once, and optimising its
    # random-number generation costs more compile time than it saves in running. The values differ
    # from an optimised build's in the last bits (a different float contraction), the same every run.
    state = jax.jit(new_state_from_key, out_shardings=state_sharding).lower(init_key).compile(
        compiler_options={"xla_backend_optimization_level": 0})(init_key)
    return state, schedule, dropout_key
