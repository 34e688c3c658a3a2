"""One training step and one evaluation step: pure functions of (state, metric sums, batch).

The loop jits them with shardings and donated buffers. Both return *sums* of metrics, carried
on device between log points, so the host never waits on a step it does not need to see.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from cnn_jax.losses import cross_entropy
from cnn_jax.metrics import topk_correct
from cnn_jax.training.state import TrainState

# GoogLeNet's auxiliary classifiers are added to the loss with weight 0.3 (Szegedy et al. 2015, §5).
AUX_LOSS_WEIGHT = 0.3

METRIC_KEYS = ("loss", "correct1", "correct5", "count", "nonfinite")


def zero_metrics() -> dict:
    return {k: jnp.zeros((), jnp.float32) for k in METRIC_KEYS}


def normalize(images: jax.Array, mean: Sequence[float], std: Sequence[float]) -> jax.Array:
    """uint8 NHWC -> float32 (x/255 - mean) / std, per channel."""
    mean = jnp.asarray(mean, jnp.float32) * 255.0
    inv_std = 1.0 / (jnp.asarray(std, jnp.float32) * 255.0)
    return (images.astype(jnp.float32) - mean) * inv_std


def _batch_sums(logits, labels, loss_per_example, mask) -> dict:
    mask = mask.astype(jnp.float32)
    loss_sum = jnp.sum(loss_per_example * mask)
    return {
        "loss": loss_sum,
        "correct1": jnp.sum(topk_correct(logits, labels, 1) * mask),
        "correct5": jnp.sum(topk_correct(logits, labels, 5) * mask),
        "count": jnp.sum(mask),
        "nonfinite": (~jnp.isfinite(loss_sum)).astype(jnp.float32),
    }


def train_step(
    state: TrainState,
    sums: dict,
    batch: dict,
    *,
    dropout_key: jax.Array,
    mean: Sequence[float],
    std: Sequence[float],
    label_smoothing: float = 0.0,
) -> tuple[TrainState, dict]:
    """One optimizer step on a (sharded) global batch; adds the batch's metrics to `sums`."""
    images = normalize(batch["image"], mean, std)
    labels = batch["label"]
    # A fresh dropout key per step, derived from the step number, so a resumed run draws the
    # same masks as an uninterrupted one.
    step_key = jax.random.fold_in(dropout_key, state.step)

    def loss_fn(params):
        outputs, new_model_state = state.apply_fn(
            {"params": params, "batch_stats": state.batch_stats},
            images,
            train=True,
            mutable=["batch_stats"],
            rngs={"dropout": step_key},
        )
        aux_outputs = ()
        if isinstance(outputs, tuple):
            outputs, *aux_outputs = outputs
        per_example = cross_entropy(outputs, labels, label_smoothing)
        loss = jnp.mean(per_example)
        for aux in aux_outputs:
            loss = loss + AUX_LOSS_WEIGHT * jnp.mean(cross_entropy(aux, labels, label_smoothing))
        return loss, (outputs, per_example, new_model_state)

    grads, (logits, per_example, new_model_state) = jax.grad(loss_fn, has_aux=True)(state.params)
    new_state = state.apply_gradients(grads, new_model_state.get("batch_stats", state.batch_stats))
    batch_sums = _batch_sums(logits.astype(jnp.float32), labels, per_example, jnp.ones_like(labels))
    return new_state, jax.tree.map(jnp.add, sums, batch_sums)


def eval_step(
    state: TrainState,
    sums: dict,
    batch: dict,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    params=None,
) -> dict:
    """Adds the metrics of one (padded, masked) evaluation batch to `sums`."""
    images = normalize(batch["image"], mean, std)
    labels = batch["label"]
    logits = state.apply_fn(
        {"params": state.params if params is None else params, "batch_stats": state.batch_stats},
        images,
        train=False,
    ).astype(jnp.float32)
    per_example = cross_entropy(logits, labels)
    return jax.tree.map(jnp.add, sums, _batch_sums(logits, labels, per_example, batch["mask"]))


def make_steps(mesh, state_sharding, batch_sharding, *, dropout_key, mean, std, label_smoothing):
    """jit-compiled train and eval steps with explicit shardings; the train state and the
    metric sums are donated, so XLA updates them in place."""
    from cnn_jax.training.sharding import replicated

    rep = replicated(mesh)
    metric_sharding = {k: rep for k in METRIC_KEYS}
    train = jax.jit(
        functools.partial(train_step, dropout_key=dropout_key, mean=tuple(mean), std=tuple(std),
                          label_smoothing=label_smoothing),
        in_shardings=(state_sharding, metric_sharding, batch_sharding),
        out_shardings=(state_sharding, metric_sharding),
        donate_argnums=(0, 1),
    )
    evaluate = jax.jit(
        functools.partial(eval_step, mean=tuple(mean), std=tuple(std)),
        in_shardings=(state_sharding, metric_sharding, batch_sharding),
        out_shardings=metric_sharding,
        donate_argnums=(1,),
    )
    return train, evaluate
