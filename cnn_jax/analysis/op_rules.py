"""What a jaxpr equation adds to a row of the layer table: the geometry of a convolution, the
multiply-adds of a convolution or matrix product, and the op text (``3x3/2 pad 1``)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from cnn_jax.analysis.field_rules import aval_shape


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
    )


def macs(eqn, ins) -> int:
    """Multiply-adds of a convolution or matrix product between activations and weights/activations."""
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
        return int(out * math.prod(rhs[d] for d in dn.rhs_spec[2:]) * rhs[dn.rhs_spec[1]])
    (lc, _), _ = eqn.params["dimension_numbers"]
    lhs = aval_shape(eqn.invars[0])
    return int(out * math.prod(lhs[d] for d in lc))
