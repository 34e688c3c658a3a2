"""Depthwise convolution implementations: XLA's grouped convolution and the shifted multiply-adds
that the CPU trains with (cnn_jax.layers.depthwise.depthwise_conv) give the same outputs, gradients
and parameters, for every stride, padding, dilation and depth multiplier the layers accept.

These tests cover the path depthwise layers take where oneDNN does not (conv_impl='xla', GPUs,
several devices, oneDNN not installed), so their layers are built with conv_impl='xla'. On one CPU
device with oneDNN, conv_impl='auto' hands them to oneDNN instead: tests/layers/test_conv_impl.py."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax.layers import Conv, ConvBNAct, DepthwiseConv, DepthwiseSeparableConv
from cnn_jax.layers.depthwise import depthwise_conv

X = jax.random.normal(jax.random.key(0), (3, 9, 10, 6))
# (strides, padding, dilation): stride 1 and 2, torch-style int padding, 'SAME' (asymmetric at
# stride 2), 'VALID', explicit uneven pairs, dilation.
CASES = [
    (1, "SAME", 1),
    (2, 1, 1),
    (2, "SAME", 1),
    (1, "VALID", 1),
    ((1, 2), ((0, 2), (1, 0)), 1),
    (1, 2, 2),
    (2, "VALID", (2, 1)),
]


def _module(impl, strides, padding, dilation, multiplier=1):
    return DepthwiseConv(kernel_size=3, strides=strides, padding=padding, dilation=dilation,
                         depth_multiplier=multiplier, use_bias=True, depthwise_impl=impl,
                         conv_impl="xla")


def _max_diff(a, b) -> float:
    return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


@pytest.mark.parametrize("multiplier", [1, 2])
@pytest.mark.parametrize("strides,padding,dilation", CASES)
def test_shifted_multiply_adds_equal_the_grouped_convolution(strides, padding, dilation, multiplier):
    variables = _module("xla", strides, padding, dilation, multiplier).init(jax.random.key(1), X)
    expected = _module("xla", strides, padding, dilation, multiplier).apply(variables, X)
    got = _module("shifted", strides, padding, dilation, multiplier).apply(variables, X)
    assert got.shape == expected.shape
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("strides,padding,dilation", CASES)
def test_training_gradients_of_every_implementation_equal_the_grouped_convolutions(strides, padding, dilation):
    variables = _module("xla", strides, padding, dilation).init(jax.random.key(1), X)

    def grads(impl):
        def loss(v, x):
            return jnp.sum(jnp.sin(_module(impl, strides, padding, dilation).apply(v, x)))

        return jax.jit(jax.grad(loss, argnums=(0, 1)))(variables, X)

    reference = grads("xla")
    # Every gradient entry is a sum of at most 3 x 9 x 10 = 270 products (kernel and bias; the
    # input's, of 9 taps), which another implementation adds in another order: at most 269 * 2^-24
    # of the sum of their |products| each (recursive summation bound). Twice that, relative to
    # each leaf's largest entry, is 3.2e-5 of it; measured: 5.9e-7, each within 4.4e-7 of float64.
    for impl in ("shifted", "auto"):
        for a, b in zip(jax.tree.leaves(reference), jax.tree.leaves(grads(impl)), strict=True):
            assert float(jnp.max(jnp.abs(a - b))) <= 2 * 270 * 2.0**-24 * float(jnp.max(jnp.abs(a)))
    # the kernel gradient is a sum over 3 x 9 x 10 positions: not small, so the bound means something
    assert float(jnp.max(jnp.abs(reference[0]["params"]["kernel"]))) > 1.0


def test_auto_creates_exactly_the_parameters_of_the_grouped_convolution():
    for module_cls, kwargs in ((DepthwiseConv, {}), (Conv, {"features": 6, "groups": 6}),
                               (DepthwiseSeparableConv, {"features": 4})):
        auto = module_cls(**kwargs, conv_impl="xla").init(jax.random.key(3), X)
        xla = module_cls(**kwargs, depthwise_impl="xla", conv_impl="xla").init(jax.random.key(3), X)
        assert jax.tree.structure(auto) == jax.tree.structure(xla)
        assert _max_diff(auto, xla) == 0.0


def test_auto_forward_without_gradient_is_the_grouped_convolution_bit_for_bit():
    # Evaluation and `cnn-jax summary` see XLA's grouped convolution (MACs and "conv dw" rows).
    variables = _module("xla", 2, 1, 1).init(jax.random.key(1), X)
    xla = jax.jit(_module("xla", 2, 1, 1).apply)(variables, X)
    auto = jax.jit(_module("auto", 2, 1, 1).apply)(variables, X)
    assert jnp.array_equal(xla, auto)
    jaxpr = str(jax.make_jaxpr(_module("auto", 2, 1, 1).apply)(variables, X))
    assert "conv_general_dilated" in jaxpr and "feature_group_count=6" in jaxpr


def test_training_on_the_cpu_compiles_no_grouped_convolution():
    variables = ConvBNAct(6, groups=6, conv_impl="xla").init(jax.random.key(0), X, train=False)

    def loss(v, x):
        y, _ = ConvBNAct(6, groups=6, conv_impl="xla").apply(v, x, train=True, mutable=["batch_stats"])
        return jnp.sum(y)

    hlo = jax.jit(jax.grad(loss)).lower(variables, X).as_text()
    assert jax.default_backend() == "cpu"
    assert "feature_group_count = 6" not in hlo
    grouped = ConvBNAct(6, groups=6, depthwise_impl="xla", conv_impl="xla")
    with_xla = jax.jit(jax.grad(lambda v, x: jnp.sum(grouped.apply(
        v, x, train=True, mutable=["batch_stats"])[0]))).lower(variables, X).as_text()
    assert "feature_group_count = 6" in with_xla


def test_a_grouped_conv_that_is_not_depthwise_and_circular_padding_keep_xla():
    x = jax.random.normal(jax.random.key(0), (2, 6, 6, 4))
    grouped = Conv(4, groups=2, conv_impl="xla")  # 2 channels per group: not depthwise
    v = grouped.init(jax.random.key(1), x)
    assert v["params"]["kernel"].shape == (3, 3, 2, 4)
    circular = Conv(4, groups=4, padding="CIRCULAR", conv_impl="xla")
    v = circular.init(jax.random.key(1), x)
    np.testing.assert_allclose(np.asarray(circular.apply(v, x)),
                               np.asarray(Conv(4, groups=4, padding="CIRCULAR", depthwise_impl="xla").apply(v, x)),
                               rtol=1e-6)


def test_depthwise_conv_function_takes_string_padding_and_rejects_unknown_impls():
    kernel = jax.random.normal(jax.random.key(2), (3, 3, 1, 6))
    conv = functools.partial(depthwise_conv, X, kernel, strides=(2, 2), padding="SAME", dilation=(1, 1))
    np.testing.assert_allclose(np.asarray(conv(impl="shifted")), np.asarray(conv(impl="xla")), rtol=1e-5, atol=1e-5)
    assert conv(impl="xla").shape == (3, 5, 5, 6)
    with pytest.raises(ValueError, match="not one of auto, xla, shifted"):
        conv(impl="fast")
    with pytest.raises(ValueError, match="not one of auto, xla, shifted"):
        DepthwiseConv(depthwise_impl="fast").init(jax.random.key(0), X)


@pytest.mark.slow  # about 20-100 s on 2 cores: CI runs it with -m slow
def test_mobilenet_trains_with_the_same_loss_and_gradients_as_with_grouped_convolutions():
    from cnn_jax.models import create_model

    x = jax.random.normal(jax.random.key(0), (4, 32, 32, 3))
    model = create_model("mobilenet_v1_025", num_classes=10, conv_impl="xla")
    variables = model.init(jax.random.key(1), x, train=False)

    def loss(params, impl):
        from cnn_jax.layers import conv

        original = conv._conv_layer
        conv._conv_layer = lambda m, x, *, groups, depthwise_impl, **kw: original(
            m, x, groups=groups, depthwise_impl=impl, **kw)
        try:
            logits, _ = model.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"])
        finally:
            conv._conv_layer = original
        return jnp.mean(jax.nn.log_softmax(logits)[:, 0])

    auto = jax.value_and_grad(loss)(variables["params"], "auto")
    xla = jax.value_and_grad(loss)(variables["params"], "xla")
    # Two float32 programs. Measured against the same loss and gradients in float64 (AMD EPYC):
    # each is within 2.8e-6 of the float64 loss (-2.39) and within 2.8e-3 of each gradient leaf's
    # largest entry plus 2e-4 (BatchNorm over 4 examples, 1x1 maps at the end, amplifies
    # rounding); the two implementations then differ by at most twice that on any CPU whose
    # rounding is as good: 5.6e-6 and 5.6e-3 * (scale + 2e-4). The bounds below leave 1.8x to
    # spare (measured differences: 1.4e-6, and 0.11 of the gradient bound); a wrong shift or
    # padding differs by O(1).
    assert abs(float(auto[0]) - float(xla[0])) < 1e-5
    for a, b in zip(jax.tree.leaves(auto[1]), jax.tree.leaves(xla[1]), strict=True):
        assert float(jnp.max(jnp.abs(a - b))) <= 1e-2 * (float(jnp.max(jnp.abs(b))) + 2e-4)
