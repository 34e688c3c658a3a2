"""MobileNet v1 (Howard et al. 2017 Table 1, width/resolution multipliers) and MobileNetV2
(Sandler et al. 2018 Table 2, torchvision's form).

Shapes and parameter counts come from ``jax.eval_shape`` (tracing only, nothing allocated).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict
from model_helpers import filled_variables, num_params, variable_shapes

from cnn_jax.layers import Conv, ConvBNAct
from cnn_jax.models import create_model, get_model_spec, list_models
from cnn_jax.models.mobilenet import InvertedResidual, MobileNetV1, MobileNetV2, make_divisible


def _params(model: nn.Module, input_shape=(224, 224, 3)) -> dict:
    return flatten_dict(variable_shapes(model, input_shape)["params"], sep="/")


def _convs(model: nn.Module, input_shape=(224, 224, 3)) -> list[tuple[str, Conv]]:
    """Every Conv the model calls, in call order, as (path, module), traced only."""
    seen = []

    def record(next_fun, args, kwargs, context):
        if context.method_name == "__call__" and isinstance(context.module, Conv):
            seen.append(("/".join(context.module.scope.path), context.module))
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        variable_shapes(model, input_shape)
    return seen


def _feature_shapes(model: nn.Module, input_shape) -> dict[str, tuple[int, ...]]:
    """Output shape of each top-level ``features_*`` submodule, traced only."""
    variables = variable_shapes(model, input_shape)
    x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)

    def apply(v, x):
        return model.apply(v, x, train=False, capture_intermediates=True, mutable=["intermediates"])

    _, state = jax.eval_shape(apply, variables, x)
    return {
        name: out["__call__"][0].shape
        for name, out in state["intermediates"].items()
        if name.startswith("features_")
    }


# ---------------------------------------------------------------------------------- MobileNet v1


@pytest.mark.parametrize(
    "name, alpha, expected, table6_millions",
    [
        ("mobilenet_v1", 1.0, 4_231_976, 4.2),  # Table 8
        ("mobilenet_v1_075", 0.75, 2_585_560, 2.6),
        ("mobilenet_v1_050", 0.5, 1_331_592, 1.3),
        ("mobilenet_v1_025", 0.25, 470_072, 0.5),
    ],
)
def test_mobilenet_v1_parameter_counts_match_tables_6_and_8(name, alpha, expected, table6_millions):
    model = create_model(name)
    assert model.alpha == alpha
    count = num_params(model)
    assert count == expected
    assert round(count / 1e6, 1) == table6_millions


def test_mobilenet_v1_first_layer_is_32_filters_3x3_stride_2_with_torch_padding():
    params = _params(create_model("mobilenet_v1"))
    assert params["features_0/conv/kernel"].shape == (3, 3, 3, 32)
    path, first = _convs(create_model("mobilenet_v1"))[0]
    assert path == "features_0/conv"
    assert (first.kernel_size, first.strides, first.padding) == (3, 2, 1)
    assert _feature_shapes(create_model("mobilenet_v1"), (224, 224, 3))["features_0"] == (
        1,
        112,
        112,
        32,
    )


def test_mobilenet_v1_body_follows_table_1():
    convs = _convs(create_model("mobilenet_v1"))
    depthwise = [m for p, m in convs if p.endswith("depthwise/conv")]
    pointwise = [m for p, m in convs if p.endswith("pointwise/conv")]
    assert [m.strides for m in depthwise] == [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
    assert all(m.kernel_size == 3 and m.padding == 1 for m in depthwise)
    assert [m.features for m in pointwise] == [64, 128, 128, 256, 256] + [512] * 6 + [1024, 1024]
    assert all(m.kernel_size == 1 for m in pointwise)
    shapes = _feature_shapes(create_model("mobilenet_v1"), (224, 224, 3))
    assert shapes["features_13"] == (1, 7, 7, 1024)


def test_mobilenet_v1_depthwise_convs_filter_each_channel_separately():
    params = _params(create_model("mobilenet_v1"))
    assert params["features_1/depthwise/conv/kernel"].shape == (3, 3, 1, 32)
    assert params["features_1/pointwise/conv/kernel"].shape == (1, 1, 32, 64)
    assert params["features_13/depthwise/conv/kernel"].shape == (3, 3, 1, 1024)
    for path, conv in _convs(create_model("mobilenet_v1_050")):
        if path.endswith("depthwise/conv"):
            assert conv.groups == conv.features  # one 3x3 filter per input channel


def test_width_multiplier_half_halves_every_conv_width():
    full = _params(create_model("mobilenet_v1"))
    half = _params(create_model("mobilenet_v1_050"))
    assert half["features_0/conv/kernel"].shape == (3, 3, 3, 16)
    for path, kernel in full.items():
        if path.endswith("conv/kernel"):
            assert half[path].shape[-1] * 2 == kernel.shape[-1], path
    assert half["classifier/kernel"].shape == (512, 1000)


@pytest.mark.parametrize("alpha", [0.75, 0.5, 0.25])
def test_body_parameters_fall_roughly_as_alpha_squared(alpha):
    # Pointwise convs (~99% of the body) scale as alpha^2; depthwise and BN only as alpha.
    def body(model):
        return sum(
            int(np.prod(p.shape))
            for k, p in _params(model).items()
            if not k.startswith("classifier")
        )

    ratio = body(MobileNetV1(alpha=alpha)) / body(MobileNetV1(alpha=1.0))
    assert alpha**2 <= ratio <= 1.1 * alpha**2


@pytest.mark.parametrize("size", [224, 192, 160, 128])
def test_resolution_multiplier_is_the_input_size_and_leaves_parameters_unchanged(size):
    model = create_model("mobilenet_v1", num_classes=10)
    shapes = _feature_shapes(model, (size, size, 3))
    assert shapes["features_13"] == (1, size // 32, size // 32, 1024)  # rho * 7
    assert num_params(model, (size, size, 3)) == 4_231_976 - 1_025_000 + 1024 * 10 + 10


def test_mobilenet_v1_025_trains_on_a_32x32_batch():
    model = create_model("mobilenet_v1_025", num_classes=10)
    variables = filled_variables(model, (32, 32, 3))
    x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
    logits, state = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))(
        variables, x
    )
    assert logits.shape == (2, 10) and bool(jnp.all(jnp.isfinite(logits)))
    assert set(state["batch_stats"]) == {f"features_{i}" for i in range(14)}


# ---------------------------------------------------------------------------------- MobileNetV2


def test_mobilenet_v2_parameter_count_matches_torchvision():
    assert num_params(create_model("mobilenet_v2")) == 3_504_872


def test_mobilenet_v2_parameter_names_mirror_torchvision():
    params = variable_shapes(create_model("mobilenet_v2"))["params"]
    assert set(params) == {f"features_{i}" for i in range(19)} | {"classifier_1"}
    assert set(params["features_0"]) == {"conv", "bn"}
    assert set(params["features_1"]) == {"conv_0", "conv_1", "conv_2"}  # t = 1: no expansion
    assert set(params["features_2"]) == {"conv_0", "conv_1", "conv_2", "conv_3"}
    assert set(params["features_2"]["conv_0"]) == {"conv", "bn"}
    assert set(params["features_2"]["conv_2"]) == {"kernel"}  # the projection conv, no bias
    assert set(params["features_2"]["conv_3"]) == {"scale", "bias"}  # its BN
    assert set(params["features_18"]) == {"conv", "bn"}


def test_mobilenet_v2_bottlenecks_follow_table_2():
    params = _params(create_model("mobilenet_v2"))
    outputs = [params["features_1/conv_1/kernel"].shape[-1]] + [
        params[f"features_{i}/conv_2/kernel"].shape[-1] for i in range(2, 18)
    ]
    assert outputs == [16, 24, 24, 32, 32, 32, 64, 64, 64, 64, 96, 96, 96, 160, 160, 160, 320]
    # Expansion t = 6: the hidden width is six times the block's input width.
    assert params["features_2/conv_0/conv/kernel"].shape == (1, 1, 16, 96)
    assert params["features_2/conv_1/conv/kernel"].shape == (3, 3, 1, 96)
    assert params["features_17/conv_0/conv/kernel"].shape == (1, 1, 160, 960)
    assert params["features_18/conv/kernel"].shape == (1, 1, 320, 1280)
    assert params["classifier_1/kernel"].shape == (1280, 1000)

    convs = _convs(create_model("mobilenet_v2"))
    depthwise = [m for _, m in convs if m.groups > 1]
    assert [m.strides for m in depthwise] == [1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1]
    assert all(m.kernel_size == 3 and m.padding == 1 for m in depthwise)
    assert (convs[0][1].strides, convs[0][1].padding) == (2, 1)
    assert _feature_shapes(create_model("mobilenet_v2"), (224, 224, 3))["features_18"] == (
        1,
        7,
        7,
        1280,
    )


def test_mobilenet_v2_expansion_and_depthwise_use_relu6():
    acts = set()

    def record(next_fun, args, kwargs, context):
        if context.method_name == "__call__" and isinstance(context.module, ConvBNAct):
            acts.add(context.module.act)
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        variable_shapes(create_model("mobilenet_v2"), (32, 32, 3))
    assert acts == {"relu6"}


def _inverted_residual_output(block: InvertedResidual, x: jax.Array, projection_bn_bias: float):
    variables = filled_variables(block, x.shape[1:])
    last_bn = "conv_3" if block.expand_ratio != 1 else "conv_2"
    params = dict(variables["params"])
    params[last_bn] = {
        "scale": jnp.zeros_like(params[last_bn]["scale"]),
        "bias": jnp.full_like(params[last_bn]["bias"], projection_bn_bias),
    }
    return block.apply({**variables, "params": params}, x, train=False)


def test_inverted_residual_adds_its_input_only_with_stride_1_and_equal_widths():
    x = jax.random.normal(jax.random.key(0), (1, 8, 8, 16))
    # With the projection's BN scale zeroed the branch outputs its BN bias, so output - bias = skip.
    same = _inverted_residual_output(InvertedResidual(16, 1, 6), x, 0.0)
    np.testing.assert_allclose(same, x)
    strided = _inverted_residual_output(InvertedResidual(16, 2, 6), x, 0.0)
    assert strided.shape == (1, 4, 4, 16)
    np.testing.assert_array_equal(strided, 0.0)
    wider = _inverted_residual_output(InvertedResidual(24, 1, 6), x, 0.0)
    np.testing.assert_array_equal(wider, 0.0)


def test_inverted_residual_projection_is_linear():
    # A negative BN bias survives: no ReLU/ReLU6 after the projection (Sec. 3.2, linear bottleneck).
    x = jnp.zeros((1, 4, 4, 16))
    out = _inverted_residual_output(InvertedResidual(24, 1, 6), x, -3.0)
    np.testing.assert_array_equal(out, -3.0)


def test_make_divisible_rounds_to_the_nearest_multiple_of_8_but_never_10_percent_down():
    assert make_divisible(32 * 1.4) == 48  # 44.8 rounds up
    assert make_divisible(42) == 40  # rounds down, losing under 10%
    assert make_divisible(24 * 0.75) == 24  # 18 -> 16 would lose 11%, so 24
    assert make_divisible(1280 * 1.4) == 1792
    assert make_divisible(3) == 8  # never below the divisor


@pytest.mark.parametrize(
    "width_mult, stem, last", [(0.5, 16, 1280), (1.0, 32, 1280), (1.4, 48, 1792)]
)
def test_mobilenet_v2_width_multiplier_scales_all_but_a_thinner_last_layer(width_mult, stem, last):
    params = _params(MobileNetV2(width_mult=width_mult), (32, 32, 3))
    assert params["features_0/conv/kernel"].shape[-1] == stem
    assert params["features_18/conv/kernel"].shape[-1] == last
    assert params["features_17/conv_2/kernel"].shape[-1] == make_divisible(320 * width_mult)


def test_mobilenet_v2_dropout_draws_the_dropout_rng_only_in_training():
    model = create_model("mobilenet_v2", num_classes=10)
    variables = variable_shapes(model, (32, 32, 3))
    x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
    out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
    assert out.shape == (2, 10)
    with pytest.raises(Exception, match="dropout"):
        jax.eval_shape(
            lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]), variables, x
        )


# ---------------------------------------------------------------------------------- registry


def test_registry_metadata_and_logits_at_224_and_32():
    names = [
        "mobilenet_v1",
        "mobilenet_v1_025",
        "mobilenet_v1_050",
        "mobilenet_v1_075",
        "mobilenet_v2",
    ]
    assert list_models("mobilenet") == names
    for name in names:
        spec = get_model_spec(name)
        assert (spec.input_shape, spec.test_input_shape, spec.num_classes) == (
            (224, 224, 3),
            (32, 32, 3),
            1000,
        )
    for model in (
        create_model("mobilenet_v1", num_classes=10),
        create_model("mobilenet_v2", num_classes=10),
    ):
        for size in (224, 32):
            variables = variable_shapes(model, (size, size, 3))
            x = jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32)
            out = jax.eval_shape(lambda v, x, m=model: m.apply(v, x, train=False), variables, x)
            assert out.shape == (2, 10)
