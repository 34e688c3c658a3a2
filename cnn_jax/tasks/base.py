"""What a task tells the one trainer: the batch it takes, its loss, its metric sums.

The trainer (`cnn_jax.training`) is the same loop for every task; a task is a small frozen object
that says what differs:

* `inputs(batch)`: the model's input, normalised on device from the uint8 pipeline batch
  (`batch[input_key]`: images, or clips for video); `model_kwargs(batch, train)` any other
  arguments the model takes (e.g. the targets a two-stage detector samples its proposals from);
* `train_loss(outputs, batch)`: the scalar loss to minimise and this batch's metric sums;
* `eval_sums(outputs, batch)`: the metric sums of one evaluation batch, whose padding rows carry
  `batch['mask'] == 0` and must not count;
* `metric_keys`: the sums carried on device between log points (exact averages over batches,
  devices and hosts), and `summarize(sums)` the metrics written to metrics.jsonl and results.json;
* `reported`: the names of the metrics `summarize` reports, `lower_is_better` those of them that
  improve by falling, and `watch` the one that picks the best checkpoint (the default metric of the
  plateau schedule and early stopping);
* optionally, for metrics that are not sums (COCO's AP, AUCs): `host_outputs(outputs, batch)`,
  fixed-shape per-example arrays the evaluation gathers from every batch and every process, and
  `host_metrics(gathered)`, the metrics computed from them on the host.

Tasks are pure: everything a step needs is a field, so a task can be closed over by `jax.jit`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from cnn_jax.errors import ConfigError


def normalize(images: jax.Array, mean: Sequence[float], std: Sequence[float]) -> jax.Array:
    """uint8 channels-last images -> float32 (x/255 - mean) / std, per channel."""
    mean = jnp.asarray(mean, jnp.float32) * 255.0
    inv_std = 1.0 / (jnp.asarray(std, jnp.float32) * 255.0)
    return (images.astype(jnp.float32) - mean) * inv_std


@dataclasses.dataclass(frozen=True)
class ImageTask:
    """Shared by tasks whose model input is one uint8 array of the batch (`input_key`: 'image', or
    'clip' for video), normalised per channel by the dataset's statistics."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_key: str = "image"

    metric_keys = ("loss", "count", "nonfinite")
    reported = ("loss",)
    lower_is_better = ("loss",)
    watch = "loss"

    def watch_score(self, metrics: dict) -> float:
        """The watched metric as a score to maximise (negated where lower is better)."""
        value = float(metrics[self.watch])
        return -value if self.watch in self.lower_is_better else value

    def inputs(self, batch: dict) -> jax.Array:
        return normalize(batch[self.input_key], self.mean, self.std)

    def model_kwargs(self, batch: dict, train: bool) -> dict:
        """Keyword arguments the model takes besides its input and `train` (none here)."""
        del batch, train
        return {}

    def zero_sums(self) -> dict:
        return {k: jnp.zeros((), jnp.float32) for k in self.metric_keys}

    def show(self, image, outputs, path, class_names=None) -> str:
        """What `cnn-jax predict` prints (and writes) for one input; tasks that predict from an
        image override it."""
        del image, outputs, class_names
        raise ConfigError(f"{path}: a {type(self).__name__} run predicts nothing from an image "
                          "file; its outputs are in the workdir (results.json, samples/)")
