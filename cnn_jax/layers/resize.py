"""Resizing and cropping feature maps: bilinear interpolation with torch's sampling, centre crops.

:func:`resize_bilinear` is ``torch.nn.functional.interpolate(x, size, mode='bilinear',
align_corners=False)`` (torchvision's segmentation models upsample their logits with it): output
pixel ``o`` of an axis resized from ``n`` to ``m`` samples the input at
``s = max((o + 1/2) n / m - 1/2, 0)``, between rows ``floor(s)`` and ``min(floor(s) + 1, n - 1)``,
weighted by the distance. Pixel centres line up (half-pixel convention); nothing is averaged when
shrinking (``jax.image.resize(..., 'bilinear')`` antialiases a downsampling unless
``antialias=False``; with it, it samples the same points). As in :mod:`adaptive_pool`, each axis
is one product with a constant ``(m, n)`` matrix: exact, differentiable, and read by
:mod:`cnn_jax.analysis` as a resampling of that axis.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(out_size, in_size) matrix of torch's ``align_corners=False`` linear interpolation."""
    if in_size < 1 or out_size < 1:
        raise ValueError(f"resizing needs positive sizes, got {in_size} -> {out_size}")
    source = np.maximum((np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5, 0.0)
    lower = np.minimum(np.floor(source).astype(int), in_size - 1)
    upper = np.minimum(lower + 1, in_size - 1)
    weight = source - lower
    matrix = np.zeros((out_size, in_size), np.float64)
    rows = np.arange(out_size)
    np.add.at(matrix, (rows, lower), 1.0 - weight)
    np.add.at(matrix, (rows, upper), weight)
    return matrix.astype(np.float32)


def resize_bilinear(x: jax.Array, size: int | Sequence[int]) -> jax.Array:
    """Bilinear resize of the spatial dims of channels-last ``x`` (N, *spatial, C) to ``size`` (an
    int for every spatial dim, or one per dim), equal to torch's ``F.interpolate(...,
    mode='bilinear', align_corners=False)`` on the NC* transpose."""
    num_spatial = x.ndim - 2
    sizes = (size,) * num_spatial if isinstance(size, int) else tuple(size)
    if len(sizes) != num_spatial:
        raise ValueError(f"size {sizes} has {len(sizes)} dims but x {x.shape} has {num_spatial} "
                         "spatial dims")
    for axis, out in enumerate(sizes, start=1):
        if x.shape[axis] != out:
            matrix = jnp.asarray(bilinear_matrix(x.shape[axis], out), x.dtype)
            x = jnp.moveaxis(jnp.tensordot(matrix, x, axes=((1,), (axis,))), 0, axis)
    return x


def center_crop(x: jax.Array, size: Sequence[int]) -> jax.Array:
    """The central ``size`` window of the spatial dims of channels-last ``x``; an odd surplus
    leaves its extra row at the end (U-Net's skip crops: Ronneberger et al. 2015 Fig. 1)."""
    starts = []
    for axis, out in enumerate(size, start=1):
        surplus = x.shape[axis] - out
        if surplus < 0:
            raise ValueError(f"cannot crop {x.shape[1:-1]} to the larger {tuple(size)}")
        starts.append(surplus // 2)
    index = tuple(slice(s, s + out) for s, out in zip(starts, size, strict=True))
    return x[(slice(None), *index, slice(None))]
