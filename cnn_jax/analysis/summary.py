"""Per-layer summary of a model: output shape, activations, parameters and multiply-adds.

The table the lectures draw by hand for VGG16 (CS231n, "VGGNet in detail": ``CONV3-64: [224x224x64]
memory: 224*224*64=3.2M weights: (3*3*3)*64 = 1,728``), computed from the model itself::

    >>> s = summarize_model("vgg16")            # the registered input, 224x224x3
    >>> s.total_params, s.total_macs
    (138357544, 15470264320)
    >>> print(s.table())

The model is traced, never run (:mod:`cnn_jax.analysis.trace`): no parameter is materialised, so a
summary of VGG16 costs a fraction of a second and no memory. What a row is, and what is counted:

* **layers**: every leaf Flax module call, named by its module path (``features_0``,
  ``layer1_0/conv1``, ``inception3a/branch2_1/conv``), and every pooling, concatenation, padding or
  strided slice done with a function between modules (``max_pool_1``, ``inception3a/concat_1``).
  Element-wise functions between modules (``nn.relu``, residual additions) have no row.
* **activations**: elements of the layer's output for one image. The total is the input plus every
  row except element-wise activation modules (``kind == 'act'``, shown in parentheses), which like
  ReLU are taken as computed in place. BatchNorm outputs count. ``activation_bytes`` is that total
  at 4 bytes (float32): the forward activations of one image, what the lectures call "memory".
* **params**: trainable parameters (the ``params`` collection), weights and biases together; the
  per-parameter split is in ``param_counts`` (``features_0/kernel``: 1,728, ``features_0/bias``: 64).
  BatchNorm running statistics are not parameters: they are ``total_state``.
* **MACs**: multiply-adds of convolutions (output elements x kernel taps x input channels per
  group) and of products with weights (fully connected layers). Pooling, BatchNorm, activations and
  additions count zero, as in the papers' tables (He et al. 2016 Table 1; Howard et al. 2017 Table 8).
  One MAC is two FLOPs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import flax.linen as nn

from cnn_jax.analysis.tables import align_columns, format_shape
from cnn_jax.analysis.trace import trace_forward

BYTES_PER_ACTIVATION = 4  # float32


@dataclasses.dataclass(frozen=True)
class LayerSummary:
    """One row of a :class:`ModelSummary`."""

    name: str
    kind: str
    """input, conv, conv dw, dense, pool, batchnorm, lrn, act, concat, pad, slice, ..."""
    op: str
    """Geometry in words: ``3x3/1 pad 1`` (kernel/stride), ``max 2x2/2``, ``25088->4096``."""
    output_shape: tuple[int, ...]
    """Per image, channels last."""
    params: int
    param_counts: dict[str, int]
    macs: int
    in_place: bool

    @property
    def activations(self) -> int:
        """Elements of the output of one image."""
        n = 1
        for d in self.output_shape:
            n *= d
        return n

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "op": self.op,
            "output_shape": list(self.output_shape),
            "activations": self.activations,
            "params": self.params,
            "param_counts": dict(self.param_counts),
            "macs": self.macs,
            "in_place": self.in_place,
        }


@dataclasses.dataclass(frozen=True)
class ModelSummary:
    """Per-layer table and totals of one model at one input shape (see the module docstring)."""

    model: str
    input_shape: tuple[int, ...]
    num_classes: int | None
    layers: tuple[LayerSummary, ...]
    total_params: int
    """Every trainable parameter of the model (equals the sum of the rows unless some are unused)."""
    total_state: int
    """Non-trainable variables (BatchNorm running mean and variance)."""

    @property
    def total_activations(self) -> int:
        """Input plus every layer output of one image, element-wise activations excluded (in place)."""
        return sum(layer.activations for layer in self.layers if not layer.in_place)

    @property
    def activation_bytes(self) -> int:
        """Forward activation memory of one image in float32."""
        return self.total_activations * BYTES_PER_ACTIVATION

    @property
    def total_macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def unused_params(self) -> int:
        """Parameters the eval-mode forward pass never reads (e.g. GoogLeNet's auxiliary heads)."""
        return self.total_params - sum(layer.params for layer in self.layers)

    def layer(self, name: str) -> LayerSummary:
        """The row called `name` (its Flax module path, or ``max_pool_1``-style for functional ops)."""
        for row in self.layers:
            if row.name == name:
                return row
        raise KeyError(f"no layer {name!r} in {self.model}; layers: {', '.join(r.name for r in self.layers)}")

    def totals_line(self) -> str:
        mb = self.activation_bytes / 1e6
        mib = self.activation_bytes / 2**20
        line = (
            f"total  params {self.total_params:,} | activations {self.total_activations:,} per image "
            f"= {self.activation_bytes:,} bytes float32 ({mb:.1f} MB, {mib:.1f} MiB) | "
            f"MACs {self.total_macs:,} ({_si(self.total_macs)})"
        )
        if self.total_state:
            line += f" | non-trainable state {self.total_state:,}"
        if self.unused_params:
            line += f" | params unused in eval {self.unused_params:,}"
        return line

    def table(self) -> str:
        """The per-layer table, then the totals line."""
        header = ("layer", "kind", "op", "output", "activations", "params", "MACs")
        rows = [
            (
                r.name,
                r.kind,
                r.op,
                format_shape(r.output_shape),
                f"({r.activations:,})" if r.in_place else f"{r.activations:,}",
                f"{r.params:,}",
                f"{r.macs:,}",
            )
            for r in self.layers
        ]
        title = (
            f"{self.model} @ {format_shape(self.input_shape)}"
            + (f", {self.num_classes} classes" if self.num_classes is not None else "")
        )
        lines = [title, *align_columns(header, rows, right_from=4)]
        if any(r.in_place for r in self.layers):
            lines.append("(n): element-wise activation, computed in place: not in the activation total")
        lines.append(self.totals_line())
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "layers": [r.to_dict() for r in self.layers],
            "totals": {
                "params": self.total_params,
                "state": self.total_state,
                "activations": self.total_activations,
                "activation_bytes": self.activation_bytes,
                "bytes_per_activation": BYTES_PER_ACTIVATION,
                "macs": self.total_macs,
                "unused_params": self.unused_params,
            },
        }


def summarize_model(
    model_name_or_module: str | nn.Module,
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
) -> ModelSummary:
    """Summarises a registered model (by name) or any Linen module taking ``(x, train)``.

    ``input_shape`` is one image, ``(H, W, C)``; for a registered name it defaults to the paper's
    input (``get_model_spec(name).input_shape``) and ``num_classes`` to the paper's head. A module
    needs ``input_shape`` and is summarised as configured.
    """
    trace = trace_forward(model_name_or_module, input_shape, num_classes)
    layers = tuple(
        LayerSummary(
            name=t.name,
            kind=t.kind,
            op=t.op,
            output_shape=tuple(t.output_shape),
            params=t.num_params,
            param_counts=dict(t.params),
            macs=t.macs,
            in_place=t.in_place,
        )
        for t in trace.layers
    )
    return ModelSummary(
        model=trace.model_name,
        input_shape=tuple(trace.input_shape),
        num_classes=trace.num_classes,
        layers=layers,
        total_params=trace.total_params,
        total_state=trace.total_state,
    )


def _si(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:g}"
