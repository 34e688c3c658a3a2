"""What a batch carries besides its input, and the box arithmetic every geometric op shares.

Every batch is a dict of numpy arrays, batch-major. The model's input is `image` (uint8 (N, H, W,
C)), or for datasets of clips `clip` (uint8 (N, T, H, W, C); `DatasetSpec.input_key` names it).
Beside it a dataset carries some of these targets (`DatasetSpec.targets` lists them):

    label         int32 (N,)               the class of the image or clip (classification)
    segmentation  uint8 (N, H, W)          the class of every pixel, 0 = background, IGNORE (255)
                                           where a pixel must not count (void borders, the
                                           anti-aliased rim of a digit, where a warp left the image)
    boxes         float32 (N, max_boxes, 4) xyxy in pixels of the (augmented) image
    classes       int32 (N, max_boxes)     object class 0..K-1 of each box (background is not one)
    box_mask      bool (N, max_boxes)      True for real boxes; padding rows are zeros and False
    difficult     bool (N, max_boxes)      Pascal VOC's `difficult` flag of each box (False on
                                           padding): VOC's evaluation neither rewards nor
                                           penalises detections of these (Everingham et al. 2010)
    crowd         bool (N, max_boxes)      COCO's `iscrowd` of each box (False on padding): one
                                           box around a crowd of objects, which COCO's
                                           evaluation matches without counting (Lin et al. 2014)
    instances     uint8 (N, H, W)          0 = no object, i + 1 = the object of box row i
    saliency      float32 (N, H, W)        the fixation density in [0, 1] (its peak scaled to 1;
                                           the pixel losses' range), 0 where nobody looks
    fixations     uint8 (N, H, W)          1 where a fixation landed, 0 elsewhere

Evaluation batches add `mask` (bool (N,), False on the padded examples of the last batch).

Box coordinates follow COCO and torchvision: pixel (row r, column c) covers [c, c + 1) x
[r, r + 1), so the tight box of a set of pixels is (min c, min r, max c + 1, max r + 1) and a flip
of an image W wide maps x to W - x exactly. After a geometric op a box is clipped to the image; it
becomes padding (box_mask False, zeros, its `instances` pixels set to 0) when its visible area is
below `MIN_VISIBLE_FRACTION` of its area before clipping or below `MIN_BOX_AREA` square pixels: a
digit or an object with less than a quarter of it in view is no longer a fair target. Its pixels
stay in `segmentation`, which describes what is visible, not what is detectable.

Per-pixel maps move with the image's geometry by nearest neighbour (`MAP_TARGETS`), `saliency`
too: crops and flips move every map exactly; a warp resamples the density without renormalising
it (its peak may fall below 1) and may drop or repeat a fixation pixel.
"""

from __future__ import annotations

import numpy as np

IGNORE = 255  # segmentation value of pixels that do not count (PyTorch's ignore_index convention)

DENSE_TARGETS = ("segmentation", "instances", "fixations")  # uint8 per-pixel maps (PNG when stored)
MAP_TARGETS = (*DENSE_TARGETS, "saliency")  # every per-pixel map, moved by nearest neighbour
BOX_TARGETS = ("boxes", "classes", "box_mask")
BOX_FLAGS = ("difficult", "crowd")  # per-box bools beside the boxes, False on padding rows
PER_BOX = ("classes", *BOX_FLAGS)  # per-box arrays that stored examples hold beside 'boxes'
# in image coordinates: geometry moves them
SPATIAL_TARGETS = ("segmentation", "boxes", "instances", "saliency", "fixations")
TARGET_KEYS = ("label", "segmentation", "boxes", "classes", "box_mask", "difficult", "crowd",
               "instances", "saliency", "fixations")
DETECTION_TARGETS = ("segmentation", "boxes", "classes", "box_mask", "instances")
SALIENCY_TARGETS = ("saliency", "fixations")

MIN_VISIBLE_FRACTION = 0.25  # a clipped box keeps at least this fraction of its area, or is dropped
MIN_BOX_AREA = 1.0  # and at least this many square pixels


def fill_value(key: str) -> int:
    """What a per-pixel target holds where an op leaves the image: IGNORE for segmentation
    (unknown class), 0 for the others (no object, nobody looks, no fixation)."""
    return IGNORE if key == "segmentation" else 0


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Areas (...,) of xyxy boxes (..., 4); 0 for empty or inverted boxes."""
    w = np.maximum(boxes[..., 2] - boxes[..., 0], 0)
    h = np.maximum(boxes[..., 3] - boxes[..., 1], 0)
    return w * h


def tight_boxes(instances: np.ndarray, max_boxes: int) -> tuple[np.ndarray, np.ndarray]:
    """(boxes float32 (N, max_boxes, 4), present bool (N, max_boxes)): the tight box of the pixels
    of each instance id i + 1 of the maps (N, H, W); ids above max_boxes are ignored."""
    n, h, w = instances.shape
    boxes = np.zeros((n, max_boxes, 4), np.float32)
    present = np.zeros((n, max_boxes), bool)
    top = min(int(instances.max(initial=0)), max_boxes)
    for i in range(top):  # one pass per id: the ids of a batch are few
        pixels = instances == i + 1
        cols, rows = pixels.any(axis=1), pixels.any(axis=2)  # (N, W), (N, H)
        present[:, i] = cols.any(axis=1)
        x1, y1 = w - cols[:, ::-1].argmax(axis=1), h - rows[:, ::-1].argmax(axis=1)
        boxes[:, i] = np.stack([cols.argmax(axis=1), rows.argmax(axis=1), x1, y1], -1)
    boxes[~present] = 0
    return boxes, present


def keep_instances(instances: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """`instances` (N, H, W) with the pixels of each id i + 1 whose keep[:, i] is False set to 0."""
    n, m = keep.shape
    lut = np.concatenate([np.zeros((n, 1), instances.dtype),
                          np.where(keep, np.arange(1, m + 1, dtype=instances.dtype), 0)], axis=1)
    ids = np.minimum(instances, m).reshape(n, -1).astype(np.intp)
    return np.take_along_axis(lut, ids, axis=1).reshape(instances.shape)


def settle_boxes(targets: dict[str, np.ndarray], moved: np.ndarray, height: int, width: int,
                 reference_area: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """`targets` with `boxes` replaced by `moved` (N, M, 4) clipped to the H x W image; rows whose
    visible area falls below MIN_VISIBLE_FRACTION of `reference_area` (default: the area of
    `moved` before clipping) or below MIN_BOX_AREA become padding (module docstring)."""
    out = dict(targets)
    before = box_area(moved) if reference_area is None else reference_area
    clipped = np.empty_like(moved, dtype=np.float32)
    np.clip(moved[..., 0::2], 0, width, out=clipped[..., 0::2])
    np.clip(moved[..., 1::2], 0, height, out=clipped[..., 1::2])
    after = box_area(clipped)
    keep = (np.asarray(targets["box_mask"], bool) & (after >= MIN_BOX_AREA)
            & (after >= MIN_VISIBLE_FRACTION * before))
    out["boxes"] = np.where(keep[..., None], clipped, np.float32(0))
    out["box_mask"] = keep
    if "classes" in out:
        out["classes"] = np.where(keep, out["classes"], 0).astype(np.int32)
    for key in BOX_FLAGS:
        if key in out:
            out[key] = np.asarray(out[key], bool) & keep
    if "instances" in out and not keep.all():
        out["instances"] = keep_instances(out["instances"], keep)
    return out


def pad_boxes(boxes: np.ndarray, classes: np.ndarray,
              max_boxes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One example's k boxes (k, 4) and classes (k,) -> padded (max_boxes, 4) float32,
    (max_boxes,) int32 and the mask (max_boxes,) bool (True for the k real rows)."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    k = len(boxes)
    if k > max_boxes:
        raise ValueError(f"an example has {k} boxes, more than max_boxes={max_boxes}")
    out_boxes = np.zeros((max_boxes, 4), np.float32)
    out_classes = np.zeros((max_boxes,), np.int32)
    out_boxes[:k] = boxes
    out_classes[:k] = np.asarray(classes).reshape(-1)
    return out_boxes, out_classes, np.arange(max_boxes) < k


def pad_box_targets(example: dict, max_boxes: int) -> dict[str, np.ndarray]:
    """One stored example's ragged 'boxes' (k, 4), 'classes' (k,) and per-box flags
    ('difficult', 'crowd' when it has them) -> their padded arrays and 'box_mask' (batch
    contract: max_boxes rows, padding zeros and False)."""
    boxes, classes, mask = pad_boxes(example["boxes"], example["classes"], max_boxes)
    out = {"boxes": boxes, "classes": classes, "box_mask": mask}
    k = int(mask.sum())
    for key in BOX_FLAGS:
        if key in example:
            flag = np.zeros((max_boxes,), bool)
            flag[:k] = np.asarray(example[key], bool).reshape(-1)
            out[key] = flag
    return out
