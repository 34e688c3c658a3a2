"""Geometric batch ops: they move image content, so targets in image coordinates move with it.

  * `RandomCrop(padding)`: zero-pad by P on every side, crop back to H x W at a uniformly random
    offset: the "pad 4 and random crop" CIFAR augmentation of He et al. 2016 (ResNet, sec. 4.2).
  * `RandomWarp(...)`: one resampling per image for the "distortions" of LeCun et al. 1998
    (sec. III.C: translations, scaling, squeezing, shearing; rotation is added as in Keras'
    ImageDataGenerator) and the elastic distortions of Simard, Steinkraus & Platt 2003 (sec. 2).
    Each image gets one 2x3 affine matrix about its centre: scale (zoom s, squeeze k: x by s*k,
    y by s/k), then horizontal shear, then rotation, then translation; an elastic displacement
    field (uniform(-1, 1) per pixel, Gaussian-smoothed with `elastic_sigma`, times
    `elastic_alpha`) is added to the sampling coordinates. The output is sampled bilinearly from
    the input (inverse mapping) with zero fill outside it, so affine and elastic cost one
    resampling together.
  * `RandomFlipLR()` (He et al. 2016, sec. 4.2) and `RandomFlipUD()`, each with probability 1/2.

Each is a `GeometricOp`: `draw` gives the random parameters of a batch (`CropOffsets`, a flip
mask, `WarpParams`), `apply_image` moves the pixels and `apply_targets` moves segmentation,
instances and boxes with the same draw (cnn_jax.data.targets). Crops and flips move everything
by whole pixels, so masks and boxes move exactly. The warps sample the maps at the nearest
input pixel of the very coordinates the image is sampled at bilinearly, and map each box's four
corners through the affine map, keeping the box that encloses them. The elastic field moves each
pixel differently, which no box transform follows: boxes are then recomputed as the tight boxes
of the warped `instances` (exact), which a dataset with boxes must carry to use it
(`compose.check_for_targets`). `random_crop`, `random_warp`, `random_flip_lr` and
`random_flip_ud` are the same ops as functions.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import numpy as np

from cnn_jax.data.augment.base import (
    GeometricOp,
    RngLike,
    Rows,
    as_generator,
    check_batch,
    span,
    to_uint8,
)
from cnn_jax.data.targets import box_area, settle_boxes, tight_boxes

# --------------------------------------------------------------------------------------------
# Crop
# --------------------------------------------------------------------------------------------


class CropOffsets(NamedTuple):
    """Where each image's H x W window starts in the padded image (0..2P on each axis)."""

    dy: np.ndarray  # (N,) int
    dx: np.ndarray  # (N,) int


@dataclasses.dataclass(frozen=True)
class RandomCrop(GeometricOp):
    """Zero-pads each image by `padding` pixels on all sides and crops back to H x W at a random
    offset (independent per image, uniform over the (2P+1)^2 offsets)."""

    padding: int

    def __post_init__(self):
        if self.padding < 0:
            raise ValueError(f"padding must be >= 0, got {self.padding}")

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...],
             rows: Rows = None) -> CropOffsets | None:
        if self.padding == 0:
            return None
        total, mine = span(shape[0], rows)
        dy = rng.integers(0, 2 * self.padding + 1, size=total)[mine]
        dx = rng.integers(0, 2 * self.padding + 1, size=total)[mine]
        return CropOffsets(dy, dx)

    def _crop(self, x: np.ndarray, params: CropOffsets | None, fill: int) -> np.ndarray:
        """(N, H, W, C) arrays padded with `fill` and cropped at the drawn offsets."""
        if params is None:
            return x.copy()
        p = self.padding
        n, h, w, c = x.shape
        padded = np.full((n, h + 2 * p, w + 2 * p, c), fill, dtype=x.dtype)
        padded[:, p:p + h, p:p + w] = x
        # A (2P+1) x (2P+1) grid of H x W windows per image, as a strided view (no copy); one
        # fancy index then picks each image's window.
        windows = np.lib.stride_tricks.sliding_window_view(padded, (h, w), axis=(1, 2))
        crops = windows[np.arange(n), params.dy, params.dx]  # (N, C, H, W)
        return np.ascontiguousarray(crops.transpose(0, 2, 3, 1))

    def apply_image(self, images: np.ndarray, params: CropOffsets | None) -> np.ndarray:
        return self._crop(images, params, 0)

    def apply_map(self, maps: np.ndarray, params: CropOffsets | None, fill: int) -> np.ndarray:
        return self._crop(maps[..., None], params, fill)[..., 0]

    def apply_boxes(self, boxes: np.ndarray, params: CropOffsets | None,
                    shape: tuple[int, ...]) -> np.ndarray:
        if params is None:
            return boxes.astype(np.float32)
        # Content at x in the image is at x + P in the padded one and x + P - dx in the crop.
        sx = (self.padding - params.dx).astype(np.float32)[:, None]
        sy = (self.padding - params.dy).astype(np.float32)[:, None]
        return boxes.astype(np.float32) + np.stack([sx, sy, sx, sy], axis=-1)


def random_crop(images: np.ndarray, padding: int, rng: RngLike, rows: Rows = None) -> np.ndarray:
    """`RandomCrop(padding)` applied to `images` with `rng`."""
    return RandomCrop(padding)(images, rng, rows)


# --------------------------------------------------------------------------------------------
# Affine and elastic warps
# --------------------------------------------------------------------------------------------


def affine_matrices(height: int, width: int, *, rotation=0.0, translate_x=0.0, translate_y=0.0,
                    shear=0.0, scale_x=1.0, scale_y=1.0) -> np.ndarray:
    """Forward 2x3 affine maps (N, 2, 3) on pixel coordinates (x right, y down, pixel centres at
    integers), each about the image centre ((W-1)/2, (H-1)/2): a content point p goes to
    R(rotation) Sh(shear) S(scale_x, scale_y) (p - centre) + centre + (translate_x, translate_y).

    Angles in degrees; a positive rotation turns the content counter-clockwise as displayed (90
    is `np.rot90` for a square image); a positive shear moves the lower rows right
    (x += tan(shear) * y); translations in pixels. Arguments broadcast to (N,) arrays.
    """
    theta, phi = np.deg2rad(rotation), np.deg2rad(shear)
    theta, phi, tx, ty, sx, sy = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, np.float64)) for v in
                                                       (theta, phi, translate_x, translate_y, scale_x,
                                                        scale_y)))
    cos, sin, tan = np.cos(theta), np.sin(theta), np.tan(phi)
    # R @ Sh @ S with R = [[cos, sin], [-sin, cos]] (y points down), Sh = [[1, tan], [0, 1]].
    a = np.stack([np.stack([cos * sx, (cos * tan + sin) * sy], -1),
                  np.stack([-sin * sx, (cos - sin * tan) * sy], -1)], -2)  # (N, 2, 2)
    centre = np.array([(width - 1) / 2, (height - 1) / 2])
    offset = centre - a @ centre + np.stack([tx, ty], -1)
    return np.concatenate([a, offset[..., None]], -1)


def invert_affine(matrices: np.ndarray) -> np.ndarray:
    """The inverse maps of 2x3 affine matrices (..., 2, 3)."""
    a, b = matrices[..., :2], matrices[..., 2]
    inv = np.linalg.inv(a)
    return np.concatenate([inv, -(inv @ b[..., None])], -1)


@functools.lru_cache(maxsize=32)
def _gaussian_operator(size: int, sigma: float) -> np.ndarray:
    """The (size, size) matrix of scipy's 1-D Gaussian filter (mode 'reflect', truncate 4): row i
    holds the weights of output i, so filtering is one matrix product."""
    from scipy.ndimage import gaussian_filter1d  # scipy is imported only for elastic warps

    return gaussian_filter1d(np.eye(size), sigma, axis=0).astype(np.float32)


def elastic_displacement(n: int, height: int, width: int, alpha: float, sigma: float,
                         rng: RngLike, rows: Rows = None) -> np.ndarray:
    """Random displacement fields (2, N, H, W) float32 (dx, dy in pixels) of Simard et al. 2003:
    uniform(-1, 1) per pixel, smoothed by a Gaussian of standard deviation `sigma` (equal to
    `scipy.ndimage.gaussian_filter` with sigma (0, sigma, sigma)), times `alpha`."""
    rng = as_generator(rng)
    total, mine = span(n, rows)
    field = rng.random((2 * total, height, width), dtype=np.float32)
    if total != n:  # the (dx, dy) fields of these rows only: smoothing is per image
        field = field.reshape(2, total, height, width)[:, mine].reshape(2 * n, height, width)
    field = field * np.float32(2 * alpha) - np.float32(alpha)  # alpha * U(-1, 1): linear, so
    # scaling before the smoothing is the same as after.
    kh, kw = _gaussian_operator(height, float(sigma)), _gaussian_operator(width, float(sigma))
    field = field @ kw.T  # along x
    field = np.matmul(kh, field)  # along y
    return field.reshape(2, n, height, width)


def _source_coordinates(n: int, h: int, w: int, inverse: np.ndarray,
                        displacement: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) float32 (N, H, W): where each output pixel samples the input (pixel centres)."""
    m = np.asarray(inverse, np.float32)[:, :, :, None, None]  # (N, 2, 3, 1, 1)
    xs = np.arange(w, dtype=np.float32)[None, :]
    ys = np.arange(h, dtype=np.float32)[:, None]
    src_x = m[:, 0, 0] * xs + m[:, 0, 1] * ys + m[:, 0, 2]  # (N, H, W)
    src_y = m[:, 1, 0] * xs + m[:, 1, 1] * ys + m[:, 1, 2]
    if displacement is not None:
        src_x += displacement[0]
        src_y += displacement[1]
    return src_x, src_y


def warp(images: np.ndarray, inverse: np.ndarray, displacement: np.ndarray | None = None) -> np.ndarray:
    """Resamples each image: output pixel (x, y) takes the input at inverse[i] @ (x, y, 1)
    (+ displacement[:, i, y, x] when given), bilinearly, with zeros outside the input.

    images uint8 (N, H, W, C); inverse (N, 2, 3) output -> input maps (see `invert_affine`);
    displacement (2, N, H, W) as from `elastic_displacement`. Returns uint8 (N, H, W, C).
    """
    images = check_batch(images)
    n, h, w, c = images.shape
    src_x, src_y = _source_coordinates(n, h, w, inverse, displacement)
    # Pad with one ring of zeros: in padded coordinates (+1) the input is [1, W] x [1, H], and
    # anything outside [0, W + 1] x [0, H + 1] samples only the ring.
    hp, wp = h + 2, w + 2
    src_x += 1
    src_y += 1
    np.clip(src_x, 0, w + 1, out=src_x)
    np.clip(src_y, 0, h + 1, out=src_y)
    x0 = np.minimum(src_x.astype(np.int32), w)  # floor (non-negative); x0 + 1 <= W + 1
    y0 = np.minimum(src_y.astype(np.int32), h)
    fx, fy = src_x - x0, src_y - y0
    index = y0 * wp
    index += x0
    index += (np.arange(n, dtype=np.int32) * (hp * wp))[:, None, None]
    padded = np.zeros((n, hp, wp, c), np.float32)
    padded[:, 1:-1, 1:-1] = images
    flat = padded.reshape(n * hp * wp, c)
    if c == 1:  # a 1-D take is several times faster than taking rows
        flat = flat[:, 0]
    else:
        fx, fy = fx[..., None], fy[..., None]
    top = flat.take(index, axis=0)
    top += fx * (flat.take(index + 1, axis=0) - top)
    bottom = flat.take(index + wp, axis=0)
    bottom += fx * (flat.take(index + wp + 1, axis=0) - bottom)
    top += fy * (bottom - top)
    return to_uint8(top.reshape(n, h, w, c))


def warp_nearest(maps: np.ndarray, inverse: np.ndarray, displacement: np.ndarray | None,
                 fill: int) -> np.ndarray:
    """`warp` for per-pixel maps (N, H, W): each output pixel takes the input pixel nearest to
    where `warp` samples the image, or `fill` when that pixel is outside the input. The nearest
    pixel is one of the four `warp` blends, with weight >= 1/4, so a map of `image > 0` stays
    inside the warped image's non-zero pixels."""
    n, h, w = maps.shape
    src_x, src_y = _source_coordinates(n, h, w, inverse, displacement)
    ix = np.floor(src_x + 0.5).astype(np.int64)
    iy = np.floor(src_y + 0.5).astype(np.int64)
    inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    index = np.clip(iy, 0, h - 1) * w + np.clip(ix, 0, w - 1)
    index += (np.arange(n) * (h * w))[:, None, None]
    return np.where(inside, maps.reshape(-1)[index], maps.dtype.type(fill))


def affine_boxes(boxes: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """The boxes (N, M, 4) that enclose the four corners of each box mapped by the forward
    affine maps (N, 2, 3) (pixel-centre coordinates, so box coordinates are shifted by 1/2)."""
    x0, y0, x1, y1 = (boxes[..., k].astype(np.float64) - 0.5 for k in range(4))
    xs = np.stack([x0, x1, x0, x1], -1)  # (N, M, 4 corners)
    ys = np.stack([y0, y0, y1, y1], -1)
    a = forward[:, None, None]  # (N, 1, 1, 2, 3)
    mx = a[..., 0, 0] * xs + a[..., 0, 1] * ys + a[..., 0, 2] + 0.5
    my = a[..., 1, 0] * xs + a[..., 1, 1] * ys + a[..., 1, 2] + 0.5
    return np.stack([mx.min(-1), my.min(-1), mx.max(-1), my.max(-1)], -1).astype(np.float32)


class WarpParams(NamedTuple):
    """One forward affine map per image and, for elastic warps, the displacement fields."""

    forward: np.ndarray  # (N, 2, 3) content -> output pixel coordinates (`affine_matrices`)
    displacement: np.ndarray | None  # (2, N, H, W) float32 (dx, dy) at each output pixel


@dataclasses.dataclass(frozen=True)
class RandomWarp(GeometricOp):
    """One random affine map per image (rotation, shear in degrees uniform in [-r, r]; translate
    a fraction of H and W uniform in [-t, t]; scale uniform in [1 - zoom, 1 + zoom]; squeeze
    factor k with log k uniform in [-log(1 + q), log(1 + q)]) plus, with elastic_alpha > 0, an
    elastic displacement field; one bilinear resampling (see the module docstring)."""

    rotation: float = 0.0
    translate: float = 0.0
    shear: float = 0.0
    zoom: float = 0.0
    squeeze: float = 0.0
    elastic_alpha: float = 0.0
    elastic_sigma: float = 4.0

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...],
             rows: Rows = None) -> WarpParams:
        n, h, w, _ = shape
        total, mine = span(n, rows)
        u = rng.uniform(-1.0, 1.0, (6, total))[:, mine]
        k = np.exp(u[5] * math.log1p(self.squeeze))
        s = 1.0 + self.zoom * u[4]
        forward = affine_matrices(h, w, rotation=self.rotation * u[0],
                                  translate_x=self.translate * w * u[1],
                                  translate_y=self.translate * h * u[2], shear=self.shear * u[3],
                                  scale_x=s * k, scale_y=s / k)
        field = (elastic_displacement(n, h, w, self.elastic_alpha, self.elastic_sigma, rng, rows)
                 if self.elastic_alpha else None)
        return WarpParams(forward, field)

    def apply_image(self, images: np.ndarray, params: WarpParams) -> np.ndarray:
        return warp(images, invert_affine(params.forward), params.displacement)

    def apply_map(self, maps: np.ndarray, params: WarpParams, fill: int) -> np.ndarray:
        return warp_nearest(maps, invert_affine(params.forward), params.displacement, fill)

    def apply_boxes(self, boxes: np.ndarray, params: WarpParams,
                    shape: tuple[int, ...]) -> np.ndarray:
        """Boxes through the affine part (corners, enclosing box); the elastic part is handled
        by `apply_targets` from the instances."""
        return affine_boxes(boxes, params.forward)

    def apply_targets(self, targets: dict[str, np.ndarray], params: WarpParams,
                      shape: tuple[int, ...]) -> dict[str, np.ndarray]:
        if params.displacement is None or "boxes" not in targets:
            return super().apply_targets(targets, params, shape)
        if "instances" not in targets:
            raise ValueError("elastic distortions move boxes only through instance masks, and "
                             "this batch has boxes without 'instances': set elastic_alpha=0")
        out = self.move_maps(targets, params)
        # The tight boxes of the warped instances; the affine image of the old box is the area
        # the visible fraction is measured against.
        boxes = np.asarray(out["boxes"])
        moved, present = tight_boxes(out["instances"], boxes.shape[1])
        out["box_mask"] = np.asarray(out["box_mask"], bool) & present
        reference = box_area(self.apply_boxes(boxes, params, shape))
        return settle_boxes(out, moved, shape[1], shape[2], reference_area=reference)


def random_warp(images: np.ndarray, rng: RngLike, *, rotation=0.0, translate=0.0, shear=0.0,
                zoom=0.0, squeeze=0.0, elastic_alpha=0.0, elastic_sigma=4.0,
                rows: Rows = None) -> np.ndarray:
    """`RandomWarp(...)` with these options applied to `images` with `rng`."""
    op = RandomWarp(rotation, translate, shear, zoom, squeeze, elastic_alpha, elastic_sigma)
    return op(images, rng, rows)


# --------------------------------------------------------------------------------------------
# Flips
# --------------------------------------------------------------------------------------------


class _RandomFlip(GeometricOp):
    """Mirrors each image along `axis` of the batch with probability 1/2."""

    axis: int

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...],
             rows: Rows = None) -> np.ndarray:
        total, mine = span(shape[0], rows)
        return rng.random(total)[mine] < 0.5  # (N,) bool: which images are mirrored

    def apply_image(self, images: np.ndarray, params: np.ndarray) -> np.ndarray:
        out = images.copy()
        out[params] = np.flip(images[params], axis=self.axis)
        return out

    def apply_map(self, maps: np.ndarray, params: np.ndarray, fill: int) -> np.ndarray:
        return self.apply_image(maps, params)  # (N, H, W): the same axes as (N, H, W, C)

    def apply_boxes(self, boxes: np.ndarray, params: np.ndarray,
                    shape: tuple[int, ...]) -> np.ndarray:
        # A flip maps x to W - x (y to H - y): the box's far edge becomes its near edge.
        out = boxes.astype(np.float32)
        near = 0 if self.axis == 2 else 1
        side = np.float32(shape[self.axis])
        flipped = out[params]  # (k, M, 4)
        moved = flipped.copy()
        moved[..., near] = side - flipped[..., near + 2]
        moved[..., near + 2] = side - flipped[..., near]
        out[params] = moved
        return out


@dataclasses.dataclass(frozen=True)
class RandomFlipLR(_RandomFlip):
    """Mirrors each image left-right with probability 1/2."""

    axis = 2


@dataclasses.dataclass(frozen=True)
class RandomFlipUD(_RandomFlip):
    """Mirrors each image upside down with probability 1/2."""

    axis = 1


def random_flip_lr(images: np.ndarray, rng: RngLike, rows: Rows = None) -> np.ndarray:
    """`RandomFlipLR()` applied to `images` with `rng`."""
    return RandomFlipLR()(images, rng, rows)


def random_flip_ud(images: np.ndarray, rng: RngLike, rows: Rows = None) -> np.ndarray:
    """`RandomFlipUD()` applied to `images` with `rng`."""
    return RandomFlipUD()(images, rng, rows)
