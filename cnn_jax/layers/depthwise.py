"""Depthwise convolutions (``groups == C_in``) where oneDNN does not take them: three routes.

:class:`~cnn_jax.layers.DepthwiseConv`, and :class:`~cnn_jax.layers.Conv` /
:class:`~cnn_jax.layers.ConvBNAct` with ``groups`` equal to the input channels (as MobileNet uses
them), go through :func:`depthwise_conv` when their ``conv_impl`` does not send them to oneDNN, or
when their ``depthwise_impl`` is ``'shifted'`` (``'xla'`` makes them a plain ``nn.Conv``).

* ``'xla'``: XLA's grouped convolution (``feature_group_count = C_in``). XLA:CPU runs it as a slow
  generic loop; GPU and TPU libraries have fast depthwise kernels.
* ``'shifted'``: ``prod(k)`` shifted multiply-adds (:func:`cnn_jax.backends.xla.shifted_depthwise`),
  the fast form on a CPU, forward and backward.
* ``'auto'`` (the default): the grouped convolution forward (what evaluation and `cnn-jax summary`
  trace), and under differentiation (training) forward and backward by the shifted multiply-adds
  when compiled for the CPU, by the grouped convolution elsewhere.

All three create the same parameters and agree to float rounding
(``tests/layers/test_depthwise.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
from jax import lax

from cnn_jax.backends import xla
from cnn_jax.errors import check_choice
from cnn_jax.layers.conv_geometry import PadPairs, pad_pairs

DEPTHWISE_IMPLS = ("auto", "xla", "shifted")


def is_depthwise(in_features: int, groups: int, padding: str | PadPairs) -> bool:
    """A grouped conv with one input channel per group that :func:`depthwise_conv` can take."""
    return groups > 1 and groups == in_features and padding != "CIRCULAR"


def _grouped(x, kernel, strides, padding, dilation, precision):
    """XLA's grouped convolution; kernel ``(k..., 1, C_in * m)``."""
    return xla.conv(x, kernel, strides, padding, dilation, x.shape[-1], precision)


def _shifted(x, kernel, strides, padding, dilation, precision):
    del precision  # elementwise products in the input dtype
    return xla.shifted_depthwise(x, kernel, strides, padding, dilation)


def _platform(x, kernel, strides, padding, dilation, precision):
    """Shifted multiply-adds when compiled for the CPU, XLA's grouped convolution elsewhere
    (decided when the computation is lowered for its device)."""
    args = (strides, padding, dilation, precision)
    return lax.platform_dependent(
        x,
        kernel,
        cpu=lambda x, k: _shifted(x, k, *args),
        default=lambda x, k: _grouped(x, k, *args),
    )


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4, 5))
def _auto(x, kernel, strides, padding, dilation, precision):
    # Undifferentiated (evaluation, and what `cnn-jax summary` traces): the grouped convolution.
    return _grouped(x, kernel, strides, padding, dilation, precision)


@_auto.defjvp
def _auto_jvp(strides, padding, dilation, precision, primals, tangents):
    # Differentiated (training): forward and backward by the platform's fast implementation.
    fn = functools.partial(_platform, strides=strides, padding=padding, dilation=dilation,
                           precision=precision)
    return jax.jvp(lambda x, k: fn(x, k), primals, tangents)


def depthwise_conv(
    x: jax.Array,
    kernel: jax.Array,
    *,
    strides: Sequence[int],
    padding: str | PadPairs,
    dilation: Sequence[int],
    precision: Any = None,
    impl: str = "auto",
) -> jax.Array:
    """Depthwise convolution of channels-last ``x`` with ``kernel`` ``(k..., 1, C_in * m)``.

    Output channel ``c * m + j`` is kernel ``j`` of input channel ``c``; ``padding`` is ``'SAME'``,
    ``'VALID'`` or ``(lo, hi)`` pairs. ``impl``: ``'xla'``, ``'shifted'`` or ``'auto'`` (module
    docstring). All three agree to float rounding.
    """
    check_choice(impl, DEPTHWISE_IMPLS, "depthwise_impl")
    strides, dilation = tuple(strides), tuple(dilation)
    padding = pad_pairs(x.shape, kernel.shape[:-2], strides, padding, dilation)
    fn = {"auto": _auto, "xla": _grouped, "shifted": _shifted}[impl]
    return fn(x, kernel, strides, padding, dilation, precision)
