"""Readers of local datasets with per-pixel ground truth, for offline import: examples as dicts
of arrays (or encoded bytes) that cnn_jax.data.writer stores.

  * nuclei_dsb2018 (shared/data/nuclei_dsb2018.npz: `image` (512, 512) uint16 fluorescence
    0..235 and `instance_mask` (512, 512) uint16, one id per nucleus; the 2018 Data Science Bowl,
    Caicedo et al. 2019): one image split spatially. Training examples are the NUCLEI_TILE
    square tiles at stride TRAIN_STRIDE that lie in the left half (columns 0..255); test
    examples are the tiles that cover the right half (columns 256..511) exactly once, so metrics
    summed over the test tiles are the metrics of the right half. Each tile gets its nuclei
    (the parts inside it) renumbered 1..k, their tight boxes, class 0 ('nucleus') and the
    foreground mask (segmentation 1 on nuclei). Intensities are stored as uint8 unchanged.
  * voc2012_segmentation, a local copy of Pascal VOC 2012 (Everingham et al. 2010) laid out as
    distributed:

        VOCdevkit/VOC2012/JPEGImages/<id>.jpg
        VOCdevkit/VOC2012/SegmentationClass/<id>.png           palette PNG, 255 = void
        VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val}.txt

    (`--from` may name VOCdevkit/VOC2012, VOCdevkit or the folder holding it). With SBD's
    augmented training set (Hariharan et al. 2011) as DeepLab prepares it, i.e. also

        VOCdevkit/VOC2012/SegmentationClassAug/<id>.png        grey or palette PNG of class ids
        VOCdevkit/VOC2012/ImageSets/Segmentation/train_aug.txt  one id per line

    the train split is train_aug (10,582 ids; any id of val.txt is left out) with the masks of
    SegmentationClassAug; validation is always val.txt. Photos are kept as their JPEG bytes;
    masks are decoded to class indices (palette indices, 255 kept as void) and stored as grey
    PNGs, so any PNG reader gets the class ids back.

`DenseData` is what every reader of a dataset with targets gives the importer, these and those
of cnn_jax.data.detection_formats and cnn_jax.data.saliency_formats.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from cnn_jax.data import formats
from cnn_jax.data.catalog import NUCLEI_TILE
from cnn_jax.data.photo_targets import decode_map
from cnn_jax.data.targets import IGNORE, tight_boxes
from cnn_jax.data.writer import encode_png
from cnn_jax.errors import DataImportError

TRAIN_STRIDE = 32  # nuclei training tiles overlap by 3/4: 13 x 5 = 65 tiles of the left half
VOC_LAYOUT = ("VOCdevkit/VOC2012/{JPEGImages/<id>.jpg, SegmentationClass/<id>.png, "
              "ImageSets/Segmentation/{train,val}.txt}")


@dataclasses.dataclass
class DenseData:
    """The examples of every split of a local copy, before they are written (a list, or an
    iterable that reads them as the writer asks: `formats.stream_map`)."""

    splits: dict[str, Iterable[dict]]
    source_format: str
    notes: list[str] = dataclasses.field(default_factory=list)


# --------------------------------------------------------------------------------------------
# 2018 Data Science Bowl nuclei
# --------------------------------------------------------------------------------------------


def nuclei_tile_origins(height: int, width: int, split: str) -> list[tuple[int, int]]:
    """(top, left) of the tiles of `split`: 'train' tiles at TRAIN_STRIDE inside columns
    [0, width/2), 'test' tiles side by side covering columns [width/2, width)."""
    t, half = NUCLEI_TILE, width // 2
    if split == "train":
        return [(y, x) for y in range(0, height - t + 1, TRAIN_STRIDE)
                for x in range(0, half - t + 1, TRAIN_STRIDE)]
    return [(y, x) for y in range(0, height - t + 1, t) for x in range(half, width - t + 1, t)]


def nuclei_tile(image: np.ndarray, instances: np.ndarray, top: int, left: int,
                max_boxes: int) -> dict:
    """One tile's example: image (T, T, 1), segmentation, instances renumbered 1..k in the order
    of the original ids, boxes (k, 4) and classes (k,) (all 0: 'nucleus')."""
    t = NUCLEI_TILE
    tile = instances[top:top + t, left:left + t]
    ids, renumbered = np.unique(tile, return_inverse=True)  # ids[0] == 0 when background shows
    renumbered = renumbered.reshape(tile.shape) + (0 if ids[0] == 0 else 1)
    k = len(ids) - (ids[0] == 0)
    if k > max_boxes:
        raise DataImportError(f"a {t}x{t} tile holds {k} nuclei, more than max_boxes={max_boxes}")
    renumbered = renumbered.astype(np.uint8)
    boxes, _ = tight_boxes(renumbered[None], max(k, 1))
    return {"image": image[top:top + t, left:left + t, None],
            "segmentation": (renumbered > 0).astype(np.uint8), "instances": renumbered,
            "boxes": boxes[0, :k], "classes": np.zeros((k,), np.int64)}


def read_nuclei(path: Path, max_boxes: int) -> DenseData:
    """The nuclei_dsb2018 .npz (or a folder holding it) -> train and test tiles."""
    if path.is_dir():
        path = path / "nuclei_dsb2018.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            image, instances = z["image"], z["instance_mask"]
    except (OSError, KeyError, ValueError) as e:
        raise DataImportError(f"cannot read {path} ({type(e).__name__}: {e}): pass shared/data/"
                              f"nuclei_dsb2018.npz (arrays 'image', 'instance_mask')") from None
    if image.shape != instances.shape or image.ndim != 2 or image.shape[1] < 2 * NUCLEI_TILE:
        raise DataImportError(f"{path}: image {image.shape} and instance_mask {instances.shape} "
                              f"must be one 2-D image at least {2 * NUCLEI_TILE} wide")
    if image.max() > 255:
        raise DataImportError(f"{path}: intensities reach {image.max()}, above the 8 bits this "
                              f"import stores unchanged: is this the stardist sample image?")
    image = image.astype(np.uint8)
    splits = {split: [nuclei_tile(image, instances, y, x, max_boxes)
                      for y, x in nuclei_tile_origins(*image.shape, split)]
              for split in ("train", "test")}
    return DenseData(splits, "nuclei .npz (image + instance mask)",
                     [f"left half (columns 0-{image.shape[1] // 2 - 1}) tiled for training, "
                      f"right half for testing"])


# --------------------------------------------------------------------------------------------
# Pascal VOC 2012 segmentation
# --------------------------------------------------------------------------------------------


def _voc_root(path: Path) -> Path:
    for root in (path, path / "VOC2012", path / "VOCdevkit" / "VOC2012"):
        if (root / "ImageSets" / "Segmentation").is_dir() and (root / "JPEGImages").is_dir():
            return root
    raise DataImportError(f"{path} is not a VOC 2012 copy: expected {VOC_LAYOUT}")


def _ids(file: Path) -> list[str]:
    if not file.is_file():
        raise DataImportError(f"{file} is missing: expected {VOC_LAYOUT}")
    return [line.split()[0] for line in file.read_text().splitlines() if line.strip()]


def _voc_example(root: Path, masks: str, image_id: str) -> dict:
    jpeg, png = root / "JPEGImages" / f"{image_id}.jpg", root / masks / f"{image_id}.png"
    try:
        mask = decode_map(png)
        with Image.open(jpeg) as photo:
            size = photo.size
        data = jpeg.read_bytes()
    except (OSError, ValueError) as e:
        raise DataImportError(f"cannot read VOC image {image_id} ({e}): the copy is incomplete "
                              f"or damaged") from None
    if size != (mask.shape[1], mask.shape[0]):
        raise DataImportError(f"VOC image {image_id} is {size[0]}x{size[1]} but its mask "
                              f"{mask.shape[1]}x{mask.shape[0]}")
    bad = np.setdiff1d(np.unique(mask), [*range(21), IGNORE])
    if len(bad):
        raise DataImportError(f"VOC mask {png} holds values {bad[:5].tolist()}: expected class "
                              f"ids 0-20 and 255 (void)")
    return {"image": data, "segmentation": encode_png(mask)}


def read_voc(path: Path) -> DenseData:
    """A VOC 2012 copy -> train (or train_aug) and validation examples (module docstring)."""
    root = _voc_root(path)
    sets = root / "ImageSets" / "Segmentation"
    val = _ids(sets / "val.txt")
    notes = []
    if (sets / "train_aug.txt").is_file() and (root / "SegmentationClassAug").is_dir():
        held = set(val)
        aug = _ids(sets / "train_aug.txt")
        train = [i for i in aug if i not in held]
        train_masks = "SegmentationClassAug"
        left_out = f"; {len(aug) - len(train)} val ids left out" if len(train) < len(aug) else ""
        notes.append(f"train = SBD train_aug ({len(train)} ids{left_out})")
    else:
        train, train_masks = _ids(sets / "train.txt"), "SegmentationClass"
    splits = {"train": formats.parallel_map(lambda i: _voc_example(root, train_masks, i),
                                            train, chunk=64),
              "validation": formats.parallel_map(
                  lambda i: _voc_example(root, "SegmentationClass", i), val, chunk=64)}
    return DenseData(splits, "VOC 2012 folder (JPEG + palette PNG masks)", notes)
