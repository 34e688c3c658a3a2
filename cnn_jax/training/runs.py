"""A trained run, back from its workdir: `load_run(workdir)` gives the model, its variables, the
config, the dataset spec and the task — one line to get a trained model into a notebook, and what
`cnn-jax eval`, `predict` and `report` start from."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jax
import ml_collections

from cnn_jax.config import DTYPES, from_dict
from cnn_jax.data import create_input_pipeline, dataset_spec_from_config
from cnn_jax.errors import ConfigError, one_line
from cnn_jax.models import create_model
from cnn_jax.tasks import create_task, model_classes
from cnn_jax.training import sharding
from cnn_jax.training.checkpoint import RunCheckpoints
from cnn_jax.training.monitor import Monitor
from cnn_jax.training.state import TrainState, build_train_state
from cnn_jax.training.validate import validate_config

CHECKPOINTS = ("best", "latest")


def input_pipeline(config: ml_collections.ConfigDict):
    """This process's input pipeline; data options that cannot work become a ConfigError."""
    try:
        return create_input_pipeline(config.data, seed=config.seed, batch_size=config.batch_size,
                                     eval_batch_size=config.eval_batch_size,
                                     process_index=jax.process_index(), process_count=jax.process_count())
    except ValueError as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(one_line(e)) from None


def read_config(workdir: str | Path) -> ml_collections.ConfigDict:
    """The config a run saved in its workdir."""
    path = Path(workdir) / "config.json"
    if not path.exists():
        raise ConfigError(f"{workdir} holds no run (no config.json): pass the --workdir of a `cnn-jax train`")
    return from_dict(json.loads(path.read_text()))


def restore_state(config: ml_collections.ConfigDict, workdir: str | Path, spec, mesh,
                  checkpoint: str = "best") -> tuple[TrainState, str]:
    """The run's train state from its best checkpoint (the latest when it has no best, or when
    `checkpoint='latest'`), and which one it was."""
    if checkpoint not in CHECKPOINTS:
        raise ConfigError(f"checkpoint={checkpoint!r} is not one of {', '.join(CHECKPOINTS)}")
    state, _, _ = build_train_state(config, spec, 1, mesh, initialize=False)
    target = {**state.checkpoint_items(), "monitor": Monitor(config).state_dict()}
    ckpt = RunCheckpoints(workdir, keep=config.keep_checkpoints)
    items, used = (ckpt.restore_best(target), "best") if checkpoint == "best" else (None, "latest")
    if items is None:
        items, used = ckpt.restore_latest(target), "latest"
    ckpt.close()
    if items is None:
        raise ConfigError(f"{workdir} has no checkpoint yet: train first")
    items.pop("monitor")
    return state.restore_items(items), used


@dataclasses.dataclass
class Run:
    """A trained run: `model.apply(variables, task.inputs(batch), train=False)` is its prediction."""

    workdir: Path
    config: ml_collections.ConfigDict
    spec: Any
    task: Any
    model: Any
    variables: dict
    step: int
    checkpoint: str

    def data(self):
        """The run's input pipeline (its dataset must be prepared in the run's data_dir)."""
        return input_pipeline(self.config)

    def predict(self, inputs) -> jax.Array:
        """The model's outputs (logits) for a uint8 batch of its inputs (images, or clips for a
        video model), in evaluation mode with the trainer's fixed 'sample' key."""
        return self.model.apply(self.variables, self.task.inputs({self.task.input_key: inputs}),
                                train=False, rngs={"sample": jax.random.key(0)})


def load_run(workdir: str | Path, checkpoint: str = "best") -> Run:
    """The model, variables (the moving average of the parameters when the run kept one), config,
    dataset spec and task of the run in `workdir`, from its best (or latest) checkpoint."""
    workdir = Path(workdir)
    config = read_config(workdir)
    validate_config(config, num_devices=jax.device_count())
    try:
        spec = dataset_spec_from_config(config.data)
    except ValueError as e:
        raise ConfigError(one_line(e)) from None
    mesh = sharding.create_mesh(model_axis=config.sharding.model_axis)
    state, used = restore_state(config, workdir, spec, mesh, checkpoint)
    model = create_model(config.model.name, num_classes=model_classes(config, spec), dtype=DTYPES[config.model.dtype],
                         conv_impl=config.conv_impl, **config.model.kwargs.to_dict())
    variables = {"params": state.eval_params, "batch_stats": state.batch_stats}
    return Run(workdir=workdir, config=config, spec=spec, task=create_task(config, spec), model=model,
               variables=variables, step=int(state.step), checkpoint=used)
