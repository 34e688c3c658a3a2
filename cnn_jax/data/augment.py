"""Batch augmentation in numpy, on the host, deterministic from an explicit random generator.

Every op takes a whole uint8 batch (N, H, W, C) and a `np.random.Generator` (or an int seed) and
draws all its random numbers for the batch at once, so a batch's augmentation is a pure function
of (images, seed) and costs a few vectorised numpy calls, not N Python calls.

Ops (each a small picklable dataclass, so Grain worker processes can run them):
  * `RandomCrop(padding)`: zero-pad by P on every side, crop back to H x W at a uniformly random
    offset: the "pad 4 and random crop" CIFAR augmentation of He et al. 2016 (ResNet, sec. 4.2).
  * `RandomFlipLR()`: mirror left-right with probability 1/2 (same paper and section).

`build_augment(config.data.augment)` turns the config section into one `Compose` callable
`fn(images, rng) -> images`; `AUGMENT_OPS` lists which config key builds which op, in the order
the ops are applied. New ops are added there.

`PER_IMAGE_OPTIONS` are augmentation keys that act on each photo before it has its final size
(`random_resized_crop`, see cnn_jax.data.transforms); `build_augment` accepts and skips them, the
pipeline hands them to the per-record transform of ImageNet-style datasets, where they run
first, so a flip mirrors the final crop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

RngLike = np.random.Generator | int | np.integer


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


def random_crop(images: np.ndarray, padding: int, rng: RngLike) -> np.ndarray:
    """Zero-pads each image by `padding` pixels on all sides and crops back to H x W at a random
    offset (independent per image, uniform over the (2P+1)^2 offsets)."""
    images = _check_batch(images)
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    if padding == 0:
        return images.copy()
    rng = as_generator(rng)
    n, h, w, c = images.shape
    dy = rng.integers(0, 2 * padding + 1, size=n)
    dx = rng.integers(0, 2 * padding + 1, size=n)
    padded = np.zeros((n, h + 2 * padding, w + 2 * padding, c), dtype=images.dtype)
    padded[:, padding:padding + h, padding:padding + w] = images
    # A (2P+1) x (2P+1) grid of H x W windows per image, as a strided view (no copy); one fancy
    # index then picks each image's window.
    windows = np.lib.stride_tricks.sliding_window_view(padded, (h, w), axis=(1, 2))
    crops = windows[np.arange(n), dy, dx]  # (N, C, H, W)
    return np.ascontiguousarray(crops.transpose(0, 2, 3, 1))


def random_flip_lr(images: np.ndarray, rng: RngLike) -> np.ndarray:
    """Mirrors each image left-right with probability 1/2."""
    images = _check_batch(images)
    rng = as_generator(rng)
    flip = rng.random(images.shape[0]) < 0.5
    out = images.copy()
    out[flip] = images[flip, :, ::-1]
    return out


@dataclasses.dataclass(frozen=True)
class RandomCrop:
    padding: int

    def __call__(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return random_crop(images, self.padding, rng)


@dataclasses.dataclass(frozen=True)
class RandomFlipLR:
    def __call__(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return random_flip_lr(images, rng)


@dataclasses.dataclass(frozen=True)
class Compose:
    """Applies `ops` in order, all drawing from one generator (so the result depends on the seed
    and on the op list only)."""

    ops: tuple[Callable[[np.ndarray, np.random.Generator], np.ndarray], ...] = ()

    def __call__(self, images: np.ndarray, rng: RngLike) -> np.ndarray:
        rng = as_generator(rng)
        for op in self.ops:
            images = op(images, rng)
        return images

    def __bool__(self) -> bool:
        return bool(self.ops)


# config key -> op factory (None when the value switches the op off), in order of application:
# geometry first, then flips, as in the ResNet CIFAR recipe.
AUGMENT_OPS: dict[str, Callable[[Any], Callable | None]] = {
    "random_crop_padding": lambda v: RandomCrop(int(v)) if v else None,
    "horizontal_flip": lambda v: RandomFlipLR() if v else None,
}
_PENDING = ("rotation", "translate", "shear", "zoom", "squeeze", "elastic_alpha", "elastic_sigma",
            "vertical_flip", "brightness", "contrast", "saturation", "channel_shift", "cutout",
            "mixup_alpha", "cutmix_alpha")


def _pending(key):
    def factory(v):
        if v and key != "elastic_sigma":
            raise NotImplementedError(f"data.augment.{key} is being implemented")
        return None
    return factory


AUGMENT_OPS.update({k: _pending(k) for k in _PENDING})


# config key -> what it does; applied per image by cnn_jax.data.transforms.PhotoTransform.
PER_IMAGE_OPTIONS: dict[str, str] = {
    "random_resized_crop": "Inception-style random crop of 8%-100% of the area, aspect 3/4-4/3, "
                           "resized to data.image_size (ImageNet-style datasets)",
}


def build_augment(augment_config: Mapping[str, Any] | Any | None) -> Compose:
    """The augmentation `fn(images, rng) -> images` described by `config.data.augment`.

    Accepts an ml_collections ConfigDict, a dict, or None (no augmentation). Unknown keys raise
    ValueError naming the known ones, so a typo cannot silently switch augmentation off.
    """
    if augment_config is None:
        return Compose()
    items = dict(augment_config.items())
    known = [*AUGMENT_OPS, *PER_IMAGE_OPTIONS]
    unknown = sorted(set(items) - set(known))
    if unknown:
        raise ValueError(f"unknown augmentation option(s) {', '.join(unknown)} in data.augment; "
                         f"known: {', '.join(known)}")
    ops = []
    for key, factory in AUGMENT_OPS.items():
        if key in items:
            op = factory(items[key])
            if op is not None:
                ops.append(op)
    return Compose(tuple(ops))
