"""Object detection metrics: COCO's twelve summary statistics and Pascal VOC's average precision.

COCO (Lin et al. 2014; the evaluation defined by the COCO API's `cocoeval.py` and described at
cocodataset.org/#detection-eval): AP averaged over the IoU thresholds 0.50:0.05:0.95, 101 recall
points and the categories, AP at IoU 0.50 and 0.75, AP of small (area < 32^2), medium
(32^2 <= area < 96^2) and large objects, and the average recall given 1, 10 and 100 detections per
image. The matching and accumulation are not re-implemented here: `coco_evaluate` adapts cnn_jax's
predictions to an engine's in-memory COCO objects (faster-coco-eval by default, pycocotools on
request) and reads the statistics from the engine's accumulated precision and recall arrays.

Pascal VOC (Everingham et al. 2010, §4.2): detections of a class ranked by score, each matched
greedily to the ground truth it overlaps most; AP is the VOC2007 11-point interpolated average or,
from VOC2010 on, the area under the monotone precision envelope.

Inputs follow torchmetrics' MeanAveragePrecision: one dict per image, `boxes` (n, 4) xyxy floats in
pixels, `labels` (n,), `scores` (n,) in predictions; optional `masks` (n, H, W), `iscrowd` (n,) and
`area` (n,) in targets. `from_padded` turns the fixed-shape outputs of a jitted step into that form.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np

ENGINES = ("faster_coco_eval", "pycocotools")


# ------------------------------------------------------------------------------------ inputs


def from_padded(boxes, labels, scores=None, *, counts=None, valid=None, masks=None,
                iscrowd=None) -> list[dict]:
    """Per-image dicts from padded batch arrays: boxes (B, max_n, 4), labels and scores (B, max_n),
    masks (B, max_n, H, W), iscrowd (B, max_n).

    The real rows of image b are either its first `counts[b]` rows or the rows where `valid[b]`
    (e.g. a `box_mask`) is true; give one of the two. Leave `scores` out for ground truth. Accepts
    numpy or jax arrays (they are copied to the host).
    """
    if (counts is None) == (valid is None):
        raise ValueError("from_padded needs exactly one of counts= (rows per image) or valid= "
                         "(a (B, max_n) mask of real rows)")
    boxes, labels = np.asarray(boxes), np.asarray(labels)
    if valid is not None:
        keep = np.asarray(valid).astype(bool)
    else:
        keep = np.arange(boxes.shape[1])[None, :] < np.asarray(counts).reshape(-1, 1)
    fields = {"boxes": boxes, "labels": labels, "scores": scores, "masks": masks,
              "iscrowd": iscrowd}
    fields = {name: np.asarray(value) for name, value in fields.items() if value is not None}
    return [{name: value[b][keep[b]] for name, value in fields.items()}
            for b in range(boxes.shape[0])]


# -------------------------------------------------------------------------------------- COCO


def _engine(name: str):
    """(COCO, COCOeval, mask module) of an engine, imported on first use."""
    if name == "faster_coco_eval":
        try:
            from faster_coco_eval import COCO, COCOeval_faster
            from faster_coco_eval.core import mask
        except ImportError:
            raise ImportError("COCO evaluation needs faster-coco-eval: pip install "
                              "'cnn-jax[detection]'") from None
        return COCO, COCOeval_faster, mask
    if name == "pycocotools":
        try:
            from pycocotools import mask
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval
        except ImportError:
            raise ImportError("engine='pycocotools' needs pycocotools: pip install "
                              "'cnn-jax[detection]'") from None
        return COCO, COCOeval, mask
    raise ValueError(f"unknown COCO engine {name!r}: use one of {', '.join(ENGINES)}")


def _rows(record: dict, key: str, n: int, default) -> np.ndarray:
    value = record.get(key)
    return np.full(n, default) if value is None else np.asarray(value).reshape(n)


def _encode(masks, mask_api) -> list[dict]:
    """COCO run-length encodings of (n, H, W) binary masks."""
    masks = np.asarray(masks)
    if masks.shape[0] == 0:
        return []
    return mask_api.encode(np.asfortranarray(np.moveaxis(masks > 0, 0, -1).astype(np.uint8)))


def _check(records: Sequence[dict], what: str, keys: tuple[str, ...]) -> None:
    for index, record in enumerate(records):
        missing = [key for key in keys if key not in record]
        if missing:
            raise ValueError(f"{what} {index} has no {', '.join(map(repr, missing))}: give every "
                             f"{what} the keys {', '.join(keys)}")


def _coco_inputs(targets, predictions, iou_type: str, mask_api) -> tuple[dict, list, np.ndarray]:
    """The ground-truth dataset dict, the segm detections (a list of dicts) and the bbox detections
    (rows of [image_id, x, y, w, h, score, category_id]) for the engine's COCO objects."""
    segm = iou_type == "segm"
    geometry = "masks" if segm else "boxes"
    _check(targets, "target", (geometry, "labels"))
    _check(predictions, "prediction", (geometry, "labels", "scores"))
    images, annotations, segm_detections, box_rows, categories = [], [], [], [], set()
    for index, (target, prediction) in enumerate(zip(targets, predictions, strict=True)):
        image_id = index + 1
        image = {"id": image_id}
        if segm:
            # The engines rasterise nothing: the image size only labels the encodings.
            height, width = np.asarray(target["masks"]).shape[-2:]
            image.update(height=int(height), width=int(width))
        images.append(image)

        labels = np.asarray(target["labels"]).reshape(-1).astype(np.int64)
        n = labels.shape[0]
        crowd = _rows(target, "iscrowd", n, 0).astype(np.int64)
        if segm:
            rles = _encode(target["masks"], mask_api)
            geometries = [mask_api.toBbox(rle).tolist() for rle in rles]
            own_areas = [float(mask_api.area(rle)) for rle in rles]
        else:
            b = np.asarray(target["boxes"], dtype=np.float64).reshape(n, 4)
            geometries = np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1)
            own_areas = (geometries[:, 2] * geometries[:, 3]).tolist()
            geometries = geometries.tolist()
        areas = own_areas if target.get("area") is None else _rows(target, "area", n, 0.0).tolist()
        for j in range(n):
            annotation = {"id": len(annotations) + 1, "image_id": image_id,
                          "category_id": int(labels[j]), "bbox": geometries[j],
                          "area": float(areas[j]), "iscrowd": int(crowd[j])}
            if segm:
                annotation["segmentation"] = rles[j]
            annotations.append(annotation)
        categories.update(labels.tolist())

        labels = np.asarray(prediction["labels"]).reshape(-1).astype(np.int64)
        scores = np.asarray(prediction["scores"], dtype=np.float64).reshape(-1)
        categories.update(labels.tolist())
        if segm:
            for rle, score, label in zip(_encode(prediction["masks"], mask_api), scores, labels,
                                         strict=True):
                segm_detections.append({"image_id": image_id, "category_id": int(label),
                                        "segmentation": rle, "score": float(score)})
        else:
            b = np.asarray(prediction["boxes"], dtype=np.float64).reshape(-1, 4)
            box_rows.append(np.stack([np.full(len(b), image_id), b[:, 0], b[:, 1],
                                      b[:, 2] - b[:, 0], b[:, 3] - b[:, 1], scores, labels], 1))
    dataset = {"images": images, "annotations": annotations,
               "categories": [{"id": c, "name": str(c)} for c in sorted(categories)]}
    rows = np.concatenate(box_rows) if box_rows else np.zeros((0, 7))
    return dataset, segm_detections, rows


def _summary(precision: np.ndarray, recall: np.ndarray, params, max_detections) -> dict:
    """The twelve statistics from accumulated arrays: precision [T, R, K, A, M] and recall
    [T, K, A, M] over IoU thresholds, recall points, categories, area ranges and maxDets, each the
    mean of the entries that are defined (> -1), -1 when none is (cocoeval.py's summarize)."""
    def mean(values: np.ndarray) -> float:
        defined = values[values > -1]
        return float(np.mean(defined)) if defined.size else -1.0

    thresholds = np.asarray(params.iouThrs)
    at50, at75 = (np.flatnonzero(np.isclose(thresholds, t)) for t in (0.5, 0.75))
    area = {label: i for i, label in enumerate(params.areaRngLbl)}
    last = len(max_detections) - 1
    stats = {"AP": mean(precision[:, :, :, area["all"], last]),
             "AP50": mean(precision[at50][:, :, :, area["all"], last]),
             "AP75": mean(precision[at75][:, :, :, area["all"], last])}
    for size in ("small", "medium", "large"):
        stats[f"AP_{size}"] = mean(precision[:, :, :, area[size], last])
    for m, limit in enumerate(max_detections):
        stats[f"AR{limit}"] = mean(recall[:, :, area["all"], m])
    for size in ("small", "medium", "large"):
        stats[f"AR_{size}"] = mean(recall[:, :, area[size], last])
    return stats


def coco_evaluate(targets: Sequence[dict], predictions: Sequence[dict], iou_type: str = "bbox",
                  max_detections: Sequence[int] = (1, 10, 100),
                  engine: str = "faster_coco_eval") -> dict[str, float]:
    """COCO's twelve detection statistics of `predictions` against `targets` (one dict per image,
    torchmetrics' keys; see the module docstring).

    Returns `AP, AP50, AP75, AP_small, AP_medium, AP_large` at the largest of `max_detections`,
    `AR<m>` for each m in `max_detections` and `AR_small, AR_medium, AR_large` at the largest,
    all as defined by the COCO API's cocoeval.py summarize. A statistic with nothing to average
    is -1, as in COCO: e.g. AP_large when no ground truth is large. A category with no ground truth
    (only false positives) has no precision and is left out of the means; images without
    detections or without ground truth count as they do in COCO.

    `iou_type="bbox"` compares boxes; `"segm"` compares `masks` (n, H, W), run-length encoded here
    (`boxes` are then not needed). The area that sorts a ground truth into small/medium/large is
    its `area` if given, else its box area (bbox) or mask area (segm); crowd regions (`iscrowd` 1)
    are matched as COCO matches them and never count as misses.

    More than 100 detections per image: pycocotools' summarize reads AP at a hard-coded maxDets of
    100 (with maxDets (1, 10, 300) its AP comes out -1) and expects exactly three maxDets. Here
    the engine is run with `params.maxDets = max_detections` and all statistics are read from its
    `eval["precision"]` and `eval["recall"]` arrays, with summarize's indexing, at the largest
    entry; so `max_detections=(1, 10, 300)` gives AP, AP50, ... at 300 detections and `AR300`.

    `engine`: "faster_coco_eval" (the default; C++ matching, same results) or "pycocotools".
    """
    if iou_type not in ("bbox", "segm"):
        raise ValueError(f"iou_type {iou_type!r} is not supported: use 'bbox' or 'segm'")
    max_detections = [int(m) for m in max_detections]
    increasing = sorted(set(max_detections)) == max_detections
    if not max_detections or min(max_detections) < 1 or not increasing:
        raise ValueError(f"max_detections {tuple(max_detections)} must be increasing positive "
                         "integers, e.g. (1, 10, 100)")
    if len(targets) != len(predictions):
        raise ValueError(f"{len(targets)} targets but {len(predictions)} predictions: give one "
                         "target and one prediction dict per image")
    coco, coco_eval, mask_api = _engine(engine)
    dataset, segm_detections, box_rows = _coco_inputs(targets, predictions, iou_type, mask_api)
    # pycocotools prints its progress; faster-coco-eval logs it.
    with contextlib.redirect_stdout(io.StringIO()):
        truth = coco()
        truth.dataset = dataset
        truth.createIndex()
        if len(segm_detections) or len(box_rows):
            detections = truth.loadRes(segm_detections if iou_type == "segm" else box_rows)
        else:  # loadRes cannot take an empty list in pycocotools
            detections = coco()
            detections.dataset = {"images": dataset["images"], "annotations": [],
                                  "categories": dataset["categories"]}
            detections.createIndex()
        evaluator = coco_eval(truth, detections, iou_type)
        evaluator.params.maxDets = max_detections
        evaluator.evaluate()
        evaluator.accumulate()
    return _summary(np.asarray(evaluator.eval["precision"]), np.asarray(evaluator.eval["recall"]),
                    evaluator.params, max_detections)


# --------------------------------------------------------------------------------------- VOC


def voc_ap(recall: np.ndarray, precision: np.ndarray, use_07_metric: bool = False) -> float:
    """Average precision of a ranked list's precision/recall points (recall non-decreasing, as
    the cumulative counts down the ranking give it), Everingham et al. 2010 §4.2.

    `use_07_metric=True`: VOC2007's 11-point interpolated AP, the mean over t = 0, 0.1, ..., 1 of
    the largest precision at recall >= t (0 when recall never reaches t). The thresholds are k/10,
    so a recall of exactly 3/10 reaches t = 0.3. Otherwise the all-point AP of VOC2010 onward: the
    area under the precision envelope (precision at recall r replaced by the largest precision at
    any recall >= r), summed over the steps in recall.
    """
    recall = np.asarray(recall, dtype=np.float64).reshape(-1)
    precision = np.asarray(precision, dtype=np.float64).reshape(-1)
    if use_07_metric:
        return float(np.mean([precision[recall >= k / 10].max(initial=0.0) for k in range(11)]))
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * envelope))


def _pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of each of (m, 4) xyxy boxes with each of (k, 4), (m, k), with continuous areas."""
    width = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]),
                    0, None)
    height = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]),
                     0, None)
    inter = width * height
    union = ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]))[:, None] + (
        (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _voc_inputs(targets: Sequence[dict], predictions: Sequence[dict], difficult) -> dict:
    """Every detection over all images, in input order (image by image), with the ground truth of
    its class and image it overlaps most: image, index (row in its image's prediction), label,
    score, overlap (-1 where its image has no ground truth of its class), truth (the index of
    that ground truth over all images; -1 where none) and whether it is difficult; and
    `positives`, per class, the number of non-difficult ground truths."""
    if len(targets) != len(predictions):
        raise ValueError(f"{len(targets)} targets but {len(predictions)} predictions: give one "
                         "target and one prediction dict per image")
    if difficult is not None and len(difficult) != len(targets):
        raise ValueError(f"difficult has {len(difficult)} entries for {len(targets)} images: give "
                         "one boolean array per image")
    _check(targets, "target", ("boxes", "labels"))
    _check(predictions, "prediction", ("boxes", "labels", "scores"))
    columns = {key: [] for key in ("image", "index", "label", "score", "overlap", "truth")}
    truth_labels, truth_hard, offset = [], [], 0
    for image, (target, prediction) in enumerate(zip(targets, predictions, strict=True)):
        labels = np.asarray(target["labels"]).reshape(-1).astype(np.int64)
        boxes = np.asarray(target["boxes"], dtype=np.float64).reshape(-1, 4)
        hard = np.zeros(len(labels), bool) if difficult is None else np.asarray(difficult[image])
        truth_labels.append(labels)
        truth_hard.append(hard.astype(bool).reshape(len(labels)))
        found = np.asarray(prediction["labels"]).reshape(-1).astype(np.int64)
        overlaps = _pairwise_iou(np.asarray(prediction["boxes"], dtype=np.float64).reshape(-1, 4),
                                 boxes)
        overlaps = np.where(found[:, None] == labels[None, :], overlaps, -1.0)
        best = np.argmax(overlaps, axis=1) if len(labels) else np.zeros(len(found), np.int64)
        columns["image"].append(np.full(len(found), image, np.int64))
        columns["index"].append(np.arange(len(found), dtype=np.int64))
        columns["label"].append(found)
        columns["score"].append(np.asarray(prediction["scores"], dtype=np.float64).reshape(-1))
        columns["overlap"].append(np.take_along_axis(overlaps, best[:, None], axis=1)[:, 0]
                                  if len(labels) else np.full(len(found), -1.0))
        columns["truth"].append(np.where(columns["overlap"][-1] >= 0, best + offset, -1))
        offset += len(labels)
    joined = {key: np.concatenate(values) if values else np.zeros(0, np.int64)
              for key, values in columns.items()}
    labels = np.concatenate(truth_labels) if truth_labels else np.zeros(0, np.int64)
    hard = np.concatenate(truth_hard) if truth_hard else np.zeros(0, bool)
    # truth -1 (no ground truth of its class) reads the appended False
    joined["difficult"] = (joined["truth"] >= 0) & np.append(hard, False)[joined["truth"]]
    classes = sorted(set(labels.tolist()) | set(joined["label"].astype(np.int64).tolist()))
    joined["positives"] = {c: int(np.sum((labels == c) & ~hard)) for c in classes}
    return joined


def voc_pr_curve(targets: Sequence[dict], predictions: Sequence[dict], label: int,
                 iou_threshold: float = 0.5, difficult: Sequence | None = None) -> dict:
    """The precision-recall curve of one class, as `voc_evaluate` computes it (its docstring
    defines the matching): the class's detections ranked by descending score (ties in input
    order), and after each one the precision and recall so far.

    Returns {"image": (d,), "index": (d,) (the detection's row in its image's prediction),
    "score": (d,), "tp": (d,) bool, "fp": (d,) bool (neither for a detection assigned to a
    difficult ground truth), "precision": (d,), "recall": (d,), "positives": the class's
    non-difficult ground truths}; `voc_ap(recall, precision)` of it is the class's AP.
    """
    return _curve(_voc_inputs(targets, predictions, difficult), label, iou_threshold)


def _curve(joined: dict, label: int, iou_threshold: float) -> dict:
    """`voc_pr_curve` of one class from `_voc_inputs`."""
    mine = np.flatnonzero(joined["label"] == label)
    ranked = mine[np.argsort(-joined["score"][mine], kind="stable")]
    hit = joined["overlap"][ranked] >= iou_threshold
    counted = hit & ~joined["difficult"][ranked]  # a detection of a difficult one is neither
    tp = np.zeros(len(ranked), bool)  # the first counted detection of each ground truth, by rank
    _, first = np.unique(joined["truth"][ranked][counted], return_index=True)
    tp[np.flatnonzero(counted)[first]] = True
    fp = ~hit | (counted & ~tp)  # a miss, or a duplicate of a ground truth already found
    positives = joined["positives"].get(label, 0)
    tps, fps = np.cumsum(tp), np.cumsum(fp)
    return {"image": joined["image"][ranked], "index": joined["index"][ranked],
            "score": joined["score"][ranked], "tp": tp, "fp": fp,
            "precision": tps / np.maximum(tps + fps, np.finfo(np.float64).eps),
            "recall": tps / max(positives, 1), "positives": positives}


def voc_evaluate(targets: Sequence[dict], predictions: Sequence[dict], iou_threshold: float = 0.5,
                 use_07_metric: bool = False, difficult: Sequence | None = None) -> dict:
    """Pascal VOC detection AP per class and their mean (Everingham et al. 2010 §4.2).

    `targets` and `predictions` are one dict per image as for `coco_evaluate` (boxes xyxy, labels;
    scores in predictions); `difficult` one boolean array per image over its targets' boxes.
    Each class's detections over all images are ranked by descending score (ties kept in input
    order) and each is assigned to the ground truth of its class and image it overlaps most: a
    true positive if that IoU is at least `iou_threshold` (the devkit's `ovmax >= minoverlap`) and
    the ground truth is not yet taken, a false positive if it is taken (a duplicate) or the IoU is
    lower; a detection assigned to a difficult ground truth is neither. AP is `voc_ap` of the
    resulting curve, with recall over the non-difficult ground truth.

    Boxes are cnn_jax's continuous xyxy, so areas are (x2 - x1)(y2 - y1); the devkit's +1 belongs
    to its inclusive integer pixel boxes and is not added.

    Returns {"mAP": mean over classes with ground truth, "AP_per_class": {label: AP}} over the
    labels seen in targets or predictions; a class without non-difficult ground truth has AP -1
    and is left out of the mean (mAP -1 when no class has any).
    """
    joined = _voc_inputs(targets, predictions, difficult)
    per_class = {}
    for c, positives in joined["positives"].items():
        if positives == 0:
            per_class[c] = -1.0
            continue
        curve = _curve(joined, c, iou_threshold)
        per_class[c] = voc_ap(curve["recall"], curve["precision"], use_07_metric)
    defined = [ap for ap in per_class.values() if ap > -1]
    return {"mAP": float(np.mean(defined)) if defined else -1.0, "AP_per_class": per_class}


# ------------------------------------------------------------------------------ error breakdown


def error_breakdown(targets: Sequence[dict], predictions: Sequence[dict],
                    iou_threshold: float = 0.5) -> dict[str, float]:
    """Where a detector's misses at IoU `iou_threshold` come from, per ground-truth box (the
    localisation / classification split of Hoiem, Chodpathumwan & Dai 2012, "Diagnosing error in
    object detectors"), over all images' ground truth, whatever the scores:

    * `found`: the fraction of ground-truth boxes some detection overlaps at IoU >= threshold,
      of any class: the boxes the detector localises;
    * `found_class`: the fraction some detection of the box's own class overlaps so: the recall
      a score threshold of zero reaches;
    * `top_class`: the fraction whose highest-scoring overlapping detection (IoU >= threshold,
      any class) has the box's class: where the detector puts its confidence, is the class right.

    `found - top_class` are boxes localised but given another class first; `1 - found` boxes no
    detection finds. Inputs as for `voc_evaluate`. Returns the three fractions and `boxes`, the
    number of ground-truth boxes (the fractions are -1 when there are none).
    """
    if len(targets) != len(predictions):
        raise ValueError(f"{len(targets)} targets but {len(predictions)} predictions: give one "
                         "target and one prediction dict per image")
    _check(targets, "target", ("boxes", "labels"))
    _check(predictions, "prediction", ("boxes", "labels", "scores"))
    found = found_class = top_class = boxes_seen = 0
    for target, prediction in zip(targets, predictions, strict=True):
        labels = np.asarray(target["labels"]).reshape(-1).astype(np.int64)
        boxes_seen += len(labels)
        found_labels = np.asarray(prediction["labels"]).reshape(-1).astype(np.int64)
        if not len(labels) or not len(found_labels):
            continue
        overlaps = _pairwise_iou(np.asarray(target["boxes"], dtype=np.float64).reshape(-1, 4),
                                 np.asarray(prediction["boxes"], dtype=np.float64).reshape(-1, 4))
        hit = overlaps >= iou_threshold  # (ground truth, detection)
        same = labels[:, None] == found_labels[None, :]
        scores = np.asarray(prediction["scores"], dtype=np.float64).reshape(-1)
        best = np.argmax(np.where(hit, scores[None, :], -np.inf), axis=1)  # first of equal scores
        found += int(hit.any(axis=1).sum())
        found_class += int((hit & same).any(axis=1).sum())
        top_class += int((hit.any(axis=1) & (found_labels[best] == labels)).sum())
    share = (lambda n: n / boxes_seen) if boxes_seen else (lambda n: -1.0)
    return {"found": share(found), "found_class": share(found_class),
            "top_class": share(top_class), "boxes": boxes_seen}
