"""Per-image transforms for photographs of varying size (ImageNet-style datasets), with PIL.

The evaluation and training crops of the classic ImageNet papers, at one fixed output size:

  * `eval_image`: resize the shorter side to `eval_resize` (256), then take the central
    `image_size` (224) square: the single-crop evaluation of ResNet (He et al. 2016, sec. 3.4 /
    Table 3 "224x224 crop ... shorter side resized to 256") and of the torchvision references.
    `eval_resize=0` resizes the shorter side straight to `image_size` (crop ratio 1).
  * `random_resized_crop`: the Inception crop (Szegedy et al. 2015, "Going deeper with
    convolutions", sec. 6: patches of 8%-100% of the image area with aspect ratio in [3/4, 4/3]),
    with torchvision's RandomResizedCrop semantics: ten attempts to draw an area fraction in
    `scale` and a log-uniform aspect ratio in `ratio` whose box fits the image; if none fits, the
    largest central box whose aspect ratio is clipped into `ratio`. The box is then resized to
    image_size x image_size.

Decoding converts every mode (grayscale L, CMYK, palette, RGBA, 16-bit) to 8-bit RGB. Resizing is
PIL's bilinear filter, which widens its support when it shrinks an image (antialiasing), as
torchvision does on PIL images. Every random number comes from the `np.random.Generator` the
caller passes in, so a crop is a pure function of (image, generator state).
"""

from __future__ import annotations

import dataclasses
import io
import math
import os

import numpy as np
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # per channel, [0,1] pixel units (the torchvision constants)
IMAGENET_STD = (0.229, 0.224, 0.225)
RRC_SCALE = (0.08, 1.0)  # area fraction (Szegedy et al. 2015, sec. 6)
RRC_RATIO = (3 / 4, 4 / 3)  # aspect ratio w/h
RRC_ATTEMPTS = 10

ImageInput = bytes | np.bytes_ | np.ndarray | str | os.PathLike | Image.Image


def decode_rgb(data: ImageInput) -> Image.Image:
    """An 8-bit RGB PIL image from encoded bytes, a file path, a uint8 array or a PIL image.

    Grayscale, CMYK, palette and alpha images are converted to RGB (alpha is dropped), as
    torchvision's ImageFolder loader does.
    """
    if isinstance(data, Image.Image):
        image = data
    elif isinstance(data, np.ndarray):
        image = Image.fromarray(data if data.ndim == 2 or data.shape[-1] != 1 else data[..., 0])
    else:
        source = io.BytesIO(data) if isinstance(data, bytes | np.bytes_) else os.fspath(data)
        with Image.open(source) as opened:
            opened.load()  # read the file now: the handle closes when this block ends
            image = opened
    if image.mode == "I;16" or image.mode == "I":
        # 16-bit grayscale PNG/TIFF: PIL's convert('RGB') would clip, not rescale.
        image = Image.fromarray((np.asarray(image, np.float64) / 257.0).round().astype(np.uint8))
    if image.mode == "RGB":
        return image
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # PIL warns when a palette with transparency goes to RGB
    return image.convert("RGB")


def shorter_side_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(width, height) after resizing the shorter side to `size`, the longer side in proportion
    and truncated (torchvision's Resize(int) rule): 500x375 -> (341, 256)."""
    if width <= height:
        return size, int(size * height / width)
    return int(size * width / height), size


def resize_shorter_side(image: Image.Image, size: int) -> Image.Image:
    """Resizes (bilinear, antialiased) so that the shorter side is `size` pixels."""
    target = shorter_side_size(image.width, image.height, size)
    if target == image.size:
        return image
    return image.resize(target, Image.Resampling.BILINEAR)


def center_crop_box(width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the central size x size square; offsets round((W-size)/2)."""
    if width < size or height < size:
        raise ValueError(f"cannot center-crop {size}x{size} from a {width}x{height} image")
    left = int(round((width - size) / 2.0))
    top = int(round((height - size) / 2.0))
    return left, top, left + size, top + size


def center_crop(image: Image.Image, size: int) -> Image.Image:
    """The central size x size square of `image` (which must be at least that large)."""
    box = center_crop_box(image.width, image.height, size)
    if box == (0, 0, image.width, image.height):
        return image
    return image.crop(box)


def random_resized_crop_box(width: int, height: int, rng: np.random.Generator,
                            scale: tuple[float, float] = RRC_SCALE,
                            ratio: tuple[float, float] = RRC_RATIO,
                            attempts: int = RRC_ATTEMPTS) -> tuple[int, int, int, int]:
    """(left, top, crop_width, crop_height) of an Inception-style random crop (module docstring).

    Each attempt draws an area fraction uniformly in `scale` and an aspect ratio w/h
    log-uniformly in `ratio`; the first box that fits is placed uniformly at random. After
    `attempts` misses: the whole image if its aspect ratio is inside `ratio`, else the largest
    central box with the nearest allowed ratio.
    """
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(attempts):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return left, top, w, h
    in_ratio = width / height
    if in_ratio < min(ratio):
        w = width
        h = int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        h = height
        w = int(round(h * max(ratio)))
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def random_resized_crop(image: Image.Image, size: int, rng: np.random.Generator,
                        scale: tuple[float, float] = RRC_SCALE,
                        ratio: tuple[float, float] = RRC_RATIO) -> Image.Image:
    """A random box of `image` (see `random_resized_crop_box`) resized to size x size."""
    left, top, w, h = random_resized_crop_box(image.width, image.height, rng, scale, ratio)
    # Crop, then resize (as torchvision does), not PIL's resize(box=...): that one lets the
    # filter read pixels outside the box, which changes the border rows of the output.
    crop = image.crop((left, top, left + w, top + h))
    if crop.size == (size, size):
        return crop
    return crop.resize((size, size), Image.Resampling.BILINEAR)


def eval_image(image: Image.Image, image_size: int, eval_resize: int) -> np.ndarray:
    """Resize shorter side to `eval_resize` (0: to `image_size`), center crop `image_size`."""
    resized = resize_shorter_side(image, eval_resize or image_size)
    return np.asarray(center_crop(resized, image_size), dtype=np.uint8)


@dataclasses.dataclass(frozen=True)
class PhotoTransform:
    """Encoded photo (or array) -> uint8 (image_size, image_size, 3), for training or evaluation.

    Picklable, so Grain worker processes can run it. Training uses `random_resized_crop` when
    switched on, else the evaluation crop (then only the batch ops of `data.augment`, such as the
    horizontal flip, vary the images).
    """

    image_size: int
    eval_resize: int
    random_resized_crop: bool

    def eval(self, data: ImageInput) -> np.ndarray:
        return eval_image(decode_rgb(data), self.image_size, self.eval_resize)

    def train(self, data: ImageInput, rng: np.random.Generator) -> np.ndarray:
        image = decode_rgb(data)
        if not self.random_resized_crop:
            return eval_image(image, self.image_size, self.eval_resize)
        return np.asarray(random_resized_crop(image, self.image_size, rng), dtype=np.uint8)

    def cache(self, data: ImageInput) -> np.ndarray:
        """What `data.cache=True` keeps in memory: the RGB image with its shorter side resized to
        the evaluation size, so `eval` on it gives exactly the uncached result."""
        resized = resize_shorter_side(decode_rgb(data), self.eval_resize or self.image_size)
        return np.asarray(resized, dtype=np.uint8)

    # The same on a record's example {'image': data, 'label': class}, as the pipeline reads it.

    def train_example(self, example: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {"image": self.train(example["image"], rng), "label": np.int32(example["label"])}

    def eval_example(self, example: dict) -> dict[str, np.ndarray]:
        return {"image": self.eval(example["image"]), "label": np.int32(example["label"])}

    def cache_example(self, example: dict) -> dict:
        return {"image": self.cache(example["image"]), "label": example["label"]}
