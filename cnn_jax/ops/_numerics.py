"""Correctly rounded division by a scalar or a broadcast array under XLA.

XLA's algebraic simplifier rewrites ``a / broadcast(b)`` as ``a * broadcast(1 / b)``, which is off
by one unit in the last place for about a third of float32 quotients (``7 / 3`` comes out as
``2.3333335``, not ``2.3333333``). Where a quotient feeds ``floor``/``ceil`` or a comparison (RoI
bin edges, RoIAlign's adaptive sample count, FPN levels) that changes the result, not just its
last bit. :func:`divide` hides the divisor's broadcast behind an optimization barrier, so XLA
divides element by element, as torchvision's kernels do.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax


def divide(a: jax.Array, b: jax.Array | float) -> jax.Array:
    """``a / b`` correctly rounded, with ``b`` a scalar or an array broadcastable to ``a``."""
    a = jnp.asarray(a)
    shape = jnp.broadcast_shapes(a.shape, jnp.shape(b))
    b = jnp.broadcast_to(jnp.asarray(b, jnp.result_type(a, b)), shape)
    return a / lax.optimization_barrier(b)
