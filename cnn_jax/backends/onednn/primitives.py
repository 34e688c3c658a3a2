"""The three passes of a convolution as JAX primitives, lowered to oneDNN or to XLA per program.

With ``<a, b>`` the sum of elementwise products and ``y = forward(x, w)`` a 1-D, 2-D or 3-D
convolution of channels-last float32 ``x`` with a ``(spatial..., C_in / groups, C_out)`` kernel ``w``:

* ``forward(x, w) = y``;
* ``backward_data(dy, w) = d<dy, y>/dx``;
* ``backward_weights(x, dy) = d<dy, y>/dw``.

Each is bilinear and registered with ``ad.defbilinear`` as ``lax.conv_general_dilated`` is: its JVP
is two calls of itself, and its transpose with respect to either operand is one of the other two
(forward's are backward_data and backward_weights; backward_data's are forward and
backward_weights; backward_weights' are backward_data and forward). So ``jax.grad`` to any order,
``jax.jvp``, ``jax.linearize``, ``jax.hessian`` and ``jax.vjp`` all stay on these primitives. All
three share one set of parameters: the shapes of ``x``, ``w`` and ``y``, strides, ``(lo, hi)``
padding, dilation, groups, precision (for XLA's route), ``impl`` and ``covering_as_dot``.

A transposed convolution is the backward-data pass of the convolution it is the adjoint of:
:func:`conv_transpose` binds that primitive, so it runs on oneDNN like the other passes.

Under ``jax.vmap`` a batch axis on the activation operand alone (forward's ``x``, backward_data's
``dy``) folds into the batch dimension N: one call on ``B * N`` examples. Otherwise (a batched
kernel, or backward_weights, whose output sums over N) the unbatched primitive runs once per
batch entry, one after another (``lax.map``).

Lowering (:mod:`cnn_jax.backends.onednn.routing` decides, per compiled program): the oneDNN FFI
call, or the same pass in XLA's operations (a dot when a kernel covers its whole input, shifted
multiply-adds for a depthwise convolution on the CPU, XLA's convolution otherwise).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.extend import core as jcore
from jax.interpreters import ad, batching, mlir
from jax.interpreters import xla as jax_xla

from cnn_jax.backends import xla
from cnn_jax.backends.onednn import routing

forward_p = jcore.Primitive("onednn_conv_forward")
backward_data_p = jcore.Primitive("onednn_conv_backward_data")
backward_weights_p = jcore.Primitive("onednn_conv_backward_weights")
PRIMITIVES = {"forward": forward_p, "backward_data": backward_data_p,
              "backward_weights": backward_weights_p}


def conv(
    x: jax.Array,
    kernel: jax.Array,
    *,
    strides: Sequence[int],
    padding: Sequence[tuple[int, int]],
    dilation: Sequence[int] | None = None,
    groups: int = 1,
    precision: Any = None,
    impl: str = "auto",
    covering_as_dot: bool = True,
) -> jax.Array:
    """1-D, 2-D or 3-D convolution of channels-last float32 ``x`` with a ``(spatial..., C_in /
    groups, C_out)`` kernel: the forward primitive (``impl`` 'auto' or 'onednn', see
    :mod:`cnn_jax.backends.onednn`), or XLA's convolution directly for ``impl='xla'``.
    ``padding``: ``(lo, hi)`` pairs of non-negative ints. ``covering_as_dot=False`` keeps a kernel
    that covers its input a oneDNN convolution (``experiments/bench_conv_layer.py`` compares)."""
    routing.check_impl(impl)
    p = routing.conv_params(x.shape, kernel.shape, strides, padding, dilation, groups, precision,
                            impl, covering_as_dot)
    if impl == "xla":
        return xla.conv(x, kernel, p["strides"], p["padding"], p["dilation"], groups, precision)
    return forward_p.bind(x, kernel, **p)


def conv_transpose(
    y: jax.Array,
    kernel: jax.Array,
    *,
    strides: Sequence[int],
    crops: Sequence[tuple[int, int]],
    output_padding: Sequence[int] | None = None,
    dilation: Sequence[int] | None = None,
    groups: int = 1,
    precision: Any = None,
    impl: str = "auto",
) -> jax.Array:
    """Transposed convolution of channels-last float32 ``y`` with a ``(spatial..., C_in, C_out /
    groups)`` kernel (torch's ``ConvTranspose`` layout): ``crops`` ``(lo, hi)`` are removed from
    the full output (torch's ``padding``), ``output_padding`` extends its end. The backward-data
    primitive (``impl`` 'auto' or 'onednn'), or XLA's transposed convolution for ``impl='xla'``
    (:func:`cnn_jax.backends.xla.conv_transpose`, same output shape and values).

    It is ``backward_data`` of the forward convolution whose input is this function's output
    ``x`` (``C_out`` channels) and whose output has ``y``'s shape: the same strides and
    dilation, the crops as its padding, and this kernel with its last two axes swapped,
    ``(spatial..., C_out / groups, C_in)`` (inputs per group, outputs: the roles it plays in the
    forward convolution), no flip. Two cases need a step around it: an ``output_padding`` of at
    least the stride (allowed when the dilation is larger) makes that forward convolution
    produce more positions than ``y`` has, and those get zero cotangents (they are nobody's
    input here); a negative crop (``'SAME'`` with ``F < S``) adds rows that nothing reaches,
    so the pass runs with crop 0 and the result is padded with zeros.
    """
    routing.check_impl(impl)
    n = y.ndim - 2
    strides = tuple(int(s) for s in strides)
    dilation = tuple(int(d) for d in dilation) if dilation is not None else (1,) * n
    output_padding = (tuple(int(p) for p in output_padding) if output_padding is not None
                      else (0,) * n)
    crops = tuple((int(lo), int(hi)) for lo, hi in crops)
    if impl == "xla":
        return xla.conv_transpose(y, kernel, strides, crops, output_padding, dilation, groups,
                                  precision)
    out_shape = xla.conv_transpose_shape(y.shape, kernel.shape, strides, crops, output_padding,
                                         dilation, groups)
    grow = tuple((max(-lo, 0), max(-hi, 0)) for lo, hi in crops)
    padding = tuple((max(lo, 0), max(hi, 0)) for lo, hi in crops)
    x_shape = (out_shape[0], *(size - a - b for size, (a, b) in zip(out_shape[1:-1], grow,
                                                                    strict=True)), out_shape[-1])
    w = jnp.swapaxes(kernel, -1, -2)
    p = routing.conv_params(x_shape, w.shape, strides, padding, dilation, groups, precision, impl)
    extra = [full - size for full, size in zip(p["y_shape"][1:-1], y.shape[1:-1], strict=True)]
    if any(extra):
        y = jnp.pad(y, [(0, 0), *((0, e) for e in extra), (0, 0)])
    x = backward_data_p.bind(y, w, **p)
    if any(a or b for a, b in grow):
        x = jnp.pad(x, [(0, 0), *grow, (0, 0)])
    return x


# ------------------------------------------------------------------------ evaluation rules
def _abstract_eval(pass_: str, a, b, **params):
    for operand, key in zip((a, b), routing.SHAPES[pass_][:2], strict=True):
        if operand.dtype != jnp.float32:
            raise TypeError(f"oneDNN conv {pass_}: operands must be float32, got {operand.dtype}")
        if tuple(operand.shape) != params[key]:
            raise ValueError(f"oneDNN conv {pass_}: operand of shape {operand.shape}, "
                             f"{key}={params[key]}")
    return jax.core.ShapedArray(params[routing.SHAPES[pass_][2]], jnp.float32)


for _pass, _prim in PRIMITIVES.items():
    _prim.def_impl(functools.partial(jax_xla.apply_primitive, _prim))
    _prim.def_abstract_eval(functools.partial(_abstract_eval, _pass))


# ------------------------------------------------------------------ differentiation rules
# Transpose rules ``rule(cotangent, a, b, **params)``: the operand being transposed is undefined,
# the other one is a value.
ad.defbilinear(forward_p,
               lambda ct, x, w, **p: backward_data_p.bind(ct, w, **p),
               lambda ct, x, w, **p: backward_weights_p.bind(x, ct, **p))
ad.defbilinear(backward_data_p,
               lambda ct, dy, w, **p: forward_p.bind(ct, w, **p),
               lambda ct, dy, w, **p: backward_weights_p.bind(ct, dy, **p))
ad.defbilinear(backward_weights_p,
               lambda ct, x, dy, **p: backward_data_p.bind(dy, ct, **p),
               lambda ct, x, dy, **p: forward_p.bind(x, ct, **p))


# ------------------------------------------------------------------------- batching rules
def _batch(pass_: str, args, dims, **params):
    prim = PRIMITIVES[pass_]
    (a, b), (da, db) = args, dims
    if pass_ != "backward_weights" and db is None:
        # Fold the vmapped axis of the activation operand into its batch dimension N.
        a = jnp.moveaxis(a, da, 0)
        size, n = a.shape[:2]
        folded = {key: (size * n, *params[key][1:]) for key in ("x_shape", "y_shape")}
        out = prim.bind(a.reshape(size * n, *a.shape[2:]), b, **{**params, **folded})
        return out.reshape(size, n, *out.shape[1:]), 0

    def one(batched):
        entries = iter(batched)
        operands = [v if d is None else next(entries) for v, d in zip(args, dims, strict=True)]
        return prim.bind(*operands, **params)

    batched = [jnp.moveaxis(v, d, 0) for v, d in zip(args, dims, strict=True) if d is not None]
    return lax.map(one, batched), 0


for _pass, _prim in PRIMITIVES.items():
    batching.primitive_batchers[_prim] = functools.partial(_batch, _pass)


# ------------------------------------------------------------------------------- lowering
def _lowering(pass_: str, platform: str | None):
    def rule(ctx, a, b, **params):
        route = routing.choose(ctx, pass_, params) if platform == "cpu" else "xla"
        fn = functools.partial(routing.ROUTES[route], pass_, params)
        return mlir.lower_fun(fn, multiple_results=False)(ctx, a, b)

    return rule


for _pass, _prim in PRIMITIVES.items():
    mlir.register_lowering(_prim, _lowering(_pass, None))
    mlir.register_lowering(_prim, _lowering(_pass, "cpu"), platform="cpu")
