"""Detection metrics: COCO's twelve statistics equal pycocotools' COCOeval run through its own API on
the same scenes (bbox and segm, both engines, maxDets 300), and Pascal VOC's AP worked by hand."""

import contextlib
import io

import numpy as np
import pytest
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from cnn_jax.metrics.detection import (
    coco_evaluate,
    error_breakdown,
    from_padded,
    voc_ap,
    voc_evaluate,
    voc_pr_curve,
)

KEYS = ["AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
        "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large"]
ENGINES = ["faster_coco_eval", "pycocotools"]
SIZE = 160  # images are SIZE x SIZE; a large (> 96^2) ellipse needs sides of about 110


# ------------------------------------------------------------------------------------- scenes


def ellipse(box, size=SIZE) -> np.ndarray:
    """The filled ellipse inscribed in an xyxy box, sampled at pixel centres."""
    x1, y1, x2, y2 = box
    yy, xx = np.mgrid[:size, :size] + 0.5
    rx, ry = max((x2 - x1) / 2, 1.0), max((y2 - y1) / 2, 1.0)
    return ((xx - (x1 + x2) / 2) / rx) ** 2 + ((yy - (y1 + y2) / 2) / ry) ** 2 <= 1


def random_box(rng, side_range) -> np.ndarray:
    w, h = rng.uniform(*side_range, size=2)
    x, y = rng.uniform(0, SIZE - w), rng.uniform(0, SIZE - h)
    return np.array([x, y, x + w, y + h])


def jitter(rng, box) -> np.ndarray:
    side = np.array([box[2] - box[0], box[3] - box[1]] * 2)
    moved = box + rng.normal(0, 0.08, 4) * side
    x1, x2 = np.sort(np.clip(moved[[0, 2]], 0, SIZE))
    y1, y2 = np.sort(np.clip(moved[[1, 3]], 0, SIZE))
    return np.array([x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)])


def scene(seed: int, masks: bool, images: int = 7) -> tuple[list, list]:
    """Targets and predictions over several images and classes: small (< 32^2), medium and large
    objects, jittered true detections with duplicates, false positives (some of class 5, which has
    no ground truth), scores on a 0.1 grid (ties), a crowd region in image 0, no ground truth in
    image 1, no detections in image 2, and in image 3 an object whose box is large (100^2 > 96^2)
    and whose mask is medium (7854 < 96^2)."""
    rng = np.random.default_rng(seed)
    side_ranges = [(6, 28), (36, 90), (110, 150)]
    targets, predictions = [], []
    for image in range(images):
        n = 0 if image == 1 else int(rng.integers(2, 6))
        boxes = [random_box(rng, side_ranges[rng.integers(3)]) for _ in range(n)]
        labels = rng.integers(0, 4, n).tolist()
        crowd = [0] * n
        if image == 3:
            boxes.append(np.array([30.0, 40.0, 130.0, 140.0]))
            labels.append(2)
            crowd.append(0)
        if image == 0:
            boxes.append(np.array([10.0, 10.0, 150.0, 140.0]))
            labels.append(1)
            crowd.append(1)
        det_boxes, det_labels = [], []
        for box, label in zip(boxes, labels, strict=True):
            for _ in range(int(rng.choice([0, 1, 1, 1, 2]))):  # missed, found, found twice
                det_boxes.append(jitter(rng, box))
                det_labels.append(label if rng.uniform() < 0.9 else int(rng.integers(0, 4)))
        for _ in range(int(rng.integers(1, 4))):
            det_boxes.append(random_box(rng, side_ranges[rng.integers(3)]))
            det_labels.append(int(rng.choice([0, 1, 2, 3, 5])))
        if image == 2:
            det_boxes, det_labels = [], []
        scores = np.round(rng.uniform(0.05, 1.0, len(det_boxes)), 1)
        target = {"boxes": np.array(boxes).reshape(-1, 4), "labels": np.array(labels, np.int64),
                  "iscrowd": np.array(crowd, np.int64)}
        prediction = {"boxes": np.array(det_boxes).reshape(-1, 4), "scores": scores,
                      "labels": np.array(det_labels, np.int64)}
        if masks:
            target["masks"] = np.array([ellipse(b) for b in boxes]).reshape(-1, SIZE, SIZE)
            prediction["masks"] = np.array([ellipse(b) for b in det_boxes]).reshape(-1, SIZE, SIZE)
        targets.append(target)
        predictions.append(prediction)
    return targets, predictions


# ------------------------------------------------------------------- the pycocotools reference


def rle(mask: np.ndarray) -> dict:
    return coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))


def pycocotools_eval(targets, predictions, iou_type, max_dets=(1, 10, 100)) -> COCOeval:
    """pycocotools' COCOeval, run through its own API (COCO from a dataset dict, loadRes from an
    array or a list of RLE results) after evaluate, accumulate and summarize."""
    images, annotations, results, categories = [], [], [], set()
    for index, (target, prediction) in enumerate(zip(targets, predictions, strict=True)):
        image_id = index + 1
        images.append({"id": image_id, "height": SIZE, "width": SIZE})
        for j, (box, label) in enumerate(zip(target["boxes"], target["labels"], strict=True)):
            x1, y1, x2, y2 = (float(v) for v in box)
            annotation = {"id": len(annotations) + 1, "image_id": image_id,
                          "category_id": int(label), "bbox": [x1, y1, x2 - x1, y2 - y1],
                          "area": (x2 - x1) * (y2 - y1), "iscrowd": int(target["iscrowd"][j])}
            if iou_type == "segm":
                annotation["segmentation"] = rle(target["masks"][j])
                annotation["area"] = float(coco_mask.area(annotation["segmentation"]))
            annotations.append(annotation)
            categories.add(int(label))
        for j, (box, score, label) in enumerate(zip(prediction["boxes"], prediction["scores"],
                                                    prediction["labels"], strict=True)):
            categories.add(int(label))
            x1, y1, x2, y2 = (float(v) for v in box)
            if iou_type == "segm":
                results.append({"image_id": image_id, "category_id": int(label),
                                "segmentation": rle(prediction["masks"][j]), "score": float(score)})
            else:
                results.append([image_id, x1, y1, x2 - x1, y2 - y1, float(score), int(label)])
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = {"images": images, "annotations": annotations,
                         "categories": [{"id": c} for c in sorted(categories)]}
        truth.createIndex()
        detections = truth.loadRes(results if iou_type == "segm" else np.array(results))
        evaluator = COCOeval(truth, detections, iou_type)
        evaluator.params.maxDets = list(max_dets)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


# ------------------------------------------------------------------------------------- COCO


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("seed", [0, 1])
def test_coco_bbox_statistics_equal_pycocotools_cocoeval(seed, engine):
    targets, predictions = scene(seed, masks=False)
    reference = pycocotools_eval(targets, predictions, "bbox").stats
    assert np.all(reference > -1)  # the scene has small, medium and large objects
    stats = coco_evaluate(targets, predictions, "bbox", engine=engine)
    assert list(stats) == KEYS
    np.testing.assert_allclose(list(stats.values()), reference, rtol=0, atol=1e-6)


@pytest.mark.parametrize("engine", ENGINES)
def test_coco_segm_statistics_equal_pycocotools_cocoeval(engine):
    targets, predictions = scene(2, masks=True)
    reference = pycocotools_eval(targets, predictions, "segm").stats
    assert np.all(reference > -1)
    stats = coco_evaluate(targets, predictions, "segm", engine=engine)
    np.testing.assert_allclose(list(stats.values()), reference, rtol=0, atol=1e-6)
    # Masks, not boxes, decide: the box statistics of the same scene differ.
    assert stats["AP"] != pytest.approx(coco_evaluate(targets, predictions, "bbox")["AP"])


def crowded_image(seed: int) -> tuple[list, list]:
    """150 small objects on a grid, each detected once with a distinct score, plus 30 false
    positives: 180 detections, more than 100."""
    rng = np.random.default_rng(seed)
    corners = np.stack(np.meshgrid(np.arange(13) * 12.0, np.arange(13) * 12.0), -1).reshape(-1, 2)
    boxes = np.concatenate([corners, corners + 10.0], 1)[:150]
    detections = np.concatenate([boxes + rng.uniform(-1, 1, boxes.shape),
                                 np.tile([150.0, 150.0, 158.0, 158.0], (30, 1))])
    scores = rng.permutation(180) / 180.0
    target = {"boxes": boxes, "labels": np.zeros(150, np.int64), "iscrowd": np.zeros(150, np.int64)}
    prediction = {"boxes": detections, "scores": scores, "labels": np.zeros(180, np.int64)}
    return [target], [prediction]


@pytest.mark.parametrize("engine", ENGINES)
def test_coco_max_detections_300_reads_statistics_at_300(engine):
    targets, predictions = crowded_image(3)
    at_100 = coco_evaluate(targets, predictions, engine=engine)
    at_300 = coco_evaluate(targets, predictions, max_detections=(1, 10, 300), engine=engine)
    assert list(at_300)[6:9] == ["AR1", "AR10", "AR300"]
    assert at_300["AR300"] > at_100["AR100"] + 0.2  # the 80 objects ranked beyond 100 are found
    reference = pycocotools_eval(targets, predictions, "bbox", max_dets=(1, 10, 300))
    # pycocotools' summarize reads AP at a hard-coded maxDets of 100: -1 here ...
    assert reference.stats[0] == -1
    precision = reference.eval["precision"][:, :, :, 0, 2]
    # ... while its other eleven statistics, and AP read from its arrays, are at 300.
    expected = [precision[precision > -1].mean(), *reference.stats[1:]]
    np.testing.assert_allclose(list(at_300.values()), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("engine", ENGINES)
def test_coco_statistics_without_ground_truth_in_their_area_range_are_minus_one(engine):
    boxes = np.array([[10.0, 10.0, 60.0, 50.0], [70.0, 60.0, 120.0, 130.0]])  # medium only
    targets = [{"boxes": boxes, "labels": np.array([0, 1])}]
    predictions = [{"boxes": boxes + 2.0, "scores": np.array([0.9, 0.8]), "labels": np.array([0, 1])}]
    stats = coco_evaluate(targets, predictions, engine=engine)
    for key in ("AP_small", "AP_large", "AR_small", "AR_large"):
        assert stats[key] == -1
    iscrowd = [{**t, "iscrowd": np.zeros(2, np.int64)} for t in targets]
    np.testing.assert_allclose(list(stats.values()),
                               pycocotools_eval(iscrowd, predictions, "bbox").stats, atol=1e-6)


@pytest.mark.parametrize("engine", ENGINES)
def test_coco_without_any_detection_gives_zero_ap_and_recall(engine):
    targets, _ = scene(4, masks=False, images=3)
    empty = [{"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "labels": np.zeros(0, np.int64)}
             for _ in targets]
    stats = coco_evaluate(targets, empty, engine=engine)
    assert stats["AP"] == 0.0 and stats["AP50"] == 0.0 and stats["AR100"] == 0.0


def test_coco_detections_of_a_class_without_ground_truth_leave_the_statistics_unchanged():
    targets, predictions = scene(5, masks=False, images=4)
    extra = [{key: np.concatenate([p[key], added]) for key, added in
              (("boxes", np.array([[5.0, 5.0, 50.0, 50.0]])), ("scores", np.array([0.99])),
               ("labels", np.array([9])))} for p in predictions]
    assert coco_evaluate(targets, extra) == coco_evaluate(targets, predictions)


def test_coco_area_given_in_targets_decides_the_size_range():
    boxes = np.array([[0.0, 0.0, 50.0, 50.0]])  # a medium box ...
    predictions = [{"boxes": boxes, "scores": np.array([0.9]), "labels": np.array([0])}]
    targets = [{"boxes": boxes, "labels": np.array([0]), "area": np.array([100.0])}]  # ... small
    stats = coco_evaluate(targets, predictions)
    assert stats["AP_small"] == 1.0 and stats["AP_medium"] == -1


def test_from_padded_gives_the_per_image_dicts_of_counts_or_a_validity_mask():
    targets, predictions = scene(6, masks=False, images=3)
    counts = np.array([len(p["labels"]) for p in predictions])
    width = counts.max() + 2
    boxes, scores, labels = np.zeros((3, width, 4)), np.zeros((3, width)), np.full((3, width), -1)
    for b, p in enumerate(predictions):
        boxes[b, :counts[b]], scores[b, :counts[b]], labels[b, :counts[b]] = (
            p["boxes"], p["scores"], p["labels"])
    by_count = from_padded(boxes, labels, scores, counts=counts)
    by_mask = from_padded(boxes, labels, scores, valid=labels >= 0)
    for image in range(3):
        for key in ("boxes", "scores", "labels"):
            np.testing.assert_array_equal(by_count[image][key], predictions[image][key])
            np.testing.assert_array_equal(by_mask[image][key], predictions[image][key])
    assert "scores" not in from_padded(boxes, labels, counts=counts)[0]
    assert coco_evaluate(targets, by_count) == coco_evaluate(targets, predictions)


@pytest.mark.parametrize("call, message", [
    (lambda: coco_evaluate([{}], []), "give one target and one prediction dict per image"),
    (lambda: coco_evaluate([], [], engine="detectron"), "use one of faster_coco_eval, pycocotools"),
    (lambda: coco_evaluate([], [], max_detections=(100, 10)), "must be increasing positive"),
    (lambda: coco_evaluate([], [], iou_type="keypoints"), "use 'bbox' or 'segm'"),
    (lambda: coco_evaluate([{"boxes": np.zeros((0, 4)), "labels": np.zeros(0)}],
                           [{"boxes": np.zeros((0, 4)), "labels": np.zeros(0)}]),
     "prediction 0 has no 'scores'"),
    (lambda: from_padded(np.zeros((1, 2, 4)), np.zeros((1, 2))), "exactly one of counts="),
])
def test_input_errors_are_one_line_naming_the_fix(call, message):
    with pytest.raises(ValueError, match=message) as error:
        call()
    assert "\n" not in str(error.value)


# -------------------------------------------------------------------------------------- VOC

# A ranking TP, FP, TP, FP, FP, TP over 4 ground truths: precision 1, 1/2, 2/3, 1/2, 2/5, 1/2 at
# recall 1/4, 1/4, 1/2, 1/2, 1/2, 3/4.
RECALL = np.array([1, 1, 2, 2, 2, 3]) / 4
PRECISION = np.array([1, 1 / 2, 2 / 3, 1 / 2, 2 / 5, 1 / 2])


def test_voc_all_point_ap_is_the_area_under_the_precision_envelope():
    # Envelope 1, 2/3, 2/3, 1/2, 1/2, 1/2; recall steps of 1/4 at the 1st, 3rd and 6th rank.
    assert voc_ap(RECALL, PRECISION) == pytest.approx((1 + 2 / 3 + 1 / 2) / 4)


def test_voc2007_eleven_point_ap_averages_the_interpolated_precision_at_tenths():
    # t = 0, .1, .2 -> 1; t = .3, .4, .5 -> 2/3; t = .6, .7 -> 1/2; t = .8, .9, 1 -> 0.
    assert voc_ap(RECALL, PRECISION, use_07_metric=True) == pytest.approx(6 / 11)


def test_voc2007_eleven_point_threshold_three_tenths_is_reached_by_recall_three_tenths():
    recall = np.arange(1, 4) / 10  # 1/10, 2/10, 3/10 of ten ground truths; 0.1 * 3 > 3/10
    assert voc_ap(recall, np.ones(3), use_07_metric=True) == pytest.approx(4 / 11)


def test_voc_ap_without_detections_is_zero():
    assert voc_ap(np.zeros(0), np.zeros(0)) == 0.0
    assert voc_ap(np.zeros(0), np.zeros(0), use_07_metric=True) == 0.0


def voc_case() -> tuple[list, list, list]:
    """Image A: class 1 at a1 and a2 (difficult), class 2 once; image B: class 1 at b1.
    Class-1 detections by score: 0.95 on a2 (difficult: ignored), 0.9 on a1 (TP), 0.88 on a1
    again (duplicate: FP), 0.85 on b1 at IoU exactly 0.5 (TP), 0.75 on nothing (FP)."""
    targets = [{"boxes": np.array([[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 70, 70]], float),
                "labels": np.array([1, 1, 2])},
               {"boxes": np.array([[0, 0, 20, 20]], float), "labels": np.array([1])}]
    predictions = [{"boxes": np.array([[20, 20, 40, 40], [0, 0, 10, 10], [1, 0, 10, 10],
                                       [50, 50, 70, 75]], float),
                    "scores": np.array([0.95, 0.9, 0.88, 0.6]), "labels": np.array([1, 1, 1, 2])},
                   {"boxes": np.array([[0, 0, 20, 10], [100, 100, 110, 110], [0, 0, 5, 5]], float),
                    "scores": np.array([0.85, 0.75, 0.5]), "labels": np.array([1, 1, 3])}]
    difficult = [np.array([False, True, False]), np.array([False])]
    return targets, predictions, difficult


def test_voc_evaluate_counts_duplicates_as_false_and_difficult_as_neither():
    targets, predictions, difficult = voc_case()
    # Class 1, difficult ignored: TP, FP, TP, FP -> precision 1, 1/2, 2/3, 1/2; recall 1/2, 1/2, 1, 1.
    result = voc_evaluate(targets, predictions, difficult=difficult)
    assert result["AP_per_class"][1] == pytest.approx(1 / 2 + 1 / 2 * 2 / 3)
    assert result["AP_per_class"][2] == 1.0  # IoU 400/500 = 0.8
    assert result["AP_per_class"][3] == -1  # no ground truth: left out of the mean
    assert result["mAP"] == pytest.approx((5 / 6 + 1) / 2)
    eleven_point = voc_evaluate(targets, predictions, use_07_metric=True, difficult=difficult)
    assert eleven_point["AP_per_class"][1] == pytest.approx((6 + 5 * 2 / 3) / 11)
    # Counted as an ordinary ground truth, a2 makes the 0.95 detection a true positive: TP, TP,
    # FP, TP, FP over 3 -> envelope 1, 1, 3/4, 3/4, 3/5 with recall steps 1/3 at ranks 1, 2, 4.
    as_plain = voc_evaluate(targets, predictions)
    assert as_plain["AP_per_class"][1] == pytest.approx((1 + 1 + 3 / 4) / 3)


def test_voc_iou_uses_continuous_areas_without_the_devkits_plus_one():
    truth = [{"boxes": np.array([[0.0, 0.0, 20.0, 20.0]]), "labels": np.array([0])}]
    # IoU 192/400 = 0.48 continuously; (21 * 10.6) / 441 = 0.505 with the devkit's +1.
    below = [{"boxes": np.array([[0.0, 0.0, 20.0, 9.6]]), "scores": np.array([1.0]),
              "labels": np.array([0])}]
    assert voc_evaluate(truth, below)["mAP"] == 0.0
    assert voc_evaluate(truth, below, iou_threshold=0.48)["mAP"] == 1.0


def devkit_class_ap(targets, predictions, label, iou_threshold, difficult, use_07_metric):
    """The VOC devkit's matching (VOCevaldet.m), one detection at a time, as the reference: ranked
    by descending score (ties in input order), each is assigned to the ground truth of its class
    and image it overlaps most; a true positive at IoU >= threshold if that one is not yet taken
    (difficult ones neither), else a false positive."""
    detections = [(i, float(p["scores"][j]), np.asarray(p["boxes"][j], float))
                  for i, p in enumerate(predictions) for j in range(len(p["labels"]))
                  if p["labels"][j] == label]
    order = sorted(range(len(detections)), key=lambda d: -detections[d][1])
    own = [(np.asarray(t["boxes"], float)[t["labels"] == label], d[t["labels"] == label])
           for t, d in zip(targets, difficult, strict=True)]
    positives = sum(int(np.sum(~hard)) for _, hard in own)
    taken = [np.zeros(len(boxes), bool) for boxes, _ in own]
    tp, fp = [], []
    for d in order:
        image, _, box = detections[d]
        boxes, hard = own[image]
        best, overlap = -1, -np.inf
        for k, b in enumerate(boxes):
            iw = min(box[2], b[2]) - max(box[0], b[0])
            ih = min(box[3], b[3]) - max(box[1], b[1])
            inter = max(iw, 0.0) * max(ih, 0.0)
            union = (box[2] - box[0]) * (box[3] - box[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
            iou = inter / union if union > 0 else 0.0
            if iou > overlap:
                best, overlap = k, iou
        if overlap >= iou_threshold:
            if hard[best]:
                tp.append(0), fp.append(0)
            elif not taken[image][best]:
                taken[image][best] = True
                tp.append(1), fp.append(0)
            else:
                tp.append(0), fp.append(1)
        else:
            tp.append(0), fp.append(1)
    if positives == 0:
        return -1.0
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    return voc_ap(tp / positives, tp / np.maximum(tp + fp, np.finfo(float).eps), use_07_metric)


@pytest.mark.parametrize("seed", range(4))
def test_voc_evaluate_equals_the_devkits_one_at_a_time_matching_on_random_scenes(seed):
    # Jittered copies of the ground truth (often twice: duplicates), false alarms, tied scores,
    # difficult boxes, images without ground truth or without detections.
    rng = np.random.default_rng(seed)
    targets, predictions, difficult = [], [], []
    for _ in range(40):
        n = int(rng.integers(0, 5))
        xy = rng.uniform(0, 80, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(5, 30, (n, 2))], axis=1)
        labels = rng.integers(0, 4, n)
        targets.append({"boxes": boxes, "labels": labels})
        difficult.append(rng.random(n) < 0.15)
        copies = np.repeat(np.arange(n), rng.integers(0, 3, n))
        found = boxes[copies] + rng.normal(0, 4, (len(copies), 4))
        alarms = int(rng.integers(0, 3))
        xy = rng.uniform(0, 80, (alarms, 2))
        found = np.concatenate([found, np.concatenate([xy, xy + 15], axis=1)]).reshape(-1, 4)
        predictions.append({"boxes": found,
                            "labels": np.concatenate([labels[copies], rng.integers(0, 4, alarms)]),
                            "scores": rng.integers(0, 6, len(found)) / 5.0})  # many ties
    for use_07 in (False, True):
        for threshold in (0.3, 0.5, 0.7):
            result = voc_evaluate(targets, predictions, threshold, use_07, difficult)
            for label in range(4):
                expected = devkit_class_ap(targets, predictions, label, threshold, difficult, use_07)
                assert result["AP_per_class"][label] == pytest.approx(expected, abs=1e-12)
    curve = voc_pr_curve(targets, predictions, 2, 0.5, difficult)
    assert voc_ap(curve["recall"], curve["precision"]) == pytest.approx(
        voc_evaluate(targets, predictions, difficult=difficult)["AP_per_class"][2], abs=1e-12)
    rows = [(i, j) for i, p in enumerate(predictions) for j in np.flatnonzero(p["labels"] == 2)]
    assert sorted(zip(curve["image"].tolist(), curve["index"].tolist(), strict=True)) == rows
    scores = [predictions[i]["scores"][j] for i, j in zip(curve["image"], curve["index"], strict=True)]
    np.testing.assert_array_equal(curve["score"], scores)
    assert np.all(np.diff(curve["score"]) <= 0)


def test_voc_pr_curve_marks_true_false_and_neither_on_the_worked_case():
    targets, predictions, difficult = voc_case()
    curve = voc_pr_curve(targets, predictions, 1, difficult=difficult)
    # 0.95 on a2 (difficult: neither), 0.9 TP, 0.88 duplicate FP, 0.85 TP, 0.75 FP.
    assert curve["tp"].tolist() == [False, True, False, True, False]
    assert curve["fp"].tolist() == [False, False, True, False, True]
    assert curve["positives"] == 2
    np.testing.assert_allclose(curve["recall"], [0, 0.5, 0.5, 1, 1])
    np.testing.assert_allclose(curve["precision"], [0, 1, 1 / 2, 2 / 3, 1 / 2])


def _breakdown_case():
    """Four ground-truth boxes in three images: A found with its class and first; B found, with
    its class only second (another class scores higher on it); C missed (IoU 36/164 = 0.22); D
    without any detection; the third image has no ground truth, only a detection."""
    box = np.array
    targets = [{"boxes": box([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], float),
                "labels": box([1, 2, 3])},
               {"boxes": box([[0, 0, 10, 20]], float), "labels": box([0])},
               {"boxes": np.zeros((0, 4)), "labels": np.zeros(0, int)}]
    predictions = [{"boxes": box([[0, 0, 10, 10], [20, 20, 30, 30], [21, 20, 31, 30],
                                  [44, 44, 54, 54]], float),
                    "labels": box([1, 5, 2, 3]), "scores": box([0.9, 0.8, 0.6, 0.95])},
                   {"boxes": np.zeros((0, 4)), "labels": np.zeros(0, int), "scores": np.zeros(0)},
                   {"boxes": box([[0, 0, 5, 5]], float), "labels": box([1]), "scores": box([0.5])}]
    return targets, predictions


def test_error_breakdown_splits_misses_into_localisation_and_class_on_the_worked_case():
    targets, predictions = _breakdown_case()
    assert error_breakdown(targets, predictions) == {
        "found": 2 / 4, "found_class": 2 / 4, "top_class": 1 / 4, "boxes": 4}
    # at IoU 0.2, C (0.22) is found, with its class, and first
    assert error_breakdown(targets, predictions, iou_threshold=0.2) == {
        "found": 3 / 4, "found_class": 3 / 4, "top_class": 2 / 4, "boxes": 4}


def test_error_breakdown_without_ground_truth_is_minus_one_and_checks_its_inputs():
    targets, predictions = _breakdown_case()
    assert error_breakdown(targets[2:], predictions[2:]) == {
        "found": -1.0, "found_class": -1.0, "top_class": -1.0, "boxes": 0}
    with pytest.raises(ValueError, match="3 targets but 2 predictions"):
        error_breakdown(targets, predictions[:2])
    with pytest.raises(ValueError, match="prediction 0 has no 'scores'"):
        error_breakdown(targets, [{"boxes": p["boxes"], "labels": p["labels"]} for p in predictions])
