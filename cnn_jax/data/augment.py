"""Batch augmentation in numpy, on the host, deterministic from an explicit random generator.

Every op takes a whole uint8 batch (N, H, W, C) and a `np.random.Generator` (or an int seed) and
draws all its random numbers for the batch at once, so a batch's augmentation is a pure function
of (images, seed) and costs a few vectorised numpy calls, not N Python calls. Images stay uint8
between ops (the train step normalises on device).

Ops, in the order `build_augment` applies them (each a small picklable dataclass, so Grain
worker processes can run them):
  1. Geometry
     * `RandomCrop(padding)`: zero-pad by P on every side, crop back to H x W at a uniformly
       random offset: the "pad 4 and random crop" CIFAR augmentation of He et al. 2016 (ResNet,
       sec. 4.2).
     * `RandomWarp(...)`: one resampling per image for the "distortions" of LeCun et al. 1998
       (sec. III.C: translations, scaling, squeezing, shearing; rotation is added as in Keras'
       ImageDataGenerator) and the elastic distortions of
       Simard, Steinkraus & Platt 2003 (sec. 2). Each image gets one 2x3 affine matrix about its
       centre: scale (zoom s, squeeze k: x by s*k, y by s/k), then horizontal shear, then
       rotation, then translation; an elastic displacement field (uniform(-1, 1) per pixel,
       Gaussian-smoothed with `elastic_sigma`, times `elastic_alpha`) is added to the sampling
       coordinates. The output is sampled bilinearly from the input (inverse mapping) with zero
       fill outside it, so affine and elastic cost one resampling together.
  2. Flips: `RandomFlipLR()` (He et al. 2016, sec. 4.2) and `RandomFlipUD()`, each with
     probability 1/2.
  3. Colour, `ColorJitter(...)`, in this order: brightness (multiply by U[1-b, 1+b]), contrast
     (blend with the image's mean grey level by U[1-c, 1+c]), saturation (blend with the pixel's
     grey level by U[1-s, 1+s], RGB only; the torchvision ColorJitter definitions), channel shift
     (add U[-v, v] to each channel, the Keras `channel_shift_range`). One float conversion and
     one rounding for all four.
  4. `Cutout(size)`: zero a size x size square whose centre is uniform over the image, clipped at
     the borders (DeVries & Taylor 2017, "Improved Regularization of CNNs with Cutout"; they
     zero normalised images, i.e. fill with the mean; here 0 is black).
  5. Mixing, the only op that sees labels, `Mix(mixup_alpha, cutmix_alpha, num_classes)`: the
     images are paired with their neighbours, rows 2k and 2k+1 (`mix_partners`; the batch is
     in random order, so these are random pairs, as timm's `flip` pairing of a shuffled batch),
     and lambda ~ Beta(a, a) is drawn once per batch. Mixup (Zhang et al. 2018) blends the pixels
     (rounded to uint8) and the one-hot targets; CutMix (Yun et al. 2019) pastes a box of area
     ratio 1 - lambda (centre uniform, clipped) from the partner and then sets lambda to the
     fraction of pixels kept after clipping. With both alphas > 0 each batch picks one of the
     two with probability 1/2 (as timm's Mixup with switch_prob 0.5).

`build_augment(config.data.augment, image_shape=..., num_classes=...)` turns the config section
into one `Compose`; its `apply(batch, rng)` is what the pipeline calls:
{'image', 'label'} -> {'image', 'label'} with the image ops applied, plus, when mixup or cutmix
is on, 'targets' float32 (N, num_classes) whose rows sum to 1 ('label' becomes the class with
the largest target). Every training batch of such a run carries 'targets', so the jitted train
step always sees one batch structure. Calling the `Compose` on images applies the image ops
alone. `AUGMENT_OPS` lists the config keys in order of application.

Multi-host: with `rows=(start, total)` the images are rows [start, start + N) of a global batch
of `total` rows. Every op then draws its random numbers for all `total` rows, in the same order
as for the whole batch, and keeps the draws of its own rows; lambda and the CutMix box are one
draw per batch and pairs never straddle an even `start`. So each process, augmenting only its
slice of the global batch with a generator seeded by (seed, epoch, step), gets exactly the rows
one process augmenting the whole batch would: the result does not depend on the process count.

`PER_IMAGE_OPTIONS` are augmentation keys that act on each photo before it has its final size
(`random_resized_crop`, see cnn_jax.data.transforms); `build_augment` accepts and skips them, the
pipeline hands them to the per-record transform of ImageNet-style datasets, where they run
first, so a flip mirrors the final crop.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

RngLike = np.random.Generator | int | np.integer
# (start, total): the images are rows [start, start + N) of a batch of `total` rows (module doc).
Rows = tuple[int, int] | None
ImageOp = Callable[..., np.ndarray]  # (images, rng, rows=None) -> images

# ITU-R BT.601 luma weights, the grey level of torchvision's and PIL's RGB -> L conversion.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def as_generator(rng: RngLike) -> np.random.Generator:
    """A numpy Generator from a Generator (returned as is) or a non-negative int seed."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be a numpy Generator or an int seed, got {type(rng).__name__}")


def _check_batch(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"expected a batch of images (N, H, W, C), got shape {images.shape}")
    return images


def _span(n: int, rows: Rows) -> tuple[int, slice]:
    """(rows to draw random numbers for, the slice of those draws that belongs to these N images)."""
    if rows is None:
        return n, slice(0, n)
    start, total = int(rows[0]), int(rows[1])
    if not 0 <= start <= total - n:
        raise ValueError(f"rows {start}..{start + n} are not inside a batch of {total}")
    return total, slice(start, start + n)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """Float pixels -> uint8, rounded to nearest and clipped to [0, 255]."""
    return np.clip(np.rint(x, out=x), 0, 255, out=x).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------


def random_crop(images: np.ndarray, padding: int, rng: RngLike, rows: Rows = None) -> np.ndarray:
    """Zero-pads each image by `padding` pixels on all sides and crops back to H x W at a random
    offset (independent per image, uniform over the (2P+1)^2 offsets)."""
    images = _check_batch(images)
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    if padding == 0:
        return images.copy()
    rng = as_generator(rng)
    n, h, w, c = images.shape
    total, mine = _span(n, rows)
    dy = rng.integers(0, 2 * padding + 1, size=total)[mine]
    dx = rng.integers(0, 2 * padding + 1, size=total)[mine]
    padded = np.zeros((n, h + 2 * padding, w + 2 * padding, c), dtype=images.dtype)
    padded[:, padding:padding + h, padding:padding + w] = images
    # A (2P+1) x (2P+1) grid of H x W windows per image, as a strided view (no copy); one fancy
    # index then picks each image's window.
    windows = np.lib.stride_tricks.sliding_window_view(padded, (h, w), axis=(1, 2))
    crops = windows[np.arange(n), dy, dx]  # (N, C, H, W)
    return np.ascontiguousarray(crops.transpose(0, 2, 3, 1))


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
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(np.eye(size), sigma, axis=0).astype(np.float32)


def elastic_displacement(n: int, height: int, width: int, alpha: float, sigma: float,
                         rng: RngLike, rows: Rows = None) -> np.ndarray:
    """Random displacement fields (2, N, H, W) float32 (dx, dy in pixels) of Simard et al. 2003:
    uniform(-1, 1) per pixel, smoothed by a Gaussian of standard deviation `sigma` (equal to
    `scipy.ndimage.gaussian_filter` with sigma (0, sigma, sigma)), times `alpha`."""
    rng = as_generator(rng)
    total, mine = _span(n, rows)
    field = rng.random((2 * total, height, width), dtype=np.float32)
    if total != n:  # the (dx, dy) fields of these rows only: smoothing is per image
        field = field.reshape(2, total, height, width)[:, mine].reshape(2 * n, height, width)
    field = field * np.float32(2 * alpha) - np.float32(alpha)  # alpha * U(-1, 1): linear, so
    # scaling before the smoothing is the same as after.
    kh, kw = _gaussian_operator(height, float(sigma)), _gaussian_operator(width, float(sigma))
    field = field @ kw.T  # along x
    field = np.matmul(kh, field)  # along y
    return field.reshape(2, n, height, width)


def warp(images: np.ndarray, inverse: np.ndarray, displacement: np.ndarray | None = None) -> np.ndarray:
    """Resamples each image: output pixel (x, y) takes the input at inverse[i] @ (x, y, 1)
    (+ displacement[:, i, y, x] when given), bilinearly, with zeros outside the input.

    images uint8 (N, H, W, C); inverse (N, 2, 3) output -> input maps (see `invert_affine`);
    displacement (2, N, H, W) as from `elastic_displacement`. Returns uint8 (N, H, W, C).
    """
    images = _check_batch(images)
    n, h, w, c = images.shape
    m = np.asarray(inverse, np.float32)[:, :, :, None, None]  # (N, 2, 3, 1, 1)
    xs = np.arange(w, dtype=np.float32)[None, :]
    ys = np.arange(h, dtype=np.float32)[:, None]
    src_x = m[:, 0, 0] * xs + m[:, 0, 1] * ys + m[:, 0, 2]  # (N, H, W)
    src_y = m[:, 1, 0] * xs + m[:, 1, 1] * ys + m[:, 1, 2]
    if displacement is not None:
        src_x += displacement[0]
        src_y += displacement[1]
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
    return _to_uint8(top.reshape(n, h, w, c))


def random_warp(images: np.ndarray, rng: RngLike, *, rotation=0.0, translate=0.0, shear=0.0,
                zoom=0.0, squeeze=0.0, elastic_alpha=0.0, elastic_sigma=4.0,
                rows: Rows = None) -> np.ndarray:
    """One random affine map per image (rotation, shear in degrees uniform in [-r, r]; translate
    a fraction of H and W uniform in [-t, t]; scale uniform in [1 - zoom, 1 + zoom]; squeeze
    factor k with log k uniform in [-log(1 + q), log(1 + q)]) plus, with elastic_alpha > 0, an
    elastic displacement field; one bilinear resampling (see the module docstring)."""
    images = _check_batch(images)
    rng = as_generator(rng)
    n, h, w, _ = images.shape
    total, mine = _span(n, rows)
    u = rng.uniform(-1.0, 1.0, (6, total))[:, mine]
    k = np.exp(u[5] * math.log1p(squeeze))
    s = 1.0 + zoom * u[4]
    forward = affine_matrices(h, w, rotation=rotation * u[0], translate_x=translate * w * u[1],
                              translate_y=translate * h * u[2], shear=shear * u[3], scale_x=s * k,
                              scale_y=s / k)
    field = (elastic_displacement(n, h, w, elastic_alpha, elastic_sigma, rng, rows)
             if elastic_alpha else None)
    return warp(images, invert_affine(forward), field)


@dataclasses.dataclass(frozen=True)
class RandomCrop:
    padding: int

    def __call__(self, images: np.ndarray, rng: np.random.Generator, rows: Rows = None) -> np.ndarray:
        return random_crop(images, self.padding, rng, rows)


@dataclasses.dataclass(frozen=True)
class RandomWarp:
    """Affine distortions (LeCun et al. 1998) and elastic ones (Simard et al. 2003), one resampling."""

    rotation: float = 0.0
    translate: float = 0.0
    shear: float = 0.0
    zoom: float = 0.0
    squeeze: float = 0.0
    elastic_alpha: float = 0.0
    elastic_sigma: float = 4.0

    def __call__(self, images: np.ndarray, rng: np.random.Generator, rows: Rows = None) -> np.ndarray:
        return random_warp(images, rng, rows=rows, **dataclasses.asdict(self))


# --------------------------------------------------------------------------------------------
# Flips
# --------------------------------------------------------------------------------------------


def random_flip_lr(images: np.ndarray, rng: RngLike, rows: Rows = None) -> np.ndarray:
    """Mirrors each image left-right with probability 1/2."""
    images = _check_batch(images)
    rng = as_generator(rng)
    total, mine = _span(images.shape[0], rows)
    flip = rng.random(total)[mine] < 0.5
    out = images.copy()
    out[flip] = images[flip, :, ::-1]
    return out


def random_flip_ud(images: np.ndarray, rng: RngLike, rows: Rows = None) -> np.ndarray:
    """Mirrors each image upside down with probability 1/2."""
    images = _check_batch(images)
    rng = as_generator(rng)
    total, mine = _span(images.shape[0], rows)
    flip = rng.random(total)[mine] < 0.5
    out = images.copy()
    out[flip] = images[flip, ::-1]
    return out


@dataclasses.dataclass(frozen=True)
class RandomFlipLR:
    def __call__(self, images: np.ndarray, rng: np.random.Generator, rows: Rows = None) -> np.ndarray:
        return random_flip_lr(images, rng, rows)


@dataclasses.dataclass(frozen=True)
class RandomFlipUD:
    def __call__(self, images: np.ndarray, rng: np.random.Generator, rows: Rows = None) -> np.ndarray:
        return random_flip_ud(images, rng, rows)


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
    images = _check_batch(images)
    rng = as_generator(rng)
    n, c = images.shape[0], images.shape[-1]
    total, mine = _span(n, rows)
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
    return _to_uint8(x)


@dataclasses.dataclass(frozen=True)
class ColorJitter:
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
    images = _check_batch(images)
    rng = as_generator(rng)
    n, h, w, _ = images.shape
    total, mine = _span(n, rows)
    cy, cx = rng.integers(0, h, total)[mine], rng.integers(0, w, total)[mine]
    top, left = cy - size // 2, cx - size // 2
    mask = _box_mask(n, h, w, top, left, top + size, left + size)
    out = images.copy()
    out[mask] = 0
    return out


@dataclasses.dataclass(frozen=True)
class Cutout:
    size: int

    def __call__(self, images: np.ndarray, rng: np.random.Generator, rows: Rows = None) -> np.ndarray:
        return cutout(images, self.size, rng, rows)


# --------------------------------------------------------------------------------------------
# Mixing: images and targets
# --------------------------------------------------------------------------------------------


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[np.asarray(labels)]


def mix_partners(n: int) -> np.ndarray:
    """The partner of each of n rows: 2k <-> 2k+1 (an odd last row is its own partner).

    The batch is in random order, so neighbours are a random pairing, and a pair never spans two
    processes' slices of a global batch when the slices have an even number of rows: mixing then
    gives the same rows for any process count (module doc). timm's Mixup pairs row i with row
    N-1-i of its (shuffled) batch for the same reason of cost; that pairing would span slices.
    """
    partners = np.arange(n) ^ 1
    partners[partners >= n] = n - 1
    return partners


def mixup(images: np.ndarray, targets: np.ndarray, alpha: float,
          rng: RngLike) -> tuple[np.ndarray, np.ndarray, float]:
    """Mixup (Zhang et al. 2018): x = lam * x + (1 - lam) * x[perm] (rounded to uint8), the same
    for the targets, with lam ~ Beta(alpha, alpha) drawn once for the batch and perm the
    neighbour pairing `mix_partners`. Returns (images, targets, lam)."""
    images = _check_batch(images)
    rng = as_generator(rng)
    lam = float(rng.beta(alpha, alpha))
    perm = mix_partners(len(images))
    x = images.astype(np.float32)
    x *= lam
    x += (1 - lam) * images[perm].astype(np.float32)
    return _to_uint8(x), (lam * targets + (1 - lam) * targets[perm]).astype(np.float32), lam


def cutmix(images: np.ndarray, targets: np.ndarray, alpha: float,
           rng: RngLike) -> tuple[np.ndarray, np.ndarray, float]:
    """CutMix (Yun et al. 2019, sec. 3.1): one box per batch, of side
    sqrt(1 - lam) * (H, W) with lam ~ Beta(alpha, alpha), centre a uniformly random pixel,
    clipped at the borders; every image gets its partner's (x[perm], `mix_partners`) pixels
    inside the box, and
    lam becomes 1 - (clipped box area) / (H W), the kept fraction, for the targets.
    Returns (images, targets, lam)."""
    images = _check_batch(images)
    rng = as_generator(rng)
    n, h, w, _ = images.shape
    lam = float(rng.beta(alpha, alpha))
    perm = mix_partners(n)
    cut = math.sqrt(1.0 - lam)
    bh, bw = int(h * cut), int(w * cut)
    cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
    top, bottom = np.clip([cy - bh // 2, cy - bh // 2 + bh], 0, h)
    left, right = np.clip([cx - bw // 2, cx - bw // 2 + bw], 0, w)
    out = images.copy()
    out[:, top:bottom, left:right] = images[perm, top:bottom, left:right]
    lam = 1.0 - (bottom - top) * (right - left) / (h * w)
    return out, (lam * targets + (1 - lam) * targets[perm]).astype(np.float32), lam


@dataclasses.dataclass(frozen=True)
class Mix:
    """Mixup and/or CutMix of a batch with labels; with both alphas > 0, a fair coin per batch
    picks one (as timm's `Mixup(switch_prob=0.5)`)."""

    mixup_alpha: float
    cutmix_alpha: float
    num_classes: int

    def __call__(self, images: np.ndarray, labels: np.ndarray,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(images, int labels) -> (mixed images, float32 targets (N, num_classes))."""
        targets = one_hot(labels, self.num_classes)
        use_mixup = self.mixup_alpha > 0
        if use_mixup and self.cutmix_alpha > 0:
            use_mixup = bool(rng.random() < 0.5)
        if use_mixup:
            images, targets, _ = mixup(images, targets, self.mixup_alpha, rng)
        else:
            images, targets, _ = cutmix(images, targets, self.cutmix_alpha, rng)
        return images, targets


# --------------------------------------------------------------------------------------------
# Composition and the config
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Compose:
    """Applies the image `ops` in order, then `mix`, all drawing from one generator (so the result
    depends on the seed and on the ops only)."""

    ops: tuple[ImageOp, ...] = ()
    mix: Mix | None = None

    def __call__(self, images: np.ndarray, rng: RngLike, rows: Rows = None) -> np.ndarray:
        """The image ops alone (no mixing: that needs labels, see `apply`)."""
        rng = as_generator(rng)
        for op in self.ops:
            images = op(images, rng, rows) if rows is not None else op(images, rng)
        return images

    def apply(self, batch: Mapping[str, np.ndarray], rng: RngLike,
              rows: Rows = None) -> dict[str, np.ndarray]:
        """{'image', 'label', ...} -> the same keys with augmented images; with mixing also
        'targets' float32 (N, num_classes), rows summing to 1, and 'label' = argmax(targets).
        `rows=(start, total)`: the batch is that slice of a global batch (module doc); with
        mixing, `start` and N must be even."""
        rng = as_generator(rng)
        out = dict(batch)
        if rows is not None and self.mix is not None and (rows[0] % 2 or len(batch["label"]) % 2):
            raise ValueError(f"mixup/cutmix pair rows 2k and 2k+1: a slice of a global batch must "
                             f"start at an even row and hold an even number of rows, got rows "
                             f"{rows[0]}..{rows[0] + len(batch['label'])} of {rows[1]}")
        out["image"] = self(batch["image"], rng, rows)
        if self.mix is not None:
            out["image"], targets = self.mix(out["image"], np.asarray(batch["label"]), rng)
            out["targets"] = targets
            out["label"] = targets.argmax(axis=1).astype(np.int32)
        return out

    def __bool__(self) -> bool:
        return bool(self.ops) or self.mix is not None


# config key -> what it does, in order of application (keys of one op are applied together).
AUGMENT_OPS: dict[str, str] = {
    "random_crop_padding": "zero-pad P pixels and crop back at a random offset (int, 0 = off)",
    "rotation": "rotate by U[-r, r] degrees (0 <= r <= 180)",
    "translate": "shift by U[-t, t] of the height and width (0 <= t < 1)",
    "shear": "horizontal shear by U[-s, s] degrees (0 <= s < 90)",
    "zoom": "scale by U[1 - z, 1 + z] (0 <= z < 1)",
    "squeeze": "x by k, y by 1/k, |log k| <= log(1 + q) (q >= 0)",
    "elastic_alpha": "elastic distortion strength in pixels (>= 0; Simard et al. 2003: 34)",
    "elastic_sigma": "smoothing of the elastic field in pixels (> 0; Simard et al. 2003: 4)",
    "horizontal_flip": "mirror left-right with probability 1/2 (bool)",
    "vertical_flip": "mirror upside down with probability 1/2 (bool)",
    "brightness": "multiply by U[1 - b, 1 + b] (0 <= b <= 1)",
    "contrast": "blend with the mean grey by U[1 - c, 1 + c] (0 <= c <= 1)",
    "saturation": "blend with the pixel's grey by U[1 - s, 1 + s] (0 <= s <= 1, RGB only)",
    "channel_shift": "add U[-v, v] to each channel (0 <= v <= 255)",
    "cutout": "zero a random square of this side (int, at most the image side)",
    "mixup_alpha": "mixup with lam ~ Beta(a, a) (a >= 0)",
    "cutmix_alpha": "cutmix with lam ~ Beta(a, a) (a >= 0)",
}
_WARP_KEYS = ("rotation", "translate", "shear", "zoom", "squeeze", "elastic_alpha", "elastic_sigma")
_COLOR_KEYS = ("brightness", "contrast", "saturation", "channel_shift")
# key -> (low, high, high is allowed): the valid range of each number.
_RANGES: dict[str, tuple[float, float, bool]] = {
    "random_crop_padding": (0, math.inf, False), "rotation": (0, 180, True),
    "translate": (0, 1, False), "shear": (0, 90, False), "zoom": (0, 1, False),
    "squeeze": (0, math.inf, False), "elastic_alpha": (0, math.inf, False),
    "elastic_sigma": (0, math.inf, False), "brightness": (0, 1, True), "contrast": (0, 1, True),
    "saturation": (0, 1, True), "channel_shift": (0, 255, True), "cutout": (0, math.inf, False),
    "mixup_alpha": (0, math.inf, False), "cutmix_alpha": (0, math.inf, False),
}
_INTEGER_KEYS = ("random_crop_padding", "cutout")
_BOOL_KEYS = ("horizontal_flip", "vertical_flip")

# The values build_augment assumes for keys a config leaves out (base_config's defaults).
_DEFAULTS: dict[str, Any] = {k: 0 for k in AUGMENT_OPS} | {
    "elastic_sigma": 4.0, "horizontal_flip": False, "vertical_flip": False}
PER_IMAGE_OPTIONS: dict[str, str] = {
    "random_resized_crop": "Inception-style random crop of 8%-100% of the area, aspect 3/4-4/3, "
                           "resized to data.image_size (ImageNet-style datasets)",
}


def _checked_values(items: dict[str, Any]) -> dict[str, Any]:
    """The augmentation options with defaults filled in, after the checks that need no data."""
    values = {**_DEFAULTS, **{k: v for k, v in items.items() if k in AUGMENT_OPS}}
    for key in _BOOL_KEYS:
        if not isinstance(values[key], (bool, np.bool_)):
            raise ValueError(f"data.augment.{key}={values[key]!r} must be True or False")
    for key, (low, high, closed) in _RANGES.items():
        value = values[key]
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ValueError(f"data.augment.{key}={value!r} must be a number: {AUGMENT_OPS[key]}")
        if key in _INTEGER_KEYS and value != int(value):
            raise ValueError(f"data.augment.{key}={value!r} must be a whole number of pixels")
        if not (low <= value <= high if closed else low <= value < high):
            bound = f"[{low}, {high}]" if closed else f"[{low}, {high})"
            raise ValueError(f"data.augment.{key}={value!r} is outside {bound}: {AUGMENT_OPS[key]}")
    if values["elastic_alpha"] and not values["elastic_sigma"]:
        raise ValueError("data.augment.elastic_sigma=0 with elastic_alpha > 0: set a smoothing "
                         "width in pixels (Simard et al. 2003: 4)")
    return values


def _check_fits(values: dict[str, Any], image_shape: Sequence[int] | None,
                num_classes: int | None) -> None:
    """The checks against the dataset: image size, channels, labels."""
    if image_shape is not None:
        h, w, c = image_shape
        side = min(h, w)
        if values["random_crop_padding"] >= side:
            raise ValueError(f"data.augment.random_crop_padding={values['random_crop_padding']} is "
                             f"not smaller than the {h}x{w} images: use a few pixels (4 for CIFAR)")
        if values["cutout"] > side:
            raise ValueError(f"data.augment.cutout={values['cutout']} is larger than the {h}x{w} "
                             f"images: use at most {side} (16 for CIFAR-10)")
        if values["saturation"] and c != 3:
            raise ValueError(f"data.augment.saturation needs RGB images, but these have {c} "
                             f"channel(s): set it to 0 (brightness/contrast work on grey images)")
    if values["mixup_alpha"] or values["cutmix_alpha"]:
        if num_classes is None:
            raise ValueError("mixup/cutmix mix class targets: pass num_classes to build_augment")
        if num_classes < 2:
            raise ValueError(f"data.augment.mixup_alpha/cutmix_alpha mix class labels, and this "
                             f"dataset has {num_classes} class(es): set them to 0")


def build_augment(augment_config: Mapping[str, Any] | Any | None, *,
                  image_shape: Sequence[int] | None = None,
                  num_classes: int | None = None) -> Compose:
    """The augmentation described by `config.data.augment` (see the module docstring).

    Accepts an ml_collections ConfigDict, a dict, or None (no augmentation); missing keys take
    base_config's defaults (off). Raises ValueError (one line, with the fix) for unknown keys
    (so a typo cannot silently switch augmentation off), values out of range and, given the
    dataset's `image_shape` (H, W, C) and `num_classes`, options that do not fit it.
    """
    if augment_config is None:
        return Compose()
    items = dict(augment_config.items())
    known = [*AUGMENT_OPS, *PER_IMAGE_OPTIONS]
    unknown = sorted(set(items) - set(known))
    if unknown:
        raise ValueError(f"unknown augmentation option(s) {', '.join(unknown)} in data.augment; "
                         f"known: {', '.join(known)}")
    v = _checked_values(items)
    _check_fits(v, image_shape, num_classes)
    ops: list[ImageOp] = []
    if v["random_crop_padding"]:
        ops.append(RandomCrop(int(v["random_crop_padding"])))
    if any(v[k] for k in _WARP_KEYS if k != "elastic_sigma"):
        ops.append(RandomWarp(**{k: float(v[k]) for k in _WARP_KEYS}))
    if v["horizontal_flip"]:
        ops.append(RandomFlipLR())
    if v["vertical_flip"]:
        ops.append(RandomFlipUD())
    if any(v[k] for k in _COLOR_KEYS):
        ops.append(ColorJitter(**{k: float(v[k]) for k in _COLOR_KEYS}))
    if v["cutout"]:
        ops.append(Cutout(int(v["cutout"])))
    mix = None
    if v["mixup_alpha"] or v["cutmix_alpha"]:
        mix = Mix(float(v["mixup_alpha"]), float(v["cutmix_alpha"]), int(num_classes))
    return Compose(tuple(ops), mix)
