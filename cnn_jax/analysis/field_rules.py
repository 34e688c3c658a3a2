"""Receptive-field rules: how each jaxpr primitive moves the receptive fields of its activation
inputs to its output (the recurrences of Araujo, Norris & Sim 2019; see
:mod:`cnn_jax.analysis.receptive_field` for what they compute and the conventions).

A field is kept per spatial axis of the input as a :class:`Slot`: its size ``r``, jump ``j`` and
centre ``start``, attached to the array axis that still holds that input axis (``None`` once the
axis is mixed away by a global pool or a dense layer).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

POOL_PRIMS = {"reduce_window_max", "reduce_window_min", "reduce_window_sum", "reduce_window"}
REDUCE_PRIMS = {
    "reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "reduce_and", "reduce_or", "argmax",
    "argmin",
}


def aval_shape(v) -> tuple[int, ...]:
    """The shape of a jaxpr variable."""
    return tuple(int(d) for d in v.aval.shape)


@dataclasses.dataclass(frozen=True)
class Slot:
    """Receptive field of one input spatial axis, attached to an array axis (or None when mixed)."""

    axis: int | None
    r: float
    j: float
    start: float

    def window(self, axis: int | None, k: int, s: int, p_lo: float, d: int = 1, base: int = 1) -> Slot:
        """Araujo et al. 2019's recurrences for a window of k taps, stride s, left padding p_lo,
        dilation d, on an input dilated by `base` (a transposed convolution's fractional stride).
        On a dilated input only every base-th position is a real one: a window spanning
        (k - 1) d positions reaches real inputs at most floor((k - 1) d / base) apart."""
        j_in = self.j / base
        return Slot(
            axis=axis,
            r=self.r + ((k - 1) * d // base) * self.j,
            j=j_in * s,
            start=self.start + ((k - 1) * d / 2 - p_lo) * j_in,
        )

    def mix(self, n: int) -> Slot:
        """All n positions of the axis combined (a window over the whole map); the axis is gone."""
        return Slot(None, self.r + (n - 1) * self.j, self.j, self.start + (n - 1) / 2 * self.j)

    def moved(self, axis: int | None) -> Slot:
        return dataclasses.replace(self, axis=axis)


Slots = tuple[Slot, ...]


def _combine(groups: list[Slots]) -> Slots:
    """Where paths meet (addition, concatenation) each axis keeps the largest field over the paths
    (Araujo et al. 2019, "Handling multiple paths"), on the array axis the paths still share."""
    if len(groups) == 1:
        return groups[0]
    out = []
    for candidates in zip(*groups, strict=True):
        best = max(candidates, key=lambda s: s.r)
        attached = next((s for s in candidates if s.axis is not None), None)
        out.append(Slot(attached.axis if attached else None, best.r,
                         attached.j if attached else best.j, best.start))
    return tuple(out)


def _remap(slots: Slots, in_shape: Sequence[int], mapping: dict[int, int | None]) -> Slots:
    """Moves attached axes by `mapping`; an axis mapped to None is mixed (size > 1) or dropped."""
    out = []
    for s in slots:
        if s.axis is None:
            out.append(s)
        elif mapping.get(s.axis) is not None:
            out.append(s.moved(mapping[s.axis]))
        else:
            out.append(s.mix(int(in_shape[s.axis])))
    return tuple(out)


def _reshape_map(in_shape: Sequence[int], out_shape: Sequence[int]) -> dict[int, int | None]:
    """Input axis -> output axis that holds the same positions, or None if merged/split."""
    mapping: dict[int, int | None] = {}
    used: set[int] = set()
    out_prefix = [math.prod(out_shape[:b]) for b in range(len(out_shape))]
    for a, size in enumerate(in_shape):
        pre = math.prod(in_shape[:a])
        match = None
        for b, osize in enumerate(out_shape):
            if b not in used and out_prefix[b] == pre and osize == size:
                match = b
                break
        mapping[a] = match
        if match is not None:
            used.add(match)
    return mapping


def _matrix_window(slot: Slot, matrix: np.ndarray, axis: int | None) -> Slot:
    """A constant (out, in) matrix along an axis as a pooling or a resampling: output 0's window
    and the widest."""
    nz = matrix != 0
    rows = [np.nonzero(r)[0] for r in nz]
    spans = [(int(r.min()), int(r.max())) for r in rows if r.size]
    if not spans:
        return slot.moved(axis)
    lo0, hi0 = spans[0]
    width = max(hi - lo + 1 for lo, hi in spans)
    step = spans[1][0] - lo0 if len(spans) > 1 else 1
    if matrix.shape[0] > matrix.shape[1]:
        # An interpolation onto a finer grid (bilinear resizing): outputs are n_in / n_out apart.
        step = matrix.shape[1] / matrix.shape[0]
    return Slot(axis, slot.r + (width - 1) * slot.j, slot.j * step, slot.start + (lo0 + hi0) / 2 * slot.j)


def propagate(eqn, ins, num_spatial: int) -> Slots:
    """Receptive fields of an equation's output from those of its activation inputs."""
    name = eqn.primitive.name
    params = eqn.params
    out_shape = aval_shape(eqn.outvars[0]) if eqn.outvars else ()
    data = [(i, s) for i, (s, _, _) in enumerate(ins) if s is not None]
    i0, slots = data[0]
    in_shape = aval_shape(eqn.invars[i0])

    if name == "conv_general_dilated" and i0 == 0:
        dn = params["dimension_numbers"]
        rhs = aval_shape(eqn.invars[1])
        lhs_dilation = params.get("lhs_dilation") or (1,) * (len(in_shape) - 2)
        rhs_dilation = params.get("rhs_dilation") or (1,) * (len(in_shape) - 2)
        out = []
        for s in slots:
            if s.axis is None:
                out.append(s)
            elif s.axis in dn.lhs_spec[2:]:
                i = dn.lhs_spec.index(s.axis) - 2
                out.append(s.window(dn.out_spec[2 + i], rhs[dn.rhs_spec[2 + i]], params["window_strides"][i],
                                    params["padding"][i][0], rhs_dilation[i], lhs_dilation[i]))
            else:
                out.append(s.mix(in_shape[s.axis]))
        return tuple(out)
    if name in POOL_PRIMS:
        win, strides, pads = params["window_dimensions"], params["window_strides"], params["padding"]
        base = params.get("base_dilation") or (1,) * len(win)
        wdil = params.get("window_dilation") or (1,) * len(win)
        return tuple(
            s if s.axis is None else s.window(s.axis, win[s.axis], strides[s.axis], pads[s.axis][0],
                                              wdil[s.axis], base[s.axis])
            for s in slots
        )
    if name == "pad" and i0 == 0:
        cfg = params["padding_config"]
        return tuple(
            s if s.axis is None else s.window(s.axis, 1, 1, int(cfg[s.axis][0]), 1, int(cfg[s.axis][2]) + 1)
            for s in slots
        )
    if name == "slice":
        starts = params["start_indices"]
        strides = params.get("strides") or (1,) * len(in_shape)
        return tuple(
            s if s.axis is None else s.window(s.axis, 1, int(strides[s.axis]), -int(starts[s.axis]))
            for s in slots
        )
    if name == "transpose":
        perm = list(params["permutation"])
        return _remap(slots, in_shape, {a: perm.index(a) for a in range(len(in_shape))})
    if name == "reshape":
        return _remap(slots, in_shape, _reshape_map(in_shape, out_shape))
    if name == "squeeze":
        dims = {d % len(in_shape) for d in params["dimensions"]}
        return _remap(slots, in_shape, {
            a: None if a in dims else a - sum(d < a for d in dims) for a in range(len(in_shape))
        })
    if name == "broadcast_in_dim":
        dims = params["broadcast_dimensions"]
        return _remap(slots, in_shape, {a: int(dims[a]) for a in range(len(in_shape))})
    if name in REDUCE_PRIMS:
        axes = {int(a) for a in params["axes"]}
        return _remap(slots, in_shape, {
            a: None if a in axes else a - sum(d < a for d in axes) for a in range(len(in_shape))
        })
    if name == "dot_general":
        return _dot_general(eqn, ins)
    # Element-wise and everything else: an axis keeps its field where its size is unchanged.
    groups = []
    for i, s in data:
        shape = aval_shape(eqn.invars[i])
        if shape == out_shape:
            groups.append(s)
        else:
            groups.append(_remap(s, shape, {
                a: a if a < len(out_shape) and out_shape[a] == shape[a] else None for a in range(len(shape))
            }))
    return _combine(groups)


def _dot_general(eqn, ins) -> Slots:
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    shapes = [aval_shape(v) for v in eqn.invars[:2]]
    contract, batch = (list(lc), list(rc)), (list(lb), list(rb))
    free = [[d for d in range(len(shapes[k])) if d not in contract[k] and d not in batch[k]] for k in (0, 1)]
    groups = []
    for k in (0, 1):
        slots, _, _ = ins[k]
        if slots is None:
            continue
        other_slots, _, other_value = ins[1 - k]
        out = []
        for s in slots:
            if s.axis is None:
                out.append(s)
            elif s.axis in batch[k]:
                out.append(s.moved(batch[k].index(s.axis)))
            elif s.axis in free[k]:
                offset = len(batch[0]) + (0 if k == 0 else len(free[0]))
                out.append(s.moved(offset + free[k].index(s.axis)))
            else:
                ci = contract[k].index(s.axis)
                od = contract[1 - k][ci]
                if (other_slots is None and other_value is not None and other_value.ndim == 2
                        and len(contract[1 - k]) == 1):
                    matrix = other_value if od == 1 else other_value.T
                    offset = len(batch[0]) + (0 if k == 1 else len(free[0]))
                    out.append(_matrix_window(s, matrix, offset + free[1 - k].index(1 - od)))
                else:
                    out.append(s.mix(shapes[k][s.axis]))
        groups.append(tuple(out))
    return _combine(groups)
