"""Normalisation layers: BatchNorm with the zoo's conventions and AlexNet's LocalResponseNorm."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from cnn_jax.layers.initializers import Initializer, get_initializer


class BatchNorm(nn.Module):
    """Batch normalisation (Ioffe & Szegedy 2015, Algorithm 1) over every axis but the channel axis.

    A thin wrapper over ``flax.linen.BatchNorm`` that fixes the zoo's conventions: ``train`` is an
    explicit argument (batch statistics when True, running averages when False); ``momentum=0.9``
    (``running = 0.9 * running + 0.1 * batch``, torch's ``momentum=0.1``); ``epsilon=1e-5`` (torch's).
    Parameters ``'scale'``/``'bias'`` (torch's ``weight``/``bias``) and ``batch_stats``
    ``'mean'``/``'var'`` (torch's ``running_mean``/``running_var``) live directly in this module.
    The running variance is updated with the biased batch variance (Flax's choice; torch uses the
    unbiased one, a factor ``n / (n - 1)`` on the update only). Under ``jit`` with a sharded batch the
    statistics are over the global batch, so no ``axis_name`` is needed.
    """

    momentum: float = 0.9
    epsilon: float = 1e-5
    use_scale: bool = True
    use_bias: bool = True
    scale_init: str | Initializer = "ones"
    bias_init: str | Initializer = "zeros"
    axis: int = -1
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        bn = nn.BatchNorm(
            use_running_average=not train,
            axis=self.axis,
            momentum=self.momentum,
            epsilon=self.epsilon,
            use_scale=self.use_scale,
            use_bias=self.use_bias,
            scale_init=get_initializer(self.scale_init),
            bias_init=get_initializer(self.bias_init),
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )
        nn.share_scope(self, bn)
        return bn(x)


def local_response_norm(
    x: jax.Array, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0
) -> jax.Array:
    """Local response normalisation across the channel (last) axis, with torch's semantics.

    ``b_c = a_c / (k + alpha / size * sum_{c' = c - size//2}^{c + (size-1)//2} a_{c'}^2) ^ beta``, the
    sum running over existing channels only (zeros beyond the borders). Krizhevsky et al. 2012 §3.3
    write ``alpha`` without the ``1 / size``; torch (and so torchvision-ported weights) divide by it.
    """
    if size < 1:
        raise ValueError(f"LocalResponseNorm size must be >= 1, got {size}")
    squares = jnp.square(x)
    window = (1,) * (x.ndim - 1) + (size,)
    padding = ((0, 0),) * (x.ndim - 1) + ((size // 2, (size - 1) // 2),)
    sums = lax.reduce_window(
        squares, np.array(0, squares.dtype), lax.add, window, (1,) * x.ndim, padding
    )
    return x / (k + (alpha / size) * sums) ** beta


class LocalResponseNorm(nn.Module):
    """Local response normalisation (Krizhevsky et al. 2012, §3.3): each activation is divided by the
    energy of its ``size`` neighbouring channels, a form of lateral inhibition. AlexNet uses
    ``k=2, size=5, alpha=1e-4, beta=0.75``; VGG's A-LRN the same. No parameters; see
    :func:`local_response_norm` for the exact (torch) formula.
    """

    size: int = 5
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 2.0

    def __call__(self, x: jax.Array) -> jax.Array:
        return local_response_norm(x, self.size, self.alpha, self.beta, self.k)
