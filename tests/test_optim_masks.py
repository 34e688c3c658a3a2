"""Weight decay (coupled and decoupled), L1, freezing and per-parameter learning rates, each on the
parameters a regex over their paths selects."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cnn_jax.config import base_config
from cnn_jax.errors import ConfigError
from cnn_jax.optim import create_optimizer
from cnn_jax.tree import param_paths, regex_mask


def _opt(**kw):
    c = base_config().optimizer
    c.schedule = "constant"
    for k, v in kw.items():
        c[k] = v
    return c


def _params():
    k1, k2, k3, k4 = jax.random.split(jax.random.key(0), 4)
    return {
        "conv": {"kernel": jax.random.normal(k1, (3, 3, 1, 4)), "bias": jax.random.normal(k2, (4,))},
        "bn": {"scale": jnp.ones(4), "bias": jnp.zeros(4)},
        "head": {"kernel": jax.random.normal(k3, (4, 2)), "bias": jax.random.normal(k4, (2,))},
    }


def _grads_of(params):
    """The gradient of a fixed non-trivial loss, sum(cos(w)) (so steps depend on where w is)."""
    return jax.tree.map(lambda w: -jnp.sin(w), params)


def _run(tx, params, steps, grad_fn=_grads_of):
    state = tx.init(params)
    for _ in range(steps):
        updates, state = tx.update(grad_fn(params), state, params)
        params = optax.apply_updates(params, updates)
    return params


def _assert_trees_close(a, b, **kw):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, **kw), a, b)


# ---- weight decay ---------------------------------------------------------------------------------


def test_coupled_weight_decay_shrinks_kernels_only():
    tx, _ = create_optimizer(_opt(lr=1.0, momentum=0.0, weight_decay=0.1), 10, 1)
    params = {"kernel": jnp.array([1.0]), "bias": jnp.array([1.0])}
    zeros = {"kernel": jnp.zeros(1), "bias": jnp.zeros(1)}
    new = optax.apply_updates(params, tx.update(zeros, tx.init(params), params)[0])
    np.testing.assert_allclose(new["kernel"], [0.9])
    np.testing.assert_allclose(new["bias"], [1.0])


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_coupled_weight_decay_equals_adding_half_wd_squared_norm_of_the_kernels_to_the_loss(momentum):
    wd = 0.05
    tx, _ = create_optimizer(_opt(lr=0.1, momentum=momentum, weight_decay=wd), 10, 1)
    plain, _ = create_optimizer(_opt(lr=0.1, momentum=momentum, weight_decay=0.0), 10, 1)

    def penalty(params):  # wd/2 |w|^2 over the kernels (default decay_regex)
        return wd / 2 * sum(jnp.sum(layer["kernel"] ** 2) for layer in (params["conv"], params["head"]))

    def grads_with_penalty(params):
        return jax.tree.map(jnp.add, _grads_of(params), jax.grad(penalty)(params))

    _assert_trees_close(_run(tx, _params(), 5), _run(plain, _params(), 5, grads_with_penalty), rtol=1e-6, atol=1e-7)
    assert not np.allclose(_run(tx, _params(), 5)["head"]["kernel"], _run(plain, _params(), 5)["head"]["kernel"])


@pytest.mark.parametrize("name", ["sgd", "adam", "rmsprop"])
def test_decoupled_weight_decay_shrinks_masked_weights_by_lr_times_wd_after_the_optimizer(name):
    wd, lr = 0.1, 0.5
    base = dict(name=name, lr=lr, momentum=0.9, schedule="cosine")
    tx, schedule = create_optimizer(_opt(weight_decay=wd, weight_decay_mode="decoupled", **base), 4, 2)
    plain, _ = create_optimizer(_opt(weight_decay=0.0, **base), 4, 2)
    params = _params()
    mask = regex_mask(params, r"(^|/)kernel$")
    state, plain_state = tx.init(params), plain.init(params)
    for step in range(4):  # same params fed to both: compare each step's update
        grads = _grads_of(params)
        updates, state = tx.update(grads, state, params)
        plain_updates, plain_state = plain.update(grads, plain_state, params)
        lr_t = schedule(step)
        expected = jax.tree.map(lambda u, w, m, lr_t=lr_t: u - lr_t * wd * w * m, plain_updates, params, mask)
        _assert_trees_close(updates, expected, rtol=1e-5, atol=1e-7)
        params = jax.tree.map(lambda w: 0.9 * w, params)


def test_adamw_decays_like_optax_adamw_on_the_decay_regex_parameters():
    cfg = _opt(name="adamw", lr=0.01, weight_decay=0.1, weight_decay_mode="decoupled")
    tx, _ = create_optimizer(cfg, 10, 1)
    reference = optax.adamw(0.01, weight_decay=0.1, mask=lambda p: regex_mask(p, r"(^|/)kernel$"))
    _assert_trees_close(_run(tx, _params(), 4), _run(reference, _params(), 4), rtol=1e-6)


def test_adamw_with_coupled_weight_decay_is_refused_naming_the_fix():
    with pytest.raises(ConfigError, match="weight_decay_mode='decoupled'"):
        create_optimizer(_opt(name="adamw", weight_decay=0.01, weight_decay_mode="coupled"), 10, 1)


def test_decay_regex_chooses_the_decayed_parameters():
    tx, _ = create_optimizer(_opt(lr=1.0, momentum=0.0, weight_decay=0.5, decay_regex=r"^bn/scale$"), 10, 1)
    params = _params()
    new = _run(tx, params, 1, grad_fn=lambda p: jax.tree.map(jnp.zeros_like, p))
    np.testing.assert_allclose(new["bn"]["scale"], 0.5 * params["bn"]["scale"])
    np.testing.assert_array_equal(new["conv"]["kernel"], params["conv"]["kernel"])


# ---- L1 -------------------------------------------------------------------------------------------


def test_l1_pulls_masked_weights_toward_zero_faster_and_leaves_biases_alone():
    def quadratic_pull(params):  # gradient of 0.01/2 |w|^2 everywhere: both runs shrink
        return jax.tree.map(lambda w: 0.01 * w, params)

    with_l1, _ = create_optimizer(_opt(lr=0.1, momentum=0.0, l1=0.05), 10, 1)
    without, _ = create_optimizer(_opt(lr=0.1, momentum=0.0, l1=0.0), 10, 1)
    a = _run(with_l1, _params(), 10, quadratic_pull)
    b = _run(without, _params(), 10, quadratic_pull)
    for layer in ("conv", "head"):
        assert float(jnp.mean(jnp.abs(a[layer]["kernel"]))) < float(jnp.mean(jnp.abs(b[layer]["kernel"]))) - 0.02
        np.testing.assert_array_equal(a[layer]["bias"], b[layer]["bias"])


def test_l1_step_is_lr_times_l1_times_the_sign_of_the_weight():
    tx, _ = create_optimizer(_opt(lr=0.1, momentum=0.0, l1=0.2), 10, 1)
    params = {"kernel": jnp.array([0.5, -2.0, 0.0]), "bias": jnp.array([1.0])}
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zeros, tx.init(params), params)
    np.testing.assert_allclose(updates["kernel"], [-0.02, 0.02, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(updates["bias"], [0.0])


# ---- freezing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        dict(name="sgd", momentum=0.9, nesterov=True, weight_decay=0.1, l1=0.01, grad_clip_norm=1.0),
        dict(name="sgd", momentum=0.9, weight_decay=0.1, weight_decay_mode="decoupled", l1=0.01),
        dict(name="adam", weight_decay=0.1, weight_decay_mode="decoupled", l1=0.01),
        dict(name="adamw", weight_decay=0.1, weight_decay_mode="decoupled"),
        dict(name="rmsprop", momentum=0.5, weight_decay=0.1, lr_multipliers=((r"^conv/", 3.0),)),
    ],
)
def test_frozen_parameters_are_bitwise_unchanged_after_steps(options):
    cfg = _opt(lr=0.1, freeze_regex=r"^conv/", **options)
    params = _params()
    tx, _ = create_optimizer(cfg, 10, 1, params=params)
    new = _run(tx, params, 5)
    for leaf in ("kernel", "bias"):
        np.testing.assert_array_equal(np.asarray(new["conv"][leaf]), np.asarray(params["conv"][leaf]))
    assert not np.allclose(new["head"]["kernel"], params["head"]["kernel"])
    # The same options without freezing do move the conv layer.
    unfrozen, _ = create_optimizer(_opt(lr=0.1, **options), 10, 1)
    assert not np.allclose(_run(unfrozen, params, 5)["conv"]["kernel"], params["conv"]["kernel"])


def test_frozen_parameters_get_no_optimizer_state():
    params = _params()

    def state_size(freeze_regex):
        tx, _ = create_optimizer(_opt(name="adam", freeze_regex=freeze_regex), 10, 1)
        return sum(x.size for x in jax.tree.leaves(tx.init(params)))

    conv_size = params["conv"]["kernel"].size + params["conv"]["bias"].size
    assert state_size("") - state_size(r"^conv/") == 2 * conv_size  # Adam's two moments


def test_frozen_parameters_do_not_count_in_the_clipped_gradient_norm():
    tx, _ = create_optimizer(_opt(lr=1.0, momentum=0.0, grad_clip_norm=1.0, freeze_regex="^big$"), 10, 1)
    params = {"big": jnp.zeros(1), "small": jnp.zeros(1)}
    updates, _ = tx.update({"big": jnp.array([100.0]), "small": jnp.array([0.5])}, tx.init(params), params)
    np.testing.assert_allclose(updates["small"], [-0.5])
    np.testing.assert_array_equal(updates["big"], [0.0])


# ---- per-parameter learning rates -----------------------------------------------------------------


def test_lr_multiplier_scales_the_update_of_the_matching_parameters_exactly():
    params = _params()
    grads = _grads_of(params)
    plain, _ = create_optimizer(_opt(lr=0.1, momentum=0.0), 10, 1)
    multiplied, _ = create_optimizer(_opt(lr=0.1, momentum=0.0, lr_multipliers=((r"^head/kernel$", 10.0),)), 10, 1,
                                     params=params)
    u_plain, _ = plain.update(grads, plain.init(params), params)
    u_mult, _ = multiplied.update(grads, multiplied.init(params), params)
    np.testing.assert_array_equal(u_mult["head"]["kernel"], 10.0 * u_plain["head"]["kernel"])
    for layer, leaf in (("head", "bias"), ("conv", "kernel"), ("conv", "bias"), ("bn", "scale")):
        np.testing.assert_array_equal(u_mult[layer][leaf], u_plain[layer][leaf])


def test_first_matching_lr_multiplier_wins():
    params = {"head": {"kernel": jnp.ones(2), "bias": jnp.ones(2)}, "conv": {"kernel": jnp.ones(2)}}
    cfg = _opt(lr=1.0, momentum=0.0, lr_multipliers=((r"^head/kernel$", 10.0), (r"^head/", 0.5)))
    tx, _ = create_optimizer(cfg, 10, 1, params=params)
    updates, _ = tx.update(params, tx.init(params), params)
    np.testing.assert_allclose(updates["head"]["kernel"], [-10.0, -10.0])
    np.testing.assert_allclose(updates["head"]["bias"], [-0.5, -0.5])
    np.testing.assert_allclose(updates["conv"]["kernel"], [-1.0, -1.0])


@pytest.mark.parametrize("entry", [("^head/",), ("^head/", "10"), ("", 2.0), ("^head/", -1.0), ("(", 2.0)])
def test_malformed_lr_multipliers_are_refused(entry):
    with pytest.raises(ConfigError, match="lr_multipliers"):
        create_optimizer(_opt(lr_multipliers=(entry,)), 10, 1)


# ---- regexes that match nothing are errors, not silent no-ops ---------------------------------------


@pytest.mark.parametrize(
    "options, key",
    [
        (dict(freeze_regex=r"^conv1/"), "freeze_regex"),
        (dict(lr_multipliers=((r"^head/", 2.0), (r"^haed/", 10.0))), "lr_multipliers"),
        (dict(weight_decay=1e-4, decay_regex=r"(^|/)weight$"), "decay_regex"),
        (dict(l1=1e-4, decay_regex=r"(^|/)weight$"), "decay_regex"),
    ],
)
def test_a_regex_matching_no_parameter_is_an_error_naming_it_and_example_paths(options, key):
    params = _params()
    with pytest.raises(ConfigError, match=rf"{key}=.*matches no parameter.*'conv/bias'"):
        create_optimizer(_opt(**options), 10, 1, params=params)
    create_optimizer(_opt(**options), 10, 1)  # without params nothing can be checked


def test_freezing_every_parameter_warns(caplog):
    with caplog.at_level("WARNING", logger="cnn_jax"):
        create_optimizer(_opt(freeze_regex="."), 10, 1, params=_params())
    assert "freezes every parameter" in caplog.text


# ---- paths ----------------------------------------------------------------------------------------


class _TinyNet(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(3, name="hidden")(x))
        return nn.Dense(2, name="output")(x)


def test_param_paths_and_regex_mask_follow_flax_parameter_names():
    params = _TinyNet().init(jax.random.key(0), jnp.zeros((1, 4)))["params"]
    assert param_paths(params) == ["hidden/bias", "hidden/kernel", "output/bias", "output/kernel"]
    assert regex_mask(params, r"^output/") == {
        "hidden": {"bias": False, "kernel": False}, "output": {"bias": True, "kernel": True}}
    assert not any(jax.tree.leaves(regex_mask(params, "")))  # empty regex: no parameter
    tx, _ = create_optimizer(_opt(freeze_regex=r"^hidden/", lr_multipliers=((r"^output/bias$", 2.0),)), 10, 1,
                             params=params)
    new = _run(tx, params, 2)
    np.testing.assert_array_equal(new["hidden"]["kernel"], params["hidden"]["kernel"])
