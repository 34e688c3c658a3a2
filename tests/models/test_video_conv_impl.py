"""The video models thread ``conv_impl`` to every convolution, and C3D-small on oneDNN (its 3-D
convolutions under the default 'auto', on this CPU) computes what it computes on XLA's
convolutions, forward and backward. Each convolution layer the model calls is intercepted and its
``conv_impl`` read (tests/models/test_model_conv_impl.py counts the primitives in the program).

Tolerance of the C3D-small comparison: each layer sums K products in float32 in another order on
each side, an error that grows like sqrt(K) * 2^-24 of the sum's scale and adds up over the layers
a result passes through. Forward, the eight convolutions have K = 27 * C_in (27, 216, 432, 864,
864, 1,728, 1,728, 1,728: sqrt(K) sums to 224) and fc6, fc7, fc8 K = 64, 256, 256 (40 more): about
264 * 6e-8 = 1.6e-5 of the logits' scale. Backward passes the layers again, and the largest weight
gradient (conv1a's) sums 2 * 16 * 32 * 32 = 32,768 products (sqrt(K) * 6e-8 = 1.1e-5): about
2 * 1.6e-5 + 1.1e-5 = 4.3e-5 of a gradient's scale. 1e-4 of the largest entry leaves a margin over
that. The bound presumes that no ReLU or max-pool decision lies within rounding of its threshold,
so that both sides take the same one: a flipped decision would move one term of a gradient's sum.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax import layers
from cnn_jax.models import create_model, get_model_spec

CONVOLUTIONS = (layers.Conv, layers.ConvTranspose, layers.CausalConv1D)
ONEDNN_PASSES = ("cnn_jax_onednn_conv_forward", "cnn_jax_onednn_conv_backward_data",
                 "cnn_jax_onednn_conv_backward_weights")


def conv_impls(name: str, conv_impl: str) -> list[str]:
    """``conv_impl`` of every convolution layer ``create_model(name, conv_impl=...)`` calls."""
    seen = []

    def record(next_fun, args, kwargs, context):
        if isinstance(context.module, CONVOLUTIONS) and context.method_name == "__call__":
            seen.append(context.module.conv_impl)
        return next_fun(*args, **kwargs)

    model = create_model(name, conv_impl=conv_impl)
    x = jax.ShapeDtypeStruct((1, *get_model_spec(name).test_input_shape), jnp.float32)
    with nn.intercept_methods(record):
        jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)
    return seen


# 8 convolutions in C3D; R3D-18: the stem, 16 in the blocks, 3 shortcut projections.
@pytest.mark.parametrize("name, count", [("c3d", 8), ("c3d_small", 8), ("frames2d_small", 8),
                                         ("r3d_18", 20)])
def test_every_convolution_of_a_video_model_gets_its_conv_impl(name, count):
    for impl in ("xla", "auto"):
        assert conv_impls(name, impl) == [impl] * count


def _close(a, b, tol=1e-4):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert u.shape == v.shape
        scale = float(jnp.max(jnp.abs(v))) or 1.0
        assert float(jnp.max(jnp.abs(u - v))) <= tol * scale


@pytest.mark.slow  # about 15 s: CI runs it with -m slow; the 3-D layer cases stay in the default suite
def test_c3d_small_runs_its_3d_convolutions_on_onednn_and_matches_xla_forward_and_backward():
    spec = get_model_spec("c3d_small")
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, *spec.test_input_shape)),
                    jnp.float32)
    labels = jnp.arange(2)
    variables = create_model("c3d_small", conv_impl="xla").init(jax.random.key(0), x)

    def run(impl):
        model = create_model("c3d_small", conv_impl=impl)

        def loss(params, x):
            logits = model.apply({"params": params}, x)
            return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(2), labels]), logits

        fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))
        return fn(variables["params"], x), fn.lower(variables["params"], x).as_text()

    (auto, auto_hlo), (xla, xla_hlo) = run("auto"), run("xla")
    assert all(name in auto_hlo for name in ONEDNN_PASSES)
    assert "stablehlo.convolution" not in auto_hlo and "cnn_jax_onednn" not in xla_hlo
    (_, logits), grads = auto
    (_, xla_logits), xla_grads = xla
    _close(logits, xla_logits)
    _close(grads, xla_grads)  # every parameter's gradient and the clip's
