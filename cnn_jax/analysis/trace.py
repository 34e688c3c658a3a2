"""Layer-by-layer trace of a model's forward pass: the engine under `summary` and `receptive_field`.

The eval-mode forward pass (``model.apply(variables, x, train=False)``, batch of one image) is traced
to a jaxpr with :func:`jax.make_jaxpr` on abstract shapes, so nothing is allocated: VGG16's 138M
parameters exist only as shapes. While tracing, flax's method interceptor wraps every module call
in a named scope; each jaxpr equation is then attributed to the innermost module call that emitted
it. The trace is a list of *layers*, in forward order:

* a **leaf module call** (a module that calls no other module: ``Conv``, ``nn.Dense``,
  ``BatchNorm``, ``LocalResponseNorm``, ``Activation``, ...) is one layer, all its equations together,
  named by its Flax module path (``features_0``, ``layer1_0/conv1``);
* a **functional op outside leaf modules** that makes a tensor of a new shape is one layer, named
  ``<enclosing module path>/<op>_<n>``: pooling (``reduce_window``: ``max_pool``, ``avg_pool``, ...; a
  reduction over the spatial axes: ``global_avg_pool``; a product with a constant matrix along a
  spatial axis: ``adaptive_avg_pool`` when each output averages its window, ``resize`` when it
  weighs inputs unequally, as bilinear interpolation does), ``concat``, ``pad`` and spatially
  strided ``slice``;
* element-wise functions outside leaf modules (``nn.relu``, residual additions, the division of an
  average pool, ...) and views (reshape, transpose) make no layer: they are counted as computed in
  place, as the lecture tables (CS231n, "VGGNet in detail") count ReLU inside its CONV row.

Per layer the trace records the output shape, the parameters it reads (each parameter charged to
the first layer that reads it, so shared weights count once), the multiply-adds of its
convolutions and matrix products, and the receptive field of its output along every spatial axis
of the input (see :mod:`cnn_jax.analysis.receptive_field` for the recurrences).

Multiply-adds (MACs) are counted for ``conv_general_dilated`` (output elements x kernel taps x input
channels per group; for a transposed convolution, input elements x kernel taps x output channels per
group, the products with its real inputs) and ``dot_general`` (output elements x contracted size)
whenever one operand is an activation and the other is an activation or derived from parameters.
Products with a constant matrix (our adaptive average pooling), pooling, normalisation, activations
and additions count zero, the convention of the papers' tables (He et al. 2016 Table 1, Howard et
al. 2017 Table 2 count convolutions and fully connected layers only). A oneDNN convolution (what
layers with ``conv_impl`` 'auto' or 'onednn' bind), or a transposed one (its backward-data pass), is
read as the XLA convolution it computes, so the trace is the same whatever the model's
``conv_impl``.

This module walks the jaxpr and builds the rows; :mod:`cnn_jax.analysis.field_rules` moves
receptive fields through each primitive and :mod:`cnn_jax.analysis.op_rules` reads a convolution's
geometry, multiply-adds and op text.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.extend.core as jcore
import jax.numpy as jnp
import numpy as np

from cnn_jax.analysis.field_rules import (
    POOL_PRIMS,
    REDUCE_PRIMS,
    Slot,
    Slots,
    aval_shape,
    propagate,
)
from cnn_jax.analysis.op_rules import (
    as_xla_convolution,
    averages,
    conv_geometry,
    fmt_conv,
    fmt_pad,
    fmt_pad_config,
    fmt_uniform,
    fmt_window,
    macs,
)
from cnn_jax.models import create_model, get_model_spec

_MARKER = "cnn_jax_call"
_MARKER_RE = re.compile(_MARKER + r"(\d+)")

# Primitives whose single sub-jaxpr is inlined (its equations are walked as if written in place).
_INLINE = {
    "jit", "pjit", "closed_call", "core_call", "custom_jvp_call", "custom_vjp_call",
    "custom_vjp_call_jaxpr", "remat", "remat2", "checkpoint", "custom_lin",
}
# Cheap shape-only primitives folded on known constants (the adaptive-pool matrices pass through them).
_FOLD_PRIMS = {"convert_element_type", "reshape", "transpose", "broadcast_in_dim", "squeeze"}
_MAX_FOLD_ELEMENTS = 1 << 20


@dataclasses.dataclass(frozen=True)
class AxisField:
    """Receptive field, along one spatial axis of the input, of the first output of a layer.

    ``size`` r and ``jump`` j (input pixels between adjacent outputs) follow Araujo, Norris & Sim 2019;
    ``start`` is the centre of the field in 0-based input pixel coordinates (may be negative when
    padding is involved, and ends in .5 for even extents). ``spatial`` is False once the axis has been
    reduced or flattened away (global pooling, a dense layer): the field then covers everything the
    last map on that axis saw, and ``jump`` no longer describes a neighbour.
    """

    size: float
    jump: float
    start: float
    spatial: bool = True


@dataclasses.dataclass
class TracedLayer:
    """One layer of the forward pass (see the module docstring for what makes a layer)."""

    name: str
    kind: str
    op: str
    output_shape: tuple[int, ...]
    """Per image (batch axis dropped)."""
    params: dict[str, int]
    """Parameter path -> number of elements, for the parameters this layer reads first."""
    macs: int
    in_place: bool
    """An element-wise activation layer: not counted in the activation memory total."""
    field: tuple[AxisField, ...]
    """Receptive field of the output along each spatial axis of the input (H, W for images)."""

    @property
    def activations(self) -> int:
        return int(math.prod(self.output_shape))

    @property
    def num_params(self) -> int:
        return sum(self.params.values())


@dataclasses.dataclass
class ForwardTrace:
    """The traced layers of one model plus the totals that do not belong to a single layer."""

    model_name: str
    input_shape: tuple[int, ...]
    num_classes: int | None
    layers: list[TracedLayer]
    total_params: int
    total_state: int
    """Non-trainable variables (BatchNorm running statistics): not parameters, not counted as such."""


@dataclasses.dataclass
class _Call:
    id: int
    parent: int | None
    path: tuple[str, ...]
    cls: str
    out_shape: tuple[int, ...] | None = None


@dataclasses.dataclass
class _Row:
    """A layer under construction."""

    key: Any
    scope: tuple[str, ...]
    base: str  # name stem of a functional layer, or the module path for a leaf
    leaf: bool
    classes: set[str]
    params: dict[str, int] = dataclasses.field(default_factory=dict)
    macs: int = 0
    shape: tuple[int, ...] = ()
    slots: Slots = ()
    conv: tuple | None = None  # op_rules.conv_geometry
    dense: tuple[int, int] | None = None
    pool: str = ""
    last_prim: str = ""
    shape_from_call: bool = False
    name: str = ""


def resolve_model(
    model_name_or_module: str | nn.Module,
    input_shape: Sequence[int] | None,
    num_classes: int | None,
) -> tuple[nn.Module, str, tuple[int, ...], int | None]:
    """(module, display name, input shape (H, W, C), num_classes) from a registered name or a module."""
    if isinstance(model_name_or_module, str):
        spec = get_model_spec(model_name_or_module)
        model = create_model(model_name_or_module, num_classes=num_classes)
        classes = spec.num_classes if num_classes is None else num_classes
        shape = tuple(spec.input_shape if input_shape is None else input_shape)
        return model, model_name_or_module, shape, classes
    if not isinstance(model_name_or_module, nn.Module):
        raise TypeError(
            f"expected a registered model name or a flax.linen Module, got {type(model_name_or_module).__name__}"
        )
    if input_shape is None:
        raise ValueError(
            f"input_shape is required for a module ({type(model_name_or_module).__name__}): "
            "pass input_shape=(H, W, C)"
        )
    if num_classes is not None:
        raise ValueError("num_classes only applies to a registered model name; set it on the module itself")
    return model_name_or_module, type(model_name_or_module).__name__, tuple(input_shape), getattr(
        model_name_or_module, "num_classes", None
    )


def trace_forward(
    model_name_or_module: str | nn.Module,
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
) -> ForwardTrace:
    """Traces the eval-mode forward pass of one image and returns its layers (no allocation)."""
    model, name, shape, classes = resolve_model(model_name_or_module, input_shape, num_classes)
    if any(int(d) < 1 for d in shape):
        raise ValueError(f"input_shape must be positive sizes, got {shape}")
    x = jax.ShapeDtypeStruct((1, *map(int, shape)), jnp.float32)
    # Zoo models take `train` (the registry's contract); a plain module such as nn.Dense does not.
    mode = {"train": False} if _accepts_train(model) else {}
    # Generative models draw from the 'sample' stream (the trainer's fixed evaluation key).
    rngs = {"params": jax.random.key(0), "sample": jax.random.key(0)}
    variables = jax.eval_shape(lambda v: model.init(rngs, v, **mode), x)

    calls: list[_Call] = []
    stack: list[int] = []

    def interceptor(next_fun, args, kwargs, context):
        if context.method_name == "setup":
            return next_fun(*args, **kwargs)
        call = _Call(len(calls), stack[-1] if stack else None, tuple(context.module.path),
                     type(context.module).__name__)
        calls.append(call)
        stack.append(call.id)
        try:
            with jax.named_scope(f"{_MARKER}{call.id}"):
                out = next_fun(*args, **kwargs)
        finally:
            stack.pop()
        leaves = [leaf for leaf in jax.tree_util.tree_leaves(out) if hasattr(leaf, "shape")]
        if leaves:
            call.out_shape = tuple(leaves[0].shape)
        return out

    def forward(v, image):
        with nn.intercept_methods(interceptor):
            return model.apply(v, image, rngs={"sample": jax.random.key(0)}, **mode)

    closed = jax.make_jaxpr(forward)(variables, x)

    leaves, _ = jax.tree_util.tree_flatten_with_path(variables)
    leaf_names, leaf_sizes, is_param = [], [], []
    for path, leaf in leaves:
        keys = [str(getattr(k, "key", getattr(k, "name", k))) for k in path]
        leaf_names.append("/".join(keys[1:]))
        leaf_sizes.append(int(math.prod(leaf.shape)))
        is_param.append(keys[0] == "params")
    walker = _Walker(calls, leaf_names, leaf_sizes, is_param, len(shape) - 1)
    layers = walker.run(closed, shape)
    total_params = sum(s for s, p in zip(leaf_sizes, is_param, strict=True) if p)
    total_state = sum(s for s, p in zip(leaf_sizes, is_param, strict=True) if not p)
    return ForwardTrace(name, shape, classes, layers, total_params, total_state)


def _accepts_train(model: nn.Module) -> bool:
    try:
        params = inspect.signature(type(model).__call__).parameters
    except (TypeError, ValueError):
        return True
    return "train" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _is_literal(v) -> bool:
    return isinstance(v, jcore.Literal)



class _Walker:
    """Walks the jaxpr once: attributes equations to layers and propagates receptive fields."""

    def __init__(self, calls: list[_Call], leaf_names, leaf_sizes, is_param, num_spatial: int):
        self.calls = calls
        self.leaf_names = leaf_names
        self.leaf_sizes = leaf_sizes
        self.is_param = is_param
        self.num_spatial = num_spatial
        # A module may call helper methods of itself or share its scope with an inner module
        # (layers.Conv runs an nn.Conv in its own scope): calls with the parent's path merge into it.
        self.owner: dict[int, int] = {}
        for c in calls:
            p = c.parent
            self.owner[c.id] = self.owner[p] if p is not None and calls[p].path == c.path else c.id
        self.non_leaf: set[int] = set()
        for c in calls:
            if c.parent is not None and calls[c.parent].path != c.path:
                self.non_leaf.add(self.owner[c.parent])
        self.classes: dict[int, set[str]] = {}
        for c in calls:
            self.classes.setdefault(self.owner[c.id], set()).add(c.cls)
        # Per jaxpr variable: activation receptive fields (data), parameter leaves it derives from,
        # a known constant value, and the functional layer that produced it.
        self.data: dict[Any, Slots] = {}
        self.params: dict[Any, frozenset[int]] = {}
        self.value: dict[Any, np.ndarray] = {}
        self.produced_by: dict[Any, _Row] = {}
        self.rows: list[_Row] = []
        self.leaf_rows: dict[int, _Row] = {}
        self.charged: set[int] = set()

    # ----------------------------------------------------------------------------------- driver
    def run(self, closed, input_shape: tuple[int, ...]) -> list[TracedLayer]:
        jaxpr = closed.jaxpr
        for v, c in zip(jaxpr.constvars, closed.consts, strict=True):
            self._set_const(v, c)
        *var_invars, x_var = jaxpr.invars
        for i, v in enumerate(var_invars):
            self.params[v] = frozenset([i]) if self.is_param[i] else frozenset()
        self.data[x_var] = tuple(Slot(1 + a, 1.0, 1.0, 0.0) for a in range(self.num_spatial))
        self._walk(jaxpr.eqns, None)

        layers = [TracedLayer(
            name="input", kind="input", op="", output_shape=tuple(input_shape), params={}, macs=0,
            in_place=False, field=tuple(AxisField(1, 1, 0) for _ in range(self.num_spatial)),
        )]
        self._name_rows()
        for row in self.rows:
            layers.append(self._finish(row))
        return layers

    def _set_const(self, v, value) -> None:
        self.params[v] = frozenset()
        try:
            arr = np.asarray(value)
        except Exception:  # noqa: BLE001 - tokens and opaque values are simply not constants
            return
        if arr.size <= _MAX_FOLD_ELEMENTS:
            self.value[v] = arr

    def _read(self, v):
        """(slots or None, params, value) of an equation input."""
        if _is_literal(v):
            return None, frozenset(), np.asarray(v.val)
        return self.data.get(v), self.params.get(v, frozenset()), self.value.get(v)

    def _walk(self, eqns, inherited: int | None) -> None:
        for eqn in eqns:
            found = _MARKER_RE.findall(str(eqn.source_info.name_stack))
            call = int(found[-1]) if found else inherited
            name = eqn.primitive.name
            sub = self._subjaxpr(eqn) if name in _INLINE else as_xla_convolution(eqn)
            if sub is not None and len(sub.jaxpr.invars) == len(eqn.invars):
                self._inline(eqn, sub, call)
            else:
                self._visit(eqn, call)

    @staticmethod
    def _subjaxpr(eqn):
        for value in eqn.params.values():
            if isinstance(value, jcore.ClosedJaxpr):
                return value
            if isinstance(value, jcore.Jaxpr):
                return jcore.ClosedJaxpr(value, ())
        return None

    def _inline(self, eqn, sub, call: int | None) -> None:
        inner = sub.jaxpr
        for v, c in zip(inner.constvars, sub.consts, strict=True):
            self._set_const(v, c)
        for inner_v, outer_v in zip(inner.invars, eqn.invars, strict=True):
            self._copy(outer_v, inner_v)
        self._walk(inner.eqns, call)
        for outer_v, inner_v in zip(eqn.outvars, inner.outvars, strict=True):
            if not isinstance(outer_v, jcore.DropVar):
                self._copy(inner_v, outer_v)

    def _clear(self, v) -> None:
        # Inlined jaxprs are shared between call sites: forget what a variable held last time.
        for table in (self.data, self.params, self.value, self.produced_by):
            table.pop(v, None)

    def _copy(self, src, dst) -> None:
        self._clear(dst)
        if _is_literal(src):
            self.params[dst] = frozenset()
            self.value[dst] = np.asarray(src.val)
            return
        for table in (self.data, self.params, self.value, self.produced_by):
            if src in table:
                table[dst] = table[src]

    # ------------------------------------------------------------------------------ one equation
    def _visit(self, eqn, call: int | None) -> None:
        ins = [self._read(v) for v in eqn.invars]
        outs = [v for v in eqn.outvars if not isinstance(v, jcore.DropVar)]
        if not any(slots is not None for slots, _, _ in ins):
            # Parameter / constant arithmetic (BatchNorm's rsqrt(var + eps) * scale, pooling counts).
            used = frozenset().union(*(p for _, p, _ in ins))
            value = self._fold(eqn, ins)
            for v in outs:
                self._clear(v)
                self.params[v] = used
                if value is not None:
                    self.value[v] = value
            return

        slots_out = propagate(eqn, ins, self.num_spatial)
        for v in outs:
            self._clear(v)
            self.data[v] = slots_out
            self.params[v] = frozenset()
        row = self._attribute(eqn, call, ins)
        if row is None:
            return
        used = [i for _, p, _ in ins for i in sorted(p) if i not in self.charged]
        for i in used:
            if i not in self.charged:
                self.charged.add(i)
                if self.is_param[i]:
                    row.params[self.leaf_names[i]] = self.leaf_sizes[i]
        row.macs += macs(eqn, ins)
        row.slots = slots_out
        row.last_prim = eqn.primitive.name
        if outs and not row.leaf:
            row.shape = aval_shape(outs[0])
            for v in outs:
                self.produced_by[v] = row
        elif outs and row.leaf and not row.shape_from_call:
            row.shape = aval_shape(outs[0])

    def _fold(self, eqn, ins) -> np.ndarray | None:
        if eqn.primitive.name not in _FOLD_PRIMS or any(val is None for _, _, val in ins):
            return None
        out = eqn.outvars[0]
        if math.prod(aval_shape(out)) > _MAX_FOLD_ELEMENTS:
            return None
        try:
            return np.asarray(eqn.primitive.bind(*[val for _, _, val in ins], **eqn.params))
        except Exception:  # noqa: BLE001 - folding is an optimisation; unknown stays unknown
            return None

    # ---------------------------------------------------------------------------- attribution
    def _attribute(self, eqn, call: int | None, ins) -> _Row | None:
        """The layer an activation equation belongs to (created on first use), or None."""
        owner = self.owner[call] if call is not None else None
        if owner is not None and owner not in self.non_leaf:
            row = self.leaf_rows.get(owner)
            if row is None:
                c = self.calls[owner]
                row = _Row(key=owner, scope=c.path, base="/".join(c.path) or c.cls, leaf=True,
                           classes=self.classes.get(owner, {c.cls}))
                if c.out_shape is not None:
                    row.shape, row.shape_from_call = c.out_shape, True
                self.leaf_rows[owner] = row
                self.rows.append(row)
            self._describe_leaf(row, eqn, ins)
            return row
        scope = self.calls[owner].path if owner is not None else ()
        return self._functional(eqn, scope, owner, ins)

    def _describe_leaf(self, row: _Row, eqn, ins) -> None:
        name = eqn.primitive.name
        if name == "conv_general_dilated" and row.conv is None:
            row.conv = conv_geometry(eqn)
        elif name == "dot_general" and row.dense is None and macs(eqn, ins):
            (lc, _), _ = eqn.params["dimension_numbers"]
            lhs = aval_shape(eqn.invars[0])
            row.dense = (int(math.prod(lhs[d] for d in lc)), int(aval_shape(eqn.outvars[0])[-1]))

    def _functional(self, eqn, scope, owner, ins) -> _Row | None:
        name = eqn.primitive.name
        data_in = [(v, s) for v, (s, _, _) in zip(eqn.invars, ins, strict=True) if s is not None]
        first_var, first_slots = data_in[0]
        produced = self.produced_by.get(first_var) if not _is_literal(first_var) else None
        if produced is not None and produced.key[0] != owner:
            produced = None
        attached = {s.axis for s in first_slots if s.axis is not None}
        in_shape = aval_shape(first_var)
        out_shape = aval_shape(eqn.outvars[0])

        def new(base: str, **kw) -> _Row:
            row = _Row(key=(owner, len(self.rows)), scope=scope, base=base, leaf=False, classes=set(), **kw)
            self.rows.append(row)
            return row

        const_operand = any(s is None and not p and val is not None for s, p, val in ins)
        uses_params = any(s is None and p for s, p, _ in ins)
        if name in POOL_PRIMS:
            win = eqn.params["window_dimensions"]
            strides = eqn.params["window_strides"]
            if any(win[a] > 1 or strides[a] > 1 for a in attached):
                kind = {"reduce_window_max": "max", "reduce_window_min": "min",
                        "reduce_window_sum": "sum"}.get(name, "")
                pads = eqn.params["padding"]
                ax = sorted(attached)
                op = (f"{kind} " if kind else "") + f"{fmt_window([win[a] for a in ax])}/" \
                    f"{fmt_uniform([strides[a] for a in ax])}" + \
                    fmt_pad([pads[a][0] for a in ax], [pads[a][1] for a in ax])
                return new(f"{kind}_pool" if kind else "pool", pool=op)
        if name in REDUCE_PRIMS:
            axes = set(eqn.params.get("axes", ()))
            if axes & attached:
                kind = {"reduce_sum": "sum", "reduce_max": "max", "reduce_min": "min"}.get(name, name)
                return new(f"global_{kind}_pool", pool=f"global {kind}")
        if name == "dot_general":
            if (produced is not None and produced.base in ("adaptive_avg_pool", "resize")
                    and produced.last_prim == "transpose"):
                return produced
            if const_operand and not uses_params and len(data_in) == 1:
                # A constant matrix along a spatial axis: an adaptive pool (each output averages
                # its window), or a resize (bilinear interpolation weighs its inputs unequally).
                matrix = next(val for s, _, val in ins if s is None)
                if not averages(matrix):
                    return new("resize", pool="interpolate")
                return new("adaptive_avg_pool", pool="adaptive avg")
            row = new("dense" if uses_params else "matmul")
            (lc, _), _ = eqn.params["dimension_numbers"]
            row.dense = (int(math.prod(in_shape[d] for d in lc)), int(out_shape[-1]))
            return row
        if name == "conv_general_dilated":
            row = new("conv")
            row.conv = conv_geometry(eqn)
            return row
        if name == "concatenate" and len(eqn.invars) > 1:
            return new("concat", pool=f"{len(eqn.invars)} inputs")
        if name == "pad":
            cfg = eqn.params["padding_config"]
            if any(lo or hi or interior for lo, hi, interior in cfg):
                return new("pad", pool=fmt_pad_config(cfg, attached))
        if name == "slice" and any(out_shape[a] != in_shape[a] for a in attached):
            strides = eqn.params.get("strides") or (1,) * len(in_shape)
            return new("slice", pool="stride " + fmt_uniform([strides[a] for a in sorted(attached)]))
        # Element-wise ops and views extend the functional layer that produced their input.
        if produced is not None:
            if out_shape == in_shape and name not in ("transpose", "reshape"):
                if name == "div" and produced.base in ("sum_pool", "global_sum_pool"):
                    produced.base = produced.base.replace("sum", "avg")
                    produced.pool = produced.pool.replace("sum", "avg")
                return produced
            if name == "transpose" and produced.last_prim == "dot_general":
                return produced
        if uses_params and any(i not in self.charged for _, p, _ in ins for i in p):
            return new(name)
        return None

    # --------------------------------------------------------------------------------- finish
    def _name_rows(self) -> None:
        counts: dict[tuple, int] = {}
        for row in self.rows:
            if row.leaf:
                row.name = row.base
                continue
            key = (row.scope, row.base)
            counts[key] = counts.get(key, 0) + 1
            row.name = "/".join((*row.scope, f"{row.base}_{counts[key]}"))

    def _finish(self, row: _Row) -> TracedLayer:
        kind, op = self._kind(row)
        shape = row.shape[1:] if row.shape and row.shape[0] == 1 else row.shape
        field = tuple(
            AxisField(_num(s.r), _num(s.j), _num(s.start), s.axis is not None) for s in row.slots
        )
        return TracedLayer(
            name=row.name, kind=kind, op=op, output_shape=tuple(shape), params=dict(row.params),
            macs=int(row.macs), in_place=kind == "act", field=field,
        )

    def _kind(self, row: _Row) -> tuple[str, str]:
        if row.conv is not None:
            groups, c_in = row.conv[5], row.conv[6]
            op = fmt_conv(row.conv)
            if groups > 1 and groups == c_in:
                return "conv dw", op
            if groups > 1:
                return "conv", op + f" groups {groups}"
            return "conv", op
        if row.dense is not None:
            return "dense", f"{row.dense[0]}->{row.dense[1]}"
        if not row.leaf:
            kinds = {"concat": "concat", "pad": "pad", "slice": "slice"}
            return kinds.get(row.base, "pool" if "pool" in row.base else row.base), row.pool
        classes = " ".join(sorted(row.classes))
        for needle, kind in (("BatchNorm", "batchnorm"), ("LocalResponseNorm", "lrn"),
                             ("LayerNorm", "norm"), ("GroupNorm", "norm"), ("PReLU", "act"),
                             ("Activation", "act"), ("Dropout", "dropout")):
            if needle in classes:
                return kind, ""
        return sorted(row.classes)[0].lower() if row.classes else "op", ""


def _num(value: float) -> float | int:
    return int(value) if float(value).is_integer() else float(value)


