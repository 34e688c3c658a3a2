"""Per-photo transforms that move targets with the photo: photos of varying size with a
segmentation mask (Pascal VOC), instances or boxes, made into fixed-size arrays.

  * Training, by default: the photo is rescaled by a factor uniform in SCALE_RANGE (bilinear;
    the maps by nearest neighbour), padded to at least image_size on each side (the image with 0,
    segmentation with IGNORE, instances with 0) and cropped to image_size x image_size at a
    uniformly random offset: the random scale-and-crop of DeepLab (Chen et al. 2017, sec. 4:
    scales 0.5-2.0) and of torchvision's segmentation references.
  * Training with data.augment.random_resized_crop: the Inception crop of
    `transforms.random_resized_crop_box` (same draws), the maps cropped and resized by nearest
    neighbour.
  * Evaluation: the whole photo, padded at the bottom and right to eval_size x eval_size (IGNORE
    in the segmentation), so every pixel of every photo counts exactly once in the metrics; a
    photo larger than that (none of VOC's, which are at most 500 x 500) is first shrunk to fit.

Boxes are shifted and scaled with the photo, then clipped and dropped as every geometric op does
(cnn_jax.data.targets.settle_boxes). The batch ops of data.augment (flips, ...) follow, on the
fixed-size arrays.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os

import numpy as np
from PIL import Image

from cnn_jax.data.targets import (
    BOX_TARGETS,
    DENSE_TARGETS,
    PER_BOX,
    fill_value,
    pad_box_targets,
    settle_boxes,
)
from cnn_jax.data.transforms import ImageInput, PhotoTransform, decode_rgb, random_resized_crop_box

SCALE_RANGE = (0.5, 2.0)


def decode_map(data: ImageInput) -> np.ndarray:
    """A per-pixel map (H, W) uint8 from PNG bytes, a path or an array: palette PNGs (VOC's
    SegmentationClass) give their palette indices, grey PNGs their values."""
    if isinstance(data, np.ndarray):
        return np.asarray(data, np.uint8).reshape(data.shape[:2])
    source = io.BytesIO(data) if isinstance(data, bytes | np.bytes_) else os.fspath(data)
    with Image.open(source) as image:
        if image.mode not in ("P", "L"):
            raise ValueError(f"a mask must be a palette or greyscale PNG, not mode {image.mode}")
        return np.asarray(image, np.uint8)


def _resize_map(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a map (H, W) to (width, height) = `size`."""
    if size == (mask.shape[1], mask.shape[0]):
        return mask
    return np.asarray(Image.fromarray(mask).resize(size, Image.Resampling.NEAREST))


def _pad(x: np.ndarray, height: int, width: int, fill: int) -> np.ndarray:
    """`x` (H, W[, C]) padded at the bottom and right to at least height x width with `fill`."""
    h, w = x.shape[:2]
    if h >= height and w >= width:
        return x
    out = np.full((max(h, height), max(w, width), *x.shape[2:]), fill, x.dtype)
    out[:h, :w] = x
    return out


@dataclasses.dataclass(frozen=True)
class DensePhotoTransform:
    """A record's example {'image': photo, 'segmentation' / 'instances': maps, 'boxes',
    'classes'} -> fixed-size arrays (module docstring). Picklable, for Grain worker processes."""

    image_size: int
    eval_size: int
    random_resized_crop: bool
    max_boxes: int = 0

    def _decode(self, example: dict) -> tuple[Image.Image, dict[str, np.ndarray]]:
        image = decode_rgb(example["image"])
        targets = {k: decode_map(example[k]) for k in DENSE_TARGETS if k in example}
        for k, v in targets.items():
            if v.shape != (image.height, image.width):
                raise ValueError(f"{k} is {v.shape[1]}x{v.shape[0]} but the photo "
                                 f"{image.width}x{image.height}")
        if "boxes" in example:  # and the per-box arrays: a batch of one for settle_boxes
            targets.update({k: v[None] for k, v in
                            pad_box_targets(example, self.max_boxes).items()})
        return image, targets

    def _move(self, image: Image.Image, targets: dict, scale: tuple[float, float],
              size: tuple[int, int], crop: tuple[int, int, int, int] | None,
              offset: tuple[int, int], out: int) -> dict[str, np.ndarray]:
        """Crop `crop` (left, top, w, h) of the photo (None: all of it), resize to `size`
        (w, h), pad to `out` and take the out x out window at `offset` (x, y)."""
        if crop is not None:
            left, top, w, h = crop
            image = image.crop((left, top, left + w, top + h))
        if image.size != size:
            image = image.resize(size, Image.Resampling.BILINEAR)
        x0, y0 = offset
        result = {"image": _pad(np.asarray(image, np.uint8), out, out, 0)[y0:y0 + out, x0:x0 + out]}
        for key in DENSE_TARGETS:
            if key in targets:
                m = targets[key]
                if crop is not None:
                    m = m[top:top + h, left:left + w]
                m = _pad(_resize_map(np.ascontiguousarray(m), size), out, out, fill_value(key))
                result[key] = m[y0:y0 + out, x0:x0 + out]
        if "boxes" in targets:
            shift = np.array(crop[:2] if crop is not None else (0, 0), np.float32)
            moved = (targets["boxes"] - np.tile(shift, 2)) * np.tile(np.float32(scale), 2)
            moved -= np.tile(np.float32(offset), 2)
            boxed = {k: targets[k] for k in (*BOX_TARGETS, *PER_BOX) if k in targets}
            settled = settle_boxes(boxed | ({"instances": result["instances"][None]}
                                            if "instances" in result else {}), moved, out, out)
            result.update({k: v[0] for k, v in settled.items()})
        return result

    def train_example(self, example: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
        image, targets = self._decode(example)
        s = self.image_size
        if self.random_resized_crop:
            left, top, w, h = random_resized_crop_box(image.width, image.height, rng)
            return self._move(image, targets, (s / w, s / h), (s, s), (left, top, w, h), (0, 0), s)
        factor = rng.uniform(*SCALE_RANGE)
        size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
        y0 = int(rng.integers(0, max(size[1], s) - s + 1))
        x0 = int(rng.integers(0, max(size[0], s) - s + 1))
        scale = (size[0] / image.width, size[1] / image.height)
        return self._move(image, targets, scale, size, None, (x0, y0), s)

    def eval_example(self, example: dict) -> dict[str, np.ndarray]:
        image, targets = self._decode(example)
        e = self.eval_size
        factor = min(1.0, e / max(image.width, image.height))
        size = (min(e, math.floor(image.width * factor + 0.5)),
                min(e, math.floor(image.height * factor + 0.5)))
        scale = (size[0] / image.width, size[1] / image.height)
        return self._move(image, targets, scale, size, None, (0, 0), e)

    def cache_example(self, example: dict) -> dict:
        """What `data.cache=True` keeps: the decoded photo and maps, untouched (so cached and
        uncached batches are the same)."""
        out = dict(example)
        out["image"] = np.asarray(decode_rgb(example["image"]), np.uint8)
        out.update({k: decode_map(example[k]) for k in DENSE_TARGETS if k in example})
        return out


AnyPhotoTransform = PhotoTransform | DensePhotoTransform  # what the pipeline maps photos through
