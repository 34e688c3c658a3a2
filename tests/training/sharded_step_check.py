"""Runs one train step on 8 fake CPU devices and on 1, printing the max differences as JSON.

Executed by test_sharding.py in a fresh interpreter, because the device count is fixed when JAX
starts (XLA_FLAGS=--xla_force_host_platform_device_count=8). float64 is enabled so that a model
can be checked in double precision: in float32, BatchNorm's backward pass at initialisation
amplifies the different summation order of 8 partial batch sums into ~1e-4 differences in a
ResNet's update, while in float64 the two steps agree to ~1e-15 — the computation is the same.
"""

import json
import sys

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from cnn_jax.config import base_config  # noqa: E402
from cnn_jax.models import create_model  # noqa: E402
from cnn_jax.optim import create_optimizer  # noqa: E402
from cnn_jax.tasks import ClassificationTask  # noqa: E402
from cnn_jax.training import sharding  # noqa: E402
from cnn_jax.training.state import create_train_state, init_variables  # noqa: E402
from cnn_jax.training.steps import StepRunner  # noqa: E402


def max_abs_diff(a, b) -> float:
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def one_step(devices, model_name, image_shape, batch, dtype):
    """The trainer's jitted train step (SGD, lr 0.1) on `batch`, over a mesh of `devices`."""
    mesh = sharding.create_mesh(devices)
    model = create_model(model_name, num_classes=10, dtype=dtype)
    cfg = base_config().optimizer
    cfg.lr, cfg.schedule = 0.1, "constant"
    tx, _ = create_optimizer(cfg, steps_per_epoch=10, num_epochs=1)
    rep = sharding.replicated(mesh)
    variables = init_variables(create_model(model_name, num_classes=10), jax.random.key(0), image_shape)
    variables = jax.tree.map(lambda x: jnp.asarray(x, dtype), variables)
    state = jax.jit(lambda v: create_train_state(model, tx, v), out_shardings=rep)(variables)
    task = ClassificationTask(mean=(0.5,) * image_shape[-1], std=(0.25,) * image_shape[-1])
    runner = StepRunner(mesh, jax.tree.map(lambda _: rep, state), task=task, dropout_key=jax.random.key(1))
    sharded = sharding.shard_batch(batch, mesh)
    per_device = sorted({s.data.shape[0] for s in sharded["image"].addressable_shards})
    state, sums = runner(state, runner.zero_sums(), [batch])
    return state, sums, per_device


def main():
    assert jax.device_count() == 8, jax.device_count()
    out = {}
    cases = (("lenet5", (28, 28, 1), "float32"), ("resnet20", (32, 32, 3), "float64"))
    for model_name, shape, dtype in cases:
        rng = np.random.default_rng(0)
        batch = {"image": rng.integers(0, 256, (32, *shape), dtype=np.uint8),
                 "label": rng.integers(0, 10, (32,)).astype(np.int32)}
        s8, m8, per_device8 = one_step(jax.devices(), model_name, shape, batch, jnp.dtype(dtype))
        s1, m1, per_device1 = one_step(jax.devices()[:1], model_name, shape, batch, jnp.dtype(dtype))
        out[f"{model_name}_{dtype}"] = {
            "loss_8": float(m8["loss"]) / 32, "loss_1": float(m1["loss"]) / 32,
            "param_diff": max_abs_diff(s8.params, s1.params),
            "batch_stats_diff": max_abs_diff(s8.batch_stats, s1.batch_stats) if jax.tree.leaves(s1.batch_stats) else 0.0,
            "param_dtype": str(jax.tree.leaves(s8.params)[0].dtype),
            "per_device_8": per_device8, "per_device_1": per_device1,
        }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
