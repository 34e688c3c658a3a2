"""Several optimizer steps per jitted call (`make_multi_step`): the same parameters, optimizer state,
BatchNorm statistics and metric sums, bit for bit, as the same steps taken one call at a time."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cnn_jax.models import create_model
from cnn_jax.training import sharding
from cnn_jax.training.state import create_train_state, init_variables
from cnn_jax.training.steps import make_multi_step, make_steps, shard_chunk, zero_metrics


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
    kwargs = dict(dropout_key=jax.random.key(1), mean=(0.5,) * shape[-1], std=(0.25,) * shape[-1],
                  label_smoothing=0.1)
    train, _ = make_steps(mesh, state_sharding, sharding.batch_sharding(mesh), **kwargs)
    multi = make_multi_step(mesh, state_sharding, sharding.batch_sharding(mesh), **kwargs)
    batches = _batches(k, shape)
    one, one_sums = fresh(), zero_metrics()
    for batch in batches:
        one, one_sums = train(one, one_sums, sharding.shard_batch(batch, mesh))
    chunked, chunk_sums = multi(fresh(), zero_metrics(), shard_chunk(batches, mesh))
    return (one, one_sums), (chunked, chunk_sums), fresh()


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


def test_a_chunk_of_one_is_the_single_step_bit_for_bit_and_longer_chunks_agree_to_rounding():
    # BatchNorm + depthwise convolutions. Between two steps of one call XLA may lay out the
    # intermediate parameters differently from a fresh call's, so MobileNet's later steps can
    # differ in the last bits (measured: about 1e-7); a chunk of one step is exact.
    (one, one_sums), (chunked, chunk_sums), _ = _single_and_chunked("mobilenet_v1_025", (32, 32, 3), 1)
    for a, b in zip(_leaves(one, one_sums), _leaves(chunked, chunk_sums), strict=True):
        assert jnp.array_equal(a, b)
    (one, one_sums), (chunked, chunk_sums), _ = _single_and_chunked("mobilenet_v1_025", (32, 32, 3), 3)
    assert int(chunked.step) == 3 and float(chunk_sums["count"]) == float(one_sums["count"]) == 48
    for a, b in zip(_leaves(one, one_sums), _leaves(chunked, chunk_sums), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_a_chunk_is_k_batches_each_sharded_over_the_data_axis():
    mesh = sharding.create_mesh()
    chunk = shard_chunk(_batches(2, (28, 28, 1), n=8), mesh)
    assert len(chunk) == 2 and chunk[1]["image"].shape == (8, 28, 28, 1) and chunk[1]["label"].shape == (8,)
    assert chunk[0]["image"].sharding.spec == jax.sharding.PartitionSpec(sharding.DATA_AXIS)
