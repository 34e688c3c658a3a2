"""Runs one train step on 8 fake CPU devices and on 1, printing the max differences as JSON.

Executed by test_sharding.py in a fresh interpreter, because the device count is fixed when JAX
starts (XLA_FLAGS=--xla_force_host_platform_device_count=8).
"""

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

from cnn_jax.config import base_config
from cnn_jax.models import create_model
from cnn_jax.optim import create_optimizer
from cnn_jax.training import sharding
from cnn_jax.training.state import create_train_state, init_variables
from cnn_jax.training.steps import make_steps, zero_metrics


def one_step(devices, model_name, image_shape, batch):
    mesh = sharding.create_mesh(devices)
    model = create_model(model_name, num_classes=10)
    cfg = base_config().optimizer
    cfg.lr, cfg.schedule = 0.1, "constant"
    tx, _ = create_optimizer(cfg, steps_per_epoch=10, num_epochs=1)
    rep = sharding.replicated(mesh)
    state = jax.jit(lambda k: create_train_state(model, tx, init_variables(model, k, image_shape)),
                    out_shardings=rep)(jax.random.key(0))
    train, _ = make_steps(mesh, jax.tree.map(lambda _: rep, state), sharding.batch_sharding(mesh),
                          dropout_key=jax.random.key(1), mean=(0.5,) * image_shape[-1],
                          std=(0.25,) * image_shape[-1], label_smoothing=0.0)
    sums = jax.device_put(zero_metrics(), rep)
    state, sums = train(state, sums, sharding.shard_batch(batch, mesh))
    # the batch really is split: each device holds batch/devices examples
    shards = sharding.shard_batch(batch, mesh)["image"].addressable_shards
    return state, sums, {s.data.shape[0] for s in shards}


def main():
    assert jax.device_count() == 8, jax.device_count()
    out = {}
    for model_name, shape in (("lenet5", (28, 28, 1)), ("resnet20", (32, 32, 3))):
        rng = np.random.default_rng(0)
        batch = {"image": rng.integers(0, 256, (32, *shape), dtype=np.uint8),
                 "label": rng.integers(0, 10, (32,)).astype(np.int32)}
        s8, m8, per_device8 = one_step(jax.devices(), model_name, shape, batch)
        s1, m1, per_device1 = one_step(jax.devices()[:1], model_name, shape, batch)
        diff = lambda a, b: max(float(jnp.max(jnp.abs(x - y))) for x, y in
                                zip(jax.tree.leaves(a), jax.tree.leaves(b)))
        out[model_name] = {
            "loss_8": float(m8["loss"]) / 32, "loss_1": float(m1["loss"]) / 32,
            "param_diff": diff(s8.params, s1.params),
            "batch_stats_diff": diff(s8.batch_stats, s1.batch_stats) if jax.tree.leaves(s1.batch_stats) else 0.0,
            "per_device_8": sorted(per_device8), "per_device_1": sorted(per_device1),
        }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
