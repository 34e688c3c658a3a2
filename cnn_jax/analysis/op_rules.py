"""What a jaxpr equation adds to a row of the layer table: the geometry of a convolution, the
multiply-adds of a convolution or matrix product, and the op text (``3x3/2 pad 1``); and a oneDNN
convolution read as the XLA convolution it computes."""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.extend.core as jcore
import numpy as np

from cnn_jax.analysis.field_rules import aval_shape
from cnn_jax.backends import onednn


def fmt_window(k: Sequence[int]) -> str:
    return "x".join(str(int(v)) for v in k)


def fmt_uniform(values: Sequence[int]) -> str:
    values = [int(v) for v in values]
    return str(values[0]) if len(set(values)) == 1 else "x".join(map(str, values))


def fmt_pad(lo: Sequence[int], hi: Sequence[int]) -> str:
    lo, hi = [int(v) for v in lo], [int(v) for v in hi]
    if not any(lo) and not any(hi):
        return ""
    if lo == hi and len(set(lo)) == 1:
        return f" pad {lo[0]}"
    return " pad " + ",".join(f"({a},{b})" for a, b in zip(lo, hi, strict=True))


def fmt_pad_config(cfg, spatial_axes: set[int]) -> str:
    """`pad 2` (spatial, both sides), `pad (0,1),(0,1)`, `+16 channels` (zeros appended to an axis)."""
    ax = sorted(spatial_axes)
    parts = []
    text = fmt_pad([cfg[a][0] for a in ax], [cfg[a][1] for a in ax]).strip()
    if text:
        parts.append(text)
    for a, (lo, hi, _) in enumerate(cfg):
        if a not in spatial_axes and a > 0 and (lo or hi):
            parts.append(f"+{int(lo) + int(hi)} " + ("channels" if a == len(cfg) - 1 else f"on axis {a}"))
    return ", ".join(parts)


def conv_geometry(eqn) -> tuple:
    """(kernel, strides, pad_lo, pad_hi, dilation, groups, c_in, lhs_dilation) of a
    ``conv_general_dilated``; ``lhs_dilation`` > 1 makes it a transposed convolution."""
    dn = eqn.params["dimension_numbers"]
    lhs, rhs = aval_shape(eqn.invars[0]), aval_shape(eqn.invars[1])
    kernel = tuple(rhs[d] for d in dn.rhs_spec[2:])
    pads = eqn.params["padding"]
    return (
        kernel,
        tuple(eqn.params["window_strides"]),
        tuple(int(p[0]) for p in pads),
        tuple(int(p[1]) for p in pads),
        tuple(eqn.params.get("rhs_dilation") or (1,) * len(kernel)),
        int(eqn.params.get("feature_group_count", 1)),
        int(lhs[dn.lhs_spec[1]]),
        tuple(eqn.params.get("lhs_dilation") or (1,) * len(kernel)),
    )


def fmt_conv(geometry: tuple) -> str:
    """``3x3/2 pad 1 dil 2``; a transposed convolution (input dilated by its stride S) as
    ``4x4/2 transposed crop 1``, the crop being what torch's ``ConvTranspose`` calls padding."""
    kernel, strides, lo, hi, dilation, _, _, lhs_dilation = geometry
    if any(s > 1 for s in lhs_dilation):
        # XLA pads the zero-interleaved input by d (F - 1) - crop on each side.
        effective = [d * (k - 1) for k, d in zip(kernel, dilation, strict=True)]
        crop_lo = [e - p for e, p in zip(effective, lo, strict=True)]
        crop_hi = [e - p for e, p in zip(effective, hi, strict=True)]
        op = (f"{fmt_window(kernel)}/{fmt_uniform(lhs_dilation)} transposed"
              + fmt_pad(crop_lo, crop_hi).replace("pad", "crop"))
    else:
        op = f"{fmt_window(kernel)}/{fmt_uniform(strides)}" + fmt_pad(lo, hi)
    if any(d > 1 for d in dilation):
        op += f" dil {fmt_uniform(dilation)}"
    return op


def averages(matrix: np.ndarray) -> bool:
    """Whether every row of a constant matrix weighs its non-zero entries equally (an adaptive
    average pool's matrix does; a bilinear interpolation's does not)."""
    rows = np.asarray(matrix).reshape(-1, np.asarray(matrix).shape[-1])
    return all(np.ptp(row[row != 0]) == 0 for row in rows if np.any(row))


def macs(eqn, ins) -> int:
    """Multiply-adds of a convolution or matrix product between activations and weights/activations.

    A transposed convolution (``lhs_dilation`` > 1) counts the products of its real inputs,
    ``input elements x kernel taps x outputs per group``, not those with the zeros interleaved
    between them: the count of the convolution it is the adjoint of."""
    name = eqn.primitive.name
    if name not in ("conv_general_dilated", "dot_general"):
        return 0
    kinds = ["data" if s is not None else ("param" if p else "const") for s, p, _ in ins[:2]]
    if "data" not in kinds or "const" in kinds:
        return 0
    out = math.prod(aval_shape(eqn.outvars[0]))
    if name == "conv_general_dilated":
        dn = eqn.params["dimension_numbers"]
        rhs = aval_shape(eqn.invars[1])
        taps = math.prod(rhs[d] for d in dn.rhs_spec[2:])
        if any(s > 1 for s in eqn.params.get("lhs_dilation") or ()):
            groups = int(eqn.params.get("feature_group_count", 1))
            lhs = math.prod(aval_shape(eqn.invars[0]))
            return int(lhs * taps * rhs[dn.rhs_spec[0]] // groups)
        return int(out * taps * rhs[dn.rhs_spec[1]])
    (lc, _), _ = eqn.params["dimension_numbers"]
    lhs = aval_shape(eqn.invars[0])
    return int(out * math.prod(lhs[d] for d in lc))


def as_xla_convolution(eqn) -> jcore.ClosedJaxpr | None:
    """A oneDNN convolution (what layers with ``conv_impl`` 'auto' or 'onednn' bind, see
    :mod:`cnn_jax.backends.onednn`) or transposed convolution (its backward-data pass) as the
    jaxpr of the XLA convolution it computes, whose geometry the rules read; None for any other
    equation."""
    passes = {onednn.forward_p: "forward", onednn.backward_data_p: "backward_data"}
    if eqn.primitive not in passes:
        return None
    operands = [jax.ShapeDtypeStruct(v.aval.shape, v.aval.dtype) for v in eqn.invars]
    return jax.make_jaxpr(onednn.xla_equivalent(eqn.params, passes[eqn.primitive]))(*operands)
