"""`intermediates`, `layer_names`, `filters`, `apply_with_offset`: every module's output by its
path, read (and offset) once per layer even where a layer runs a Flax module in its own scope."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax.analysis import (
    apply_with_offset,
    conv_layers,
    feature_maps,
    filters,
    intermediates,
    layer_names,
)
from cnn_jax.models import create_model


@pytest.fixture(scope="module", params=["xla", "auto"])
def lenet(request):
    """LeNet-5 with XLA's convolutions (``nn.Conv`` in ``layers.Conv``'s scope) and the default."""
    model = create_model("lenet5", num_classes=10, conv_impl=request.param)
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 28, 28, 1))
    return model, model.init(jax.random.PRNGKey(0), x), x


def test_layer_names_are_the_module_paths_in_forward_order(lenet):
    model, variables, x = lenet
    assert layer_names(model, variables, x) == [
        "c1", "act_c1", "c3", "act_c3", "c5", "act_c5", "f6", "act_f6", "output"]


def test_c1_output_is_the_valid_convolution_of_the_padded_digit_plus_bias(lenet):
    model, variables, x = lenet
    out = intermediates(model, variables, x, ["c1"])["c1"]
    kernel, bias = variables["params"]["c1"]["kernel"], variables["params"]["c1"]["bias"]
    padded = jnp.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))  # LeNet-5's 32x32 field
    expected = jax.lax.conv_general_dilated(padded, kernel, (1, 1), "VALID",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC")) + bias
    assert out.shape == (2, 28, 28, 6)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(intermediates(model, variables, x)["act_c1"], jnp.tanh(out),
                               rtol=1e-5, atol=1e-6)


def test_the_last_layer_is_the_model_output_and_unknown_layers_are_named(lenet):
    model, variables, x = lenet
    outputs = intermediates(model, variables, x)
    np.testing.assert_allclose(outputs["output"], model.apply(variables, x), rtol=1e-6)
    with pytest.raises(KeyError, match="no layer 'c2'.*layers: c1, act_c1"):
        intermediates(model, variables, x, ["c2"])


def test_feature_maps_keep_the_spatial_outputs_only(lenet):
    model, variables, x = lenet
    assert list(feature_maps(model, variables, x)) == ["c1", "act_c1", "c3", "act_c3"]


def test_an_offset_is_added_once_to_the_layer_and_moves_the_logits_through_it(lenet):
    model, variables, x = lenet
    reference = intermediates(model, variables, x, ["c1"])["c1"]
    outputs, c1 = apply_with_offset(model, variables, x, "c1", jnp.ones_like(reference))
    np.testing.assert_allclose(c1, reference + 1.0, rtol=1e-6)  # +2 if the inner nn.Conv added too
    _, at_zero = apply_with_offset(model, variables, x, "output", jnp.zeros((2, 10)))
    offset = jnp.arange(10.0) * jnp.ones((2, 1))
    shifted, _ = apply_with_offset(model, variables, x, "output", offset)
    np.testing.assert_allclose(shifted - at_zero, offset, atol=1e-5)


def test_the_gradient_wrt_an_offset_is_the_gradient_wrt_the_activation(lenet):
    model, variables, x = lenet
    # The logits are linear in act_f6 through `output`: d logit_3 / d act_f6 = output kernel[:, 3].
    grad = jax.grad(lambda o: apply_with_offset(model, variables, x, "act_f6", o)[0][:, 3].sum())(
        jnp.zeros((2, 84)))
    np.testing.assert_allclose(grad[0], variables["params"]["output"]["kernel"][:, 3], rtol=1e-6)


def test_filters_are_the_kernels_of_the_convolutions(lenet):
    model, variables, _ = lenet
    assert conv_layers(variables) == ["c1", "c3", "c5"]
    kernel = filters(variables, "c1")
    assert kernel.shape == (5, 5, 1, 6) and isinstance(kernel, np.ndarray)
    np.testing.assert_array_equal(kernel, variables["params"]["c1"]["kernel"])
    with pytest.raises(KeyError, match="convolutions: c1, c3, c5"):
        filters(variables, "f6")


def test_block_outputs_of_a_resnet_are_layers_too():
    model = create_model("resnet20", num_classes=10)
    x = jnp.zeros((1, 32, 32, 3))
    names = layer_names(model, jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x)), x)
    assert names[:3] == ["conv1", "bn1", "layer1_0/conv1"]
    assert "layer3_2" in names and names[-1] == "fc"
    assert names.index("layer1_0/bn2") < names.index("layer1_0") < names.index("layer1_1/conv1")
