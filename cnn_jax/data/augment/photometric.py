"""Photometric batch ops: they change pixel values, never where content is, so targets in image
coordinates (masks, boxes) stay as they are.

  * `ColorJitter(...)`, in this order: brightness (multiply by U[1-b, 1+b]), contrast (blend with
    the image's mean grey level by U[1-c, 1+c]), saturation (blend with the pixel's grey level by
    U[1-s, 1+s], RGB only; the torchvision ColorJitter definitions), channel shift (add U[-v, v]
    to each channel, the Keras `channel_shift_range`). One float conversion and one rounding for
    all four.
  * `Cutout(size)`: zero a size x size square whose centre is uniform over the image, clipped at
    the borders (DeVries & Taylor 2017, "Improved Regularization of CNNs with Cutout"; they zero
    normalised images, i.e. fill with the mean; here 0 is black).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from cnn_jax.data.augment.base import RngLike, Rows, as_generator, check_batch, span, to_uint8

# ITU-R BT.601 luma weights, the grey level of torchvision's and PIL's RGB -> L conversion.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)

# --------------------------------------------------------------------------------------------
# Colour
# --------------------------------------------------------------------------------------------


def _grey(x: np.ndarray) -> np.ndarray:
    """(N, H, W, 1) grey level of float images (N, H, W, C), C = 1 or 3."""
    return x if x.shape[-1] == 1 else (x @ _LUMA)[..., None]


def color_jitter(images: np.ndarray, rng: RngLike, *, brightness=0.0, contrast=0.0, saturation=0.0,
                 channel_shift=0.0, rows: Rows = None) -> np.ndarray:
    """Brightness, contrast, saturation and channel-shift jitter, in that order, with factors
    drawn per image (per image and channel for the shift); see the module docstring."""
    images = check_batch(images)
    rng = as_generator(rng)
    n, c = images.shape[0], images.shape[-1]
    total, mine = span(n, rows)
    if saturation and c != 3:
        raise ValueError(f"saturation jitter needs RGB images, got {c} channel(s)")
    x = images.astype(np.float32)
    # Each step clips to [0, 255] before the next, as torchvision's functional ops do.
    if brightness:
        x *= rng.uniform(1 - brightness, 1 + brightness, total)[mine].astype(np.float32)[:, None, None, None]
        np.clip(x, 0, 255, out=x)
    if contrast:
        f = rng.uniform(1 - contrast, 1 + contrast, total)[mine].astype(np.float32)[:, None, None, None]
        mean = _grey(x).mean(axis=(1, 2, 3), keepdims=True)
        x *= f
        x += (1 - f) * mean
        np.clip(x, 0, 255, out=x)
    if saturation:
        f = rng.uniform(1 - saturation, 1 + saturation, total)[mine].astype(np.float32)[:, None, None, None]
        grey = _grey(x)
        x *= f
        x += (1 - f) * grey
    if channel_shift:
        x += rng.uniform(-channel_shift, channel_shift, (total, 1, 1, c))[mine].astype(np.float32)
    return to_uint8(x)


@dataclasses.dataclass(frozen=True)
class ColorJitter:
    """`color_jitter` with these strengths, as a batch op."""

    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    channel_shift: float = 0.0

    def __call__(self, images: np.ndarray, rng: np.random.Generator, rows: Rows = None) -> np.ndarray:
        return color_jitter(images, rng, rows=rows, **dataclasses.asdict(self))


# --------------------------------------------------------------------------------------------
# Cutout
# --------------------------------------------------------------------------------------------


def _box_mask(n: int, h: int, w: int, top: np.ndarray, left: np.ndarray, bottom: np.ndarray,
              right: np.ndarray) -> np.ndarray:
    """(N, H, W) bool: rows [top, bottom) and columns [left, right) of each image."""
    rows = np.arange(h)[None, :]
    cols = np.arange(w)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < bottom[:, None])
    in_cols = (cols >= left[:, None]) & (cols < right[:, None])
    return in_rows[:, :, None] & in_cols[:, None, :]


def cutout(images: np.ndarray, size: int, rng: RngLike, rows: Rows = None) -> np.ndarray:
    """Zeroes a size x size square of each image; its centre is a uniformly random pixel, and the
    square is clipped at the borders (so it may cover less), as DeVries & Taylor 2017."""
    images = check_batch(images)
    rng = as_generator(rng)
    n, h, w, _ = images.shape
    total, mine = span(n, rows)
    cy, cx = rng.integers(0, h, total)[mine], rng.integers(0, w, total)[mine]
    top, left = cy - size // 2, cx - size // 2
    mask = _box_mask(n, h, w, top, left, top + size, left + size)
    out = images.copy()
    out[mask] = 0
    return out


@dataclasses.dataclass(frozen=True)
class Cutout:
    """`cutout` of squares of side `size`, as a batch op."""

    size: int

    def __call__(self, images: np.ndarray, rng: np.random.Generator, rows: Rows = None) -> np.ndarray:
        return cutout(images, self.size, rng, rows)
