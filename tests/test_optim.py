"""Optimizers and schedules built from the config do what their names say.

(Masks by parameter path — weight decay, L1, freezing, LR multipliers — are in test_optim_masks.py.)
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cnn_jax.config import base_config
from cnn_jax.errors import ConfigError
from cnn_jax.optim import create_optimizer, create_schedule, decay_mask


def _opt(**kw):
    c = base_config().optimizer
    for k, v in kw.items():
        c[k] = v
    return c


def _run(tx, params, grad_fn, steps):
    """`steps` optimizer steps on `grad_fn(params)`; the params and every step's updates."""
    state = tx.init(params)
    history = []
    for _ in range(steps):
        updates, state = tx.update(grad_fn(params), state, params)
        history.append(updates)
        params = optax.apply_updates(params, updates)
    return params, history


def _toy_params():
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    return {
        "conv": {"kernel": jax.random.normal(k1, (3, 3, 1, 4)), "bias": jax.random.normal(k2, (4,))},
        "head": {"kernel": jax.random.normal(k3, (4, 2)), "bias": jnp.ones(2)},
    }


def _random_grads(seed):
    """A deterministic, different gradient at every call (independent of the params)."""
    counter = iter(range(1000))

    def grad_fn(params):
        key = jax.random.fold_in(jax.random.key(seed), next(counter))
        leaves, treedef = jax.tree.flatten(params)
        keys = jax.random.split(key, len(leaves))
        return jax.tree.unflatten(treedef, [jax.random.normal(k, x.shape) for k, x in zip(keys, leaves, strict=True)])

    return grad_fn


# ---- schedules -----------------------------------------------------------------------------------


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


def test_plateau_schedule_is_the_constant_lr_after_warmup_the_trainer_applies_the_reductions():
    s = create_schedule(_opt(schedule="plateau", lr=0.2, warmup_epochs=1.0), steps_per_epoch=10, num_epochs=50)
    assert np.isclose(s(0), 0.0) and np.isclose(s(5), 0.1)
    np.testing.assert_allclose([s(t) for t in (10, 100, 499)], 0.2)


def _torch_onecycle_formula(step, total, lr, pct_start, div, final_div):
    """torch.optim.lr_scheduler.OneCycleLR(anneal_strategy='cos'), written out."""
    initial, peak_step, last_step = lr / div, pct_start * total - 1, total - 1
    final = initial / final_div

    def cos(start, end, pct):
        return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)

    if step <= peak_step:
        return cos(initial, lr, step / peak_step)
    return cos(lr, final, (step - peak_step) / (last_step - peak_step))


def test_onecycle_schedule_follows_torchs_one_cycle_formula():
    cfg = _opt(schedule="onecycle", lr=0.5, pct_start=0.25, div_factor=20.0, final_div_factor=100.0)
    s = create_schedule(cfg, steps_per_epoch=20, num_epochs=5)
    steps = range(100)
    expected = [_torch_onecycle_formula(t, 100, 0.5, 0.25, 20.0, 100.0) for t in steps]
    np.testing.assert_allclose([float(s(t)) for t in steps], expected, rtol=2e-5, atol=1e-9)
    # Starts at lr/div, peaks at lr one step before pct_start of the run, ends at lr/div/final_div.
    assert np.isclose(s(0), 0.5 / 20) and np.isclose(s(24), 0.5) and np.isclose(s(99), 0.5 / 20 / 100)
    assert np.isclose(s(500), 0.5 / 20 / 100)  # stays there past the end


def test_onecycle_schedule_equals_torch_one_cycle_lr():
    try:
        import torch
    except ImportError:
        pytest.fail("torch is a test requirement: pip install torch==2.14.1 torchvision==0.29.1")
    s = create_schedule(_opt(schedule="onecycle", lr=0.1), steps_per_epoch=7, num_epochs=9)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=63)
    expected = []
    for _ in range(63):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    np.testing.assert_allclose([float(s(t)) for t in range(63)], expected, rtol=2e-5, atol=1e-10)


def test_onecycle_refuses_a_warmup_because_pct_start_is_its_warmup():
    with pytest.raises(ConfigError, match="warmup_epochs=0"):
        create_schedule(_opt(schedule="onecycle", warmup_epochs=1.0), 10, 5)


@pytest.mark.parametrize(
    "key, value, fix",
    [("schedule", "linear", "constant, step"), ("name", "lamb", "sgd, adam"), ("weight_decay_mode", "l2", "coupled"),
     ("momentum", 1.5, r"\[0, 1\)"), ("pct_start", 1.5, r"\(0, 1\)")],
)
def test_invalid_values_are_refused_with_the_accepted_ones(key, value, fix):
    with pytest.raises(ConfigError, match=fix):
        create_optimizer(_opt(**{"schedule": "onecycle", key: value}), 10, 5)


# ---- optimizers ----------------------------------------------------------------------------------


def test_weight_decay_mask_covers_kernels_but_not_biases_or_norm_scales():
    params = {"conv": {"kernel": 1, "bias": 2}, "bn": {"scale": 3, "bias": 4}}
    assert decay_mask(params) == {"conv": {"kernel": True, "bias": False}, "bn": {"scale": False, "bias": False}}


def test_plain_sgd_takes_the_gradient_step():
    tx, _ = create_optimizer(_opt(name="sgd", lr=0.1, momentum=0.0, schedule="constant"), 10, 1)
    params = {"w": jnp.array([1.0, 2.0])}
    updates, _ = tx.update({"w": jnp.array([1.0, -1.0])}, tx.init(params), params)
    np.testing.assert_allclose(optax.apply_updates(params, updates)["w"], [0.9, 2.1])


def test_default_recipe_gives_the_same_updates_as_optax_sgd_with_coupled_decay():
    """The chain's order and signs match the previous implementation for the usual recipe."""
    cfg = _opt(name="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="cosine")
    tx, schedule = create_optimizer(cfg, steps_per_epoch=3, num_epochs=2)
    reference = optax.chain(
        optax.add_decayed_weights(5e-4, mask=decay_mask),
        optax.sgd(schedule, momentum=0.9, nesterov=True),
    )
    params = _toy_params()
    ours, ours_updates = _run(tx, params, _random_grads(1), 6)
    ref, ref_updates = _run(reference, params, _random_grads(1), 6)
    for a, b in zip(ours_updates, ref_updates, strict=True):
        jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=0, atol=1e-7), a, b)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=0, atol=1e-7), ours, ref)


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


@pytest.mark.parametrize("name", ["adam", "rmsprop"])
def test_adaptive_optimizers_match_optax_reference_implementations(name):
    cfg = _opt(name=name, lr=0.01, momentum=0.0, schedule="constant", eps=1e-6)
    tx, _ = create_optimizer(cfg, 10, 1)
    reference = optax.adam(0.01, eps=1e-6) if name == "adam" else optax.rmsprop(0.01, decay=0.9, eps=1e-6)
    params = _toy_params()
    ours, _ = _run(tx, params, _random_grads(2), 4)
    ref, _ = _run(reference, params, _random_grads(2), 4)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6), ours, ref)


def test_nesterov_momentum_differs_from_heavy_ball_and_from_plain_sgd():
    params = _toy_params()
    finals = []
    for momentum, nesterov in ((0.0, False), (0.9, False), (0.9, True)):
        tx, _ = create_optimizer(_opt(lr=0.1, momentum=momentum, nesterov=nesterov, schedule="constant"), 10, 1)
        finals.append(_run(tx, params, _random_grads(3), 3)[0]["head"]["kernel"])
    assert not np.allclose(finals[0], finals[1]) and not np.allclose(finals[1], finals[2])
    # Heavy ball: the second update is -lr (g2 + 0.9 g1).
    tx, _ = create_optimizer(_opt(lr=0.1, momentum=0.9, nesterov=False, schedule="constant"), 10, 1)
    grads = _random_grads(4)
    g1, g2 = grads(params), grads(params)
    _, history = _run(tx, params, _random_grads(4), 2)
    np.testing.assert_allclose(history[1]["head"]["kernel"], -0.1 * (g2["head"]["kernel"] + 0.9 * g1["head"]["kernel"]),
                               rtol=1e-6)


def test_gradient_clipping_bounds_the_update():
    tx, _ = create_optimizer(_opt(name="sgd", lr=1.0, momentum=0.0, schedule="constant", grad_clip_norm=1.0), 10, 1)
    params = {"kernel": jnp.zeros(2)}
    updates, _ = tx.update({"kernel": jnp.array([30.0, 40.0])}, tx.init(params), params)
    np.testing.assert_allclose(jnp.linalg.norm(updates["kernel"]), 1.0, rtol=1e-6)


def test_gradient_clipping_comes_before_weight_decay():
    cfg = _opt(lr=1.0, momentum=0.0, schedule="constant", grad_clip_norm=1.0, weight_decay=0.5)
    tx, _ = create_optimizer(cfg, 10, 1)
    params = {"kernel": jnp.array([2.0, 0.0])}
    updates, _ = tx.update({"kernel": jnp.array([30.0, 40.0])}, tx.init(params), params)
    # clip(g) + wd * w, not clip(g + wd * w)
    np.testing.assert_allclose(updates["kernel"], -(jnp.array([0.6, 0.8]) + 0.5 * params["kernel"]), rtol=1e-6)


@pytest.mark.parametrize("name, mode", [("sgd", "decoupled"), ("adam", "coupled"), ("adamw", "decoupled")])
def test_scaling_the_updates_equals_scaling_the_learning_rate(name, mode):
    """What the trainer relies on to apply the plateau reductions at run time."""
    base = dict(name=name, schedule="cosine", momentum=0.9, weight_decay=1e-2, weight_decay_mode=mode, l1=1e-3)
    tx_full, _ = create_optimizer(_opt(lr=0.1, **base), 5, 2)
    tx_tenth, _ = create_optimizer(_opt(lr=0.01, **base), 5, 2)
    params = _toy_params()
    s_full, s_tenth = tx_full.init(params), tx_tenth.init(params)
    for _ in range(4):
        grads = jax.tree.map(jnp.cos, params)
        u_full, s_full = tx_full.update(grads, s_full, params)
        u_tenth, s_tenth = tx_tenth.update(grads, s_tenth, params)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(0.1 * a, b, rtol=1e-5, atol=1e-9), u_full, u_tenth)
