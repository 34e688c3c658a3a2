"""Convolutions in XLA's own operations, channels-last: what runs wherever oneDNN does not.

* :func:`conv`: ``lax.conv_general_dilated`` on ``(N, spatial..., C)`` input and a
  ``(spatial..., C_in / groups, C_out)`` kernel (Flax's layout), any strides, ``(lo, hi)`` padding,
  kernel dilation and groups.
* :func:`conv_transpose`: the transposed convolution with a ``(spatial..., C_in, C_out / groups)``
  kernel (torch's ``ConvTranspose`` layout), as a convolution of the zero-interleaved input.
* :func:`shifted_depthwise`: a depthwise convolution (``groups = C_in``) as ``prod(k)`` shifted
  multiply-adds. XLA:CPU runs a grouped convolution with one channel per group as a slow generic
  loop; one strided slice of the padded input per kernel tap, times that tap's per-channel
  weights, is elementwise work that XLA fuses into a few loops, forward and backward (its gradient
  is pads and reductions), much faster on a CPU, with the same output to float rounding.
* :func:`space_to_depth_conv`: an undilated, ungrouped strided convolution as a stride-1
  convolution of its input rearranged into stride-sized blocks (the sub-pixel view of Shi et al.
  2016, read backwards). Its input gradient, a transposed convolution, is then a stride-1
  transposed convolution into blocks and a reshape: what :mod:`cnn_jax.backends.onednn.routing`
  runs for large strides (FCN-32s's and FCN-16s's upsampling layers).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

# Letters for the spatial dims of lax dimension-number strings, by number of spatial dims.
_SPATIAL_LETTERS = {1: "H", 2: "HW", 3: "DHW"}


def dimension_numbers(num_spatial: int) -> tuple[str, str, str]:
    """lax dimension numbers of channels-last input, ``(spatial..., I, O)`` kernel and output."""
    spatial = _SPATIAL_LETTERS[num_spatial]
    return f"N{spatial}C", f"{spatial}IO", f"N{spatial}C"


def output_shape(
    x_shape: Sequence[int],
    kernel_shape: Sequence[int],
    strides: Sequence[int],
    padding: Sequence[tuple[int, int]],
    dilation: Sequence[int],
) -> tuple[int, ...]:
    """Channels-last output shape of :func:`conv` with ``(lo, hi)`` padding pairs: per spatial dim
    ``floor((W + lo + hi - d (F - 1) - 1) / S) + 1`` (Dumoulin & Visin 2016, relationship 15)."""
    spatial = tuple(
        (size + lo + hi - d * (k - 1) - 1) // s + 1
        for size, k, s, (lo, hi), d in zip(
            x_shape[1:-1], kernel_shape[:-2], strides, padding, dilation, strict=True
        )
    )
    return (x_shape[0], *spatial, kernel_shape[-1])


def conv(
    x: jax.Array,
    kernel: jax.Array,
    strides: Sequence[int],
    padding: str | Sequence[tuple[int, int]],
    dilation: Sequence[int],
    groups: int = 1,
    precision: Any = None,
) -> jax.Array:
    """XLA's convolution of channels-last ``x`` with a ``(spatial..., C_in / groups, C_out)``
    kernel."""
    return lax.conv_general_dilated(
        x,
        kernel,
        window_strides=tuple(strides),
        padding=padding,
        rhs_dilation=tuple(dilation),
        dimension_numbers=dimension_numbers(x.ndim - 2),
        feature_group_count=groups,
        precision=precision,
    )


def conv_transpose_shape(
    y_shape: Sequence[int],
    kernel_shape: Sequence[int],
    strides: Sequence[int],
    crops: Sequence[tuple[int, int]],
    output_padding: Sequence[int],
    dilation: Sequence[int],
    groups: int = 1,
) -> tuple[int, ...]:
    """Channels-last output shape of :func:`conv_transpose` (kernel ``(spatial..., C_in, C_out /
    groups)``): per spatial dim ``(W - 1) S - (lo + hi) + d (F - 1) + 1 + output_padding``
    (Dumoulin & Visin 2016, relationship 14; torch's ``ConvTranspose*d``)."""
    spatial = tuple(
        (size - 1) * s - lo - hi + d * (k - 1) + 1 + op
        for size, k, s, (lo, hi), op, d in zip(
            y_shape[1:-1], kernel_shape[:-2], strides, crops, output_padding, dilation, strict=True
        )
    )
    return (y_shape[0], *spatial, kernel_shape[-1] * groups)


def conv_transpose(
    y: jax.Array,
    kernel: jax.Array,
    strides: Sequence[int],
    crops: Sequence[tuple[int, int]],
    output_padding: Sequence[int],
    dilation: Sequence[int],
    groups: int = 1,
    precision: Any = None,
) -> jax.Array:
    """XLA's transposed convolution of channels-last ``y`` with a ``(spatial..., C_in, C_out /
    groups)`` kernel: ``crops`` ``(lo, hi)`` are removed from the full output (torch's
    ``padding``; negative values add zeros), ``output_padding`` extends its end.

    A transposed convolution is the gradient of a strided convolution: put S - 1 zeros between
    input pixels (``lhs_dilation``), pad each side by ``d (F - 1)`` minus the crop, and correlate
    with the kernel flipped in space with its in/out roles swapped (Dumoulin & Visin 2016, §4).
    """
    n = y.ndim - 2
    kernel_shape = kernel.shape[:n]
    c_in, c_out = kernel.shape[-2], kernel.shape[-1] * groups
    rhs = jnp.flip(kernel, axis=tuple(range(n)))
    # Group j maps inputs j*C_in/g... to outputs j*C_out/g...; lax wants (spatial, C_in/g, C_out).
    rhs = rhs.reshape(*kernel_shape, groups, c_in // groups, c_out // groups)
    rhs = jnp.swapaxes(rhs, n, n + 1).reshape(*kernel_shape, c_in // groups, c_out)
    pads = [
        (d * (f - 1) - lo, d * (f - 1) - hi + op)
        for f, (lo, hi), op, d in zip(kernel_shape, crops, output_padding, dilation, strict=True)
    ]
    return lax.conv_general_dilated(
        y,
        rhs,
        window_strides=(1,) * n,
        padding=pads,
        lhs_dilation=tuple(strides),
        rhs_dilation=tuple(dilation),
        dimension_numbers=dimension_numbers(n),
        feature_group_count=groups,
        precision=precision,
    )


def shifted_depthwise(
    x: jax.Array,
    kernel: jax.Array,
    strides: Sequence[int],
    padding: Sequence[tuple[int, int]],
    dilation: Sequence[int],
) -> jax.Array:
    """The depthwise convolution with kernel ``(k..., 1, C_in * m)`` as ``prod(k)`` shifted
    multiply-adds: for each kernel tap, a strided slice of the zero-padded input times that tap's
    per-channel weights. Output channel ``c * m + j`` is kernel ``j`` of input channel ``c``
    (torch's order); products in the input dtype."""
    kernel_shape = kernel.shape[:-2]
    multiplier = kernel.shape[-1] // x.shape[-1]
    if multiplier > 1:
        x = jnp.repeat(x, multiplier, axis=-1)
    out_shape = output_shape(x.shape, kernel.shape, strides, padding, dilation)[1:-1]
    x = jnp.pad(x, [(0, 0), *padding, (0, 0)])
    out = None
    for tap in itertools.product(*(range(k) for k in kernel_shape)):
        start = [t * d for t, d in zip(tap, dilation, strict=True)]
        limit = [b + (o - 1) * s + 1 for b, o, s in zip(start, out_shape, strides, strict=True)]
        window = lax.slice(x, (0, *start, 0), (x.shape[0], *limit, x.shape[-1]), (1, *strides, 1))
        term = window * kernel[tap][0]
        out = term if out is None else out + term
    return out


def space_to_depth_conv(
    x: jax.Array,
    kernel: jax.Array,
    strides: Sequence[int],
    padding: Sequence[tuple[int, int]],
    precision: Any = None,
) -> jax.Array:
    """:func:`conv` of channels-last ``x`` with a ``(spatial..., C_in, C_out)`` kernel, undilated
    and ungrouped, as a stride-1 convolution of blocks: with stride ``S`` and the kernel of ``F``
    taps zero-padded to ``B S`` taps (``B = ceil(F / S)``), output ``i`` is
    ``sum_{a < B, b < S} x[(i + a) S + b] w[a S + b]``; so cutting the padded input into blocks of
    ``S`` (block ``j``, offset ``b``) and moving the offsets into the channels gives a convolution
    of stride 1 and ``B`` taps over ``S * C_in`` channels (per spatial dim). Same output as
    :func:`conv` to float32 rounding; any non-negative ``(lo, hi)`` padding."""
    n = x.ndim - 2
    taps = kernel.shape[:n]
    blocks = [-(-f // s) for f, s in zip(taps, strides, strict=True)]
    out = output_shape(x.shape, kernel.shape, strides, padding, (1,) * n)[1:-1]
    kernel = jnp.pad(kernel, [*((0, b * s - f) for b, s, f in zip(blocks, strides, taps, strict=True)),
                              (0, 0), (0, 0)])
    # Input positions past (out + B - 1) S meet only the kernel's zero padding: cut or pad to it.
    edges = [(lo, (o + b - 1) * s - size - lo)
             for size, (lo, _), o, b, s in zip(x.shape[1:-1], padding, out, blocks, strides, strict=True)]
    x = lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), *((lo, hi, 0) for lo, hi in edges),
                                            (0, 0, 0)])
    batch, c_in, c_out = x.shape[0], x.shape[-1], kernel.shape[-1]
    counts = [size // s for size, s in zip(x.shape[1:-1], strides, strict=True)]
    # (N, count_1, S_1, ..., C) -> (N, count_1, ..., S_1, ..., C): offsets next to the channels.
    x = x.reshape(batch, *(v for c, s in zip(counts, strides, strict=True) for v in (c, s)), c_in)
    x = x.transpose(0, *range(1, 2 * n, 2), *range(2, 2 * n + 1, 2), 2 * n + 1)
    x = x.reshape(batch, *counts, -1)
    kernel = kernel.reshape(*(v for b, s in zip(blocks, strides, strict=True) for v in (b, s)), c_in, c_out)
    kernel = kernel.transpose(*range(0, 2 * n, 2), *range(1, 2 * n, 2), 2 * n, 2 * n + 1)
    kernel = kernel.reshape(*blocks, -1, c_out)
    return conv(x, kernel, (1,) * n, ((0, 0),) * n, (1,) * n, 1, precision)
