"""MLP baselines and LeNet-1/-5 (LeCun et al. 1998): parameter counts, shapes, activations, init."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax.models import create_model
from cnn_jax.models.lenet import LeNet
from cnn_jax.models.mlp import MLP


def param_shapes(model, input_shape, **kwargs):
    """Parameter shapes from an abstract init: nothing is allocated."""
    x = jnp.zeros((1, *input_shape))
    return jax.eval_shape(lambda: model.init(jax.random.key(0), x, **kwargs))["params"]


def count(tree) -> int:
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def layer_output_shapes(model, input_shape) -> dict[str, tuple[int, ...]]:
    """Output shape of every named submodule, from an abstract forward pass."""
    x = jnp.zeros((2, *input_shape))

    def run():
        variables = model.init(jax.random.key(0), x)
        _, state = model.apply(variables, x, capture_intermediates=True, mutable=["intermediates"])
        return state["intermediates"]

    captured = jax.eval_shape(run)
    return {
        name: value["__call__"][0].shape for name, value in captured.items() if name != "__call__"
    }


MNIST = (28, 28, 1)


@pytest.mark.parametrize(
    "name, expected",
    [("mlp_linear", 7_850), ("mlp_300", 238_510), ("mlp_300_100", 266_610)],
)
def test_mlp_parameter_counts_match_784_input_layer_sizes(name, expected):
    # 784-300-100-10: 784*300+300 + 300*100+100 + 100*10+10 = 266,610.
    assert count(param_shapes(create_model(name), MNIST)) == expected


def test_mlp_linear_is_one_fully_connected_layer():
    params = param_shapes(create_model("mlp_linear"), MNIST)
    assert set(params) == {"head"}
    assert params["head"]["kernel"].shape == (784, 10)


def test_mlp_maps_a_batch_of_digits_to_class_logits():
    model = create_model("mlp_300_100")
    x = jax.random.normal(jax.random.key(1), (3, *MNIST))
    variables = model.init(jax.random.key(0), x)
    logits = model.apply(variables, x)
    assert logits.shape == (3, 10)
    assert bool(jnp.all(jnp.isfinite(logits)))


def test_mlp_activation_by_name_changes_the_function_not_the_parameters():
    x = jax.random.normal(jax.random.key(1), (2, *MNIST))
    tanh_model, relu_model = MLP(activation="tanh"), MLP(activation="relu")
    variables = tanh_model.init(jax.random.key(0), x)
    tanh_out = tanh_model.apply(variables, x)
    relu_out = relu_model.apply(variables, x)  # same parameter tree, different non-linearity
    assert not np.allclose(tanh_out, relu_out)
    # A linear "activation" collapses the MLP to a product of affine maps.
    identity_out = MLP(activation="identity").apply(variables, x)
    p = variables["params"]
    manual = x.reshape(2, -1)
    for layer in ("fc1", "fc2", "head"):
        manual = manual @ p[layer]["kernel"] + p[layer]["bias"]
    np.testing.assert_allclose(identity_out, manual, rtol=1e-4, atol=1e-5)


def test_mlp_prelu_activation_adds_one_learned_slope_per_hidden_layer():
    params = param_shapes(MLP(hidden_sizes=(300, 100), activation="prelu"), MNIST)
    assert count(params) == 266_610 + 2
    assert params["act1"]["prelu"]["alpha"].shape == (1,)


def test_unknown_activation_name_is_an_error_listing_choices():
    x = jnp.zeros((1, *MNIST))
    with pytest.raises(ValueError, match="unknown activation 'sigmiod'.*sigmoid"):
        MLP(activation="sigmiod").init(jax.random.key(0), x)


@pytest.mark.parametrize(
    "kernel_init, expected_std",
    [
        ("lecun_normal", (1 / 784) ** 0.5),
        ("he_normal", (2 / 784) ** 0.5),
        ("glorot_normal", (2 / (784 + 300)) ** 0.5),
    ],
)
def test_mlp_kernel_init_by_name_sets_the_first_layer_std(kernel_init, expected_std):
    model = MLP(kernel_init=kernel_init)
    params = model.init(jax.random.key(0), jnp.zeros((1, *MNIST)))["params"]
    kernel = params["fc1"]["kernel"]  # 784 x 300 = 235,200 draws: std known to ~0.2%
    assert float(jnp.std(kernel)) == pytest.approx(expected_std, rel=0.02)
    assert float(jnp.abs(params["fc1"]["bias"]).max()) == 0.0


# --- LeNet -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["lenet5", "lenet5_modern"])
def test_lenet5_has_61706_parameters_in_the_papers_layers(name):
    params = param_shapes(create_model(name), MNIST)
    per_layer = {layer: count(p) for layer, p in params.items()}
    # C1 6*(25+1), C3 16*(6*25+1) (full connection), C5 120*(16*25+1), F6 84*(120+1), output 10*(84+1).
    assert per_layer == {"c1": 156, "c3": 2_416, "c5": 48_120, "f6": 10_164, "output": 850}
    assert sum(per_layer.values()) == 61_706


@pytest.mark.parametrize("name", ["lenet5", "lenet5_modern"])
def test_lenet5_feature_maps_follow_figure_2_on_28x28_digits(name):
    shapes = layer_output_shapes(create_model(name), MNIST)
    assert shapes["c1"] == (2, 28, 28, 6)
    assert shapes["c3"] == (2, 10, 10, 16)
    assert shapes["c5"] == (2, 1, 1, 120)
    assert shapes["f6"] == (2, 84)
    assert shapes["output"] == (2, 10)


def test_lenet5_pads_28x28_to_the_papers_32x32_field_but_not_32x32_input():
    model = create_model("lenet5")
    x28 = jax.random.normal(jax.random.key(1), (2, 28, 28, 1))
    variables = model.init(jax.random.key(0), x28)
    x32 = jnp.pad(x28, ((0, 0), (2, 2), (2, 2), (0, 0)))
    np.testing.assert_allclose(
        model.apply(variables, x28), model.apply(variables, x32), rtol=1e-5, atol=1e-6
    )
    # An explicit pad_input overrides the automatic one: 28 + 2*4 = 36 -> C1 32, S2 16, C3 12, S4 6,
    # C5 2x2, so F6 sees 480 inputs.
    assert param_shapes(LeNet(pad_input=4), MNIST)["f6"]["kernel"].shape == (2 * 2 * 120, 84)


def test_lenet5_modern_uses_relu_and_max_pooling():
    x = jax.random.normal(jax.random.key(1), (2, *MNIST))
    modern = create_model("lenet5_modern")
    variables = modern.init(jax.random.key(0), x)
    out = modern.apply(variables, x)
    same_but_tanh_avg = LeNet(activation="tanh", pool="avg", pad_input=0, c1_padding=2)
    assert not np.allclose(out, same_but_tanh_avg.apply(variables, x))
    explicit = LeNet(activation="relu", pool="max", pad_input=0, c1_padding=2)
    np.testing.assert_array_equal(out, explicit.apply(variables, x))


def test_lenet1_has_3246_parameters_with_fully_connected_convolutions():
    params = param_shapes(create_model("lenet1"), MNIST)
    # 4*(25+1) + 12*(4*25+1) + 10*(4*4*12+1)
    assert {layer: count(p) for layer, p in params.items()} == {
        "c1": 104,
        "c3": 1_212,
        "output": 1_930,
    }
    assert count(params) == 3_246


def test_lenet1_maps_28x28_to_24x24_then_8x8():
    shapes = layer_output_shapes(create_model("lenet1"), MNIST)
    assert shapes["c1"] == (2, 24, 24, 4)
    assert shapes["c3"] == (2, 8, 8, 12)
    assert shapes["output"] == (2, 10)


def test_lenet_kernel_init_by_name_he_normal_has_std_sqrt_2_over_fan_in():
    model = create_model("lenet5", kernel_init="he_normal")
    params = model.init(jax.random.key(0), jnp.zeros((1, *MNIST)))["params"]
    kernel = params["c5"]["kernel"]  # (5, 5, 16, 120): fan_in 400, 48,000 draws
    assert kernel.shape == (5, 5, 16, 120)
    assert float(jnp.std(kernel)) == pytest.approx((2 / 400) ** 0.5, rel=0.03)


def test_lenet_activation_by_name_sigmoid_changes_the_output():
    x = jax.random.normal(jax.random.key(1), (2, *MNIST))
    model = create_model("lenet5")
    variables = model.init(jax.random.key(0), x)
    sigmoid_out = create_model("lenet5", activation="sigmoid").apply(variables, x)
    assert not np.allclose(model.apply(variables, x), sigmoid_out)


def test_lenet_rejects_an_unknown_pooling_mode():
    with pytest.raises(ValueError, match="pool must be 'avg' or 'max'"):
        LeNet(pool="median").init(jax.random.key(0), jnp.zeros((1, *MNIST)))


def test_lenet_num_classes_sets_the_output_layer():
    params = param_shapes(create_model("lenet5", num_classes=26), MNIST)
    assert params["output"]["kernel"].shape == (84, 26)


@pytest.mark.parametrize("name", ["mlp_300_100", "lenet5"])
def test_bfloat16_compute_dtype_gives_bfloat16_logits_from_float32_parameters(name):
    model = create_model(name, dtype=jnp.bfloat16)
    x = jax.random.normal(jax.random.key(1), (2, *MNIST))
    variables = model.init(jax.random.key(0), x)
    assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
    logits = model.apply(variables, x)
    assert logits.dtype == jnp.bfloat16
    # bfloat16 rounds every activation to 2^-8 = 3.9e-3 of itself: through 3-5 layers ~1e-2 of
    # logits of size <= 1.7, a tenth of atol (measured 6.8e-3, MLP; 1.9e-3, LeNet-5)
    np.testing.assert_allclose(
        logits.astype(jnp.float32), create_model(name).apply(variables, x), atol=0.1
    )


@pytest.mark.parametrize("name", ["mlp_300_100", "lenet5"])
def test_dropout_rate_drops_hidden_units_in_training_only(name):
    model = create_model(name, dropout_rate=0.5)
    x = jnp.asarray(np.random.default_rng(0).random((4, 28, 28, 1)), jnp.float32)
    variables = model.init(jax.random.key(0), x)
    assert jax.tree.structure(variables) == jax.tree.structure(create_model(name).init(jax.random.key(0), x))
    evaluated = model.apply(variables, x)
    np.testing.assert_array_equal(evaluated, create_model(name).apply(variables, x))
    a = model.apply(variables, x, train=True, rngs={"dropout": jax.random.key(1)})
    b = model.apply(variables, x, train=True, rngs={"dropout": jax.random.key(2)})
    assert float(jnp.max(jnp.abs(a - b))) > 1e-3 and float(jnp.max(jnp.abs(a - evaluated))) > 1e-3
