"""Anchor boxes over a feature pyramid, equal to torchvision's ``AnchorGenerator``.

Ren et al. 2015, "Faster R-CNN", section 3.1.1: at every position of a feature map sit ``k``
reference boxes of several scales and aspect ratios (3 x 3 in the paper), centred on the
position's image coordinates. Lin et al. 2017 (FPN, section 4.1) give each pyramid level its own
size and the same three ratios; RetinaNet (Lin et al. 2017b, section 4) uses three sizes per level.

As in torchvision, an aspect ratio is ``height / width``; the zero-centred cell anchors are
``[-w/2, -h/2, w/2, h/2]`` with ``w = size / sqrt(ratio)``, ``h = size sqrt(ratio)``, rounded to
integers (halves to even), listed ratio-major; a level's stride is ``image_size // grid_size``
per axis, the anchors of position ``(y, x)`` are shifted by ``(x stride_w, y stride_h)``, and the
output runs level by level, row-major over positions, the cell anchors innermost.

Everything here depends on shapes only, so it is computed with NumPy when traced and enters the
program as a constant.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def cell_anchors(sizes: Sequence[float], aspect_ratios: Sequence[float]) -> np.ndarray:
    """Zero-centred float32 anchors ``(len(ratios) * len(sizes), 4)`` of one level, rounded as
    torchvision rounds them."""
    scales = np.asarray(sizes, np.float32)
    h_ratios = np.sqrt(np.asarray(aspect_ratios, np.float32))
    w_ratios = np.float32(1) / h_ratios
    ws = (w_ratios[:, None] * scales[None, :]).reshape(-1)
    hs = (h_ratios[:, None] * scales[None, :]).reshape(-1)
    return np.round(np.stack([-ws, -hs, ws, hs], axis=1) / np.float32(2))


def grid_anchors(
    cell: np.ndarray, grid_size: tuple[int, int], stride: tuple[int, int]
) -> np.ndarray:
    """One level's anchors ``(grid_h * grid_w * len(cell), 4)``: ``cell`` shifted to every
    position of a ``grid_size = (h, w)`` grid with ``stride = (stride_h, stride_w)`` pixels."""
    grid_h, grid_w = grid_size
    shift_y, shift_x = np.meshgrid(np.arange(grid_h, dtype=np.int32) * stride[0],
                                   np.arange(grid_w, dtype=np.int32) * stride[1], indexing="ij")
    shifts = np.stack([shift_x, shift_y, shift_x, shift_y], axis=-1).reshape(-1, 1, 4)
    return (shifts + cell.reshape(1, -1, 4)).reshape(-1, 4).astype(cell.dtype)


@dataclasses.dataclass(frozen=True)
class AnchorGenerator:
    """Anchors for images and their feature maps: ``sizes[l]`` x ``aspect_ratios[l]`` per level.

    ``sizes`` is one tuple per level (a flat tuple means one size per level, torchvision's
    shorthand); ``aspect_ratios`` is one tuple per level or one tuple shared by all levels.
    The defaults are torchvision's (one level, sizes 128, 256, 512, ratios 0.5, 1, 2: the Faster
    R-CNN paper's 3 x 3 anchors).
    """

    sizes: Sequence[Sequence[float]] | Sequence[float] = ((128, 256, 512),)
    aspect_ratios: Sequence[Sequence[float]] | Sequence[float] = ((0.5, 1.0, 2.0),)

    def __post_init__(self):
        # Nested tuples, one per level: hashable, so the generator can be a static argument.
        sizes = self.sizes
        if not isinstance(sizes[0], Sequence):
            sizes = [(s,) for s in sizes]
        ratios = self.aspect_ratios
        if not isinstance(ratios[0], Sequence):
            ratios = [ratios] * len(sizes)
        if len(ratios) != len(sizes):
            raise ValueError(f"AnchorGenerator has {len(sizes)} levels of sizes but "
                             f"{len(ratios)} of aspect ratios: give one tuple of each per level")
        object.__setattr__(self, "sizes", tuple(tuple(s) for s in sizes))
        object.__setattr__(self, "aspect_ratios", tuple(tuple(r) for r in ratios))

    def _levels(self) -> list[tuple[tuple[float, ...], tuple[float, ...]]]:
        return list(zip(self.sizes, self.aspect_ratios, strict=True))

    def num_anchors_per_location(self) -> list[int]:
        """Anchors per feature-map position, one count per level."""
        return [len(s) * len(r) for s, r in self._levels()]

    def anchors(
        self, image_size: tuple[int, int], grid_sizes: Sequence[tuple[int, int]]
    ) -> np.ndarray:
        """All float32 anchors ``(sum_l h_l w_l A_l, 4)`` for images of ``image_size = (H, W)``
        (the padded batch) and feature grids ``grid_sizes = [(h_l, w_l), ...]``."""
        levels = self._levels()
        if len(grid_sizes) != len(levels):
            raise ValueError(f"{len(grid_sizes)} feature maps for {len(levels)} anchor levels: "
                             "give one tuple of sizes and ratios per feature map")
        per_level = []
        for (sizes, ratios), (grid_h, grid_w) in zip(levels, grid_sizes, strict=True):
            stride = (image_size[0] // grid_h, image_size[1] // grid_w)
            per_level.append(grid_anchors(cell_anchors(sizes, ratios), (grid_h, grid_w), stride))
        return np.concatenate(per_level, axis=0)

    def __call__(self, images: jax.Array, feature_maps: Sequence[jax.Array]) -> jax.Array:
        """Anchors for an NHWC image batch and its NHWC feature maps, shared by every image:
        ``(num_anchors, 4)`` xyxy in the dtype of the feature maps."""
        grid_sizes = [tuple(f.shape[1:3]) for f in feature_maps]
        anchors = self.anchors(tuple(images.shape[1:3]), grid_sizes)
        return jnp.asarray(anchors, feature_maps[0].dtype)
