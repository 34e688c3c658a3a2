"""Several optimizer steps per jitted call (`StepRunner` with `steps_per_call` > 1): the same parameters, optimizer state,
BatchNorm statistics and metric sums, bit for bit, as the same steps taken one call at a time."""

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


def _single_and_chunked(name, shape, k, **model_kwargs):
    mesh = sharding.create_mesh()
    rep = sharding.replicated(mesh)
    model = create_model(name, num_classes=10, **model_kwargs)
    tx = optax.chain(optax.add_decayed_weights(5e-4), optax.sgd(optax.cosine_decay_schedule(0.05, 10), 0.9,
                                                                 nesterov=True))

    def fresh():
        return jax.jit(lambda key: create_train_state(model, tx, init_variables(model, key, shape)),
                       out_shardings=rep)(jax.random.key(0))

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
    return (one, one_sums), (many, many_sums), fresh()


def _leaves(state, sums):
    return jax.tree.leaves((state.step, state.params, state.batch_stats, state.opt_state, sums))


def test_k_steps_in_one_call_equal_k_single_steps_bit_for_bit():
    # LeNet-5 with dropout: the dropout keys are folded with the step number each step advances.
    (one, one_sums), (chunked, chunk_sums), start = _single_and_chunked("lenet5", (28, 28, 1), 3, dropout_rate=0.5)
    assert int(chunked.step) == 3 and float(chunk_sums["count"]) == 48
    for a, b in zip(_leaves(one, one_sums), _leaves(chunked, chunk_sums), strict=True):
        assert jnp.array_equal(a, b)
    # and the steps did something
    assert max(float(jnp.max(jnp.abs(a - b))) for a, b in
               zip(jax.tree.leaves(one.params), jax.tree.leaves(start.params), strict=True)) > 1e-3


@pytest.mark.slow  # about 20-100 s on 2 cores: CI runs it with -m slow
def test_a_chunk_of_one_is_the_single_step_bit_for_bit_and_longer_chunks_agree_to_rounding():
    # BatchNorm + depthwise convolutions. Between two steps of one call XLA may fuse and lay out
    # the intermediate values differently from a fresh call's, so MobileNet's later steps differ
    # in the last bits, which BatchNorm over 16 images amplifies in three steps; a chunk of one
    # step is exact. (LeNet-5 above: exact.)
    (one, one_sums), (chunked, chunk_sums), _ = _single_and_chunked("mobilenet_v1_025", (32, 32, 3), 1)
    for a, b in zip(_leaves(one, one_sums), _leaves(chunked, chunk_sums), strict=True):
        assert jnp.array_equal(a, b)
    (one, one_sums), (chunked, chunk_sums), _ = _single_and_chunked("mobilenet_v1_025", (32, 32, 3), 3)
    assert int(chunked.step) == 3 and float(chunk_sums["count"]) == float(one_sums["count"]) == 48
    for a, b in zip(_leaves(one, one_sums), _leaves(chunked, chunk_sums), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-4)


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
