"""Batch augmentation in numpy, on the host, deterministic from an explicit random generator.

Every op takes a whole uint8 batch (N, H, W, C) and a `np.random.Generator` (or an int seed) and
draws all its random numbers for the batch at once (`base`); images stay uint8 between ops (the
train step normalises on device). The ops, each a small picklable dataclass so that Grain worker
processes can run them, in the order `build_augment` applies them:

  1. geometry (`geometry`): `RandomCrop`, `RandomWarp` (affine and elastic distortions);
  2. flips (`geometry`): `RandomFlipLR`, `RandomFlipUD`;
  3. colour (`photometric`): `ColorJitter`;
  4. `Cutout` (`photometric`);
  5. mixing (`mix`): `Mix`, mixup and CutMix of images and class targets.

The geometric ops are `GeometricOp`s: each draws its random parameters once per batch and
applies them to the images and to the targets in image coordinates (segmentation, instances,
boxes: cnn_jax.data.targets) alike; photometric ops change pixel values only. `Compose` and
`build_augment` (`compose`) turn `config.data.augment` into one callable; `AUGMENT_OPS` lists its
keys; `check_for_targets` refuses options that cannot move a dataset's targets.

Multi-host: with `rows=(start, total)` an op augments rows [start, start + N) of a global batch
of `total` rows and draws exactly what it would for the whole batch, so the result does not
depend on the process count (`base`, `mix`).
"""

from cnn_jax.data.augment.base import GeometricOp, as_generator
from cnn_jax.data.augment.compose import (
    AUGMENT_OPS,
    PER_IMAGE_OPTIONS,
    Compose,
    build_augment,
    check_for_targets,
)
from cnn_jax.data.augment.geometry import (
    RandomCrop,
    RandomFlipLR,
    RandomFlipUD,
    RandomWarp,
    affine_boxes,
    affine_matrices,
    elastic_displacement,
    invert_affine,
    random_crop,
    random_flip_lr,
    random_flip_ud,
    random_warp,
    warp,
    warp_nearest,
)
from cnn_jax.data.augment.mix import Mix, cutmix, mix_partners, mixup, one_hot
from cnn_jax.data.augment.photometric import ColorJitter, Cutout, color_jitter, cutout

__all__ = [
    "AUGMENT_OPS",
    "PER_IMAGE_OPTIONS",
    "ColorJitter",
    "Compose",
    "Cutout",
    "GeometricOp",
    "Mix",
    "RandomCrop",
    "RandomFlipLR",
    "RandomFlipUD",
    "RandomWarp",
    "affine_boxes",
    "affine_matrices",
    "as_generator",
    "build_augment",
    "check_for_targets",
    "color_jitter",
    "cutmix",
    "cutout",
    "elastic_displacement",
    "invert_affine",
    "mix_partners",
    "mixup",
    "one_hot",
    "random_crop",
    "random_flip_lr",
    "random_flip_ud",
    "random_warp",
    "warp",
    "warp_nearest",
]
