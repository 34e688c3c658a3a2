"""Specification of cnn_jax.layers.conv: the lectures' worked examples, the output-size formula,
padding, dilation, groups, depthwise-separable, causal, 3-D, transposed convolution and ConvBNAct."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax import layers
from cnn_jax.layers import (
    CausalConv1D,
    Conv,
    ConvBNAct,
    ConvTranspose,
    DepthwiseConv,
    DepthwiseSeparableConv,
    conv_output_size,
    max_pool,
)

KEY = jax.random.key(0)

# Lecture example: a binary image cross-correlated with an "X" kernel, no padding, stride 1.
BINARY_IMAGE = np.array(
    [
        [1, 1, 1, 0, 0],
        [0, 1, 1, 1, 0],
        [0, 0, 1, 1, 1],
        [0, 0, 1, 1, 0],
        [0, 1, 1, 0, 0],
    ],
    np.float32,
)
X_KERNEL = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]], np.float32)
CONVOLVED_FEATURE = np.array([[4, 3, 4], [2, 4, 3], [2, 3, 4]], np.float32)

# (W, F, P, S) -> W_o = floor((W - F + 2P) / S) + 1, worked by hand; several are layers of the zoo.
OUTPUT_SIZE_CASES = [
    (5, 3, 0, 1, 3),  # the lecture's 5x5 image and 3x3 kernel
    (7, 3, 0, 1, 5),
    (7, 3, 0, 2, 3),
    (7, 3, 1, 2, 4),
    (6, 3, 0, 2, 2),  # (6 - 3) / 2 = 1.5 floors to 1
    (10, 4, 1, 3, 3),  # (10 - 4 + 2) / 3 = 2.67 floors to 2
    (32, 5, 0, 1, 28),  # LeNet-5 C1
    (28, 5, 2, 1, 28),  # "same" 5x5
    (227, 11, 0, 4, 55),  # AlexNet conv1
    (224, 7, 3, 2, 112),  # ResNet stem
    (224, 3, 1, 1, 224),  # VGG 3x3
    (13, 3, 0, 2, 6),  # AlexNet's overlapping 3x3/2 pool
]


def _nhwc(a: np.ndarray) -> jnp.ndarray:
    return jnp.asarray(a)[None, :, :, None]


def _hwio(k: np.ndarray) -> jnp.ndarray:
    return jnp.asarray(k)[:, :, None, None]


def _param_count(variables) -> int:
    return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(variables["params"]))


def test_lecture_binary_image_cross_correlated_with_x_kernel_gives_the_convolved_feature():
    conv = Conv(1, 3, padding="VALID", use_bias=False)
    out = conv.apply({"params": {"kernel": _hwio(X_KERNEL)}}, _nhwc(BINARY_IMAGE))
    np.testing.assert_array_equal(np.asarray(out[0, :, :, 0]), CONVOLVED_FEATURE)


def test_conv_is_cross_correlation_not_flipped_convolution():
    # An asymmetric kernel tells the two apart: a 1 at the top-left picks the top-left neighbour.
    kernel = np.zeros((3, 3), np.float32)
    kernel[0, 0] = 1.0
    image = np.arange(25, dtype=np.float32).reshape(5, 5)
    out = Conv(1, 3, padding="VALID", use_bias=False).apply(
        {"params": {"kernel": _hwio(kernel)}}, _nhwc(image)
    )
    np.testing.assert_array_equal(np.asarray(out[0, :, :, 0]), image[:3, :3])


def test_conv_params_are_kernel_hwio_and_bias_directly_in_the_module():
    variables = Conv(8, 3).init(KEY, jnp.ones((1, 6, 6, 3)))
    assert jax.tree.map(jnp.shape, variables["params"]) == {"kernel": (3, 3, 3, 8), "bias": (8,)}


def test_conv_inside_a_parent_module_keeps_its_params_under_its_own_name():
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = Conv(4, 3, name="first")(x)
            return Conv(2, 1)(x)

    params = Net().init(KEY, jnp.ones((1, 5, 5, 3)))["params"]
    assert jax.tree.map(jnp.shape, params) == {
        "first": {"kernel": (3, 3, 3, 4), "bias": (4,)},
        "Conv_0": {"kernel": (1, 1, 4, 2), "bias": (2,)},
    }


def test_conv_bias_is_added_to_every_output_position():
    params = {"kernel": _hwio(X_KERNEL), "bias": jnp.array([10.0])}
    out = Conv(1, 3, padding="VALID").apply({"params": params}, _nhwc(BINARY_IMAGE))
    np.testing.assert_array_equal(np.asarray(out[0, :, :, 0]), CONVOLVED_FEATURE + 10.0)


@pytest.mark.parametrize("width,kernel,pad,stride,expected", OUTPUT_SIZE_CASES)
def test_conv_output_size_follows_floor_formula(width, kernel, pad, stride, expected):
    assert conv_output_size(width, kernel, stride, pad) == expected
    assert expected == (width - kernel + 2 * pad) // stride + 1


@pytest.mark.parametrize("width,kernel,pad,stride,expected", OUTPUT_SIZE_CASES)
def test_conv_and_max_pool_output_shapes_match_the_formula(width, kernel, pad, stride, expected):
    x = jnp.ones((1, width, 3, 1))
    conv = Conv(2, (kernel, 1), strides=(stride, 1), padding=((pad, pad), (0, 0)))
    out_shape = jax.eval_shape(lambda: conv.init_with_output(KEY, x)[0]).shape
    assert out_shape == (1, expected, 3, 2)
    pooled = max_pool(x, (kernel, 1), (stride, 1), ((pad, pad), (0, 0)))
    assert pooled.shape == (1, expected, 3, 1)


@pytest.mark.parametrize(
    "width,kernel,pad,stride,floor_size,ceil_size",
    [
        (7, 3, 0, 2, 3, 3),  # exact fit: rounding does not matter
        (6, 3, 0, 2, 2, 3),  # one more window hanging over the end
        (112, 3, 0, 2, 55, 56),  # GoogLeNet's 3x3/2 ceil-mode pools: 112 -> 56
        (5, 2, 1, 2, 3, 3),  # the extra window would start in the right padding: dropped
        (8, 3, 1, 3, 3, 3),  # ceil gives 4, but window 4 would start at 9 - 1 = 8 == W: dropped
        (9, 3, 1, 3, 3, 4),  # window 4 starts at 8 < W: kept
    ],
)
def test_conv_output_size_ceil_mode_rounds_up_but_never_starts_a_window_in_the_padding(
    width, kernel, pad, stride, floor_size, ceil_size
):
    assert conv_output_size(width, kernel, stride, pad) == floor_size
    assert conv_output_size(width, kernel, stride, pad, ceil_mode=True) == ceil_size
    pooled = max_pool(
        jnp.ones((1, width, 1, 1)), (kernel, 1), (stride, 1), [pad, 0], ceil_mode=True
    )
    assert pooled.shape[1] == ceil_size


def test_conv_output_size_with_dilation_uses_the_effective_kernel():
    # A 3-tap kernel with dilation 2 spans 2 * (3 - 1) + 1 = 5 pixels.
    assert conv_output_size(9, 3, dilation=2) == 5
    assert conv_output_size(9, 5) == 5
    assert conv_output_size(10, 3, stride=2, padding=2, dilation=2) == 5


def test_conv_output_size_same_is_ceil_of_size_over_stride_and_pairs_are_asymmetric():
    assert conv_output_size(7, 3, 2, "SAME") == 4
    assert conv_output_size(7, 3, 2, "VALID") == 3
    assert conv_output_size(7, 3, 1, (2, 0)) == 7  # causal-style left padding keeps the length


def test_conv_output_size_rejects_a_window_larger_than_the_padded_input():
    with pytest.raises(ValueError, match="does not fit"):
        conv_output_size(2, 5)


@pytest.mark.parametrize(
    "padding,expected",
    [
        ("VALID", (1, 5, 5, 1)),
        ("SAME", (1, 7, 7, 1)),
        (1, (1, 7, 7, 1)),
        ((2, 0), (1, 9, 5, 1)),
        (((1, 2), (0, 0)), (1, 8, 5, 1)),
        (None, (1, 7, 7, 1)),
    ],
)
def test_conv_accepts_every_padding_spec(padding, expected):
    conv = Conv(1, 3, padding=padding)
    out, _ = conv.init_with_output(KEY, jnp.ones((1, 7, 7, 1)))
    assert out.shape == expected


def test_conv_explicit_padding_pads_with_zeros():
    # All-ones 3x3 kernel over a ones image padded by 1: corners see 4 ones, edges 6, centre 9.
    conv = Conv(1, 3, padding=1, use_bias=False)
    out = conv.apply({"params": {"kernel": jnp.ones((3, 3, 1, 1))}}, jnp.ones((1, 3, 3, 1)))
    np.testing.assert_array_equal(np.asarray(out[0, :, :, 0]), [[4, 6, 4], [6, 9, 6], [4, 6, 4]])


def test_same_padding_at_stride_two_pads_the_end_but_none_padding_is_symmetric_like_torch():
    image = np.arange(16, dtype=np.float32).reshape(4, 4)
    kernel = np.zeros((3, 3), np.float32)
    kernel[1, 1] = 1.0  # picks the centre pixel of each window
    params = {"params": {"kernel": _hwio(kernel)}}
    same = Conv(1, 3, strides=2, padding="SAME", use_bias=False).apply(params, _nhwc(image))
    torch_like = Conv(1, 3, strides=2, padding=None, use_bias=False).apply(params, _nhwc(image))
    # XLA's SAME pads (0, 1): windows centre on pixels 1 and 3; torch's padding=1: pixels 0 and 2.
    np.testing.assert_array_equal(np.asarray(same[0, :, :, 0]), image[1::2, 1::2])
    np.testing.assert_array_equal(np.asarray(torch_like[0, :, :, 0]), image[0::2, 0::2])


def test_conv_with_an_int_kernel_rejects_one_dimensional_input_with_a_clear_error():
    with pytest.raises(ValueError, match="kernel_size as a tuple"):
        Conv(4, 3).init(KEY, jnp.ones((2, 10, 3)))


def test_dilated_conv_equals_the_conv_with_zeros_inserted_in_its_kernel():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(1, 9, 9, 2)), jnp.float32)
    kernel = rng.normal(size=(3, 3, 2, 3)).astype(np.float32)
    spread = np.zeros((5, 5, 2, 3), np.float32)
    spread[::2, ::2] = kernel
    dilated = Conv(3, 3, padding="VALID", dilation=2, use_bias=False)
    out = dilated.apply({"params": {"kernel": jnp.asarray(kernel)}}, x)
    dense = Conv(3, 5, padding="VALID", use_bias=False).apply(
        {"params": {"kernel": jnp.asarray(spread)}}, x
    )
    assert out.shape == (1, 5, 5, 3)  # effective kernel 2 * (3 - 1) + 1 = 5
    np.testing.assert_allclose(np.asarray(out), np.asarray(dense), rtol=1e-5, atol=1e-5)


def test_grouped_conv_divides_the_weights_by_the_number_of_groups():
    x = jnp.ones((1, 8, 8, 32))
    full = Conv(64, 3).init(KEY, x)["params"]["kernel"]
    grouped = Conv(64, 3, groups=4).init(KEY, x)["params"]["kernel"]
    assert full.shape == (3, 3, 32, 64) and grouped.shape == (3, 3, 8, 64)
    assert full.size == 18432 and grouped.size == 4608 == full.size // 4


def test_grouped_conv_output_group_sees_only_its_own_input_channels():
    conv = Conv(4, 3, groups=2)
    x = jnp.ones((1, 5, 5, 4))
    variables = conv.init(KEY, x)
    # d(sum of outputs 0-1)/dx must vanish on input channels 2-3 (the other group) and not on 0-1.
    grad = jax.grad(lambda x: conv.apply(variables, x)[..., :2].sum())(x)
    assert float(jnp.abs(grad[..., 2:]).max()) == 0.0
    assert float(jnp.abs(grad[..., :2]).min()) > 0.0


def test_grouped_conv_rejects_groups_that_do_not_divide_the_channels():
    with pytest.raises(ValueError, match="groups=3 must divide"):
        Conv(6, 3, groups=3).init(KEY, jnp.ones((1, 5, 5, 4)))


def test_one_by_one_conv_is_a_per_pixel_linear_map_of_the_channels():
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(2, 4, 5, 3)), jnp.float32)
    conv = Conv(6, 1)
    variables = conv.init(KEY, x)
    kernel, bias = variables["params"]["kernel"], variables["params"]["bias"]
    assert kernel.shape == (1, 1, 3, 6)
    expected = jnp.einsum("nhwc,cd->nhwd", x, kernel[0, 0]) + bias
    np.testing.assert_allclose(
        np.asarray(conv.apply(variables, x)), np.asarray(expected), rtol=1e-5, atol=1e-6
    )


def test_three_d_conv_takes_ndhwc_input_and_a_three_d_kernel():
    conv = Conv(4, (3, 3, 3), strides=(1, 2, 2), padding=1)
    out, variables = conv.init_with_output(KEY, jnp.ones((2, 6, 8, 8, 3)))
    assert out.shape == (2, 6, 4, 4, 4)
    assert variables["params"]["kernel"].shape == (3, 3, 3, 3, 4)
    assert _param_count(variables) == 3 * 3 * 3 * 3 * 4 + 4


def test_one_d_conv_takes_nlc_input():
    out, variables = Conv(5, (4,), strides=2, padding="VALID").init_with_output(
        KEY, jnp.ones((2, 20, 3))
    )
    assert out.shape == (2, 9, 5)  # floor((20 - 4) / 2) + 1
    assert variables["params"]["kernel"].shape == (4, 3, 5)


def test_conv_kernel_init_by_name_is_used():
    variables = Conv(2, 3, kernel_init="ones", bias_init="ones").init(KEY, jnp.ones((1, 3, 3, 1)))
    np.testing.assert_array_equal(np.asarray(variables["params"]["kernel"]), np.ones((3, 3, 1, 2)))
    np.testing.assert_array_equal(np.asarray(variables["params"]["bias"]), np.ones(2))


def test_conv_computes_in_dtype_and_keeps_params_in_param_dtype():
    out, variables = Conv(2, 3, dtype=jnp.bfloat16).init_with_output(KEY, jnp.ones((1, 4, 4, 1)))
    assert out.dtype == jnp.bfloat16
    assert variables["params"]["kernel"].dtype == jnp.float32


def test_causal_conv_output_at_t_ignores_inputs_after_t_and_depends_on_inputs_up_to_t():
    length, t = 12, 6
    conv = CausalConv1D(3, kernel_size=3, dilation=2)
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(1, length, 2)), jnp.float32)
    variables = conv.init(KEY, x)
    y = conv.apply(variables, x)
    assert y.shape == (1, length, 3)

    future_changed = x.at[:, t + 1 :, :].add(100.0)
    y_future = conv.apply(variables, future_changed)
    np.testing.assert_array_equal(np.asarray(y_future[:, : t + 1]), np.asarray(y[:, : t + 1]))
    assert not np.allclose(y_future[:, t + 1 :], y[:, t + 1 :])

    # With kernel 3 and dilation 2, output t reads inputs t, t - 2 and t - 4.
    for tap in (t, t - 2, t - 4):
        y_tap = conv.apply(variables, x.at[:, tap, :].add(1.0))
        assert not np.allclose(y_tap[:, t], y[:, t])
    y_gap = conv.apply(variables, x.at[:, t - 1, :].add(1.0))
    np.testing.assert_array_equal(np.asarray(y_gap[:, t]), np.asarray(y[:, t]))


def test_causal_conv_first_output_sees_only_the_first_input():
    # Kernel [1, 10] (oldest tap first), so y_t = 1 * x_{t-1} + 10 * x_t with x_{-1} = 0.
    conv = CausalConv1D(1, kernel_size=2, use_bias=False)
    kernel = jnp.array([1.0, 10.0]).reshape(2, 1, 1)
    y = conv.apply({"params": {"kernel": kernel}}, jnp.array([1.0, 2.0, 3.0]).reshape(1, 3, 1))
    np.testing.assert_array_equal(np.asarray(y[0, :, 0]), [10.0, 21.0, 32.0])


def test_depthwise_separable_conv_parameter_count_against_a_standard_conv():
    k, c_in, c_out = 3, 32, 64
    x = jnp.ones((1, 8, 8, c_in))
    separable = DepthwiseSeparableConv(c_out, kernel_size=k).init(KEY, x)
    standard = Conv(c_out, k).init(KEY, x)
    assert jax.tree.map(jnp.shape, separable["params"]) == {
        "depthwise": {"kernel": (3, 3, 1, 32), "bias": (32,)},
        "pointwise": {"kernel": (1, 1, 32, 64), "bias": (64,)},
    }
    assert _param_count(separable) == k * k * c_in + c_in + c_in * c_out + c_out == 2432
    assert _param_count(standard) == k * k * c_in * c_out + c_out == 18496
    no_bias = DepthwiseSeparableConv(c_out, kernel_size=k, use_bias=False).init(KEY, x)
    assert _param_count(no_bias) == k * k * c_in + c_in * c_out == 2336


def test_depthwise_conv_filters_each_channel_on_its_own_in_torch_channel_order():
    conv = DepthwiseConv(kernel_size=1, depth_multiplier=2)
    x = jnp.array([1.0, 10.0]).reshape(1, 1, 1, 2)
    # Kernel (1, 1, 1, 4): output channel c * 2 + j is kernel j of input channel c.
    kernel = jnp.array([2.0, 3.0, 5.0, 7.0]).reshape(1, 1, 1, 4)
    y = conv.apply({"params": {"kernel": kernel}}, x)
    np.testing.assert_array_equal(np.asarray(y[0, 0, 0]), [2.0, 3.0, 50.0, 70.0])


def test_depthwise_conv_has_k_squared_weights_per_channel_and_no_bias_by_default():
    variables = DepthwiseConv(kernel_size=5, strides=2).init(KEY, jnp.ones((1, 9, 9, 6)))
    assert jax.tree.map(jnp.shape, variables["params"]) == {"kernel": (5, 5, 1, 6)}


@pytest.mark.parametrize(
    "width,kernel,stride,pad,output_padding",
    [
        (4, 3, 2, 1, 1),
        (4, 3, 2, 1, 0),
        (5, 4, 2, 1, 0),
        (3, 3, 1, 0, 0),
        (7, 5, 3, 2, 2),
        (2, 2, 2, 0, 0),
    ],
)
def test_conv_transpose_output_size_follows_torch(width, kernel, stride, pad, output_padding):
    conv = ConvTranspose(3, kernel, strides=stride, padding=pad, output_padding=output_padding)
    out, _ = conv.init_with_output(KEY, jnp.ones((1, width, width, 2)))
    expected = (width - 1) * stride - 2 * pad + kernel + output_padding
    assert out.shape == (1, expected, expected, 3)


def test_conv_transpose_hand_computed_one_d_example():
    # Each input sample pastes the kernel, scaled, at stride 2: [1*k, then 2*k shifted by 2].
    conv = ConvTranspose(1, (3,), strides=2, use_bias=False)
    kernel = jnp.array([1.0, 10.0, 100.0]).reshape(3, 1, 1)
    y = conv.apply({"params": {"kernel": kernel}}, jnp.array([1.0, 2.0]).reshape(1, 2, 1))
    np.testing.assert_array_equal(np.asarray(y[0, :, 0]), [1.0, 10.0, 102.0, 20.0, 200.0])
    # padding crops from both ends of that full output, output_padding adds at the end.
    cropped = ConvTranspose(1, (3,), strides=2, padding=1, output_padding=1, use_bias=False)
    y = cropped.apply({"params": {"kernel": kernel}}, jnp.array([1.0, 2.0]).reshape(1, 2, 1))
    np.testing.assert_array_equal(np.asarray(y[0, :, 0]), [10.0, 102.0, 20.0, 200.0])


@pytest.mark.parametrize(
    "width,stride,pad,groups,output_padding",
    [(7, 2, 1, 1, 0), (8, 2, 1, 1, 1), (9, 3, 0, 2, 0), (6, 1, 1, 2, 0)],
)
def test_conv_transpose_is_the_adjoint_of_the_strided_conv_with_the_same_kernel(
    width, stride, pad, groups, output_padding
):
    c_in, c_out, k = 4, 6, 3
    rng = np.random.default_rng(3)
    conv_kernel = jnp.asarray(rng.normal(size=(k, k, c_in // groups, c_out)), jnp.float32)
    conv = Conv(c_out, k, strides=stride, padding=pad, groups=groups, use_bias=False)
    x = jnp.asarray(rng.normal(size=(2, width, width, c_in)), jnp.float32)
    y, vjp = jax.vjp(lambda x: conv.apply({"params": {"kernel": conv_kernel}}, x), x)
    cotangent = jnp.asarray(rng.normal(size=y.shape), jnp.float32)

    # A torch Conv2d weight (C_out, C_in/g, k, k) is also the ConvTranspose2d weight of its adjoint;
    # in our layouts that is the conv kernel with its last two axes swapped.
    transpose = ConvTranspose(
        c_in,
        k,
        strides=stride,
        padding=pad,
        groups=groups,
        output_padding=output_padding,
        use_bias=False,
    )
    t_kernel = jnp.swapaxes(conv_kernel, 2, 3)
    back = transpose.apply({"params": {"kernel": t_kernel}}, cotangent)
    assert back.shape == x.shape
    np.testing.assert_allclose(
        np.asarray(back), np.asarray(vjp(cotangent)[0]), rtol=1e-4, atol=1e-4
    )
    # <conv(x), y> == <x, conv_transpose(y)>
    np.testing.assert_allclose(float(jnp.vdot(y, cotangent)), float(jnp.vdot(x, back)), rtol=1e-4)


def test_conv_transpose_kernel_is_c_in_by_c_out_over_groups_and_same_padding_scales_by_stride():
    conv = ConvTranspose(8, 4, strides=2, padding="SAME", groups=2)
    out, variables = conv.init_with_output(KEY, jnp.ones((1, 5, 5, 6)))
    assert variables["params"]["kernel"].shape == (4, 4, 6, 4)
    assert out.shape == (1, 10, 10, 8)


def test_conv_bn_act_has_conv_and_bn_submodules_without_conv_bias():
    block = ConvBNAct(8, 3)
    variables = block.init(KEY, jnp.ones((2, 6, 6, 3)), train=False)
    assert jax.tree.map(jnp.shape, variables) == {
        "params": {"conv": {"kernel": (3, 3, 3, 8)}, "bn": {"scale": (8,), "bias": (8,)}},
        "batch_stats": {"bn": {"mean": (8,), "var": (8,)}},
    }


def test_conv_bn_act_in_training_normalises_then_applies_relu():
    block = ConvBNAct(4, 3, act=None)
    x = jax.random.normal(jax.random.key(1), (4, 6, 6, 3))
    variables = block.init(KEY, x, train=False)
    y, _ = block.apply(variables, x, train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(np.asarray(y.mean(axis=(0, 1, 2))), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(y.var(axis=(0, 1, 2))), 1.0, rtol=1e-3)
    relu_block = ConvBNAct(4, 3)
    y_relu, _ = relu_block.apply(variables, x, train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(np.asarray(y_relu), np.maximum(np.asarray(y), 0.0), atol=1e-6)


def test_conv_bn_act_default_padding_is_torch_symmetric_at_stride_two():
    block = ConvBNAct(2, 3, strides=2, norm=False, act=None)
    x = jax.random.normal(jax.random.key(2), (1, 8, 8, 3))
    variables = block.init(KEY, x, train=False)
    y = block.apply(variables, x, train=False)
    reference = Conv(2, 3, strides=2, padding=1, use_bias=False).apply(
        {"params": variables["params"]["conv"]}, x
    )
    assert y.shape == (1, 4, 4, 2)
    np.testing.assert_allclose(np.asarray(y), np.asarray(reference), rtol=1e-6)


def test_conv_bn_act_prelu_gets_one_learned_slope_per_channel():
    variables = ConvBNAct(5, 1, act="prelu").init(KEY, jnp.ones((1, 2, 2, 3)), train=False)
    np.testing.assert_allclose(
        np.asarray(variables["params"]["act"]["prelu"]["alpha"]), np.full(5, 0.25)
    )


def test_dropout_is_flax_dropout():
    assert layers.Dropout is nn.Dropout
