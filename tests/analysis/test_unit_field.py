"""A unit's receptive field on the input (from `receptive_field`) against the non-zero support of
its gradient: equal for LeNet-5 (valid convolutions, average pooling, tanh) and a plain stack of
valid convolutions, inside the field for ReLU and max pooling."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax import layers
from cnn_jax.analysis import FieldBox, gradient_support, receptive_field, unit_field
from cnn_jax.models import create_model


def test_fields_of_lenet5_units_by_hand():
    rows = receptive_field("lenet5")
    # C1 is a 5x5 valid convolution of the digit padded by 2: unit (0, 0) sees pixels -2..2.
    assert unit_field(rows, "c1", (0, 0)) == FieldBox(-2, -2, 2, 2)
    assert unit_field(rows, "c1", (0, 0), (28, 28)) == FieldBox(0, 0, 2, 2)
    # C3 (after 2x2 subsampling): r = 6 + 4 * 2 = 14, j = 2, centre of unit (0, 0) at 4.5.
    assert unit_field(rows, "c3", (0, 0)) == FieldBox(-2, -2, 11, 11)
    assert unit_field(rows, "act_c3", (3, 4), (28, 28)) == FieldBox(4, 6, 17, 19)
    with pytest.raises(ValueError, match="pooled or flattened"):
        unit_field(rows, "f6", (0, 0))
    with pytest.raises(IndexError, match=r"unit \(10, 0\) is outside the 10x10 map of 'c3'"):
        unit_field(rows, "c3", (10, 0))
    with pytest.raises(KeyError, match="no layer 'c2'"):
        unit_field(rows, "c2", (0, 0))


@pytest.fixture(scope="module")
def lenet5():
    model = create_model("lenet5", num_classes=10)
    variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))
    image = jax.random.normal(jax.random.PRNGKey(1), (28, 28, 1))
    return model, variables, image, receptive_field("lenet5")


@pytest.mark.parametrize("layer,position", [("c1", (0, 0)), ("c1", (13, 27)), ("act_c3", (0, 0)),
                                            ("act_c3", (4, 7)), ("act_c3", (9, 9))])
def test_lenet5_gradient_support_is_the_computed_field(lenet5, layer, position):
    model, variables, image, rows = lenet5
    support = gradient_support(model, variables, image, layer, position)
    np.testing.assert_array_equal(support, unit_field(rows, layer, position, (28, 28)).mask(28, 28))


class ValidStack(nn.Module):
    """Three valid convolutions (3x3, 5x5 stride 2, 3x3 dilation 2) with tanh: no padding edges."""

    @nn.compact
    def __call__(self, x, train=False):
        x = jnp.tanh(layers.Conv(3, 3, padding="VALID", name="conv1")(x))
        x = jnp.tanh(layers.Conv(3, 5, strides=2, padding="VALID", name="conv2")(x))
        return layers.Conv(2, 3, dilation=2, padding="VALID", name="conv3")(x)


def test_a_valid_stack_gradient_support_equals_its_field_everywhere():
    model = ValidStack()
    image = jax.random.normal(jax.random.PRNGKey(2), (29, 29, 2))
    variables = model.init(jax.random.PRNGKey(3), image[None])
    rows = receptive_field(model, (29, 29, 2))
    # r = 1 + 2 + 4 + 2 * 2 * 2 = 15 (conv3's dilated 3x3 spans 5 of conv2's outputs, 2 apart).
    assert unit_field(rows, "conv3", (0, 0)) == FieldBox(0, 0, 14, 14)
    for position in [(0, 0), (0, 7), (5, 3), (7, 7)]:
        np.testing.assert_array_equal(gradient_support(model, variables, image, "conv3", position),
                                      unit_field(rows, "conv3", position, (29, 29)).mask(29, 29))


def test_relu_and_max_pooling_keep_the_support_inside_the_field():
    model = create_model("lenet5_modern", num_classes=10)
    variables = model.init(jax.random.PRNGKey(4), jnp.zeros((1, 28, 28, 1)))
    image = jax.random.normal(jax.random.PRNGKey(5), (28, 28, 1))
    rows = receptive_field("lenet5_modern")
    support = gradient_support(model, variables, image, "act_c3", (5, 5), channel=0)
    field = unit_field(rows, "act_c3", (5, 5), (28, 28)).mask(28, 28)
    assert support.any() and not (support & ~field).any()
    assert support.sum() < field.sum()  # max pooling passes gradient from one pixel of four
