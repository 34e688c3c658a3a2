"""Several optimizer steps per jitted call (`StepRunner` with `steps_per_call` > 1): the same
steps as one call per step. For LeNet-5 and for a chunk of one step, the same parameters,
optimizer state, BatchNorm statistics and metric sums bit for bit; for a model with BatchNorm,
the same math, checked in float64 (float32 rounding decides its trajectory within three steps)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cnn_jax.models import create_model
from cnn_jax.tasks import ClassificationTask
from cnn_jax.training import sharding
from cnn_jax.training.state import create_train_state, init_variables
from cnn_jax.training.steps import StepRunner


def _batches(k, shape, n=16, seed=0):
    rng = np.random.default_rng(seed)
    return [{"image": rng.integers(0, 256, (n, *shape), dtype=np.uint8),
             "label": rng.integers(0, 10, n).astype(np.int32)} for _ in range(k)]


def _single_and_chunked(name, shape, k, dtype=jnp.float32, **model_kwargs):
    """(state, sums) after k single-step calls, after one k-step call, and the start state. The
    model computes in `dtype`; its variables are the float32 initialisation cast to `dtype`."""
    mesh = sharding.create_mesh()
    rep = sharding.replicated(mesh)
    model = create_model(name, num_classes=10, dtype=dtype, **model_kwargs)
    tx = optax.chain(optax.add_decayed_weights(5e-4), optax.sgd(optax.cosine_decay_schedule(0.05, 10), 0.9,
                                                                 nesterov=True))
    variables = init_variables(create_model(name, num_classes=10, **model_kwargs), jax.random.key(0), shape)

    def fresh():
        start = jax.tree.map(lambda x: jnp.asarray(x, dtype), variables)
        return jax.jit(lambda v: create_train_state(model, tx, v), out_shardings=rep)(start)

    state_sharding = jax.tree.map(lambda _: rep, fresh())
    task = ClassificationTask(mean=(0.5,) * shape[-1], std=(0.25,) * shape[-1], label_smoothing=0.1)

    def runner(steps_per_call):
        return StepRunner(mesh, state_sharding, task=task, dropout_key=jax.random.key(1),
                          steps_per_call=steps_per_call)

    batches = _batches(k, shape)
    single = runner(1)
    one, one_sums = fresh(), single.zero_sums()
    for batch in batches:
        one, one_sums = single(one, one_sums, [batch])
    chunked = runner(k)
    many, many_sums = chunked(fresh(), chunked.zero_sums(), batches)
    return (one, one_sums), (many, many_sums), (fresh(), single.zero_sums())


def _leaves(state, sums):
    return jax.tree.leaves((state.step, state.params, state.batch_stats, state.opt_state, sums))


def test_k_steps_in_one_call_equal_k_single_steps_bit_for_bit():
    # LeNet-5 with dropout: the dropout keys are folded with the step number each step advances.
    # Two programs, compared bit for bit by design (cnn_jax/training/steps.py, `train_steps`): the
    # K-step program writes each step out as the single step, behind an optimization barrier, so
    # XLA compiles every step as the single-step program and the same kernels (oneDNN's or XLA's)
    # see the same operands. Holds under both convolution backends (CNN_JAX_ONEDNN=0) and on AMD
    # and Intel CPUs; MobileNet below is where XLA's fusion between two steps breaks it.
    (one, one_sums), (chunked, chunk_sums), (start, _) = _single_and_chunked(
        "lenet5", (28, 28, 1), 3, dropout_rate=0.5)
    assert int(chunked.step) == 3 and float(chunk_sums["count"]) == 48
    for a, b in zip(_leaves(one, one_sums), _leaves(chunked, chunk_sums), strict=True):
        assert jnp.array_equal(a, b)
    # and the steps did something: three SGD steps at lr ~0.05 on gradients of order 0.1 move
    # some parameter by ~1e-2 (rounding alone would be ~1e-8; weight decay alone, 5e-4 * 0.05 *
    # |w| < 1e-4 per step).
    assert max(float(jnp.max(jnp.abs(a - b))) for a, b in
               zip(jax.tree.leaves(one.params), jax.tree.leaves(start.params), strict=True)) > 1e-3


# How far each leaf of `state` (and the metric sums) moved in the 3 steps, the yardstick of the
# float64 comparison below.
def _movement(after, start):
    return [float(jnp.max(jnp.abs(a - s))) if a.size else 0.0 for a, s in zip(after, start, strict=True)]


@pytest.mark.slow  # about 20-100 s on 2 cores: CI runs it with -m slow
def test_a_chunk_of_one_is_the_single_step_bit_for_bit_and_longer_chunks_agree_to_rounding():
    # MobileNet: BatchNorm + depthwise convolutions. A chunk of one step is the single-step program:
    # the same bits, on any CPU and under either convolution backend.
    (one, one_sums), (chunked, chunk_sums), _ = _single_and_chunked("mobilenet_v1_025", (32, 32, 3), 1)
    for a, b in zip(_leaves(one, one_sums), _leaves(chunked, chunk_sums), strict=True):
        assert jnp.array_equal(a, b)

    # Three steps in one call against three calls: two programs. Between two steps of one call XLA
    # may fuse and lay out the values differently from a fresh call's, so the roundings differ,
    # and these three steps (SGD lr 0.05, momentum 0.9, BatchNorm over 16 images at a 1x1 map)
    # amplify rounding enormously. Measured (both convolution backends, AMD EPYC): float32 runs of
    # the three single steps differ from the float64 run by up to 2.6x each leaf's movement over
    # the three steps (RMS 0.6x), and oneDNN's from XLA's as much; after one step, by 1e-3 of it.
    # The float64 run from a start perturbed by 1e-12 (relative) moves by <= 2e-6 of the movement:
    # the amplification is smooth, ~2e6 per unit of relative perturbation. So in float32 "agree to
    # rounding" is no check at all (on an Intel Xeon one value moved 1.8e-4 on -0.0067), and the
    # agreement is checked where rounding is small: the same steps in float64.
    #
    # Tolerance: float32's unit roundoff 2^-24 became <= 2.6x the movement, i.e. each unit of
    # roundoff <= 4.4e7 units of movement; float64's 2^-53 = 1.1e-16 then gives <= 5e-9 of the
    # movement. We allow 1e-7 of each leaf's movement (20x that bound; measured: <= 5e-13), plus
    # 4 float64 ulps of the leaf's size for leaves that hardly move (BatchNorm scales moved
    # 2e-4). The metric sums stay float32 in a float64 run (cnn_jax.tasks): a sum of n = 48
    # per-example float32 terms in another order differs by <= n * 2^-24 of the sum of |terms|.
    # A step of different math (a wrong learning rate, a lost BatchNorm update) differs by a
    # fraction of the movement: far outside.
    with jax.enable_x64(True):
        (one, one_sums), (chunked, chunk_sums), (start, start_sums) = _single_and_chunked(
            "mobilenet_v1_025", (32, 32, 3), 3, dtype=jnp.float64)
        single, many = _leaves(one, one_sums), _leaves(chunked, chunk_sums)
        moved = _movement(single, _leaves(start, start_sums))
    assert int(chunked.step) == 3 and float(chunk_sums["count"]) == float(one_sums["count"]) == 48
    assert jax.tree.leaves(one.params)[0].dtype == jnp.float64
    for a, b, movement in zip(single, many, moved, strict=True):
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype == np.float64:
            tolerance = 1e-7 * movement + 4 * np.finfo(np.float64).eps * np.abs(a).max()
        elif a.dtype == np.float32:  # metric sums
            tolerance = 48 * 2.0**-24 * np.abs(a).max()
        else:  # the step counter
            tolerance = 0
        assert np.abs(a - b).max() <= tolerance, (a.dtype, a.shape, np.abs(a - b).max(), movement)


def test_calls_end_at_multiples_of_k_and_where_the_loop_looks_and_the_first_step_runs_alone():
    runner = StepRunner.__new__(StepRunner)  # only the grouping, no compilation
    runner.steps_per_call = 3

    def sizes(first_step, n, sync_every=8):
        chunks = runner.chunks(range(n), first_step, lambda s: s % sync_every == 0)
        return [(step, len(chunk)) for step, chunk in chunks]

    # 24 steps, a log point every 8: [1] [2 3] [4-6] [7 8] [9] [10-12] [13-15] [16] ...
    assert sizes(0, 24) == [(1, 1), (3, 2), (6, 3), (8, 2), (9, 1), (12, 3), (15, 3), (16, 1),
                            (18, 2), (21, 3), (24, 3)]
    # a run resumed after step 10 groups its later steps as the uninterrupted run did
    assert sizes(10, 14)[2:] == [(15, 3), (16, 1), (18, 2), (21, 3), (24, 3)]
    assert sizes(10, 14)[:2] == [(11, 1), (12, 1)]


@pytest.mark.slow
def test_the_trainer_runs_several_steps_per_call_with_the_results_of_one_step_per_call(mnist_data_dir, tmp_path):
    import json

    import orbax.checkpoint as ocp
    from trainer_utils import small_config

    from cnn_jax.training.loop import train_and_evaluate

    # 24 steps per epoch, a log point every 8 steps: with 3 steps per call the calls are
    # [1] [2 3] [4-6] [7 8] [9] [10-12] [13-15] [16] ..., full chunks and single steps mixed.
    runs = {k: tmp_path / f"k{k}" for k in (1, 3)}
    for k, workdir in runs.items():
        train_and_evaluate(small_config(mnist_data_dir, num_epochs=1, steps_per_call=k), workdir)

    def records(workdir):
        lines = (workdir / "metrics.jsonl").read_text().splitlines()
        return [(r["step"], r["split"], r["loss"], r["accuracy"]) for r in map(json.loads, lines)]

    def params(workdir):
        path = (workdir / "checkpoints" / "24" / "default").absolute()
        return jax.tree.leaves(ocp.StandardCheckpointer().restore(path)["params"])

    assert [r[:2] for r in records(runs[3])] == [(8, "train"), (16, "train"), (24, "train"),
                                                 (24, "val"), (24, "test")]
    assert records(runs[3]) == records(runs[1])  # LeNet-5: the same bits either way
    for a, b in zip(params(runs[1]), params(runs[3]), strict=True):
        assert np.array_equal(a, b)


def test_steps_per_call_below_one_is_refused(mnist_data_dir):
    from trainer_utils import small_config

    from cnn_jax.errors import ConfigError
    from cnn_jax.training.validate import validate_config

    with pytest.raises(ConfigError, match="steps_per_call"):
        validate_config(small_config(mnist_data_dir, steps_per_call=0), num_devices=1)
