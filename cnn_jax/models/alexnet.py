"""AlexNet (Krizhevsky, Sutskever & Hinton 2012, "ImageNet classification with deep CNNs").

One module, :class:`AlexNet`, configured two ways:

* ``alexnet`` — torchvision's single-tower form (the "one weird trick" widths of Krizhevsky 2014):
  64@11x11/4 pad 2, max 3/2, 192@5x5 pad 2, max 3/2, 384@3x3, 256@3x3, 256@3x3, max 3/2, adaptive
  average pool to 6x6, dropout, 4096, dropout, 4096, classes: 61,100,840 parameters for 1000
  classes. Smallest input it accepts: 63x63.
* ``alexnet_lrn`` — the 2012 paper's layer table as the lectures draw it, on one tower: 227x227
  input, conv1 96@11x11/4 without padding -> 55x55x96 (34,944 parameters), local response
  normalisation after conv1 and conv2 (k=2, n=5, alpha=1e-4, beta=0.75, §3.3), overlapping 3x3/2 max
  pooling (§3.4), 256@5x5 pad 2, 384, 384, 256 @3x3 pad 1, FC 4096-4096-classes with dropout 0.5
  (§4.2): 62,378,344 parameters for 1000 classes (the paper's two-GPU grouping would give fewer).
  The paper applies ReLU, then LRN, then pooling (§3.3-3.4); the CS231n slide table lists NORM
  after POOL — ``lrn_after_pool=True`` gives that order (LRN has no parameters either way).

Both keep the adaptive 6x6 average pool before the classifier; at 227x227 (paper) and 224x224
(torchvision) the feature map is already 6x6 and the pool is the identity.

Names mirror torchvision's module tree with ``.`` before an index replaced by ``_``: every layer of
the feature extractor is ``features_<i>`` where ``i`` is its position in the equivalent torch
``nn.Sequential`` (conv, ReLU, [LRN], [max pool] each take one index), and the linear layers are
``classifier_1``, ``classifier_4``, ``classifier_6`` (dropout, linear, ReLU, dropout, linear, ReLU,
linear). torchvision ``features.0.weight`` (O, I, kH, kW) is ``features_0/kernel`` (kH, kW, I, O);
``classifier.1.weight`` (out, in) is ``classifier_1/kernel`` (in, out). The feature map is flattened
in torch's (C, H, W) order, so the first linear layer also maps by a plain transpose.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax import layers
from cnn_jax.layers.adaptive_pool import adaptive_avg_pool
from cnn_jax.models.registry import register_model

# (features, kernel, stride, padding) of the five convolutions.
TORCHVISION_CONVS = ((64, 11, 4, 2), (192, 5, 1, 2), (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1))
PAPER_CONVS = ((96, 11, 4, 0), (256, 5, 1, 2), (384, 3, 1, 1), (384, 3, 1, 1), (256, 3, 1, 1))


class AlexNet(nn.Module):
    """AlexNet: five convolutions (ReLU, optional LRN, 3x3/2 max pooling) and a 3-layer classifier.

    Fields:
      convs: (features, kernel, stride, padding) of each convolution.
      pool_after: indices into ``convs`` followed by 3x3 stride-2 max pooling.
      lrn_after: indices into ``convs`` followed by local response normalisation.
      lrn_after_pool: put LRN after the pooling instead of before it.
      pooled_size: side of the adaptive average pool before the classifier (None: no pool).
      hidden_sizes / dropout_rate: the fully connected hidden layers, each preceded by dropout.
      kernel_init: initialiser (name or callable) of every convolution and linear layer.
      activation: every non-linearity, ReLU in the paper (§3.1); a name or callable from
        :mod:`cnn_jax.layers.activations`, e.g. ``'tanh'`` for the paper's Fig. 1 comparison.
      conv_impl: how the convolutions run, ``'auto'`` | ``'xla'`` | ``'onednn'``
        (:mod:`cnn_jax.layers.conv`).
    """

    num_classes: int = 1000
    convs: Sequence[tuple[int, int, int, int]] = TORCHVISION_CONVS
    pool_after: Sequence[int] = (0, 1, 4)
    lrn_after: Sequence[int] = ()
    lrn_after_pool: bool = False
    pooled_size: int | None = 6
    hidden_sizes: Sequence[int] = (4096, 4096)
    dropout_rate: float = 0.5
    kernel_init: str | Callable = "he_normal"
    activation: str | Callable = "relu"
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = jnp.asarray(x, self.dtype)
        index = 0  # position in torchvision's `features` Sequential

        def lrn(x: jax.Array) -> jax.Array:
            nonlocal index
            # Krizhevsky et al. 2012 §3.3: k=2, n=5, alpha=1e-4, beta=0.75.
            x = layers.LocalResponseNorm(
                size=5, alpha=1e-4, beta=0.75, k=2.0, name=f"features_{index}"
            )(x)
            index += 1
            return x

        for i, (features, kernel, stride, padding) in enumerate(self.convs):
            x = layers.Conv(
                features,
                kernel_size=kernel,
                strides=stride,
                padding=padding,
                kernel_init=self.kernel_init,
                dtype=self.dtype,
                conv_impl=self.conv_impl,
                name=f"features_{index}",
            )(x)
            x = layers.activate(x, self.activation, name=f"features_{index + 1}")
            index += 2
            if i in self.lrn_after and not self.lrn_after_pool:
                x = lrn(x)
            if i in self.pool_after:
                # Overlapping pooling, window 3 > stride 2 (§3.4).
                x = layers.max_pool(x, 3, 2)
                index += 1
            if i in self.lrn_after and self.lrn_after_pool:
                x = lrn(x)

        if self.pooled_size is not None:
            x = adaptive_avg_pool(x, self.pooled_size)
        # Flatten channel-major like torch's NCHW `flatten`, so torchvision's classifier.1 weight
        # ports by a transpose instead of a permutation of its 9216 inputs.
        x = jnp.transpose(x, (0, 3, 1, 2)).reshape((x.shape[0], -1))

        dense_init = layers.get_initializer(self.kernel_init)
        index = 0  # position in torchvision's `classifier` Sequential
        for features in self.hidden_sizes:
            x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
            x = nn.Dense(
                features, kernel_init=dense_init, dtype=self.dtype, name=f"classifier_{index + 1}"
            )(x)
            x = layers.activate(x, self.activation, name=f"classifier_{index + 2}")
            index += 3
        return nn.Dense(
            self.num_classes, kernel_init=dense_init, dtype=self.dtype, name=f"classifier_{index}"
        )(x)


@register_model(
    "alexnet",
    family="alexnet",
    input_shape=(224, 224, 3),
    test_input_shape=(63, 63, 3),
    description="AlexNet, torchvision single-tower form (Krizhevsky 2014 widths); 61,100,840 parameters",
)
def alexnet(num_classes: int, **kwargs: Any) -> AlexNet:
    """AlexNet as torchvision defines it: 64-192-384-256-256 convolutions, no LRN."""
    return AlexNet(num_classes=num_classes, **kwargs)


@register_model(
    "alexnet_lrn",
    family="alexnet",
    input_shape=(227, 227, 3),
    test_input_shape=(67, 67, 3),
    description="AlexNet, paper table (Krizhevsky et al. 2012) on one tower, with LRN; 62,378,344 parameters",
)
def alexnet_lrn(num_classes: int, **kwargs: Any) -> AlexNet:
    """AlexNet as the 2012 paper's table: 96-256-384-384-256 convolutions, LRN after conv1 and conv2."""
    defaults = dict(convs=PAPER_CONVS, lrn_after=(0, 1))
    return AlexNet(num_classes=num_classes, **{**defaults, **kwargs})
