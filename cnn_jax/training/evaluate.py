"""`cnn-jax eval`: the task's metrics of a finished (or interrupted) run's best or latest checkpoint."""

from __future__ import annotations

from pathlib import Path

import jax

from cnn_jax.errors import ConfigError
from cnn_jax.tasks import create_task
from cnn_jax.training import sharding
from cnn_jax.training.runs import input_pipeline, read_config, restore_state
from cnn_jax.training.steps import StepRunner
from cnn_jax.training.validate import validate_config


def evaluate_workdir(workdir: str | Path, split: str = "test", checkpoint: str = "best") -> dict:
    """Evaluates the run in `workdir` on `split` with its best (or latest) checkpoint."""
    config = read_config(workdir)
    validate_config(config, num_devices=jax.device_count())
    mesh = sharding.create_mesh(model_axis=config.sharding.model_axis)
    data = input_pipeline(config)
    if split == "val" and not data.num_val:
        raise ConfigError("this run has no validation split (data.val_size=0): use --split test")
    state, used = restore_state(config, workdir, data.spec, mesh, checkpoint)
    runner = StepRunner(mesh, jax.tree.map(lambda x: x.sharding, state), task=create_task(config, data.spec),
                        dropout_key=jax.random.key(0))
    metrics = runner.evaluate(state, data.eval_batches(split))
    return {"split": split, "checkpoint": used, "step": int(state.step), **metrics}
