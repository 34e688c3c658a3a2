"""Fully connected baselines for MNIST (LeCun et al. 1998, §III.C, Fig. 9).

The 1998 paper compares its convolutional nets against a linear classifier (784-10), one-hidden-
layer nets (784-300-10, 784-1000-10) and two-hidden-layer nets (784-300-100-10, 784-500-150-10).
:class:`MLP` covers all of them with one field, ``hidden_sizes``: ``()`` is the linear classifier.

Parameter names: hidden layers ``fc1``, ``fc2``, ... and the classifier ``head``; a ``'prelu'``
activation adds a learned slope ``act<i>/prelu/alpha`` after each hidden layer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax import layers
from cnn_jax.models.registry import register_model

MNIST_SHAPE = (28, 28, 1)


class MLP(nn.Module):
    """Multilayer perceptron on the flattened image: ``hidden_sizes`` hidden layers, then a linear head.

    ``activation`` is a name from :mod:`cnn_jax.layers.activations` (or a callable); the default
    ``'tanh'`` is the squashing non-linearity of LeCun et al. 1998 (their scaled ``1.7159 tanh(2a/3)``
    differs only by constant factors). ``kernel_init`` is an initialiser name or callable; biases
    start at zero. ``dropout_rate`` > 0 drops hidden units in training (Srivastava et al. 2014,
    whose MNIST nets use 0.5). ``conv_impl`` is accepted like every registered model's, and has no
    effect: an MLP has no convolution.
    """

    num_classes: int = 10
    hidden_sizes: Sequence[int] = (300, 100)
    activation: str | Callable = "tanh"
    kernel_init: str | Callable = "lecun_normal"
    dropout_rate: float = 0.0
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        kernel_init = layers.get_initializer(self.kernel_init)
        x = jnp.asarray(x, self.dtype).reshape((x.shape[0], -1))
        for i, features in enumerate(self.hidden_sizes, start=1):
            x = nn.Dense(features, kernel_init=kernel_init, dtype=self.dtype, name=f"fc{i}")(x)
            x = layers.Activation(self.activation, name=f"act{i}")(x)
            if self.dropout_rate:
                x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return nn.Dense(self.num_classes, kernel_init=kernel_init, dtype=self.dtype, name="head")(x)


@register_model(
    "mlp_linear",
    family="mlp",
    input_shape=MNIST_SHAPE,
    num_classes=10,
    description="Linear classifier 784-10 (LeCun et al. 1998, Fig. 9); 7,850 parameters",
)
def mlp_linear(num_classes: int, **kwargs: Any) -> MLP:
    """Linear classifier 784-10: a single fully connected layer."""
    return MLP(num_classes=num_classes, hidden_sizes=(), **kwargs)


@register_model(
    "mlp_300",
    family="mlp",
    input_shape=MNIST_SHAPE,
    num_classes=10,
    description="One hidden layer 784-300-10 (LeCun et al. 1998, Fig. 9); 238,510 parameters",
)
def mlp_300(num_classes: int, **kwargs: Any) -> MLP:
    """784-300-10 perceptron with one hidden layer."""
    return MLP(num_classes=num_classes, hidden_sizes=(300,), **kwargs)


@register_model(
    "mlp_300_100",
    family="mlp",
    input_shape=MNIST_SHAPE,
    num_classes=10,
    description="Two hidden layers 784-300-100-10 (LeCun et al. 1998, Fig. 9); 266,610 parameters",
)
def mlp_300_100(num_classes: int, **kwargs: Any) -> MLP:
    """784-300-100-10 perceptron with two hidden layers."""
    return MLP(num_classes=num_classes, hidden_sizes=(300, 100), **kwargs)
