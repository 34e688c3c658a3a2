"""The train and evaluation steps, and `StepRunner`, which runs them for the loop.

`train_step` and `eval_step` are pure functions of (state, metric sums, batch); what differs
between tasks (the model input, the loss, the metric sums) comes from the `task`
(`cnn_jax.tasks`); a task with its own `train_step` (a GAN's alternating players) steps the model
itself. Both return *sums* of metrics, carried on device between log points, so the host
never waits on a step it does not need to see.

`StepRunner` jits them with explicit shardings and donated buffers, and hides how steps are grouped
into calls: `steps_per_call = K > 1` runs K consecutive steps as one jitted call (one dispatch and
one host round trip per K steps), the same math as K calls of one step.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from cnn_jax.training import sharding
from cnn_jax.training.state import TrainState

# Models that sample (a VAE's z, a GAN's codes) draw from the rng stream 'sample': in training a key
# folded from the step's dropout key, in evaluation one fixed key (every evaluation draws the same).
SAMPLE_STREAM = 1


def train_step(state: TrainState, sums: dict, batch: dict, *, task, dropout_key: jax.Array,
               grad_accum_steps: int = 1) -> tuple[TrainState, dict]:
    """One optimizer step on a (sharded) global batch; adds the batch's metric sums to `sums`.

    With `grad_accum_steps = k > 1` the batch is split into k micro-batches whose gradients are
    summed in a `lax.scan` before the single update, so a batch k times larger than fits in
    memory gives the gradient of the whole batch (its mean loss). Micro-batch i takes rows
    i, i+k, i+2k, ... so that each stays spread over every device of the `data` axis.
    BatchNorm statistics are those of each micro-batch, updated in turn.
    """
    # A fresh dropout key per step, derived from the step number, so a resumed run draws the
    # same masks as an uninterrupted one.
    step_key = jax.random.fold_in(dropout_key, state.step)
    if hasattr(task, "train_step"):  # a task that steps its model itself (a GAN's two players)
        return task.train_step(state, sums, batch, step_key)

    def loss_fn(params, batch_stats, micro, key):
        outputs, new_model_state = state.apply_fn(
            {"params": params, "batch_stats": batch_stats}, task.inputs(micro), train=True,
            mutable=["batch_stats"], rngs={"dropout": key, "sample": jax.random.fold_in(key, SAMPLE_STREAM)},
            **task.model_kwargs(micro, True))
        loss, micro_sums = task.train_loss(outputs, micro)
        return loss, (micro_sums, new_model_state.get("batch_stats", batch_stats))

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
            accumulate, (zeros, task.zero_sums(), state.batch_stats), (micro_batches, jnp.arange(k)))
        grads = jax.tree.map(lambda g: g / k, grad_sum)
    new_state = state.apply_gradients(grads, batch_stats)
    return new_state, jax.tree.map(jnp.add, sums, batch_sums)


def train_steps(state: TrainState, sums: dict, batches: Sequence[dict], **step_kwargs) -> tuple[TrainState, dict]:
    """`train_step` applied to the K batches of `batches`, in order, in one program.

    The steps are written out one after the other, each on its own batch argument, with an
    optimization barrier between them, so that every step compiles as the single step does: for
    LeNet-5 the result is the same bit for bit (tests/training/test_multi_step.py), and a chunk of
    one step is the single step for every model. XLA may still fuse and lay out the values between
    two steps of one program differently from two programs, which changes the last bits of models
    with BatchNorm. Two alternatives are slower on XLA:CPU: a `lax.scan` over stacked batches
    (its body's convolutions compile without the CPU backend's layout canonicalisation) and an
    unrolled scan (it slices each batch out of the stack). The cost: compilation grows with K.
    """
    for batch in batches:
        state, sums = jax.lax.optimization_barrier(train_step(state, sums, batch, **step_kwargs))
    return state, sums


def _eval_outputs(state: TrainState, batch: dict, task):
    return state.apply_fn({"params": state.eval_params, "batch_stats": state.batch_stats},
                          task.inputs(batch), train=False, rngs={"sample": jax.random.key(0)},
                          **task.model_kwargs(batch, False))


def eval_step(state: TrainState, sums: dict, batch: dict, *, task) -> dict:
    """Adds the metric sums of one (padded, masked) evaluation batch to `sums`; evaluates the
    moving average of the parameters when the state keeps one."""
    outputs = _eval_outputs(state, batch, task)
    return jax.tree.map(jnp.add, sums, task.eval_sums(outputs, batch))


def eval_step_with_host_outputs(state: TrainState, sums: dict, batch: dict, *, task) -> tuple[dict, dict]:
    """`eval_step`, and the task's per-example `host_outputs` of the batch (for metrics that are
    not sums, computed on the host once every batch is in)."""
    outputs = _eval_outputs(state, batch, task)
    return jax.tree.map(jnp.add, sums, task.eval_sums(outputs, batch)), task.host_outputs(outputs, batch)


class StepRunner:
    """The jitted steps of one run on `mesh`: `runner(state, sums, chunk)` trains on a chunk of
    consecutive batches, `runner.evaluate(state, batches)` returns the task's metrics.

    `chunks(batches, first_step, must_sync)` groups the training batches into calls: a call ends
    after every multiple of `steps_per_call`, after every step for which `must_sync(step)` is true
    (the loop logs, checkpoints or evaluates there), and after the first step, alone, so that its
    time is the compilation's. The calls are therefore the same in a resumed run as in an
    uninterrupted one. A chunk of K steps runs as one program (`train_steps`); a shorter one, one
    step per call (so at most two train programs compile). The first call also compiles the K-step
    program, so that no later call pays for compilation.
    """

    def __init__(self, mesh, state_sharding, *, task, dropout_key: jax.Array, grad_accum_steps: int = 1,
                 steps_per_call: int = 1):
        self.mesh, self.task, self.steps_per_call = mesh, task, steps_per_call
        rep = sharding.replicated(mesh)
        self._sums_sharding = {k: rep for k in task.metric_keys}
        batch_sharding = sharding.batch_sharding(mesh)
        step_kwargs = dict(task=task, dropout_key=dropout_key, grad_accum_steps=grad_accum_steps)
        self._train = jax.jit(functools.partial(train_step, **step_kwargs),
                              in_shardings=(state_sharding, self._sums_sharding, batch_sharding),
                              out_shardings=(state_sharding, self._sums_sharding), donate_argnums=(0, 1))
        self._train_k = jax.jit(functools.partial(train_steps, **step_kwargs),
                                in_shardings=(state_sharding, self._sums_sharding,
                                              (batch_sharding,) * steps_per_call),
                                out_shardings=(state_sharding, self._sums_sharding), donate_argnums=(0, 1))
        self._eval = jax.jit(functools.partial(eval_step, task=task),
                             in_shardings=(state_sharding, self._sums_sharding, batch_sharding),
                             out_shardings=self._sums_sharding, donate_argnums=(1,))
        self._eval_host = None
        if hasattr(task, "host_outputs"):
            self._eval_host = jax.jit(functools.partial(eval_step_with_host_outputs, task=task),
                                      in_shardings=(state_sharding, self._sums_sharding, batch_sharding),
                                      out_shardings=(self._sums_sharding, batch_sharding),
                                      donate_argnums=(1,))
        self._compiled_k = None

    def zero_sums(self) -> dict:
        """Metric sums of nothing, placed on the mesh."""
        return jax.device_put(self.task.zero_sums(), self._sums_sharding)

    def chunks(self, batches: Iterable[dict], first_step: int,
               must_sync: Callable[[int], bool]) -> Iterator[tuple[int, list[dict]]]:
        """(the step after the chunk, its batches) for the batches of steps first_step + 1, ..."""
        chunk, step = [], first_step
        for batch in batches:
            chunk.append(batch)
            step += 1
            if step == first_step + 1 or step % self.steps_per_call == 0 or must_sync(step):
                yield step, chunk
                chunk = []

    def __call__(self, state: TrainState, sums: dict, chunk: Sequence[dict]) -> tuple[TrainState, dict]:
        placed = [sharding.shard_batch(batch, self.mesh) for batch in chunk]
        if len(placed) == self.steps_per_call > 1:
            return self._k_steps(state, sums, placed)(state, sums, tuple(placed))
        for batch in placed:
            state, sums = self._train(state, sums, batch)
        if self.steps_per_call > 1:  # compile (not run) the K-step program within the first call
            self._k_steps(state, sums, placed[:1] * self.steps_per_call)
        return state, sums

    def _k_steps(self, state, sums, placed):
        if self._compiled_k is None:
            self._compiled_k = self._train_k.lower(state, sums, tuple(placed)).compile()
        return self._compiled_k

    def evaluate(self, state: TrainState, batches: Iterable[dict]) -> dict:
        """The task's metrics over `batches` (padded evaluation batches of one split): the
        averages of its sums, and for a task with host outputs the metrics computed from them,
        gathered from every batch of every process."""
        sums = self.zero_sums()
        if self._eval_host is None:
            for batch in batches:
                sums = self._eval(state, sums, sharding.shard_batch(batch, self.mesh))
            return self.task.summarize(sums)
        gathered = []
        for batch in batches:
            sums, host = self._eval_host(state, sums, sharding.shard_batch(batch, self.mesh))
            gathered.append(sharding.to_host(host))
        merged = {k: np.concatenate([g[k] for g in gathered]) for k in gathered[0]} if gathered else {}
        return {**self.task.summarize(sums), **self.task.host_metrics(merged)}
