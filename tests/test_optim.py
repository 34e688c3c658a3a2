"""Optimizers and schedules built from the config do what their names say."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cnn_jax.config import base_config
from cnn_jax.optim import create_optimizer, create_schedule, decay_mask


def _opt(**kw):
    c = base_config().optimizer
    for k, v in kw.items():
        c[k] = v
    return c


def test_step_schedule_divides_by_ten_at_the_given_epochs():
    s = create_schedule(_opt(schedule="step", lr=0.1, decay_epochs=(2, 4)), steps_per_epoch=10, num_epochs=6)
    assert np.isclose(s(19), 0.1) and np.isclose(s(20), 0.01) and np.isclose(s(40), 0.001)


def test_cosine_schedule_with_warmup_rises_linearly_then_decays_to_zero():
    s = create_schedule(_opt(schedule="cosine", lr=1.0, warmup_epochs=1.0), steps_per_epoch=10, num_epochs=5)
    assert np.isclose(s(0), 0.0) and np.isclose(s(5), 0.5) and np.isclose(s(10), 1.0)
    assert s(30) < 0.6 and np.isclose(s(50), 0.0, atol=1e-6)


def test_constant_schedule_is_constant():
    s = create_schedule(_opt(schedule="constant", lr=0.3), steps_per_epoch=10, num_epochs=5)
    assert np.isclose(s(0), 0.3) and np.isclose(s(49), 0.3)


def test_weight_decay_mask_covers_kernels_but_not_biases_or_norm_scales():
    params = {"conv": {"kernel": 1, "bias": 2}, "bn": {"scale": 3, "bias": 4}}
    assert decay_mask(params) == {"conv": {"kernel": True, "bias": False}, "bn": {"scale": False, "bias": False}}


def test_plain_sgd_takes_the_gradient_step():
    tx, _ = create_optimizer(_opt(name="sgd", lr=0.1, momentum=0.0, schedule="constant"), 10, 1)
    params = {"w": jnp.array([1.0, 2.0])}
    updates, _ = tx.update({"w": jnp.array([1.0, -1.0])}, tx.init(params), params)
    np.testing.assert_allclose(optax.apply_updates(params, updates)["w"], [0.9, 2.1])


def test_coupled_weight_decay_shrinks_kernels_only():
    tx, _ = create_optimizer(_opt(name="sgd", lr=1.0, momentum=0.0, schedule="constant", weight_decay=0.1), 10, 1)
    params = {"kernel": jnp.array([1.0]), "bias": jnp.array([1.0])}
    zeros = {"kernel": jnp.zeros(1), "bias": jnp.zeros(1)}
    new = optax.apply_updates(params, tx.update(zeros, tx.init(params), params)[0])
    np.testing.assert_allclose(new["kernel"], [0.9])
    np.testing.assert_allclose(new["bias"], [1.0])


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop"])
def test_every_optimizer_descends_a_quadratic(name):
    tx, _ = create_optimizer(_opt(name=name, lr=0.05, schedule="constant", nesterov=True), 10, 1)
    params = {"kernel": jnp.array([3.0, -2.0])}
    state = tx.init(params)
    for _ in range(50):
        grads = {"kernel": 2 * params["kernel"]}
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    assert float(jnp.sum(params["kernel"] ** 2)) < 13.0 * 0.5


def test_gradient_clipping_bounds_the_update():
    tx, _ = create_optimizer(_opt(name="sgd", lr=1.0, momentum=0.0, schedule="constant", grad_clip_norm=1.0), 10, 1)
    params = {"kernel": jnp.zeros(2)}
    updates, _ = tx.update({"kernel": jnp.array([30.0, 40.0])}, tx.init(params), params)
    np.testing.assert_allclose(jnp.linalg.norm(updates["kernel"]), 1.0, rtol=1e-6)
