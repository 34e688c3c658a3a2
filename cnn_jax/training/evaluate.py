"""`cnn-jax eval`: the metrics of a finished (or interrupted) run's best or latest checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np

from cnn_jax.config import from_dict
from cnn_jax.data import create_input_pipeline
from cnn_jax.errors import ConfigError, one_line
from cnn_jax.tasks import create_task
from cnn_jax.training import sharding
from cnn_jax.training.checkpoint import RunCheckpoints
from cnn_jax.training.monitor import Monitor
from cnn_jax.training.state import build_train_state
from cnn_jax.training.steps import StepRunner
from cnn_jax.training.validate import validate_config


def input_pipeline(config):
    """This process's input pipeline; data options that cannot work become a ConfigError."""
    try:
        return create_input_pipeline(config.data, seed=config.seed, batch_size=config.batch_size,
                                     eval_batch_size=config.eval_batch_size,
                                     process_index=jax.process_index(), process_count=jax.process_count())
    except ValueError as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(one_line(e)) from None


def evaluate_workdir(workdir: str | Path, split: str = "test", checkpoint: str = "best") -> dict:
    """Evaluates the run in `workdir` on `split` with its best (or latest) checkpoint."""
    workdir = Path(workdir)
    path = workdir / "config.json"
    if not path.exists():
        raise ConfigError(f"{workdir} holds no run (no config.json): pass the --workdir of a `cnn-jax train`")
    config = from_dict(json.loads(path.read_text()))
    validate_config(config, num_devices=jax.device_count())
    mesh = sharding.create_mesh(model_axis=config.sharding.model_axis)
    data = input_pipeline(config)
    if split == "val" and not data.num_val:
        raise ConfigError("this run has no validation split (data.val_size=0): use --split test")
    state, _, _ = build_train_state(config, data.spec, max(data.steps_per_epoch, 1), mesh, initialize=False)
    target = {**state.checkpoint_items(), "monitor": Monitor(config).state_dict()}
    ckpt = RunCheckpoints(workdir, keep=config.keep_checkpoints)
    items, used = (ckpt.restore_best(target), "best") if checkpoint == "best" else (None, "latest")
    if items is None:
        items, used = ckpt.restore_latest(target), "latest"
    ckpt.close()
    if items is None:
        raise ConfigError(f"{workdir} has no checkpoint yet: train first")
    items.pop("monitor")
    state = state.restore_items(items)
    runner = StepRunner(mesh, jax.tree.map(lambda x: x.sharding, state), task=create_task(config, data.spec),
                        dropout_key=jax.random.key(0))
    metrics = runner.evaluate(state, data.eval_batches(split))
    return {"split": split, "checkpoint": used, "step": int(np.asarray(state.step)), **metrics}
