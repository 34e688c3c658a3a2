"""Adaptive average pooling: pool any spatial size to a fixed output size, with torch's bins.

torchvision puts ``AdaptiveAvgPool2d`` in front of fixed-size heads (GoogLeNet's auxiliary
classifiers pool to 4x4; AlexNet and VGG pool to 7x7), so that those heads accept any input size.
Output cell ``i`` of ``out`` averages input rows ``floor(i * n / out)`` to ``ceil((i + 1) * n / out)``
(exclusive): the windows may overlap (14 -> 4: starts 0, 3, 7, 10, each 4 wide) and, when the
input is smaller than the output, repeat rows (2 -> 4: rows 0, 0, 1, 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np


def adaptive_pool_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(out_size, in_size) averaging matrix of torch's adaptive pooling along one axis."""
    if in_size < 1 or out_size < 1:
        raise ValueError(f"adaptive pooling needs positive sizes, got {in_size} -> {out_size}")
    matrix = np.zeros((out_size, in_size), np.float32)
    for i in range(out_size):
        start = (i * in_size) // out_size
        end = math.ceil((i + 1) * in_size / out_size)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


def adaptive_avg_pool(x: jnp.ndarray, output_size: int | Sequence[int]) -> jnp.ndarray:
    """Average-pools the spatial dims of channels-last ``x`` (N, *spatial, C) to ``output_size``.

    ``output_size`` is an int (same for every spatial dim) or one size per spatial dim. Equal to
    torch's ``adaptive_avg_pool{1,2,3}d`` on the NC* transpose.
    """
    num_spatial = x.ndim - 2
    if isinstance(output_size, int):
        output_size = (output_size,) * num_spatial
    if len(output_size) != num_spatial:
        raise ValueError(
            f"output_size {tuple(output_size)} has {len(output_size)} dims but x {x.shape} has "
            f"{num_spatial} spatial dims"
        )
    # One small averaging matmul per spatial axis: exact, cheap, and differentiable.
    for axis, out in enumerate(output_size, start=1):
        matrix = jnp.asarray(adaptive_pool_matrix(x.shape[axis], out), x.dtype)
        x = jnp.moveaxis(jnp.tensordot(matrix, x, axes=((1,), (axis,))), 0, axis)
    return x
