"""GoogLeNet / Inception v1 (Szegedy et al. 2015 Table 1) in torchvision's BN form.

Shapes and parameter counts come from ``jax.eval_shape`` (tracing only, nothing allocated or
compiled); one test runs the auxiliary heads for real on a 32x32 input.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict
from model_helpers import filled_variables, num_params, variable_shapes

from cnn_jax.layers import BatchNorm, Conv
from cnn_jax.layers.adaptive_pool import adaptive_avg_pool
from cnn_jax.models import create_model, get_model_spec
from cnn_jax.models.googlenet import INCEPTION_WIDTHS, GoogLeNet, inception_input_transform


def _output_shapes(model: nn.Module, input_shape, train: bool, batch: int = 2):
    """Shape structure of ``model.apply`` on a batch, traced only."""
    x = jax.ShapeDtypeStruct((batch, *input_shape), jnp.float32)
    variables = variable_shapes(model, input_shape)
    rngs = {"dropout": jax.random.key(1)} if train else None

    def apply(variables, x):
        return model.apply(
            variables, x, train=train, rngs=rngs, mutable=["batch_stats"] if train else False
        )

    out = jax.eval_shape(apply, variables, x)
    return out[0] if train else out


def test_googlenet_without_aux_heads_has_torchvision_parameter_count():
    assert num_params(create_model("googlenet")) == 6_624_904


def test_aux_heads_add_two_classifiers_as_in_torchvision_with_aux_logits():
    # aux1 on 4a (512 ch) and aux2 on 4d (528 ch): 1x1 conv 128 + BN, FC 2048->1024, FC 1024->1000.
    aux1 = 512 * 128 + 2 * 128 + 2048 * 1024 + 1024 + 1024 * 1000 + 1000
    aux2 = 528 * 128 + 2 * 128 + 2048 * 1024 + 1024 + 1024 * 1000 + 1000
    assert num_params(create_model("googlenet", aux_logits=True)) == 6_624_904 + aux1 + aux2
    assert 6_624_904 + aux1 + aux2 == 13_004_888


def test_default_third_branch_is_torchvisions_3x3_and_the_papers_5x5_is_an_option():
    default = flatten_dict(variable_shapes(create_model("googlenet"))["params"], sep="/")
    assert default["inception3a/branch3_1/conv/kernel"].shape == (3, 3, 16, 32)
    paper = create_model("googlenet", branch3_kernel_size=5)
    params = flatten_dict(variable_shapes(paper)["params"], sep="/")
    assert params["inception3a/branch3_1/conv/kernel"].shape == (5, 5, 16, 32)
    # 16 more weights per (5x5 reduce, 5x5) pair in each of the nine inception modules.
    extra = 16 * sum(w[3] * w[4] for w in INCEPTION_WIDTHS.values())
    assert extra == 380_928
    assert num_params(paper) == 6_624_904 + extra


def test_inception_output_widths_follow_table_1():
    params = flatten_dict(variable_shapes(create_model("googlenet"))["params"], sep="/")
    # The input width of each module is the sum of the previous module's four branch widths.
    widths = {k: w[0] + w[2] + w[4] + w[5] for k, w in INCEPTION_WIDTHS.items()}
    assert widths == {
        "3a": 256,
        "3b": 480,
        "4a": 512,
        "4b": 512,
        "4c": 512,
        "4d": 528,
        "4e": 832,
        "5a": 832,
        "5b": 1024,
    }
    assert params["inception3b/branch1/conv/kernel"].shape == (1, 1, 256, 128)
    assert params["inception4a/branch1/conv/kernel"].shape == (1, 1, 480, 192)
    assert params["inception5a/branch1/conv/kernel"].shape == (1, 1, 832, 256)
    assert params["fc/kernel"].shape == (1024, 1000)


def test_parameter_names_mirror_torchvision_module_tree():
    params = variable_shapes(create_model("googlenet", aux_logits=True))["params"]
    inceptions = [f"inception{k}" for k in INCEPTION_WIDTHS]
    assert set(params) == {"conv1", "conv2", "conv3", "aux1", "aux2", "fc", *inceptions}
    assert set(params["conv1"]) == {"conv", "bn"}
    assert set(params["inception3a"]) == {
        "branch1",
        "branch2_0",
        "branch2_1",
        "branch3_0",
        "branch3_1",
        "branch4_1",
    }
    assert set(params["aux1"]) == {"conv", "fc1", "fc2"}
    assert params["aux1"]["fc1"]["kernel"].shape == (128 * 4 * 4, 1024)
    assert set(params["conv1"]["conv"]) == {"kernel"}  # BasicConv2d has no conv bias


def test_every_batchnorm_uses_torchvisions_basicconv_epsilon_and_torch_momentum():
    settings = []

    def record(next_fun, args, kwargs, context):
        if isinstance(context.module, BatchNorm) and context.method_name == "__call__":
            settings.append((context.module.epsilon, context.module.momentum))
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        variable_shapes(create_model("googlenet"), (32, 32, 3))
    assert len(settings) == 3 + 9 * 6  # stem convs + six convs per inception module
    assert set(settings) == {(1e-3, 0.9)}


def test_stem_strides_and_paddings_are_torchvisions():
    convs = {}

    def record(next_fun, args, kwargs, context):
        if isinstance(context.module, Conv) and context.method_name == "__call__":
            convs[context.module.scope.path[0]] = (
                context.module.kernel_size,
                context.module.strides,
                context.module.padding,
            )
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        variable_shapes(create_model("googlenet"), (32, 32, 3))
    assert convs["conv1"] == (7, 2, 3)  # explicit symmetric padding 3, not 'SAME'
    assert convs["conv3"] == (3, 1, 1)


def test_logits_shape_at_224_and_at_the_registry_test_input():
    model = create_model("googlenet", num_classes=10)
    assert _output_shapes(model, (224, 224, 3), train=False).shape == (2, 10)
    spec = get_model_spec("googlenet")
    assert spec.input_shape == (224, 224, 3)
    assert spec.num_classes == 1000
    assert _output_shapes(model, spec.test_input_shape, train=False).shape == (2, 10)
    assert _output_shapes(model, (31, 31, 3), train=False).shape == (2, 10)


def test_aux_logits_are_returned_only_in_train_mode_and_only_when_enabled():
    with_aux = create_model("googlenet", num_classes=10, aux_logits=True)
    train_out = _output_shapes(with_aux, (224, 224, 3), train=True)
    assert isinstance(train_out, tuple) and len(train_out) == 3
    assert [o.shape for o in train_out] == [(2, 10)] * 3
    assert _output_shapes(with_aux, (224, 224, 3), train=False).shape == (2, 10)

    without = create_model("googlenet", num_classes=10)
    assert _output_shapes(without, (224, 224, 3), train=True).shape == (2, 10)
    assert "aux1" not in variable_shapes(without)["params"]


def test_aux_heads_run_and_their_dropout_needs_the_dropout_rng():
    model = GoogLeNet(num_classes=10, aux_logits=True)
    x = jax.random.normal(jax.random.key(2), (2, 32, 32, 3))

    variables = filled_variables(model, (32, 32, 3))

    @jax.jit
    def run(variables, x):
        (logits, aux1, aux2), state = model.apply(
            variables, x, train=True, rngs={"dropout": jax.random.key(1)}, mutable=["batch_stats"]
        )
        return logits, aux1, aux2, state

    logits, aux1, aux2, state = run(variables, x)
    for out in (logits, aux1, aux2):
        assert out.shape == (2, 10) and bool(jnp.all(jnp.isfinite(out)))
    # The heads differ: aux1 reads 4a, aux2 reads 4d.
    assert not np.allclose(aux1, aux2)
    assert "aux1" in state["batch_stats"]

    with pytest.raises(Exception, match="dropout"):
        jax.eval_shape(
            lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]), variables, x
        )


def test_aux_pooling_uses_torchvisions_adaptive_bins_on_14x14():
    # adaptive_avg_pool2d(14 -> 4) averages rows [0,4), [3,7), [7,11), [10,14).
    x = jnp.arange(14.0)[None, :, None, None] * jnp.ones((1, 14, 14, 1))
    pooled = adaptive_avg_pool(x, (4, 4))
    np.testing.assert_allclose(pooled[0, :, 0, 0], [1.5, 4.5, 8.5, 11.5])


def test_transform_input_maps_imagenet_normalisation_to_minus_one_one():
    mean = np.array([0.485, 0.456, 0.406])
    std = np.array([0.229, 0.224, 0.225])
    pixels = np.array([0.0, 0.5, 1.0])[:, None] * np.ones(3)  # black, grey, white per channel
    normalised = jnp.asarray((pixels - mean) / std, jnp.float32)
    np.testing.assert_allclose(
        inception_input_transform(normalised), [[-1] * 3, [0] * 3, [1] * 3], atol=1e-6
    )
    assert not GoogLeNet().transform_input


def test_rejects_a_third_branch_kernel_other_than_3_or_5():
    with pytest.raises(ValueError, match="branch3_kernel_size"):
        variable_shapes(create_model("googlenet", branch3_kernel_size=7), (32, 32, 3))
