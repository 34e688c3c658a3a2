"""The train step's recipe options: gradient accumulation, soft targets, lr scale, EMA, bfloat16."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cnn_jax.models import create_model
from cnn_jax.tasks import ClassificationTask
from cnn_jax.training.state import create_train_state, init_variables
from cnn_jax.training.steps import train_step

TASK = ClassificationTask(mean=(0.1307,), std=(0.3081,))


def _batch(n=32, seed=0, num_classes=10):
    rng = np.random.default_rng(seed)
    return {"image": rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8),
            "label": rng.integers(0, num_classes, n).astype(np.int32)}


def _state(name="lenet5", tx=None, ema_decay=0.0, dtype=jnp.float32, **kwargs):
    model = create_model(name, num_classes=10, dtype=dtype, **kwargs)
    variables = init_variables(model, jax.random.key(0), (28, 28, 1))
    return create_train_state(model, tx or optax.sgd(0.1), variables, ema_decay=ema_decay)


def _step(state, batch, **kwargs):
    fn = jax.jit(functools.partial(train_step, task=TASK, dropout_key=jax.random.key(1), **kwargs))
    return fn(state, TASK.zero_sums(), batch)


def _max_diff(a, b):
    return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


@pytest.mark.parametrize("k", [2, 4])
def test_accumulating_k_micro_batches_gives_the_update_of_the_whole_batch(k):
    batch = _batch(32)
    whole, whole_sums = _step(_state(), batch)
    accumulated, acc_sums = _step(_state(), batch, grad_accum_steps=k)
    # Two programs, the same sums in another order. The update (lr 0.1, largest ~1.4e-2) comes
    # from sums of up to 32 * 28 * 28 = 25,088 products (C1's weight gradient): ~sqrt(25,088) *
    # 2^-24 = 1e-5 of it by random rounding, 1.4e-7, plus half an ulp of parameters below 1;
    # 1e-5 leaves 50x for cancellation and is 1e-3 of what one micro-batch's update alone gives
    # (asserted below). Measured: 6e-8, one ulp. The summed loss is 32 float32 terms in another
    # order, <= 31 * 2^-24 = 2e-6 of it.
    assert _max_diff(whole.params, accumulated.params) < 1e-5
    assert float(acc_sums["count"]) == 32
    assert float(acc_sums["loss"]) == pytest.approx(float(whole_sums["loss"]), rel=1e-5)
    assert float(acc_sums["correct1"]) == float(whole_sums["correct1"])
    # and it is not a no-op: one micro-batch alone gives a different update
    half, _ = _step(_state(), jax.tree.map(lambda x: x[::k], batch))
    assert _max_diff(whole.params, half.params) > 1e-4


def test_accumulation_carries_batchnorm_statistics_through_the_micro_batches():
    model = create_model("resnet20", num_classes=10)
    variables = init_variables(model, jax.random.key(0), (32, 32, 3))
    state = create_train_state(model, optax.sgd(0.1), variables)
    rng = np.random.default_rng(0)
    batch = {"image": rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8),
             "label": rng.integers(0, 10, 16).astype(np.int32)}
    task = ClassificationTask(mean=(0.5,) * 3, std=(0.25,) * 3)
    fn = jax.jit(functools.partial(train_step, task=task, dropout_key=jax.random.key(1), grad_accum_steps=2))
    new, sums = fn(state, task.zero_sums(), batch)
    assert float(sums["count"]) == 16
    moved = [float(jnp.max(jnp.abs(a - b))) for a, b in
             zip(jax.tree.leaves(state.batch_stats), jax.tree.leaves(new.batch_stats), strict=True)]
    assert min(moved) > 0  # every BatchNorm's running statistics were updated


def test_one_hot_targets_train_exactly_like_labels_and_soft_targets_differ():
    batch = _batch(16)
    by_label, sums_label = _step(_state(), batch)
    one_hot = {**batch, "targets": np.eye(10, dtype=np.float32)[batch["label"]]}
    by_targets, sums_targets = _step(_state(), one_hot)
    assert _max_diff(by_label.params, by_targets.params) == 0.0
    assert float(sums_label["loss"]) == float(sums_targets["loss"])
    mixed = {**batch, "targets": 0.7 * one_hot["targets"] + 0.3 * np.roll(one_hot["targets"], 1, axis=0)}
    by_mixed, _ = _step(_state(), mixed)
    assert _max_diff(by_label.params, by_mixed.params) > 1e-5


def test_lr_scale_scales_the_update_exactly():
    batch = _batch(16)
    base = _state()
    full, _ = _step(base, batch)
    scaled, _ = _step(base.replace(lr_scale=jnp.asarray(0.1, jnp.float32)), batch)
    # Both steps compute the same gradient (lr_scale is an input of one program); only the
    # parameter updates round: p2 - p0 and 0.1 * (p1 - p0) differ by <= 0.55 ulp of p0, and
    # |p0| < 1 has an ulp <= 2^-24: 3.3e-8 < atol.
    for p0, p1, p2 in zip(*(jax.tree.leaves(s) for s in (base.params, full.params, scaled.params)), strict=True):
        np.testing.assert_allclose(np.asarray(p2 - p0), 0.1 * np.asarray(p1 - p0), rtol=1e-3, atol=1e-7)


def test_ema_follows_the_parameters_with_the_warmed_up_decay_and_is_what_evaluation_uses():
    decay = 0.99
    state = _state(ema_decay=decay)
    assert state.eval_params is state.ema_params
    params0 = state.params
    s1, _ = _step(state, _batch(16, seed=1))
    s2, _ = _step(s1, _batch(16, seed=2))
    d0, d1 = min(decay, 1 / 10), min(decay, 2 / 11)
    expected = jax.tree.map(lambda p0, p1, p2: d1 * (d0 * p0 + (1 - d0) * p1) + (1 - d1) * p2,
                            params0, s1.params, s2.params)
    assert _max_diff(s2.ema_params, expected) < 1e-6  # a few float32 roundings of values < 1
    assert _max_diff(s2.ema_params, s2.params) > 1e-5
    assert "ema_params" in s2.checkpoint_items()
    assert _state().ema_params is None and "ema_params" not in _state().checkpoint_items()


def test_bfloat16_compute_trains_float32_parameters():
    state = _state(dtype=jnp.bfloat16)
    new, sums = _step(state, _batch(16))
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(new.params))
    assert np.isfinite(float(sums["loss"])) and _max_diff(new.params, state.params) > 0
