"""One training step and one evaluation step: pure functions of (state, metric sums, batch).

The loop jits them with shardings and donated buffers. Both return *sums* of metrics, carried
on device between log points, so the host never waits on a step it does not need to see.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from cnn_jax.losses import cross_entropy, soft_cross_entropy
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
    grad_accum_steps: int = 1,
) -> tuple[TrainState, dict]:
    """One optimizer step on a (sharded) global batch; adds the batch's metrics to `sums`.

    With `grad_accum_steps = k > 1` the batch is split into k micro-batches whose gradients are
    summed in a `lax.scan` before the single update, so a batch k times larger than fits in
    memory gives the gradient of the whole batch (its mean loss). Micro-batch i takes rows
    i, i+k, i+2k, ... so that each stays spread over every device of the `data` axis.
    BatchNorm statistics are those of each micro-batch, updated in turn.
    With a 'targets' entry (mixup / cutmix) the loss is the cross-entropy against those
    distributions instead of the one-hot labels.
    """
    # A fresh dropout key per step, derived from the step number, so a resumed run draws the
    # same masks as an uninterrupted one.
    step_key = jax.random.fold_in(dropout_key, state.step)

    def loss_fn(params, batch_stats, micro, key):
        images = normalize(micro["image"], mean, std)
        outputs, new_model_state = state.apply_fn(
            {"params": params, "batch_stats": batch_stats},
            images,
            train=True,
            mutable=["batch_stats"],
            rngs={"dropout": key},
        )
        aux_outputs = ()
        if isinstance(outputs, tuple):
            outputs, *aux_outputs = outputs
        if "targets" in micro:
            def criterion(logits):
                return soft_cross_entropy(logits, micro["targets"], label_smoothing)
        else:
            def criterion(logits):
                return cross_entropy(logits, micro["label"], label_smoothing)
        per_example = criterion(outputs)
        loss = jnp.mean(per_example)
        for aux in aux_outputs:
            loss = loss + AUX_LOSS_WEIGHT * jnp.mean(criterion(aux))
        sums = _batch_sums(outputs.astype(jnp.float32), micro["label"], per_example,
                           jnp.ones_like(micro["label"]))
        return loss, (sums, new_model_state.get("batch_stats", batch_stats))

    grad_fn = jax.grad(loss_fn, has_aux=True)
    if grad_accum_steps == 1:
        grads, (batch_sums, batch_stats) = grad_fn(state.params, state.batch_stats, batch, step_key)
    else:
        k = grad_accum_steps
        micro_batches = jax.tree.map(
            lambda x: jnp.swapaxes(x.reshape(x.shape[0] // k, k, *x.shape[1:]), 0, 1), batch)

        def accumulate(carry, xs):
            grad_sum, metric_sum, batch_stats = carry
            micro, i = xs
            grads, (micro_sums, batch_stats) = grad_fn(state.params, batch_stats, micro,
                                                       jax.random.fold_in(step_key, i))
            return (jax.tree.map(jnp.add, grad_sum, grads), jax.tree.map(jnp.add, metric_sum, micro_sums),
                    batch_stats), None

        zeros = jax.tree.map(jnp.zeros_like, state.params)
        (grad_sum, batch_sums, batch_stats), _ = jax.lax.scan(
            accumulate, (zeros, zero_metrics(), state.batch_stats), (micro_batches, jnp.arange(k)))
        grads = jax.tree.map(lambda g: g / k, grad_sum)
    new_state = state.apply_gradients(grads, batch_stats)
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
        {"params": state.eval_params if params is None else params, "batch_stats": state.batch_stats},
        images,
        train=False,
    ).astype(jnp.float32)
    per_example = cross_entropy(logits, labels)
    return jax.tree.map(jnp.add, sums, _batch_sums(logits, labels, per_example, batch["mask"]))


def make_steps(mesh, state_sharding, batch_sharding, *, dropout_key, mean, std, label_smoothing,
               grad_accum_steps: int = 1):
    """jit-compiled train and eval steps with explicit shardings; the train state and the
    metric sums are donated, so XLA updates them in place."""
    from cnn_jax.training.sharding import replicated

    rep = replicated(mesh)
    metric_sharding = {k: rep for k in METRIC_KEYS}
    train = jax.jit(
        functools.partial(train_step, dropout_key=dropout_key, mean=tuple(mean), std=tuple(std),
                          label_smoothing=label_smoothing, grad_accum_steps=grad_accum_steps),
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


# --------------------------------------------------------------------------------------------
# Several optimizer steps per jitted call
# --------------------------------------------------------------------------------------------
def train_steps(state: TrainState, sums: dict, batches: Sequence[dict], **step_kwargs) -> tuple[TrainState, dict]:
    """`train_step` applied to the K batches of `batches` (a tuple of batch dicts), in order.

    The same math as K calls of `train_step` (the dropout key is still folded with `state.step`,
    which each step advances) in one jitted call: one dispatch and one host round trip for K
    steps. The steps are written out one after the other, each on its own batch argument, with
    an optimization barrier between them, so that every step compiles exactly as the single step
    does and the result is the same bit for bit (tests/training/test_multi_step.py). Two
    alternatives are worse on XLA:CPU: a `lax.scan` over stacked batches compiles its body's
    convolutions without the CPU backend's layout canonicalisation (LeNet-5 ran 3.5x slower),
    and an unrolled scan slices each batch out of the stack, which changes the fusions and the
    last bits of BatchNorm models. The cost: compilation grows with K.
    """
    for batch in batches:
        state, sums = jax.lax.optimization_barrier(train_step(state, sums, batch, **step_kwargs))
    return state, sums


def shard_chunk(batches: Sequence[dict], mesh) -> tuple[dict, ...]:
    """This process's K host batches as K global arrays sharded over `data` (`shard_batch` each),
    the chunk a `make_multi_step` step takes."""
    from cnn_jax.training.sharding import shard_batch

    return tuple(shard_batch(batch, mesh) for batch in batches)


def make_multi_step(mesh, state_sharding, batch_sharding, *, dropout_key, mean, std, label_smoothing,
                    grad_accum_steps: int = 1):
    """jit-compiled `train_steps`: `(state, sums, chunk) -> (state, sums)` for a tuple of K batches
    (`shard_chunk`). Each distinct K compiles once. The train state and the metric sums are
    donated, as in `make_steps`; `batch_sharding` is that of one batch."""
    from cnn_jax.training.sharding import replicated

    rep = replicated(mesh)
    metric_sharding = {k: rep for k in METRIC_KEYS}
    step = functools.partial(train_steps, dropout_key=dropout_key, mean=tuple(mean), std=tuple(std),
                             label_smoothing=label_smoothing, grad_accum_steps=grad_accum_steps)

    executables = {}

    def compile_for(state, sums, chunk):
        """Compiles the K-step call for this chunk's length (once per K) without running it,
        so that a trainer can count the compilation before its first timed step."""
        k = len(chunk)
        if k not in executables:
            jitted = jax.jit(step, in_shardings=(state_sharding, metric_sharding, (batch_sharding,) * k),
                             out_shardings=(state_sharding, metric_sharding), donate_argnums=(0, 1))
            executables[k] = jitted.lower(state, sums, tuple(chunk)).compile()
        return executables[k]

    def multi_step(state, sums, chunk):
        return compile_for(state, sums, chunk)(state, sums, tuple(chunk))

    multi_step.compile_for = compile_for
    return multi_step
