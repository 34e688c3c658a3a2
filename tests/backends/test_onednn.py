"""The oneDNN backend (cnn_jax/backends/onednn): its three primitives against XLA's convolution under
every JAX transformation, the choice each compiled program makes, and how it fails.

Tolerances: oneDNN and XLA both compute in float32 and differ only in the order of their sums. A
sum of K products carries a rounding error of about sqrt(K) * 2^-24 of its scale, and at most
K * 2^-24; the largest sum of ``CASES`` (a weight gradient of the lenet_c1 case, 3 * 28 * 28 =
2,352 products; the 3-D cases' largest is conv3d_padding_over_kernel's, 2 * 9 * 11 * 11 = 2,178)
stays under 2,352 * 6e-8 = 1.4e-4 even in the worst case and about 3e-6 typically. ``_close``'s
default 2e-5 of each result's largest entry sits between the two; composed passes (gradients of
gradients) get 1e-4.
"""

import json
import logging
import math
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax.backends import onednn, xla
from cnn_jax.backends.onednn import build, routing
from cnn_jax.backends.onednn.routing import conv_params
from cnn_jax.config import base_config
from cnn_jax.errors import BackendUnavailableError, ConfigError
from cnn_jax.training.validate import validate_config

# (input NHWC or NDHWC, kernel HWIO or DHWIO, strides, padding, dilation, groups)
CASES = {
    "lenet_c1": ((3, 28, 28, 1), (5, 5, 1, 6), (1, 1), ((2, 2), (2, 2)), (1, 1), 1),
    "stride2_uneven_pad": ((2, 9, 10, 4), (3, 3, 4, 6), (2, 2), ((1, 2), (0, 1)), (1, 1), 1),
    "dilated_grouped": ((2, 11, 11, 6), (3, 3, 2, 9), (1, 1), ((2, 2), (2, 2)), (2, 2), 3),
    "depthwise_multiplier": ((2, 8, 8, 4), (3, 3, 1, 8), (2, 1), ((1, 1), (1, 1)), (1, 1), 4),
    "pointwise": ((1, 5, 7, 3), (1, 1, 3, 5), (1, 1), ((0, 0), (0, 0)), (1, 1), 1),
    "conv1d_dilated": ((2, 13, 3), (3, 3, 5), (2,), ((2, 1),), (2,), 1),
    # a TCN's causal convolution (kernel 7, dilation 8): its padding keeps the weight gradient
    # from oneDNN's direct kernels, so it runs on the input padded beforehand
    "causal_1d_dilated": ((2, 60, 25), (7, 25, 25), (1,), ((48, 0),), (8,), 1),
    "c3d_3x3x3": ((2, 4, 8, 8, 3), (3, 3, 3, 3, 8), (1, 1, 1), ((1, 1),) * 3, (1, 1, 1), 1),
    "conv3d_stride_uneven_pad": ((2, 5, 9, 10, 4), (3, 3, 3, 4, 6), (1, 2, 2),
                                 ((1, 2), (0, 1), (2, 0)), (1, 1, 1), 1),
    "conv3d_dilated_grouped": ((2, 7, 9, 9, 6), (3, 3, 3, 2, 9), (1, 1, 1), ((2, 2),) * 3,
                               (2, 2, 2), 3),
    "conv3d_frame_kernel": ((2, 4, 8, 8, 3), (1, 3, 3, 3, 5), (1, 1, 1), ((0, 0), (1, 1), (1, 1)),
                            (1, 1, 1), 1),
    "conv3d_depthwise_multiplier": ((2, 4, 6, 6, 4), (3, 3, 3, 1, 8), (2, 1, 1), ((1, 1),) * 3,
                                    (1, 1, 1), 4),
    "conv3d_pointwise_strided": ((2, 6, 8, 8, 3), (1, 1, 1, 3, 5), (2, 2, 2), ((0, 0),) * 3,
                                 (1, 1, 1), 1),
    # a padding wider than the kernel: oneDNN has only its reference loops for the input gradient
    "conv3d_padding_over_kernel": ((2, 3, 5, 5, 16), (3, 3, 3, 16, 2), (1, 1, 1), ((4, 4),) * 3,
                                   (1, 1, 1), 1),
}
THREE_D = sorted(case for case in CASES if len(CASES[case][0]) == 5)
FORWARD, BACKWARD_DATA = "cnn_jax_onednn_conv_forward", "cnn_jax_onednn_conv_backward_data"
BACKWARD_WEIGHTS = "cnn_jax_onednn_conv_backward_weights"


def _inputs(case):
    x_shape, w_shape, *static = CASES[case]
    rng = np.random.default_rng(0)
    return (jnp.asarray(rng.standard_normal(x_shape), jnp.float32),
            jnp.asarray(rng.standard_normal(w_shape), jnp.float32), static)


def _close(a, b, tol=2e-5):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert u.shape == v.shape
        scale = float(jnp.max(jnp.abs(v))) or 1.0
        assert float(jnp.max(jnp.abs(u - v))) <= tol * scale


def _pair(static, impl="auto"):
    """(oneDNN primitive, XLA) versions of the convolution with these strides, padding, dilation,
    groups."""
    strides, padding, dilation, groups = static

    def fast(x, w):
        return onednn.conv(x, w, strides=strides, padding=padding, dilation=dilation, groups=groups,
                           impl=impl)

    def ref(x, w):
        return xla.conv(x, w, strides, padding, dilation, groups)

    return fast, ref


def _hlo(fn, *args) -> str:
    return jax.jit(fn).lower(*args).as_text()


def test_onednn_is_built_and_registered_here():
    # CI installs the onednn extra and has g++: the fast path must be what the tests exercise.
    assert onednn.available(), onednn.unavailable_reason()


@pytest.mark.parametrize("case", sorted(CASES))
def test_forward_and_gradients_match_xla(case):
    x, w, static = _inputs(case)
    fast, ref = _pair(static)
    assert FORWARD in _hlo(fast, x, w)
    _close(jax.jit(fast)(x, w), jax.jit(ref)(x, w))
    _close(fast(x, w), ref(x, w))  # eagerly: the primitive's own jit

    def grads(f):
        return jax.jit(jax.grad(lambda x, w: jnp.sum(jnp.sin(f(x, w))), argnums=(0, 1)))(x, w)

    _close(grads(fast), grads(ref))


@pytest.mark.parametrize("case", THREE_D)
def test_each_pass_of_a_3d_convolution_is_within_its_sums_rounding_of_xla(case):
    # <y, ct> with a random cotangent: the gradients are the backward passes themselves.
    x, w, static = _inputs(case)
    fast, ref = _pair(static)
    y_shape = xla.output_shape(x.shape, w.shape, *static[:3])
    ct = jnp.asarray(np.random.default_rng(1).standard_normal(y_shape), jnp.float32)

    def passes(f):
        def run(x, w):
            y, vjp = jax.vjp(f, x, w)
            return (y, *vjp(ct))
        return jax.jit(run)

    text = passes(fast).lower(x, w).as_text()
    assert all(t in text for t in (FORWARD, BACKWARD_DATA, BACKWARD_WEIGHTS))
    assert "stablehlo.convolution" not in text
    # Each result is a float32 sum of K products, taken in another order on each side: forward
    # K = taps * C_in / groups, the input gradient at most taps * C_out / groups, the weight
    # gradient N * (output positions). Its rounding error grows like sqrt(K) * 2^-24 of the sum's
    # scale for products of random sign (each addition rounds to 2^-24 of a partial sum), at most
    # K * 2^-24 when every rounding goes the same way; K * 2^-24 of the largest entry is that
    # worst case, sqrt(K) >= 5 times the typical error for the smallest K here (27).
    taps, groups = math.prod(w.shape[:-2]), static[3]
    sums = (taps * x.shape[-1] // groups, taps * w.shape[-1] // groups,
            y_shape[0] * math.prod(y_shape[1:-1]))
    for got, want, k in zip(passes(fast)(x, w), passes(ref)(x, w), sums, strict=True):
        _close(got, want, tol=k * 2.0 ** -24)


@pytest.mark.parametrize("case", ["stride2_uneven_pad", "dilated_grouped", "conv3d_dilated_grouped"])
def test_gradients_of_gradients_match_xla(case):
    # The three passes are each other's transposes, so second derivatives stay on oneDNN.
    x, w, static = _inputs(case)
    fast, ref = _pair(static)

    def penalty(f):
        def inner(x, w):
            gx, gw = jax.grad(lambda x, w: jnp.sum(jnp.tanh(f(x, w))), argnums=(0, 1))(x, w)
            return jnp.sum(gx ** 2) + jnp.sum(jnp.cos(gw))
        return jax.jit(jax.grad(inner, argnums=(0, 1)))

    text = _hlo(jax.grad(lambda x, w: jnp.sum(fast(x, w) ** 3)), x, w)
    assert BACKWARD_DATA in text
    _close(penalty(fast)(x, w), penalty(ref)(x, w), tol=1e-4)


@pytest.mark.parametrize("case", ["stride2_uneven_pad", "conv1d_dilated", "conv3d_stride_uneven_pad"])
def test_forward_mode_and_linearize_stay_on_onednn_and_match_xla(case):
    x, w, static = _inputs(case)
    fast, ref = _pair(static)
    tangents = (jnp.cos(x), jnp.sin(w))
    text = _hlo(lambda x, w: jax.jvp(fast, (x, w), tangents), x, w)
    assert FORWARD in text and "stablehlo.convolution" not in text
    _close(jax.jit(lambda x, w: jax.jvp(fast, (x, w), tangents))(x, w),
           jax.jvp(ref, (x, w), tangents))
    _close(jax.linearize(fast, x, w)[1](*tangents), jax.linearize(ref, x, w)[1](*tangents))


@pytest.mark.parametrize("case", ["stride2_uneven_pad", "c3d_3x3x3"])
def test_vmap_folds_a_batched_input_into_one_call_and_matches_xla(case):
    x, w, static = _inputs(case)
    fast, ref = _pair(static)

    def per_example(f):
        return jax.vmap(lambda xi: f(xi[None], w)[0])

    jaxpr = jax.make_jaxpr(per_example(fast))(x)
    (eqn,) = [e for e in jaxpr.eqns if e.primitive is onednn.forward_p]
    assert eqn.params["x_shape"] == x.shape  # the vmapped axis folded into N: one call
    _close(jax.jit(per_example(fast))(x), per_example(ref)(x))


def test_vmap_of_a_gradient_runs_each_example_and_matches_xla():
    # Per-example weight gradients: backward_weights sums over N, so it runs once per example.
    x, w, static = _inputs("dilated_grouped")
    fast, ref = _pair(static)

    def per_example_grads(f):
        loss = lambda w, xi: jnp.sum(jnp.sin(f(xi[None], w)))  # noqa: E731
        return jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0)))

    assert "cnn_jax_onednn_conv_backward_weights" in per_example_grads(fast).lower(w, x).as_text()
    _close(per_example_grads(fast)(w, x), per_example_grads(ref)(w, x))
    kernels = jnp.stack([w, -2 * w])  # a batched kernel runs once per kernel too
    _close(jax.vmap(fast, in_axes=(None, 0))(x, kernels), jax.vmap(ref, in_axes=(None, 0))(x, kernels))


# c3d_small's convolutions (3x3x3, padding 1) at the size it trains on: batch 16 of 16x64x64x1
# clips; (input, output channels).
C3D_SMALL = [((16, 16, 64, 64, 1), 8), ((16, 16, 32, 32, 8), 16), ((16, 8, 16, 16, 16), 32),
             ((16, 8, 16, 16, 32), 32), ((16, 4, 8, 8, 32), 64), ((16, 4, 8, 8, 64), 64),
             ((16, 2, 4, 4, 64), 64)]


def test_every_pass_of_c3d_small_runs_a_direct_onednn_kernel():
    # Not the gemm-based fallback or the reference loops: conv5's weight gradient (a 2x4x4 map
    # padded by 1) gets gemm as it stands, and a direct kernel on its input padded beforehand.
    for x_shape, c_out in C3D_SMALL:
        p = conv_params(x_shape, (3, 3, 3, x_shape[-1], c_out), (1, 1, 1), ((1, 1),) * 3, (1, 1, 1), 1)
        for pass_ in build.PASSES:
            route = routing.onednn_route(pass_, p)
            runs = routing.padded_first(p) if route == "padded" else p
            name = build.implementation(pass_, routing.bridge_attributes(runs))
            assert route in ("onednn", "padded") and routing.direct(name), (x_shape, pass_, name)
    conv5 = conv_params((16, 2, 4, 4, 64), (3, 3, 3, 64, 64), (1, 1, 1), ((1, 1),) * 3, (1, 1, 1), 1)
    assert "gemm" in build.implementation("backward_weights", routing.bridge_attributes(conv5))
    assert routing.onednn_route("backward_weights", conv5) == "padded"


@pytest.mark.parametrize("case,pass_,slow", [
    ("causal_1d_dilated", "backward_weights", "gemm"),
    ("conv3d_padding_over_kernel", "backward_data", "ref"),
])
def test_a_padding_that_keeps_a_pass_off_the_direct_kernels_is_applied_beforehand(case, pass_, slow):
    # test_forward_and_gradients_match_xla checks the values of these cases.
    x_shape, w_shape, *static = CASES[case]
    p = conv_params(x_shape, w_shape, *static)
    assert slow in build.implementation(pass_, routing.bridge_attributes(p))
    assert routing.direct(build.implementation(pass_, routing.bridge_attributes(
        routing.padded_first(p))))
    assert routing.onednn_route(pass_, p) == "padded"


# (input, kernel, strides, padding): kernels a multiple of the stride, longer, shorter; 1-D to 3-D
BLOCK_CASES = {
    "fcn_upscore32": ((2, 64, 64, 5), (64, 64, 5, 5), (32, 32), ((16, 16), (16, 16))),
    "kernel_not_a_multiple": ((2, 37, 29, 3), (20, 7, 3, 4), (16, 3), ((2, 5), (0, 1))),
    "kernel_under_stride": ((1, 40, 3), (5, 3, 2), (16,), ((3, 0),)),
    "patchify_3d": ((1, 8, 32, 32, 2), (4, 16, 16, 2, 3), (4, 16, 16), ((0, 0),) * 3),
    "stride1": ((2, 9, 9, 3), (3, 3, 3, 4), (1, 1), ((1, 1), (1, 1))),
}


@pytest.mark.parametrize("case", sorted(BLOCK_CASES))
def test_the_convolution_of_blocks_equals_xla_on_every_pass(case):
    x_shape, w_shape, strides, padding = BLOCK_CASES[case]
    p = conv_params(x_shape, w_shape, strides, padding, (1,) * len(strides), 1)
    rng = np.random.default_rng(0)
    x, w, y = (jnp.asarray(rng.standard_normal(p[key]), jnp.float32)
               for key in ("x_shape", "w_shape", "y_shape"))
    for pass_, (a, b) in {"forward": (x, w), "backward_data": (y, w),
                          "backward_weights": (x, y)}.items():
        blocks = jax.jit(lambda a, b, pass_=pass_: routing.ROUTES["blocks"](pass_, p, a, b))
        # fcn_upscore32's forward sums 64 * 64 * 5 = 20,480 products: about sqrt(K) * 2^-24 =
        # 8.5e-6 of the scale typically, at most K * 2^-24 = 1.2e-3; 1e-4 sits between the two
        # (the module docstring's 2e-5 is argued for sums of at most 2,352 products).
        _close(blocks(a, b), routing.ROUTES["xla"](pass_, p, a, b), tol=1e-4)


def test_only_input_gradients_of_large_undilated_ungrouped_strides_run_as_blocks():
    fcn32 = conv_params((32, 128, 128, 11), (64, 64, 11, 11), (32, 32), ((16, 16),) * 2, (1, 1), 1)
    assert routing.by_blocks("backward_data", fcn32)
    assert not routing.by_blocks("forward", fcn32)
    assert not routing.by_blocks("backward_weights", fcn32)
    fcn8 = conv_params((32, 128, 128, 11), (16, 16, 11, 11), (8, 8), ((4, 4),) * 2, (1, 1), 1)
    assert not routing.by_blocks("backward_data", fcn8)
    mixed = conv_params((2, 64, 64, 4), (32, 32, 4, 4), (16, 8), ((8, 8),) * 2, (1, 1), 1)
    assert not routing.by_blocks("backward_data", mixed)
    grouped = conv_params((2, 64, 64, 4), (32, 32, 2, 4), (16, 16), ((8, 8),) * 2, (1, 1), 2)
    assert not routing.by_blocks("backward_data", grouped)
    dilated = conv_params((2, 64, 64, 4), (3, 3, 4, 4), (16, 16), ((2, 2),) * 2, (2, 2), 1)
    assert not routing.by_blocks("backward_data", dilated)


def test_an_fcn32s_upsampling_layer_lowers_its_forward_to_blocks_and_its_gradients_to_onednn():
    # The layer's forward is the backward-data pass; its gradients are the other two passes.
    y = jnp.ones((2, 4, 4, 11))
    w = jnp.ones((64, 64, 11, 11))

    def layer(y, w):
        return onednn.conv_transpose(y, w, strides=(32, 32), crops=((16, 16),) * 2)

    assert "cnn_jax_onednn" not in _hlo(layer, y, w)
    text = _hlo(jax.grad(lambda y, w: jnp.sum(layer(y, w) ** 2), argnums=(0, 1)), y, w)
    assert FORWARD in text and BACKWARD_WEIGHTS in text and BACKWARD_DATA not in text


def test_the_implementation_query_rejects_what_onednn_cannot_run():
    p = routing.bridge_attributes(conv_params((2, 6, 6, 4), (3, 3, 4, 6), (1, 1), ((1, 1),) * 2,
                                          (1, 1), 1))
    with pytest.raises(BackendUnavailableError, match="oneDNN rejects the convolution"):
        build.implementation("forward", {**p, "groups": np.int64(4)})  # 6 outputs in 4 groups


def test_reference_loops_are_said_once_and_run_on_xla_under_auto(monkeypatch, caplog):
    monkeypatch.setattr(routing, "_warned", set())
    monkeypatch.setattr(build, "implementation", lambda pass_, attributes: "ref:any")
    x, w, static = _inputs("c3d_3x3x3")
    fast, ref = _pair(static)
    with caplog.at_level(logging.WARNING, logger="cnn_jax.backends.onednn"):
        text = _hlo(fast, x, w)
        _close(jax.jit(fast)(x, w), ref(x, w))
    assert "cnn_jax_onednn" not in text and "stablehlo.convolution" in text
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "cnn_jax.backends.onednn"]
    assert warning.startswith("oneDNN has only its reference implementation (ref:any) for the "
                              "forward pass of the 3-D convolution of (2, 4, 8, 8, 3)")
    assert warning.endswith("XLA's convolution runs it")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cnn_jax.backends.onednn"):
        text = _hlo(_pair(static, impl="onednn")[0], x, w)
    assert FORWARD in text  # 'onednn' keeps it, and says what 'auto' would do
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "cnn_jax.backends.onednn"]
    assert warning.endswith("conv_impl='auto' would run it on XLA")


# XLA runs independent custom calls concurrently. Before the bridge executed one oneDNN call at a
# time, this program (a forward call, then five independent weight gradients in one jitted function)
# never finished: each calling thread got its own OpenMP team and oneDNN's kernels, which
# synchronise their team's threads, waited forever. A fresh process, so that a hang is a timeout.
CONCURRENT_CALLS = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    from cnn_jax.backends import onednn, xla
    assert onednn.available(), onednn.unavailable_reason()
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((128, 32, 32, 16)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, 3, 16, 16)), jnp.float32)
    static = dict(strides=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1))
    params = dict(x_shape=x.shape, w_shape=w.shape, y_shape=x.shape, groups=1, precision=None,
                  impl="onednn", covering_as_dot=True, **static)
    jax.block_until_ready(jax.jit(lambda x, w: onednn.conv(x, w, **static, impl="onednn"))(x, w))
    fast_fn = jax.jit(lambda x: [onednn.backward_weights_p.bind(x, x * (i + 1), **params)
                                 for i in range(5)])
    for _ in range(3):
        fast = jax.block_until_ready(fast_fn(x))

    def ref_fn(x):
        conv = lambda w: xla.conv(x, w, static["strides"], static["padding"], static["dilation"])
        return [jax.vjp(conv, w)[1](x * (i + 1))[0] for i in range(5)]

    for a, b in zip(fast, jax.jit(ref_fn)(x)):
        assert float(jnp.max(jnp.abs(a - b))) <= 1e-4 * float(jnp.max(jnp.abs(b))), "gradients differ"
    print("finished")
""")


def test_independent_calls_in_one_program_finish_and_match_xla():
    try:
        done = subprocess.run([sys.executable, "-c", CONCURRENT_CALLS], capture_output=True, text=True,
                              timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("five independent oneDNN calls in one jitted function did not finish in 120 s")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "finished" in done.stdout


# The bridge caches each primitive and XLA calls it from whichever of its threads is free. With
# oneDNN's own scratch memory, which belongs to the thread that created a primitive, the gemm-based
# weight gradient oneDNN picks for kernels of 15 taps or more at a stride (here a 16x16 stride-8
# kernel, the weight gradient of FCN-8s's last upsampling) crashed the process within a few calls.
# The bridge hands every call its own scratch memory. A fresh process, so that a crash is a failure.
GEMM_WEIGHT_GRADIENT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    from cnn_jax.backends import onednn, xla
    assert onednn.available(), onednn.unavailable_reason()
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 64, 64, 11)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((16, 16, 11, 11)), jnp.float32)
    ct = jnp.asarray(rng.standard_normal((2, 8, 8, 11)), jnp.float32)
    static = dict(strides=(8, 8), padding=((4, 4), (4, 4)), dilation=(1, 1))

    def weight_gradient(conv):  # backward_weights(x, ct) alone: the loss is linear in the output
        return jax.jit(jax.grad(lambda w, x: jnp.sum(conv(x, w) * ct)))

    fast = weight_gradient(lambda x, w: onednn.conv(x, w, **static, impl="onednn"))
    assert "cnn_jax_onednn_conv_backward_weights" in fast.lower(w, x).as_text()
    for i in range(8):
        got = jax.block_until_ready(fast(w, x + i))
    ref = weight_gradient(lambda x, w: xla.conv(x, w, *static.values()))(w, x + 7)
    # 2 * 8 * 8 = 128 products per weight: at most 128 * 2^-24 = 7.6e-6 of the largest entry.
    assert float(jnp.max(jnp.abs(got - ref))) <= 2e-5 * float(jnp.max(jnp.abs(ref))), "differ"
    print("finished")
""")


def test_a_gemm_based_weight_gradient_runs_on_any_xla_thread_and_matches_xla():
    done = subprocess.run([sys.executable, "-c", GEMM_WEIGHT_GRADIENT], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    assert "finished" in done.stdout


# 'auto' is decided per compiled program: one device gets oneDNN; a jit partitioned over 8 devices
# and a shard_map over them get XLA's convolution; 'onednn' keeps the custom call everywhere.
EIGHT_DEVICES = textwrap.dedent("""
    import json
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from cnn_jax.backends import onednn, xla
    assert jax.device_count() == 8 and onednn.available(), onednn.unavailable_reason()
    mesh = Mesh(np.array(jax.devices()), ("data",))
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((8, 6, 6, 3)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, 3, 3, 4)), jnp.float32)
    pad = ((1, 1), (1, 1))
    conv = lambda impl: lambda x, w: onednn.conv(x, w, strides=(1, 1), padding=pad, impl=impl)
    split = (NamedSharding(mesh, P("data")), NamedSharding(mesh, P()))
    programs = {
        "one_device": jax.jit(conv("auto")),
        "sharded": jax.jit(conv("auto"), in_shardings=split),
        "shard_map": jax.jit(jax.shard_map(conv("auto"), mesh=mesh, in_specs=(P("data"), P()),
                                           out_specs=P("data"))),
        "sharded_onednn": jax.jit(conv("onednn"), in_shardings=split),
    }
    expected = xla.conv(x, w, (1, 1), pad, (1, 1))
    out = {}
    for name, fn in programs.items():
        error = float(jnp.max(jnp.abs(fn(x, w) - expected)) / jnp.max(jnp.abs(expected)))
        out[name] = ["cnn_jax_onednn" in fn.lower(x, w).as_text(), error]
    print(json.dumps(out))
""")


def test_auto_uses_onednn_for_one_device_and_xla_for_programs_over_eight():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    done = subprocess.run([sys.executable, "-c", EIGHT_DEVICES], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert {name: custom for name, (custom, _) in result.items()} == {
        "one_device": True, "sharded": False, "shard_map": False, "sharded_onednn": True}
    # 27 products per output: a few float32 roundings
    assert all(error < 1e-5 for _, error in result.values()), result


@pytest.fixture
def without_onednn(monkeypatch):
    monkeypatch.setattr(build, "_state", {"ok": False, "reason": "the onednn-cpu-gomp package is not installed"})
    monkeypatch.setattr(routing, "_warned", set())


def test_auto_falls_back_to_xla_with_one_warning_naming_the_fix(without_onednn, caplog):
    x, w, static = _inputs("stride2_uneven_pad")
    fast, ref = _pair(static)
    with caplog.at_level(logging.WARNING):
        text = _hlo(fast, x, w)
        _close(jax.jit(fast)(x, w), ref(x, w))
        _hlo(lambda x, w: fast(x, w) * 2, x, w)
    assert "cnn_jax_onednn" not in text and "stablehlo.convolution" in text
    warnings = [r.getMessage() for r in caplog.records if "oneDNN" in r.getMessage()]
    assert len(warnings) == 1
    assert "not installed" in warnings[0] and "pip install 'cnn-jax[onednn]'" in warnings[0]


def test_the_cpu_fallback_runs_depthwise_convolutions_as_shifted_multiply_adds(without_onednn):
    # XLA:CPU's grouped convolution with one channel per group is a slow loop (cnn_jax.backends.xla)
    x, w, static = _inputs("depthwise_multiplier")
    fast, ref = _pair(static)
    grads = jax.grad(lambda x, w: jnp.sum(jnp.sin(fast(x, w))), argnums=(0, 1))
    assert "feature_group_count" not in _hlo(grads, x, w)
    _close(jax.jit(grads)(x, w), jax.grad(lambda x, w: jnp.sum(jnp.sin(ref(x, w))), argnums=(0, 1))(x, w))


def test_asking_for_onednn_without_it_names_the_fix(without_onednn):
    x, w, static = _inputs("pointwise")
    fast, _ = _pair(static, impl="onednn")
    with pytest.raises(BackendUnavailableError, match=r"pip install 'cnn-jax\[onednn\]'"):
        jax.jit(fast)(x, w)
    with pytest.raises(BackendUnavailableError, match="conv_impl='onednn' needs oneDNN: the onednn-cpu-gomp"):
        onednn.require()
    config = base_config()
    config.data.name, config.model.name, config.conv_impl = "mnist", "lenet5", "onednn"
    with pytest.raises(ConfigError, match="conv_impl='onednn' needs oneDNN"):
        validate_config(config, num_devices=1)


def test_unknown_conv_impl_is_a_one_line_error():
    x, w, static = _inputs("pointwise")
    with pytest.raises(ValueError, match="conv_impl='fast' is not one of auto, xla, onednn"):
        _pair(static, impl="fast")[0](x, w)
    config = base_config()
    config.data.name, config.model.name, config.conv_impl = "mnist", "lenet5", "fast"
    with pytest.raises(ConfigError, match="conv_impl='fast' is not one of"):
        validate_config(config, num_devices=1)


def test_cnn_jax_onednn_0_switches_the_backend_off_without_building(monkeypatch, caplog):
    monkeypatch.setenv("CNN_JAX_ONEDNN", "0")
    monkeypatch.setattr(build, "_state", {})
    monkeypatch.setattr(build, "build", lambda: pytest.fail("CNN_JAX_ONEDNN=0 must not build"))
    x, w, static = _inputs("stride2_uneven_pad")
    with caplog.at_level(logging.WARNING):
        assert not onednn.available()
        assert "cnn_jax_onednn" not in _hlo(_pair(static)[0], x, w)
    assert "CNN_JAX_ONEDNN=0" in onednn.unavailable_reason()
    assert not [r for r in caplog.records if "oneDNN" in r.getMessage()]
    assert not onednn.chosen("auto")  # layers then bind XLA's convolution directly
    with pytest.raises(BackendUnavailableError, match="unset CNN_JAX_ONEDNN"):
        onednn.chosen("onednn")


def test_a_failing_compiler_is_reported_not_raised(monkeypatch, tmp_path):
    monkeypatch.setenv("CNN_JAX_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CXX", "/bin/false")
    with pytest.raises(BackendUnavailableError, match="compiling onednn_conv.cc failed"):
        build.build()
    assert not list((tmp_path / "native").glob("*"))  # no half-written library left behind
