"""How convolution layers choose their implementation: the ``conv_impl`` field ('auto' | 'xla' |
'onednn'), which convolutions go to oneDNN (cnn_jax/backends/onednn) and which stay on XLA.

Tolerances: one convolution layer sums K = k * k * C_in / groups products per output in float32
on either side, in different orders. Rounding errors of such a sum grow like sqrt(K) * 2^-24 of its
scale, at most K * 2^-24: for the largest sum here (LeNet-5's C5, K = 400) about 1.2e-6 and at most
2.4e-5 of an output's size (the 3-D layers sum at most 3 * 3 * 3 * 2 = 54). ``_close``'s 2e-5 of the largest output is over ten times the typical
error; the forward-mode test sums 2K = 54 products, whose worst case (3.2e-6) is far below 1e-4.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax.backends import onednn
from cnn_jax.errors import BackendUnavailableError
from cnn_jax.layers import (
    CONV_IMPLS,
    CausalConv1D,
    Conv,
    ConvBNAct,
    DepthwiseConv,
    DepthwiseSeparableConv,
)

FORWARD = "cnn_jax_onednn_conv_forward"


def _close(a, b, tol=2e-5):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert u.shape == v.shape
        scale = float(jnp.max(jnp.abs(v))) or 1.0
        assert float(jnp.max(jnp.abs(u - v))) <= tol * scale


def _hlo(fn, *args) -> str:
    return jax.jit(fn).lower(*args).as_text()


def _layer_outputs(module, x, impl):
    module = module.clone(conv_impl=impl)
    variables = module.init(jax.random.key(0), x)
    return variables, jax.jit(module.apply)(variables, x), _hlo(module.apply, variables, x)


def _primitives(fn, *args) -> set[str]:
    """Names of the primitives in the jaxpr of ``fn``, sub-jaxprs included."""
    names = set()

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            names.add(eqn.primitive.name)
            for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                walk(sub)

    walk(jax.make_jaxpr(fn)(*args).jaxpr)
    return names


def test_the_choices_are_auto_xla_and_onednn():
    assert CONV_IMPLS == ("auto", "xla", "onednn")
    assert Conv(4).conv_impl == "auto"


@pytest.mark.parametrize("module,shape", [
    (Conv(6, 5, padding="VALID"), (2, 12, 12, 3)),
    (Conv(8, 3, strides=2, padding="SAME", groups=2), (2, 9, 9, 4)),
    (Conv(4, (3,), padding=1, dilation=2), (2, 10, 3)),          # 1-D, as height 1
    (CausalConv1D(5, kernel_size=3, dilation=2), (2, 9, 3)),
    (Conv(6, (3, 3, 3), padding=1), (2, 4, 8, 8, 2)),                # C3D's
    (Conv(4, (1, 3, 3), strides=(1, 2, 2), padding=((0, 0), (1, 0), (0, 1))), (2, 3, 7, 7, 3)),
], ids=["valid", "same_grouped", "conv1d", "causal1d", "conv3d", "conv3d_frame_kernel_strided"])
def test_layers_use_onednn_on_auto_with_the_same_parameters(module, shape):
    x = jnp.asarray(np.random.default_rng(1).standard_normal(shape), jnp.float32)
    v_fast, y_fast, hlo_fast = _layer_outputs(module, x, "auto")
    v_xla, y_xla, hlo_xla = _layer_outputs(module, x, "xla")
    assert FORWARD in hlo_fast and "cnn_jax_onednn" not in hlo_xla
    assert jax.tree.all(jax.tree.map(jnp.array_equal, v_fast, v_xla))  # checkpoints interchange
    _close(y_fast, y_xla)


@pytest.mark.parametrize("module,shape", [
    (Conv(4, 3), (2, 6, 6, 3)),
    (CausalConv1D(4), (2, 6, 3)),
    (DepthwiseConv(3), (2, 6, 6, 3)),
    (DepthwiseSeparableConv(4), (2, 6, 6, 3)),
    (ConvBNAct(4, 3), (2, 6, 6, 3)),
    (ConvBNAct(4, (3, 3, 3)), (2, 4, 6, 6, 3)),
], ids=["conv", "causal", "depthwise", "separable", "conv_bn_act", "conv_bn_act_3d"])
def test_every_convolution_layer_takes_conv_impl_and_xla_binds_xlas_convolution(module, shape):
    x = jnp.ones(shape)
    kwargs = {"train": False} if isinstance(module, ConvBNAct) else {}
    variables = module.init(jax.random.key(0), x, **kwargs)

    def prims(impl):
        return _primitives(lambda v, x: module.clone(conv_impl=impl).apply(v, x, **kwargs), variables, x)

    assert "onednn_conv_forward" in prims("auto") and "conv_general_dilated" not in prims("auto")
    assert "conv_general_dilated" in prims("xla") and "onednn_conv_forward" not in prims("xla")


def test_conv_impl_is_part_of_the_jit_cache_key():
    # A module is a static argument: another conv_impl is another program, never a stale one.
    x = jnp.asarray(np.random.default_rng(2).standard_normal((2, 8, 8, 3)), jnp.float32)
    module = Conv(4, 3)
    variables = module.init(jax.random.key(0), x)
    step = jax.jit(lambda m, v, x: m.apply(v, x), static_argnums=0)
    y_auto = step(module, variables, x)
    y_xla = step(module.clone(conv_impl="xla"), variables, x)
    assert step._cache_size() == 2
    assert FORWARD in step.lower(module, variables, x).as_text()
    assert "cnn_jax_onednn" not in step.lower(module.clone(conv_impl="xla"), variables, x).as_text()
    _close(y_auto, y_xla)


def test_jvp_of_a_strided_dilated_conv_matches_xla():
    # Forward mode under the default: JVP = conv(dx, w) + conv(x, dw), both on oneDNN.
    rng = np.random.default_rng(4)
    x = jnp.asarray(rng.standard_normal((2, 15, 13, 3)), jnp.float32)
    module = Conv(5, 3, strides=2, dilation=2, padding=2)
    variables = module.init(jax.random.key(0), x)
    tangents = (jax.tree.map(jnp.ones_like, variables), jnp.asarray(rng.standard_normal(x.shape), jnp.float32))

    def jvp(impl):
        apply = module.clone(conv_impl=impl).apply
        return jax.jit(lambda v, x: jax.jvp(apply, (v, x), tangents))(variables, x)

    assert FORWARD in _hlo(lambda v, x: jax.jvp(module.apply, (v, x), tangents), variables, x)
    _close(jvp("auto"), jvp("xla"), tol=1e-4)


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
            return jnp.sum(jnp.tanh(module.clone(conv_impl=impl).apply(v, x)))

        return jax.jit(jax.grad(loss, argnums=(0, 1)))(v_xla, x)

    _close(grads("auto"), grads("xla"))
    # padding or a kernel smaller than the input (dilated or not) keep the convolution on oneDNN
    kernel = shape[1:-1]
    for other in (Conv(features, kernel, padding=1),
                  Conv(features, tuple((k + 1) // 2 for k in kernel), padding="VALID", dilation=2),
                  Conv(features, tuple(k - 1 for k in kernel), padding="VALID")):
        assert FORWARD in _layer_outputs(other, x, "auto")[2]
    # and so does the backend's own function when asked to (experiments/bench_conv_layer.py)
    w = v_xla["params"]["kernel"]
    pad = ((0, 0),) * (len(shape) - 2)
    assert FORWARD in _hlo(lambda x, w: onednn.conv(x, w, strides=(1,) * len(kernel), padding=pad,
                                                    covering_as_dot=False), x, w)


def test_a_pointwise_convolution_on_a_one_pixel_map_stays_on_onednn():
    # MobileNet's last stages on 32x32 inputs: oneDNN gives the same bits in every program, which
    # keeps K steps per call within rounding of K single steps (tests/training/test_multi_step.py).
    x = jnp.ones((2, 1, 1, 8))
    assert FORWARD in _layer_outputs(Conv(4, 1, padding="VALID"), x, "auto")[2]


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
    assert FORWARD in text


def test_unknown_conv_impl_is_a_one_line_error():
    x = jnp.ones((1, 4, 4, 1))
    with pytest.raises(ValueError, match="conv_impl='fast' is not one of auto, xla, onednn"):
        Conv(2, conv_impl="fast").init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="conv_impl='fast' is not one of auto, xla, onednn"):
        DepthwiseConv(depthwise_impl="xla", conv_impl="fast").init(jax.random.key(0), x)


def test_a_layer_asking_for_onednn_without_it_names_the_fix(monkeypatch):
    monkeypatch.setattr(onednn.build, "_state", {"ok": False, "reason": "no C++ compiler found"})
    with pytest.raises(BackendUnavailableError, match=r"no C\+\+ compiler found; pip install 'cnn-jax\[onednn\]'"):
        Conv(2, conv_impl="onednn").init(jax.random.key(0), jnp.ones((1, 4, 4, 1)))


def test_cnn_jax_onednn_0_makes_auto_layers_bind_xlas_convolution(monkeypatch):
    monkeypatch.setenv("CNN_JAX_ONEDNN", "0")
    x = jnp.ones((2, 6, 6, 3))
    module = Conv(4, 3)
    variables = module.init(jax.random.key(0), x)
    assert "onednn_conv_forward" not in _primitives(module.apply, variables, x)
