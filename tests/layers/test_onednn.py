"""The oneDNN convolutions (cnn_jax/layers/onednn.py) against XLA's, and how layers pick them."""

import logging
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax.config import ConfigError, base_config, validate_config
from cnn_jax.layers import CausalConv1D, Conv, onednn
from cnn_jax.layers import conv as conv_module

# (input NHWC, kernel HWIO, strides, padding, dilation, groups)
CASES = {
    "lenet_c1": ((3, 28, 28, 1), (5, 5, 1, 6), (1, 1), ((2, 2), (2, 2)), (1, 1), 1),
    "stride2_uneven_pad": ((2, 9, 10, 4), (3, 3, 4, 6), (2, 2), ((1, 2), (0, 1)), (1, 1), 1),
    "dilated_grouped": ((2, 11, 11, 6), (3, 3, 2, 9), (1, 1), ((2, 2), (2, 2)), (2, 2), 3),
    "depthwise_multiplier": ((2, 8, 8, 4), (3, 3, 1, 8), (2, 1), ((1, 1), (1, 1)), (1, 1), 4),
    "pointwise": ((1, 5, 7, 3), (1, 1, 3, 5), (1, 1), ((0, 0), (0, 0)), (1, 1), 1),
}


def _inputs(case):
    x_shape, w_shape, *static = CASES[case]
    rng = np.random.default_rng(0)
    return (jnp.asarray(rng.standard_normal(x_shape), jnp.float32),
            jnp.asarray(rng.standard_normal(w_shape), jnp.float32), static)


def _close(a, b, tol=2e-5):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert u.shape == v.shape
        scale = float(jnp.max(jnp.abs(u))) or 1.0
        assert float(jnp.max(jnp.abs(u - v))) <= tol * scale


def _pair(static):
    """(oneDNN, XLA) versions of the convolution with these strides, padding, dilation, groups."""
    strides, padding, dilation, groups = static

    def fast(x, w):
        return onednn.conv2d(x, w, strides=strides, padding=padding, dilation=dilation, groups=groups)

    def ref(x, w):
        return onednn.xla_conv2d(x, w, strides, padding, dilation, groups)

    return fast, ref


def _hlo(fn, *args) -> str:
    return jax.jit(fn).lower(*args).as_text()


def test_onednn_is_built_and_registered_here():
    # CI installs the wheels and has g++: the fast path must be what the tests exercise.
    assert onednn.available(), onednn.unavailable_reason()


@pytest.mark.parametrize("case", sorted(CASES))
def test_forward_and_gradients_match_xla(case):
    x, w, static = _inputs(case)
    fast, ref = _pair(static)
    assert "cnn_jax_onednn_conv_forward" in _hlo(fast, x, w)
    _close(jax.jit(fast)(x, w), jax.jit(ref)(x, w))

    def grads(f):
        return jax.jit(jax.grad(lambda x, w: jnp.sum(jnp.sin(f(x, w))), argnums=(0, 1)))(x, w)

    _close(grads(fast), grads(ref))


@pytest.mark.parametrize("case", ["stride2_uneven_pad", "dilated_grouped"])
def test_gradients_of_gradients_match_xla(case):
    # The three passes are each other's adjoints, so second derivatives stay on oneDNN.
    x, w, static = _inputs(case)
    fast, ref = _pair(static)

    def penalty(f):
        def inner(x, w):
            gx, gw = jax.grad(lambda x, w: jnp.sum(jnp.tanh(f(x, w))), argnums=(0, 1))(x, w)
            return jnp.sum(gx ** 2) + jnp.sum(jnp.cos(gw))
        return jax.jit(jax.grad(inner, argnums=(0, 1)))

    text = _hlo(jax.grad(lambda x, w: jnp.sum(fast(x, w) ** 3)), x, w)
    assert "cnn_jax_onednn_conv_backward_data" in text
    _close(penalty(fast)(x, w), penalty(ref)(x, w), tol=1e-4)


# XLA runs independent custom calls concurrently. Before the bridge executed one oneDNN call at a
# time, this program (a forward call, then five independent weight gradients in one jitted function)
# never finished: each calling thread got its own OpenMP team and oneDNN's kernels, which
# synchronise their team's threads, waited forever. A fresh process, so that a hang is a timeout.
CONCURRENT_CALLS = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    from cnn_jax.layers import onednn
    assert onednn.available(), onednn.unavailable_reason()
    static = ((1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((128, 32, 32, 16)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, 3, 16, 16)), jnp.float32)
    jax.block_until_ready(jax.jit(lambda x, w: onednn._forward(x, w, *static))(x, w))
    fast_fn = jax.jit(lambda x: [onednn._backward_weights(x, x * (i + 1), w.shape, *static) for i in range(5)])
    for _ in range(3):
        fast = jax.block_until_ready(fast_fn(x))

    def ref_fn(x):
        conv = lambda w: onednn.xla_conv2d(x, w, *static)
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


def test_vmap_runs_each_call_and_matches_xla():
    x, w, static = _inputs("stride2_uneven_pad")
    fast, ref = _pair(static)

    def per_example(f):
        return jax.jit(jax.vmap(lambda xi: f(xi[None], w)[0]))(x)

    _close(per_example(fast), per_example(ref))


def _layer_outputs(module, x, impl):
    with conv_module.using_conv_impl(impl):
        variables = module.init(jax.random.key(0), x)
        return variables, jax.jit(module.apply)(variables, x), _hlo(module.apply, variables, x)


@pytest.mark.parametrize("module,shape", [
    (Conv(6, 5, padding="VALID"), (2, 12, 12, 3)),
    (Conv(8, 3, strides=2, padding="SAME", groups=2), (2, 9, 9, 4)),
    (Conv(4, (3,), padding=1, dilation=2), (2, 10, 3)),          # 1-D, as height 1
    (CausalConv1D(5, kernel_size=3, dilation=2), (2, 9, 3)),
], ids=["valid", "same_grouped", "conv1d", "causal1d"])
def test_layers_use_onednn_on_auto_with_the_same_parameters(module, shape):
    x = jnp.asarray(np.random.default_rng(1).standard_normal(shape), jnp.float32)
    v_fast, y_fast, hlo_fast = _layer_outputs(module, x, "auto")
    v_xla, y_xla, hlo_xla = _layer_outputs(module, x, "xla")
    assert "cnn_jax_onednn_conv_forward" in hlo_fast and "cnn_jax_onednn" not in hlo_xla
    assert jax.tree.all(jax.tree.map(jnp.array_equal, v_fast, v_xla))  # checkpoints interchange
    _close(y_fast, y_xla)


@pytest.mark.parametrize("shape,features", [((3, 5, 5, 16), 12), ((2, 4, 3), 5)], ids=["lenet_c5", "conv1d"])
def test_a_kernel_covering_its_input_runs_as_a_dot_with_xla_gradients(shape, features):
    module = Conv(features, shape[1:-1], padding="VALID")
    x = jnp.asarray(np.random.default_rng(3).standard_normal(shape), jnp.float32)
    v_fast, y_fast, hlo_fast = _layer_outputs(module, x, "auto")
    v_xla, y_xla, _ = _layer_outputs(module, x, "xla")
    assert "cnn_jax_onednn" not in hlo_fast and "dot_general" in hlo_fast
    assert y_fast.shape == y_xla.shape == (shape[0], *(1,) * (len(shape) - 2), features)
    _close(y_fast, y_xla)

    def grads(impl):
        def loss(v, x):
            return jnp.sum(jnp.tanh(module.apply(v, x)))

        with conv_module.using_conv_impl(impl):
            return jax.jit(jax.grad(loss, argnums=(0, 1)))(v_xla, x)

    _close(grads("auto"), grads("xla"))
    # padding or a kernel smaller than the input (dilated or not) keep the convolution on oneDNN
    kernel = shape[1:-1]
    for other in (Conv(features, kernel, padding=1), Conv(features, tuple((k + 1) // 2 for k in kernel), padding="VALID", dilation=2),
                  Conv(features, tuple(k - 1 for k in kernel), padding="VALID")):
        assert "cnn_jax_onednn_conv_forward" in _layer_outputs(other, x, "auto")[2]


def test_a_pointwise_convolution_on_a_one_pixel_map_stays_on_onednn():
    # MobileNet's last stages on 32x32 inputs: oneDNN gives the same bits in every program, which
    # keeps K steps per call within rounding of K single steps (tests/training/test_multi_step.py).
    x = jnp.ones((2, 1, 1, 8))
    assert "cnn_jax_onednn_conv_forward" in _layer_outputs(Conv(4, 1, padding="VALID"), x, "auto")[2]


def test_non_float32_and_circular_convolutions_stay_on_xla():
    x = jnp.ones((2, 8, 8, 3), jnp.bfloat16)
    _, _, text = _layer_outputs(Conv(4, 3, dtype=jnp.bfloat16, param_dtype=jnp.bfloat16), x, "auto")
    assert "cnn_jax_onednn" not in text
    _, _, text = _layer_outputs(Conv(4, 3, padding="CIRCULAR"), jnp.ones((2, 8, 8, 3)), "auto")
    assert "cnn_jax_onednn" not in text


def test_depthwise_impl_xla_and_shifted_are_still_honoured():
    x = jnp.ones((2, 8, 8, 4))
    for impl in ("xla", "shifted"):
        _, _, text = _layer_outputs(Conv(4, 3, groups=4, depthwise_impl=impl), x, "auto")
        assert "cnn_jax_onednn" not in text
    _, _, text = _layer_outputs(Conv(4, 3, groups=4), x, "auto")
    assert "cnn_jax_onednn_conv_forward" in text


def test_unknown_conv_impl_is_a_one_line_error():
    with pytest.raises(ValueError, match="conv_impl 'fast' is not one of auto, xla, onednn"):
        conv_module.set_conv_impl("fast")
    config = base_config()
    config.data.name, config.model.name, config.conv_impl = "mnist", "lenet5", "fast"
    with pytest.raises(ConfigError, match="conv_impl='fast' is not one of"):
        validate_config(config, num_devices=1)


@pytest.fixture
def without_onednn(monkeypatch):
    monkeypatch.setattr(onednn, "_state", {"ok": False, "reason": "the onednn-cpu-gomp package is not installed"})
    monkeypatch.setattr(conv_module, "_warned", set())


def test_auto_falls_back_to_xla_with_one_warning_naming_the_fix(without_onednn, caplog):
    x = jnp.ones((2, 8, 8, 3))
    with caplog.at_level(logging.WARNING):
        _, y, text = _layer_outputs(Conv(4, 3), x, "auto")
        _layer_outputs(Conv(5, 3), x, "auto")
    assert "cnn_jax_onednn" not in text
    warnings = [r.getMessage() for r in caplog.records if "oneDNN" in r.getMessage()]
    assert len(warnings) == 1
    assert "not installed" in warnings[0] and "pip install onednn-cpu-gomp" in warnings[0]


def test_asking_for_onednn_without_it_names_the_fix(without_onednn):
    with pytest.raises(onednn.OneDNNUnavailableError, match="pip install onednn-cpu-gomp onednn-devel-cpu-gomp"):
        conv_module.set_conv_impl("onednn")
    config = base_config()
    config.data.name, config.model.name, config.conv_impl = "mnist", "lenet5", "onednn"
    with pytest.raises(ConfigError, match="conv_impl='onednn' needs oneDNN"):
        validate_config(config, num_devices=1)


def test_a_failing_compiler_is_reported_not_raised(monkeypatch, tmp_path):
    monkeypatch.setenv("CNN_JAX_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CXX", "/bin/false")
    with pytest.raises(onednn.OneDNNUnavailableError, match="compiling onednn_conv.cc failed"):
        onednn._build()
    assert not list((tmp_path / "native").glob("*"))  # no half-written library left behind


def test_lenet_training_gradients_match_xla():
    from cnn_jax.models import create_model

    model = create_model("lenet5", num_classes=10)
    x = jnp.asarray(np.random.default_rng(2).standard_normal((8, 28, 28, 1)), jnp.float32)
    labels = jnp.arange(8) % 10

    def loss(p):
        return -jnp.mean(jax.nn.log_softmax(model.apply({"params": p}, x))[jnp.arange(8), labels])

    def grads(impl):
        with conv_module.using_conv_impl(impl):
            return jax.jit(jax.grad(loss))(model.init(jax.random.key(0), x)["params"])

    _close(grads("auto"), grads("xla"), tol=1e-5)
