"""The one trainer: `train_and_evaluate(config, workdir)` (loop.py), and a trained run back from its
workdir: `load_run(workdir)` (runs.py)."""

from cnn_jax.training.loop import train_and_evaluate
from cnn_jax.training.runs import Run, load_run

__all__ = ["Run", "load_run", "train_and_evaluate"]
