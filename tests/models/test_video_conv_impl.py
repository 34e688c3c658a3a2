"""The video models thread ``conv_impl`` to every convolution. tests/models/test_model_conv_impl.py
sees a choice of implementation in the program (oneDNN calls instead of XLA convolutions), which a
3-D convolution does not show: every implementation runs it on XLA (cnn_jax.layers.conv). So here
each convolution layer the model calls is intercepted and its ``conv_impl`` read."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from cnn_jax import layers
from cnn_jax.models import create_model, get_model_spec

CONVOLUTIONS = (layers.Conv, layers.ConvTranspose, layers.CausalConv1D)


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
