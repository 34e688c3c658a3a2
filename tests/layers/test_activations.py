"""Specification of cnn_jax.layers.activations: every name against its formula, the learned PReLU
slope, and the errors for unknown or parametric names."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax.layers import ACTIVATIONS, Activation, PReLU, get_activation

POINTS = np.array([-7.0, -3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0, 7.0])


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


FORMULAS = {
    "sigmoid": _sigmoid,
    "tanh": math.tanh,
    "relu": lambda x: max(x, 0.0),
    "relu6": lambda x: min(max(x, 0.0), 6.0),
    "leaky_relu": lambda x: x if x >= 0 else 0.01 * x,
    "elu": lambda x: x if x > 0 else math.exp(x) - 1.0,
    "swish": lambda x: x * _sigmoid(x),
    "silu": lambda x: x * _sigmoid(x),
    "gelu": lambda x: x * 0.5 * (1.0 + math.erf(x / math.sqrt(2.0))),
    "gelu_tanh": lambda x: (
        0.5 * x * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    ),
    "softplus": lambda x: math.log1p(math.exp(x)),
    "hard_swish": lambda x: x * min(max(x + 3.0, 0.0), 6.0) / 6.0,
    "hard_sigmoid": lambda x: min(max(x + 3.0, 0.0), 6.0) / 6.0,
    "identity": lambda x: x,
}


def test_activations_include_every_name_of_the_contract():
    contract = {
        "sigmoid", "tanh", "relu", "relu6", "leaky_relu", "elu", "swish", "gelu", "softplus",
        "hard_swish", "identity",
    }  # fmt: skip
    assert contract <= set(ACTIVATIONS)
    assert set(ACTIVATIONS) == set(FORMULAS) | {"softmax"}  # softmax: not elementwise, below


def test_softmax_is_the_output_activation_over_the_last_axis():
    # the lecture's example: softmax of (10.1, 0, -4.3, 1.33), its values given to two figures
    # (1.6e-4 for 1.553e-4: half a unit of the second figure is up to 3.3% of the value)
    got = np.asarray(get_activation("softmax")(jnp.asarray([[10.1, 0.0, -4.3, 1.33]] * 2)))
    np.testing.assert_allclose(got[0], [0.9998, 4.1e-5, 5.6e-7, 1.6e-4], rtol=0.033)
    e = np.exp([10.1, 0.0, -4.3, 1.33])
    np.testing.assert_allclose(got, np.tile(e / e.sum(), (2, 1)), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(got.sum(axis=-1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_activation_by_name_matches_its_formula(name):
    fn = get_activation(name)
    got = np.asarray(fn(jnp.asarray(POINTS, jnp.float32)))
    expected = np.array([FORMULAS[name](float(x)) for x in POINTS])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_gelu_is_the_exact_erf_form_not_the_tanh_approximation():
    # At x = -3 the two differ by ~3e-4 while float32 resolves ~1e-9 there.
    x = jnp.array([-3.0])
    exact = -3.0 * 0.5 * (1.0 + math.erf(-3.0 / math.sqrt(2.0)))
    assert abs(float(get_activation("gelu")(x)[0]) - exact) < 1e-6
    assert abs(float(get_activation("gelu_tanh")(x)[0]) - exact) > 1e-4


def test_leaky_relu_slope_is_one_hundredth():
    assert float(get_activation("leaky_relu")(jnp.array(-200.0))) == pytest.approx(-2.0)
    assert float(get_activation("leaky_relu")(jnp.array(200.0))) == 200.0


def test_relu6_clips_at_six_and_sigmoid_saturates():
    np.testing.assert_array_equal(
        np.asarray(get_activation("relu6")(jnp.array([-1.0, 4.0, 100.0]))), [0, 4, 6]
    )
    assert float(get_activation("sigmoid")(jnp.array(0.0))) == 0.5


def test_activation_names_are_case_insensitive_and_swish_is_silu():
    assert get_activation("ReLU") is get_activation("relu")
    assert get_activation("swish") is get_activation("silu")


def test_get_activation_passes_callables_through_and_none_means_identity():
    def fn(x):
        return x * 3

    assert get_activation(fn) is fn
    assert float(get_activation(None)(jnp.array(-2.5))) == -2.5


def test_unknown_activation_name_raises_a_value_error_listing_the_names():
    with pytest.raises(ValueError, match="unknown activation 'relu7'.*relu6.*hard_swish.*prelu"):
        get_activation("relu7")


def test_prelu_by_name_as_a_function_is_an_error_pointing_to_the_module():
    with pytest.raises(ValueError, match="learned parameter.*Activation\\('prelu'\\)"):
        get_activation("prelu")


def test_prelu_starts_with_slope_one_quarter_and_keeps_positive_inputs():
    x = jnp.array([[-4.0, -1.0, 0.0, 2.0]])
    y, variables = PReLU().init_with_output(jax.random.key(0), x)
    np.testing.assert_array_equal(np.asarray(variables["params"]["alpha"]), [0.25])
    np.testing.assert_array_equal(np.asarray(y), [[-1.0, -0.25, 0.0, 2.0]])


def test_prelu_slope_is_a_learned_parameter_that_receives_a_gradient():
    module = PReLU()
    x = jnp.array([-4.0, -1.0, 3.0])
    params = module.init(jax.random.key(0), x)["params"]
    grads = jax.grad(lambda p: module.apply({"params": p}, x).sum())(params)
    # d/d alpha sum(alpha * x for x < 0) = -4 + -1.
    np.testing.assert_allclose(np.asarray(grads["alpha"]), [-5.0])
    moved = jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)
    np.testing.assert_allclose(np.asarray(module.apply({"params": moved}, x)), [-3.0, -0.75, 3.0])


def test_channel_wise_prelu_has_one_slope_per_channel():
    module = PReLU(num_parameters=3)
    x = -jnp.ones((2, 4, 4, 3))
    params = {"alpha": jnp.array([0.1, 0.2, 0.3])}
    y = module.apply({"params": params}, x)
    np.testing.assert_allclose(np.asarray(y[0, 0, 0]), [-0.1, -0.2, -0.3])
    assert module.init(jax.random.key(0), x)["params"]["alpha"].shape == (3,)


def test_prelu_rejects_a_slope_count_that_is_neither_one_nor_the_channels():
    with pytest.raises(ValueError, match="2 slopes but the input has 3 channels"):
        PReLU(num_parameters=2).init(jax.random.key(0), jnp.ones((1, 3)))


def test_activation_module_prelu_creates_a_parameter_and_named_ones_are_stateless():
    x = jnp.array([[-2.0, 2.0]])
    y, variables = Activation("prelu").init_with_output(jax.random.key(0), x)
    assert jax.tree.map(jnp.shape, variables["params"]) == {"prelu": {"alpha": (1,)}}
    np.testing.assert_array_equal(np.asarray(y), [[-0.5, 2.0]])
    y, variables = Activation("elu").init_with_output(jax.random.key(0), x)
    assert variables == {}
    np.testing.assert_allclose(np.asarray(y), [[math.exp(-2.0) - 1.0, 2.0]], rtol=1e-6)
