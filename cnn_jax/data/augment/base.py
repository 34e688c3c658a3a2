"""What every batch op shares: generators, the rows of a global batch, uint8 rounding, and the
draw / apply split of the geometric ops.

A batch op takes a whole uint8 batch (N, H, W, C) and a `np.random.Generator` (or an int seed)
and draws all its random numbers for the batch at once, so a batch's augmentation is a pure
function of (images, seed) and costs a few vectorised numpy calls, not N Python calls.

Multi-host: with `rows=(start, total)` the images are rows [start, start + N) of a global batch
of `total` rows. Every op then draws its random numbers for all `total` rows, in the same order
as for the whole batch, and keeps the draws of its own rows (`span`). So each process,
augmenting only its slice of the global batch with a generator seeded by (seed, epoch, step),
gets exactly the rows one process augmenting the whole batch would.
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np

from cnn_jax.data.targets import MAP_TARGETS, fill_value, settle_boxes

RngLike = np.random.Generator | int | np.integer
# (start, total): the images are rows [start, start + N) of a batch of `total` rows (module doc).
Rows = tuple[int, int] | None


def as_generator(rng: RngLike) -> np.random.Generator:
    """A numpy Generator from a Generator (returned as is) or a non-negative int seed."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be a numpy Generator or an int seed, got {type(rng).__name__}")


def check_batch(images: np.ndarray) -> np.ndarray:
    """`images` as an array, which must be a batch (N, H, W, C)."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"expected a batch of images (N, H, W, C), got shape {images.shape}")
    return images


def span(n: int, rows: Rows) -> tuple[int, slice]:
    """(rows to draw random numbers for, the slice of those draws that belongs to these N images)."""
    if rows is None:
        return n, slice(0, n)
    start, total = int(rows[0]), int(rows[1])
    if not 0 <= start <= total - n:
        raise ValueError(f"rows {start}..{start + n} are not inside a batch of {total}")
    return total, slice(start, start + n)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Float pixels -> uint8, rounded to nearest and clipped to [0, 255] (in place on `x`)."""
    return np.clip(np.rint(x, out=x), 0, 255, out=x).astype(np.uint8)


class GeometricOp(abc.ABC):
    """A batch op that moves image content (crop, flip, affine and elastic warps).

    It works in two steps: `draw(rng, shape, rows)` draws the random parameters of a batch of
    `shape` (N, H, W, C), all of them and in a fixed order, and `apply_image(images, params)`
    moves the pixels. Calling the op does both. The targets in image coordinates move with the
    same parameters (`apply_targets`, cnn_jax.data.targets): per-pixel maps by nearest neighbour
    (`apply_segmentation`, IGNORE where the op leaves the image; `apply_instances`, 0 there; the
    saliency density and the fixations, 0 there) and
    boxes through `apply_boxes`, then clipped to the image (boxes left mostly outside become
    padding, `targets.settle_boxes`). An op without this split (colour, cutout, mixing) leaves
    targets where they are. Subclasses are frozen dataclasses, picklable for Grain worker
    processes.
    """

    @abc.abstractmethod
    def draw(self, rng: np.random.Generator, shape: tuple[int, ...], rows: Rows = None) -> Any:
        """The random parameters of this op for the N images of a batch of `shape`."""

    @abc.abstractmethod
    def apply_image(self, images: np.ndarray, params: Any) -> np.ndarray:
        """The images (uint8 (N, H, W, C)) moved by `params` from `draw`."""

    @abc.abstractmethod
    def apply_map(self, maps: np.ndarray, params: Any, fill: int) -> np.ndarray:
        """Per-pixel maps (N, H, W) moved by `params` (nearest neighbour), `fill` where the
        op leaves the image."""

    @abc.abstractmethod
    def apply_boxes(self, boxes: np.ndarray, params: Any, shape: tuple[int, ...]) -> np.ndarray:
        """xyxy boxes (N, M, 4) of images of `shape` moved by `params`, not clipped yet."""

    def apply_segmentation(self, masks: np.ndarray, params: Any) -> np.ndarray:
        """Class maps (N, H, W) moved by `params`; IGNORE where the op leaves the image."""
        return self.apply_map(masks, params, fill_value("segmentation"))

    def apply_instances(self, instances: np.ndarray, params: Any) -> np.ndarray:
        """Instance maps (N, H, W) moved by `params`; 0 (no object) where the op leaves the
        image."""
        return self.apply_map(instances, params, fill_value("instances"))

    def move_maps(self, targets: dict[str, np.ndarray], params: Any) -> dict[str, np.ndarray]:
        """`targets` with its per-pixel maps (segmentation, instances, saliency, fixations)
        moved by `params`."""
        out = dict(targets)
        for key in MAP_TARGETS:
            if key in out:
                out[key] = self.apply_map(np.asarray(out[key]), params, fill_value(key))
        return out

    def apply_targets(self, targets: dict[str, np.ndarray], params: Any,
                      shape: tuple[int, ...]) -> dict[str, np.ndarray]:
        """The targets of a batch of images of `shape` (a dict with any of the keys of
        cnn_jax.data.targets) moved by `params`; other entries are returned as they are."""
        out = self.move_maps(targets, params)
        if "boxes" in out:
            out = settle_boxes(out, self.apply_boxes(np.asarray(out["boxes"]), params, shape),
                               shape[1], shape[2])
        return out

    def __call__(self, images: np.ndarray, rng: RngLike, rows: Rows = None) -> np.ndarray:
        images = check_batch(images)
        return self.apply_image(images, self.draw(as_generator(rng), images.shape, rows))
