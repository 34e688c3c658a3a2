"""Receptive field of every layer of a model: size, jump and centre of the first output's field.

Follows Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional Neural Networks",
Distill 2019. For a layer l with kernel k_l, stride s_l, dilation d_l and left padding p_l, along one
spatial axis::

    j_l     = j_{l-1} * s_l                                   (jump: input pixels between outputs)
    r_l     = r_{l-1} + (k_l - 1) * d_l * j_{l-1}             (size)
    start_l = start_{l-1} + ((k_l - 1) / 2 * d_l - p_l) * j_{l-1}

with r_0 = 1, j_0 = 1, start_0 = 0. Convention (Araujo et al.'s): input pixels are indexed from 0,
and ``start`` is the centre of the field of the *first* output, (u + v) / 2 where [u, v] are its
left- and right-most input pixels — negative when it reaches into the padding, ending in .5 when its
extent is even. Output i's field is centred at ``start + i * jump``. A dilated kernel counts as its
effective size d (k - 1) + 1.

What counts as a layer (see :mod:`cnn_jax.analysis.trace`): convolutions and pooling windows
(``reduce_window``) follow the recurrences; explicit padding (``jnp.pad``) is a 1x1 window with
padding p; a strided slice ``x[:, a::s]`` a 1x1 window of stride s starting at a; element-wise
layers (BatchNorm, activations) change nothing. An operation over a whole axis — global pooling,
flattening into a dense layer — is a window as wide as the map (k = n, s = 1, p = 0), after which
the axis is no longer spatial (``spatial`` False: the field is everything the layer sees, and the
jump no longer describes neighbours); adaptive pooling is read as the windows of its averaging
matrix, a bilinear resize as those of its interpolation matrix (outputs ``n_in / n_out`` apart). A
transposed convolution of stride S is a window on its input dilated by S (S - 1 zeros between
pixels): the jump divides by S, and a window spanning ``(k - 1) d`` dilated positions reaches real
inputs at most ``floor((k - 1) d / S)`` apart, which is what the size grows by. Where paths meet
(residual additions, inception and dense-block concatenations), each axis takes the **maximum over
the paths** of the field size (Araujo et al., "Handling multiple paths"), with the jump and start of
the largest path; in the registered models the paths' fields are centred on the same pixel, so this
is also their union.

The recurrences describe the theoretical field; the effective field is smaller (Luo et al. 2016).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import flax.linen as nn

from cnn_jax.analysis.tables import align_columns, format_shape
from cnn_jax.analysis.trace import trace_forward


@dataclasses.dataclass(frozen=True)
class ReceptiveFieldRow:
    """Receptive field of one layer's output, one entry per spatial axis of the input (H, W)."""

    name: str
    kind: str
    output_shape: tuple[int, ...]
    size: tuple[float, ...]
    """r: the field's extent in input pixels."""
    jump: tuple[float, ...]
    """j: input pixels between the centres of adjacent outputs (cumulative stride)."""
    start: tuple[float, ...]
    """Centre of the first output's field, 0-based input pixel coordinates."""
    spatial: tuple[bool, ...]
    """False once the axis has been pooled or flattened away."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "output_shape": list(self.output_shape),
            "size": list(self.size),
            "jump": list(self.jump),
            "start": list(self.start),
            "spatial": list(self.spatial),
        }


def receptive_field(
    model_name_or_module: str | nn.Module,
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
) -> list[ReceptiveFieldRow]:
    """Receptive field (size r, jump j, start) of every layer's output, in forward order.

    The first row is the input itself (r = 1, j = 1, start = 0). ``input_shape`` is one image
    ``(H, W, C)``, defaulting to the registered model's; the field does not depend on it except
    through whole-map operations (global pooling, flattening).
    """
    trace = trace_forward(model_name_or_module, input_shape, num_classes)
    return [
        ReceptiveFieldRow(
            name=layer.name,
            kind=layer.kind,
            output_shape=tuple(layer.output_shape),
            size=tuple(f.size for f in layer.field),
            jump=tuple(f.jump for f in layer.field),
            start=tuple(f.start for f in layer.field),
            spatial=tuple(f.spatial for f in layer.field),
        )
        for layer in trace.layers
    ]


def receptive_field_table(rows: Sequence[ReceptiveFieldRow], title: str = "") -> str:
    """Text table: layer, kind, output, r, j, start (one value when every axis agrees)."""

    def cell(values: Sequence[float]) -> str:
        text = [f"{v:g}" for v in values]
        if not text:  # no spatial axes (an MLP on vectors)
            return "-"
        return text[0] if len(set(text)) == 1 else "x".join(text)

    body = [
        (
            r.name,
            r.kind,
            format_shape(r.output_shape),
            cell(r.size) + ("" if all(r.spatial) else "*"),
            cell(r.jump) if all(r.spatial) else "-",
            cell(r.start),
        )
        for r in rows
    ]
    lines = [title] if title else []
    lines += align_columns(("layer", "kind", "output", "r", "j", "start"), body, right_from=3)
    lines.append(
        "r: receptive field size, j: jump (cumulative stride), start: centre of the first output's "
        "field (0-based input pixels); paths meeting take the largest field"
    )
    if any(not all(r.spatial) for r in rows):
        lines.append("*: the spatial axes were pooled or flattened away: the field of the whole map")
    return "\n".join(lines)
