"""The activation of AlexNet, VGG, ResNet, LeNet and the MLPs is chosen by name from the config;
'prelu' adds one learned slope per activation layer; the default keeps torchvision's tree."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict
from model_helpers import filled_variables, variable_shapes

from cnn_jax.models import create_model

CASES = [  # (model, kwargs that keep it small, input shape)
    ("alexnet", {"hidden_sizes": (32,), "pooled_size": 1}, (63, 63, 3)),
    ("vgg11_bn", {"hidden_sizes": (32,), "pooled_size": 1}, (32, 32, 3)),
    ("resnet18", {}, (32, 32, 3)),
    ("resnet20", {}, (32, 32, 3)),
    ("lenet5", {}, (28, 28, 1)),
    ("mlp_300_100", {}, (28, 28, 1)),
]


@pytest.mark.parametrize("name, kwargs, shape", CASES)
def test_activation_by_name_changes_the_function_not_the_parameters(name, kwargs, shape):
    relu = create_model(name, num_classes=10, **{**kwargs, "activation": "relu"})
    tanh = create_model(name, num_classes=10, **{**kwargs, "activation": "tanh"})
    variables = filled_variables(relu, shape)
    assert jax.tree.structure(variables) == jax.tree.structure(variable_shapes(tanh, shape))
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, *shape)), jnp.float32)
    a, b = relu.apply(variables, x), tanh.apply(variables, x)
    assert float(jnp.max(jnp.abs(a - b))) > 1e-3


@pytest.mark.parametrize("name, kwargs, shape", CASES[:3])
def test_prelu_learns_a_slope_per_activation_layer(name, kwargs, shape):
    plain = flatten_dict(variable_shapes(create_model(name, num_classes=10, **kwargs), shape)["params"], sep="/")
    prelu = flatten_dict(variable_shapes(create_model(name, num_classes=10, activation="prelu", **kwargs),
                                         shape)["params"], sep="/")
    extra = sorted(set(prelu) - set(plain))
    assert extra and all(k.endswith("prelu/alpha") for k in extra)
    assert set(plain) <= set(prelu)
