"""`Compose`, the augmentation of a training batch, and `build_augment`, which makes one from
the `config.data.augment` section after checking it.

`build_augment(config.data.augment, image_shape=..., num_classes=...)` orders the ops as
`AUGMENT_OPS` lists their keys: geometry (crop, warp), flips, colour, cutout, then mixing. Its
`apply(batch, rng)` is what the pipeline calls: {'image', 'label'} -> {'image', 'label'} with the
image ops applied, plus, when mixup or cutmix is on, 'targets' float32 (N, num_classes) whose
rows sum to 1 ('label' becomes the class with the largest target). Every training batch of such
a run carries 'targets', so the jitted train step always sees one batch structure. Targets in
image coordinates ('segmentation', 'instances', 'boxes' with 'classes' and 'box_mask', see
cnn_jax.data.targets) move with every geometric op's draw; photometric ops leave them alone;
mixing cannot blend them, which `check_for_targets` says before a run starts. Calling the
`Compose` on images applies the image ops alone.

`PER_IMAGE_OPTIONS` are augmentation keys that act on each photo before it has its final size
(`random_resized_crop`, see cnn_jax.data.transforms); `build_augment` accepts and skips them, the
pipeline hands them to the per-record transform of ImageNet-style datasets, where they run
first, so a flip mirrors the final crop.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from cnn_jax.data.augment.base import GeometricOp, RngLike, Rows, as_generator, check_batch
from cnn_jax.data.augment.geometry import RandomCrop, RandomFlipLR, RandomFlipUD, RandomWarp
from cnn_jax.data.augment.mix import Mix
from cnn_jax.data.augment.photometric import ColorJitter, Cutout
from cnn_jax.data.targets import SPATIAL_TARGETS
from cnn_jax.errors import ConfigError

ImageOp = Callable[..., np.ndarray]  # (images, rng, rows=None) -> images


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
            images = op(images, rng, rows)
        return images

    def apply(self, batch: Mapping[str, np.ndarray], rng: RngLike,
              rows: Rows = None) -> dict[str, np.ndarray]:
        """{'image', 'label' or other targets, ...} -> the same keys with augmented images and
        the targets in image coordinates moved by each geometric op's draw; with mixing also
        'targets' float32 (N, num_classes), rows summing to 1, and 'label' = argmax(targets).
        `rows=(start, total)`: the batch is that slice of a global batch (module doc); with
        mixing, `start` and N must be even."""
        rng = as_generator(rng)
        out = dict(batch)
        moved = [k for k in SPATIAL_TARGETS if k in batch]
        if self.mix is not None and moved:
            raise ValueError(f"mixup/cutmix mix class labels and cannot mix {', '.join(moved)}: "
                             f"set data.augment.mixup_alpha and cutmix_alpha to 0")
        if rows is not None and self.mix is not None and (rows[0] % 2 or len(batch["label"]) % 2):
            raise ValueError(f"mixup/cutmix pair rows 2k and 2k+1: a slice of a global batch must "
                             f"start at an even row and hold an even number of rows, got rows "
                             f"{rows[0]}..{rows[0] + len(batch['label'])} of {rows[1]}")
        image = batch["image"]
        for op in self.ops:
            if isinstance(op, GeometricOp):  # what op(image, rng, rows) does, keeping the draw
                image = check_batch(image)
                params = op.draw(rng, image.shape, rows)
                if moved:
                    out = op.apply_targets(out, params, image.shape)
                image = op.apply_image(image, params)
            else:
                image = op(image, rng, rows)
        out["image"] = image
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


def check_for_targets(augment_config: Mapping[str, Any] | Any | None,
                      targets: Sequence[str], input_key: str = "image") -> None:
    """ConfigError (one line naming the option to switch off) when `config.data.augment` asks for
    an op that cannot move a dataset's `targets` (DatasetSpec.targets): mixup and cutmix blend
    two images' labels, which has no meaning for masks, instances, boxes or saliency maps;
    elastic distortions move boxes only through instance masks (cnn_jax.data.augment.geometry).
    The batch ops act on images: a dataset whose input is not 'image' (`input_key` 'clip')
    takes none."""
    if augment_config is None:
        return
    values = {**_DEFAULTS, **dict(augment_config.items())}
    if input_key != "image":
        on = [k for k in AUGMENT_OPS if values[k] != _DEFAULTS[k] and k != "elastic_sigma"]
        if on:
            key = on[0]
            raise ConfigError(f"data.augment.{key}={values[key]!r} augments images, and this "
                              f"dataset's input is {input_key!r}: set data.augment.{key}="
                              f"{_DEFAULTS[key]!r}")
    moved = [k for k in SPATIAL_TARGETS if k in targets]
    for key in ("mixup_alpha", "cutmix_alpha"):
        if values[key] and moved:
            raise ConfigError(f"data.augment.{key}={values[key]} mixes class labels and cannot mix "
                              f"{' and '.join(moved)}: set data.augment.{key}=0")
    if values["elastic_alpha"] and "boxes" in targets and "instances" not in targets:
        raise ConfigError(f"data.augment.elastic_alpha={values['elastic_alpha']} moves boxes only "
                          f"through instance masks, which this dataset lacks: set "
                          f"data.augment.elastic_alpha=0")


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
