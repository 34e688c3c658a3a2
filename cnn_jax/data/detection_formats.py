"""Readers of object-detection datasets for offline import: photos (kept as their JPEG bytes,
of varying size) with boxes in the batch contract's convention (cnn_jax.data.targets: xyxy
floats, pixel (r, c) covering [c, c + 1) x [r, r + 1)), classes 0..K-1 and per-box flags.

  * voc2007_detection, voc2012_detection: Pascal VOC (Everingham et al. 2010) as distributed
    (`--from` may name VOCdevkit/VOC<year>, VOCdevkit or the folder holding it):

        VOCdevkit/VOC<year>/JPEGImages/<id>.jpg
        VOCdevkit/VOC<year>/Annotations/<id>.xml
        VOCdevkit/VOC<year>/ImageSets/Main/{trainval,test}.txt     (2007: VOCtest's too)
        VOCdevkit/VOC<year>/ImageSets/Main/{train,val}.txt         (2012)

    2007: train = trainval, test = test; 2012 (whose test annotations are not public): train =
    train, validation = val. Each <object>'s <bndbox> holds the 1-based first and last pixel,
    so its box is (xmin - 1, ymin - 1, xmax, ymax) (as Detectron2 reads VOC); `difficult` is
    its <difficult> (0 when absent); classes index VOC's 20 names.
  * coco2017: COCO 2017 (Lin et al. 2014) as distributed:

        annotations/instances_{train,val}2017.json
        {train,val}2017/<file_name>.jpg

    train = train2017, validation = val2017, every image (those without annotations too). A
    bbox [x, y, w, h] becomes (x, y, x + w, y + h) clipped to the image (as torchvision's COCO
    reference does), boxes of zero width or height are left out (counted in the import notes),
    `crowd` is iscrowd, category ids (1..90 with gaps) map to 0..79 in id order. Instance masks
    (polygons or RLE, decoded by pycocotools.mask) are painted into one `instances` map, box row
    i as i + 1, largest area first, so a smaller object that overlaps a larger one keeps its
    pixels and the overlap is lost to the larger.

An image with more objects than the catalogue's max_boxes is an import error: the standard
copies stay below it.
"""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
from PIL import Image

from cnn_jax.data import formats
from cnn_jax.data.catalog import DatasetSpec
from cnn_jax.data.dense_formats import DenseData
from cnn_jax.errors import DataImportError

VOC_DETECTION_LAYOUT = ("VOCdevkit/VOC{year}/{{JPEGImages/<id>.jpg, Annotations/<id>.xml, "
                        "ImageSets/Main/{sets}.txt}}")
COCO_LAYOUT = "COCO/{annotations/instances_{train,val}2017.json, {train,val}2017/<id>.jpg}"
VOC_SPLITS = {"2007": (("train", "trainval"), ("test", "test")),
              "2012": (("train", "train"), ("validation", "val"))}


def _too_many(spec: DatasetSpec, what: str, count: int) -> DataImportError:
    return DataImportError(f"{what} holds {count} objects, more than max_boxes="
                           f"{spec.max_boxes} of {spec.name} (the standard copies hold fewer): "
                           f"check the copy, or raise {spec.name}'s max_boxes in "
                           f"cnn_jax/data/catalog.py")


def _size(jpeg: bytes) -> tuple[int, int]:
    """(width, height) of JPEG bytes (its header only)."""
    with Image.open(io.BytesIO(jpeg)) as photo:
        return photo.size


# --------------------------------------------------------------------------------------------
# Pascal VOC
# --------------------------------------------------------------------------------------------


def voc_objects(xml: str | bytes, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The objects of one VOC annotation: boxes float32 (k, 4) in the contract's convention,
    classes int64 (k,) (index into `names`), difficult bool (k,)."""
    boxes, classes, difficult = [], [], []
    for obj in ElementTree.fromstring(xml).iter("object"):
        name = obj.findtext("name", "").strip()
        if name not in names:
            raise ValueError(f"object class {name!r} is not one of VOC's 20")
        box = obj.find("bndbox")
        x0, y0, x1, y1 = (float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        boxes.append((x0 - 1, y0 - 1, x1, y1))  # 1-based first and last pixel -> edges
        classes.append(names.index(name))
        difficult.append(int(obj.findtext("difficult", "0").strip() or 0) == 1)
    return {"boxes": np.asarray(boxes, np.float32).reshape(-1, 4),
            "classes": np.asarray(classes, np.int64), "difficult": np.asarray(difficult, bool)}


def _voc_root(path: Path, year: str, sets: tuple[str, ...]) -> Path:
    for root in (path, path / f"VOC{year}", path / "VOCdevkit" / f"VOC{year}"):
        if (root / "Annotations").is_dir() and (root / "JPEGImages").is_dir():
            return root
    layout = VOC_DETECTION_LAYOUT.format(year=year, sets="{" + ",".join(sets) + "}")
    raise DataImportError(f"{path} is not a VOC {year} copy: expected {layout}")


def _voc_example(root: Path, image_id: str, spec: DatasetSpec) -> dict:
    try:
        objects = voc_objects((root / "Annotations" / f"{image_id}.xml").read_bytes(),
                              spec.label_names[1:])
        jpeg = (root / "JPEGImages" / f"{image_id}.jpg").read_bytes()
        width, height = _size(jpeg)
    except (OSError, ValueError, AttributeError, ElementTree.ParseError) as e:
        raise DataImportError(f"cannot read VOC image {image_id} ({e}): the copy is incomplete "
                              f"or damaged") from None
    if len(objects["boxes"]) > spec.max_boxes:
        raise _too_many(spec, f"VOC image {image_id}", len(objects["boxes"]))
    boxes = objects["boxes"]
    np.clip(boxes[:, 0::2], 0, width, out=boxes[:, 0::2])
    np.clip(boxes[:, 1::2], 0, height, out=boxes[:, 1::2])
    return {"image": jpeg, **objects}


def read_voc_detection(spec: DatasetSpec, path: Path) -> DenseData:
    """A VOC 2007 or 2012 copy -> the splits of `spec` (module docstring)."""
    year = spec.name[3:7]
    sets = VOC_SPLITS[year]
    root = _voc_root(path, year, tuple(s for _, s in sets))
    splits = {}
    for split, image_set in sets:
        listing = root / "ImageSets" / "Main" / f"{image_set}.txt"
        if not listing.is_file():
            layout = VOC_DETECTION_LAYOUT.format(year=year, sets=image_set)
            raise DataImportError(f"{listing} is missing: expected {layout}")
        ids = [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]
        splits[split] = formats.stream_map(lambda i: _voc_example(root, i, spec), ids)
    return DenseData(splits, f"VOC {year} folder (JPEG + XML annotations)")


# --------------------------------------------------------------------------------------------
# COCO
# --------------------------------------------------------------------------------------------


def coco_instances(annotations: list[dict], height: int, width: int) -> np.ndarray:
    """uint8 (height, width): annotation i's mask (polygons or RLE) painted as i + 1, largest
    area first (module docstring)."""
    try:
        from pycocotools import mask as mask_utils  # the one decoder of COCO's RLE masks
    except ImportError:
        raise DataImportError("importing COCO masks needs pycocotools: run `pip install "
                              "pycocotools`") from None
    out = np.zeros((height, width), np.uint8)
    order = sorted(range(len(annotations)), key=lambda i: -float(annotations[i].get("area", 0)))
    for i in order:
        segmentation = annotations[i].get("segmentation")
        if not segmentation:
            continue
        if isinstance(segmentation, list):  # polygons
            rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
        elif isinstance(segmentation["counts"], list):  # uncompressed RLE (crowds)
            rle = mask_utils.frPyObjects(segmentation, height, width)
        else:
            rle = segmentation
        out[mask_utils.decode(rle).astype(bool)] = i + 1
    return out


def coco_objects(annotations: list[dict], categories: dict[int, int], height: int,
                 width: int) -> dict[str, np.ndarray]:
    """The annotations of one image (those of zero width or height left out) -> boxes float32
    (k, 4) xyxy clipped to the image, classes int64 (k,), crowd bool (k,), instances uint8."""
    kept = [a for a in annotations if a["bbox"][2] > 0 and a["bbox"][3] > 0]
    xywh = np.asarray([a["bbox"] for a in kept], np.float64).reshape(-1, 4)
    boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    np.clip(boxes[:, 0::2], 0, width, out=boxes[:, 0::2])
    np.clip(boxes[:, 1::2], 0, height, out=boxes[:, 1::2])
    return {"boxes": boxes.astype(np.float32),
            "classes": np.asarray([categories[a["category_id"]] for a in kept], np.int64),
            "crowd": np.asarray([bool(a.get("iscrowd", 0)) for a in kept], bool),
            "instances": coco_instances(kept, height, width)}


def _coco_json(root: Path, year_split: str, spec: DatasetSpec) -> tuple[list, dict, dict]:
    """(images, annotations by image id, category id -> class) of instances_<split>.json."""
    file = root / "annotations" / f"instances_{year_split}.json"
    try:
        data = json.loads(file.read_text())
        names = [c["name"] for c in sorted(data["categories"], key=lambda c: c["id"])]
        by_image: dict[int, list] = {}
        for a in data["annotations"]:
            by_image.setdefault(a["image_id"], []).append(a)
        images = data["images"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataImportError(f"cannot read {file} ({type(e).__name__}: {e}): expected "
                              f"{COCO_LAYOUT}") from None
    if tuple(names) != spec.label_names[1:]:
        raise DataImportError(f"{file} has {len(names)} categories that are not COCO 2017's 80 "
                              f"(first: {names[:3]}): is this COCO 2017?")
    categories = {c["id"]: names.index(c["name"]) for c in data["categories"]}
    return images, by_image, categories


def _coco_example(root: Path, year_split: str, image: dict, annotations: list,
                  categories: dict, spec: DatasetSpec) -> dict:
    what = f"COCO image {image.get('file_name')}"
    try:
        jpeg = (root / year_split / image["file_name"]).read_bytes()
        size = _size(jpeg)
    except (OSError, ValueError) as e:
        raise DataImportError(f"cannot read {what} ({e}): expected {COCO_LAYOUT}") from None
    if size != (image["width"], image["height"]):
        raise DataImportError(f"{what} is {size[0]}x{size[1]} but its annotation says "
                              f"{image['width']}x{image['height']}")
    objects = coco_objects(annotations, categories, image["height"], image["width"])
    if len(objects["boxes"]) > spec.max_boxes:
        raise _too_many(spec, what, len(objects["boxes"]))
    return {"image": jpeg, **objects}


def read_coco(spec: DatasetSpec, path: Path) -> DenseData:
    """A COCO 2017 copy -> train and validation examples (module docstring)."""
    root = next((r for r in (path, path / "coco", path / "COCO")
                 if (r / "annotations").is_dir()), None)
    if root is None:
        raise DataImportError(f"{path} is not a COCO 2017 copy: expected {COCO_LAYOUT}")
    splits, notes = {}, []
    for split, year_split in (("train", "train2017"), ("validation", "val2017")):
        images, by_image, categories = _coco_json(root, year_split, spec)
        empty = sum(not (a["bbox"][2] > 0 and a["bbox"][3] > 0)
                    for annotations in by_image.values() for a in annotations)
        if empty:
            notes.append(f"{empty} {year_split} boxes of zero width or height left out")
        splits[split] = formats.stream_map(
            lambda im, y=year_split, a=by_image, c=categories: _coco_example(
                root, y, im, a.get(im["id"], []), c, spec), images, block=256)
    return DenseData(splits, "COCO 2017 folder (JPEG + instances JSON)", notes)
