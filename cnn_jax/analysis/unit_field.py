"""The receptive field of one unit, placed on the input image, and the pixels its value actually
depends on.

:func:`unit_field` reads the field's size r, jump j and start from
:func:`cnn_jax.analysis.receptive_field` (Araujo et al. 2019's recurrences): unit ``(i, j)`` of a
layer sees the input pixels ``start + i * jump +- (r - 1) / 2`` along each axis, cut to the image.
:func:`gradient_support` is the check: the pixels where the gradient of that unit with respect to
the input is non-zero (Simonyan et al. 2014's saliency map of a hidden unit). The support lies
within the field; it equals it wherever every path through the field carries gradient — valid
convolutions with average pooling and smooth activations (LeNet-5) — and is smaller where max
pooling or a ReLU passes gradient from only part of it (the effective receptive field of Luo et
al. 2016 is smaller still).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cnn_jax.analysis.intermediates import intermediates
from cnn_jax.analysis.receptive_field import ReceptiveFieldRow


@dataclasses.dataclass(frozen=True)
class FieldBox:
    """Input pixels ``[top, bottom] x [left, right]``, bounds included."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def height(self) -> int:
        return self.bottom - self.top + 1

    @property
    def width(self) -> int:
        return self.right - self.left + 1

    def mask(self, height: int, width: int) -> np.ndarray:
        """The box as a boolean image (H, W)."""
        out = np.zeros((height, width), bool)
        out[self.top:self.bottom + 1, self.left:self.right + 1] = True
        return out


def unit_field(rows: Sequence[ReceptiveFieldRow], layer: str, position: tuple[int, int],
               image_size: tuple[int, int] | None = None) -> FieldBox:
    """The field of unit `position` = (row, col) of `layer`'s output, from the receptive-field
    `rows` of the model, cut to an image of `image_size` (H, W) when given."""
    row = next((r for r in rows if r.name == layer), None)
    if row is None:
        raise KeyError(f"no layer {layer!r} in the receptive-field rows; layers: "
                       f"{', '.join(r.name for r in rows)}")
    if len(row.size) != 2 or not all(row.spatial):
        raise ValueError(f"{layer!r} has no 2-D spatial map (its axes were pooled or flattened "
                         "away)")
    _check_position(position, row.output_shape[:2], layer)
    bounds = []
    for axis in range(2):
        centre = row.start[axis] + position[axis] * row.jump[axis]
        half = (row.size[axis] - 1) / 2
        lo, hi = int(round(centre - half)), int(round(centre + half))
        if image_size is not None:
            lo, hi = max(lo, 0), min(hi, image_size[axis] - 1)
        bounds.append((lo, hi))
    (top, bottom), (left, right) = bounds
    return FieldBox(top=top, left=left, bottom=bottom, right=right)


def gradient_support(model: nn.Module, variables: dict, image: jax.Array, layer: str,
                     position: tuple[int, int], channel: int | None = None) -> np.ndarray:
    """Where ``d a / d x`` is non-zero, (H, W) bool, for the unit ``a`` at `position` of `layer`
    (one `channel`, or the sum over channels) and one model input `image` (H, W, C)."""
    image = jnp.asarray(image, jnp.float32)

    def unit(x):
        out = intermediates(model, variables, x[None], [layer])[layer][0]
        _check_position(position, out.shape[:2], layer)
        out = out[position[0], position[1]]
        return jnp.sum(out) if channel is None else out[channel]

    grad = jax.jit(jax.grad(unit))(image)
    return np.asarray(jnp.any(grad != 0, axis=-1))


def _check_position(position: tuple[int, int], size: Sequence[int], layer: str) -> None:
    if not all(0 <= p < n for p, n in zip(position, size, strict=True)):
        raise IndexError(f"unit {tuple(position)} is outside the "
                         f"{'x'.join(map(str, size))} map of {layer!r}")
