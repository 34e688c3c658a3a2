"""LeNet-1 and LeNet-5 (LeCun et al. 1998, "Gradient-based learning applied to document recognition").

One module, :class:`LeNet`, is the family: 5x5 valid convolutions each followed by 2x2 subsampling,
an optional C5 convolution, fully connected hidden layers and a linear output layer.

* ``lenet5`` follows §II.B / Fig. 2: the 28x28 MNIST digit centred in a 32x32 field (``pad_input``),
  C1 6@5x5 (28x28), S2 2x2 average (14x14), C3 16@5x5 (10x10), S4 (5x5), C5 120@5x5 (1x1), F6 84,
  output 10, tanh. Departures, on purpose: (1) C3 connects to all six S2 maps, where the paper's
  Table I connects each C3 map to only 3, 4 or 6 of them (1,516 trainable parameters instead of our
  2,416) "to break the symmetry"; (2) S2/S4 are plain averages, where the paper multiplies by a
  trainable coefficient and adds a trainable bias per map (12 and 32 parameters); (3) the output is a
  linear layer with softmax cross-entropy in place of the paper's Euclidean RBF units with fixed
  ASCII-bitmap centres. Total 61,706 parameters for 10 classes
  (C1 156 + C3 2,416 + C5 48,120 + F6 10,164 + output 850).
* ``lenet5_modern`` is today's textbook variant: ReLU, 2x2 max pooling and ``c1_padding=2`` on the
  28x28 input instead of padding the image — the same shapes and the same 61,706 parameters.
* ``lenet1`` (LeCun et al. 1998 §III.C; LeCun et al. 1989): 28x28 input, 4@5x5 (24x24), 2x2 average
  (12x12), 12@5x5 (8x8), 2x2 average (4x4), 10 outputs. With fully connected convolutions it has
  3,246 parameters (104 + 1,212 + 1,930); the original's partial connections between the two
  convolution layers gave it fewer.

Parameter names follow the paper's layer labels, counting every layer (subsampling included):
``c1``, ``c3``, ``c5`` for convolutions, ``f6`` for hidden fully connected layers, ``output`` for the
classifier. A ``'prelu'`` activation adds ``act_<label>/prelu/alpha`` after each such layer.
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
PAPER_FIELD_SIZE = 32  # LeCun et al. 1998 §II.B: the 20x20 digit sits in a 32x32 input field.


class LeNet(nn.Module):
    """LeNet-style CNN: [5x5 conv -> 2x2 subsample] per ``conv_features``, optional C5, FC layers.

    Fields:
      conv_features: feature maps of the convolution + subsampling stages (C1, C3).
      c5_features: a further 5x5 valid convolution without subsampling (LeNet-5's C5), or None.
      hidden_sizes: fully connected hidden layers after flattening (LeNet-5's F6).
      pool: ``'avg'`` (the paper's subsampling) or ``'max'``.
      pad_input: zero padding added on every side of the image before C1; None pads up to the
        paper's 32x32 field (2 pixels for 28x28 MNIST, none for a 32x32 input).
      c1_padding: zero padding of C1 itself (the modern variant's way to keep 28x28).
      activation / kernel_init: by name (or callable), see :mod:`cnn_jax.layers`.
      dropout_rate: dropout after each hidden fully connected layer in training (0: none, as
        in the paper).
      conv_impl: how the convolutions run, ``'auto'`` | ``'xla'`` | ``'onednn'``
        (:mod:`cnn_jax.layers.conv`).
    """

    num_classes: int = 10
    conv_features: Sequence[int] = (6, 16)
    c5_features: int | None = 120
    hidden_sizes: Sequence[int] = (84,)
    kernel_size: int = 5
    pool: str = "avg"
    pad_input: int | None = None
    c1_padding: int = 0
    activation: str | Callable = "tanh"
    kernel_init: str | Callable = "lecun_normal"
    dropout_rate: float = 0.0
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        if self.pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {self.pool!r}")
        subsample = layers.avg_pool if self.pool == "avg" else layers.max_pool
        conv_kw = dict(kernel_size=self.kernel_size, kernel_init=self.kernel_init, dtype=self.dtype,
                       conv_impl=self.conv_impl)

        x = jnp.asarray(x, self.dtype)
        pad = self.pad_input
        if pad is None:
            pad = max(0, (PAPER_FIELD_SIZE - min(x.shape[1], x.shape[2])) // 2)
        if pad:
            x = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))

        index = 1  # the paper's layer numbering: C1, S2, C3, S4, C5, F6
        for stage, features in enumerate(self.conv_features):
            padding = self.c1_padding if stage == 0 else 0
            x = layers.Conv(features, padding=padding, name=f"c{index}", **conv_kw)(x)
            x = layers.Activation(self.activation, name=f"act_c{index}")(x)
            x = subsample(x, 2)
            index += 2
        if self.c5_features is not None:
            x = layers.Conv(self.c5_features, padding=0, name=f"c{index}", **conv_kw)(x)
            x = layers.Activation(self.activation, name=f"act_c{index}")(x)
            index += 1

        x = x.reshape((x.shape[0], -1))
        dense_init = layers.get_initializer(self.kernel_init)
        for features in self.hidden_sizes:
            x = nn.Dense(features, kernel_init=dense_init, dtype=self.dtype, name=f"f{index}")(x)
            x = layers.Activation(self.activation, name=f"act_f{index}")(x)
            if self.dropout_rate:
                x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
            index += 1
        return nn.Dense(self.num_classes, kernel_init=dense_init, dtype=self.dtype, name="output")(
            x
        )


@register_model(
    "lenet1",
    family="lenet",
    input_shape=MNIST_SHAPE,
    num_classes=10,
    description="LeNet-1 (LeCun et al. 1998 §III.C), fully connected convolutions; 3,246 parameters",
)
def lenet1(num_classes: int, **kwargs: Any) -> LeNet:
    """LeNet-1: 4@5x5, avg 2x2, 12@5x5, avg 2x2, linear output; 28x28 input, no padding."""
    defaults = dict(conv_features=(4, 12), c5_features=None, hidden_sizes=(), pad_input=0)
    return LeNet(num_classes=num_classes, **{**defaults, **kwargs})


@register_model(
    "lenet5",
    family="lenet",
    input_shape=MNIST_SHAPE,
    num_classes=10,
    description="LeNet-5 (LeCun et al. 1998 Fig. 2), tanh, average subsampling; 61,706 parameters",
)
def lenet5(num_classes: int, **kwargs: Any) -> LeNet:
    """LeNet-5 as in the paper (full C3, linear output): 28x28 input padded to 32x32."""
    return LeNet(num_classes=num_classes, **kwargs)


@register_model(
    "lenet5_modern",
    family="lenet",
    input_shape=MNIST_SHAPE,
    num_classes=10,
    description="LeNet-5 with ReLU, max pooling and padded C1 on 28x28; 61,706 parameters",
)
def lenet5_modern(num_classes: int, **kwargs: Any) -> LeNet:
    """Modern LeNet-5: ReLU, 2x2 max pooling, C1 padded by 2 on the 28x28 input."""
    defaults = dict(activation="relu", pool="max", pad_input=0, c1_padding=2)
    return LeNet(num_classes=num_classes, **{**defaults, **kwargs})
