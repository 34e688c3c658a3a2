"""Pooling over the spatial dims of channels-last input: max, average, sum, and their global forms.

Input is ``(N, spatial..., C)`` with ``x.ndim - 2`` spatial dims (1-D, 2-D and 3-D all work).
``window`` and ``strides`` are an int (same for every spatial dim) or one entry per dim;
``strides=None`` means non-overlapping windows (``strides = window``). ``padding`` is ``'VALID'``,
``'SAME'``, an int ``P`` (both sides), ints per dim, or ``(lo, hi)`` pairs per dim.

``ceil_mode`` follows torch: the output size rounds up,
``ceil((W + lo + hi - F) / S) + 1``, but a window may not start in the right padding (it is dropped
when ``(W_o - 1) S >= W + lo``). torchvision's GoogLeNet relies on this (``ceil_mode=True`` max pools).
Max pooling pads with ``-inf`` so padding never wins; average pooling pads with zeros and divides as
torch does (see :func:`avg_pool`).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from cnn_jax.layers.conv_geometry import conv_output_size, ntuple

PoolPadding = str | int | Sequence[int] | Sequence[tuple[int, int]]


def _pool_geometry(
    x: jax.Array,
    window: int | Sequence[int],
    strides: int | Sequence[int] | None,
    padding: PoolPadding,
) -> tuple[tuple[int, ...], tuple[int, ...], list[tuple[int, int]]]:
    """Window, strides and explicit (lo, hi) padding per spatial dim."""
    n = x.ndim - 2
    if n < 1:
        raise ValueError(f"pooling expects (N, spatial..., C) input, got shape {x.shape}")
    win = ntuple(window, n, "window")
    stride = win if strides is None else ntuple(strides, n, "strides")
    spatial = x.shape[1:-1]
    if isinstance(padding, str):
        mode = padding.upper()
        if mode not in ("SAME", "VALID"):
            raise ValueError(f"pooling padding {padding!r} is not 'SAME', 'VALID', an int or pairs")
        pads = [tuple(p) for p in lax.padtype_to_pads(spatial, win, stride, mode)]
    elif isinstance(padding, int):
        pads = [(padding, padding)] * n
    else:
        entries = list(padding)
        if len(entries) != n:
            raise ValueError(
                f"padding={padding!r} has {len(entries)} entries but there are {n} spatial dims"
            )
        pads = [(p, p) if isinstance(p, int) else (int(p[0]), int(p[1])) for p in entries]
    return win, stride, pads


def _ceil_extra(
    spatial: Sequence[int],
    win: Sequence[int],
    stride: Sequence[int],
    pads: Sequence[tuple[int, int]],
    ceil_mode: bool,
) -> list[int]:
    """Extra right padding so the strided windows produce ``conv_output_size`` outputs."""
    extra = []
    for size, f, s, (lo, hi) in zip(spatial, win, stride, pads, strict=True):
        out = conv_output_size(size, f, s, (lo, hi), ceil_mode=ceil_mode)
        extra.append(max((out - 1) * s + f - (size + lo + hi), 0))
    return extra


def _reduce(
    x: jax.Array,
    init: jax.Array,
    op: Callable[[jax.Array, jax.Array], jax.Array],
    win: Sequence[int],
    stride: Sequence[int],
    pads: Sequence[tuple[int, int]],
) -> jax.Array:
    return lax.reduce_window(
        x,
        init,
        op,
        (1, *win, 1),
        (1, *stride, 1),
        ((0, 0), *pads, (0, 0)),
    )


# Init values are NumPy constants, not jnp arrays: lax.reduce_window is differentiable (and
# lowers to XLA's dedicated max/sum windows) only when it can see a concrete monoid identity.
def _lowest(dtype: jnp.dtype) -> np.ndarray:
    if jnp.issubdtype(dtype, jnp.floating):
        return np.array(-np.inf, dtype)
    return np.array(jnp.iinfo(dtype).min, dtype)


def max_pool(
    x: jax.Array,
    window: int | Sequence[int] = 2,
    strides: int | Sequence[int] | None = None,
    padding: PoolPadding = "VALID",
    ceil_mode: bool = False,
) -> jax.Array:
    """Max pooling: the largest value of each window (padding never wins, it is ``-inf``)."""
    win, stride, pads = _pool_geometry(x, window, strides, padding)
    extra = _ceil_extra(x.shape[1:-1], win, stride, pads, ceil_mode)
    pads = [(lo, hi + e) for (lo, hi), e in zip(pads, extra, strict=True)]
    if (win == stride and all(p == (0, 0) for p in pads)
            and all(size % w == 0 for size, w in zip(x.shape[1:-1], win, strict=True))):
        return _tiled_max_pool(x, win)
    return _reduce(x, _lowest(x.dtype), lax.max, win, stride, pads)


def _tiles(x: jax.Array, win: tuple[int, ...]) -> jax.Array:
    """``(N, S1, ..., C)`` as ``(N, S1 / w1, w1, ..., C)``: each window's cells on their own axes."""
    shape = [x.shape[0]]
    for size, w in zip(x.shape[1:-1], win, strict=True):
        shape += [size // w, w]
    return x.reshape(*shape, x.shape[-1])


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _tiled_max_pool(x: jax.Array, win: tuple[int, ...]) -> jax.Array:
    """Max pooling over non-overlapping windows that tile the input, with a cheaper gradient.

    The forward pass is ``lax.reduce_window`` (what the model analysis reads). The gradient goes
    to the first maximum of each window in row-major order, as XLA's select-and-scatter (the
    gradient of ``reduce_window``) and torch do, but as elementwise work XLA fuses: XLA:CPU expands
    select-and-scatter into a scatter that took most of a batch-256 ``lenet5_modern`` train step
    in a ``jax.profiler`` trace (README "Performance").
    """
    n = len(win)
    return _reduce(x, _lowest(x.dtype), lax.max, win, win, [(0, 0)] * n)


def _tiled_max_pool_fwd(x, win):
    y = _tiled_max_pool(x, win)
    return y, (x, y)


def _tiled_max_pool_bwd(win, residuals, g):
    x, y = residuals
    n = len(win)
    tiles = _tiles(x, win)
    window_axes = tuple(range(2, 2 * n + 1, 2))
    y, g = jnp.expand_dims(y, window_axes), jnp.expand_dims(g, window_axes)
    # Walk the window's cells in row-major order; each takes the gradient if it is a maximum and
    # no earlier cell was.
    taken = jnp.zeros(y.shape, bool)
    grads = {}
    for cell in itertools.product(*(range(w) for w in win)):
        index = [slice(None)] * tiles.ndim
        for axis, i in zip(window_axes, cell, strict=True):
            index[axis] = slice(i, i + 1)
        hit = (tiles[tuple(index)] == y) & ~taken
        taken = taken | hit
        grads[cell] = jnp.where(hit, g, jnp.zeros_like(g))
    # Reassemble the cells along each window axis, innermost first.
    def assemble(prefix: tuple[int, ...]) -> jax.Array:
        depth = len(prefix)
        if depth == n:
            return grads[prefix]
        return jnp.concatenate([assemble((*prefix, i)) for i in range(win[depth])], axis=window_axes[depth])

    return (assemble(()).reshape(x.shape),)


_tiled_max_pool.defvjp(_tiled_max_pool_fwd, _tiled_max_pool_bwd)


def sum_pool(
    x: jax.Array,
    window: int | Sequence[int] = 2,
    strides: int | Sequence[int] | None = None,
    padding: PoolPadding = "VALID",
    ceil_mode: bool = False,
) -> jax.Array:
    """Sum pooling: the sum of each window, padding counting as zeros (LeNet-5's subsampling layers
    sum a 2x2 window before their trainable coefficient, LeCun et al. 1998 §II.B)."""
    win, stride, pads = _pool_geometry(x, window, strides, padding)
    extra = _ceil_extra(x.shape[1:-1], win, stride, pads, ceil_mode)
    pads = [(lo, hi + e) for (lo, hi), e in zip(pads, extra, strict=True)]
    return _reduce(x, np.array(0, x.dtype), lax.add, win, stride, pads)


def avg_pool(
    x: jax.Array,
    window: int | Sequence[int] = 2,
    strides: int | Sequence[int] | None = None,
    padding: PoolPadding = "VALID",
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> jax.Array:
    """Average pooling with torch's divisor.

    The window sum (zeros in the padding) is divided by the number of window positions inside the
    explicitly padded input when ``count_include_pad`` (padding zeros count, the extra ``ceil_mode``
    cells beyond the padding do not), or by the number inside the real input otherwise. ``'SAME'``
    padding is treated as explicit padding, so TensorFlow's average (which never counts padding)
    is ``count_include_pad=False``.
    """
    win, stride, pads = _pool_geometry(x, window, strides, padding)
    spatial = x.shape[1:-1]
    extra = _ceil_extra(spatial, win, stride, pads, ceil_mode)
    full_pads = [(lo, hi + e) for (lo, hi), e in zip(pads, extra, strict=True)]
    zero = np.array(0, x.dtype)
    sums = _reduce(x, zero, lax.add, win, stride, full_pads)

    # Count, per output, the window cells that are divided by: a ones map over the real input,
    # extended by ones over the explicit padding when it counts, then zeros over the ceil_mode cells.
    counted = jnp.ones((1, *spatial, 1), x.dtype)
    if count_include_pad:
        counted = jnp.pad(counted, [(0, 0), *pads, (0, 0)], constant_values=1)
        rest = [(0, e) for e in extra]
    else:
        rest = full_pads
    counts = _reduce(counted, zero, lax.add, win, stride, rest)
    return sums / counts


def global_avg_pool(x: jax.Array, keepdims: bool = False) -> jax.Array:
    """Mean over all spatial dims: ``(N, spatial..., C) -> (N, C)`` (Lin et al. 2014, Network in
    Network §3.2, replacing the fully connected head)."""
    return jnp.mean(x, axis=tuple(range(1, x.ndim - 1)), keepdims=keepdims)


def global_max_pool(x: jax.Array, keepdims: bool = False) -> jax.Array:
    """Maximum over all spatial dims: ``(N, spatial..., C) -> (N, C)``."""
    return jnp.max(x, axis=tuple(range(1, x.ndim - 1)), keepdims=keepdims)


__all__ = ["avg_pool", "global_avg_pool", "global_max_pool", "max_pool", "sum_pool"]
