"""Detection and localisation tasks: they call the detector's loss and decoding, give two-stage
detectors the ground truth in training, and score gathered detections with COCO and VOC AP."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax.tasks import DetectionTask, LocalizationTask


class OracleDetector:
    """Stands in for a detector: its outputs are the detections themselves."""

    def __call__(self, images, train):  # no `targets`: a one-stage detector
        raise AssertionError("not called here")

    def loss(self, outputs, batch):
        return jnp.mean(outputs["boxes"]), {"box": jnp.mean(outputs["boxes"])}

    def detect(self, outputs):
        return outputs


class TwoStage(OracleDetector):
    def __call__(self, images, train, targets=None):
        raise AssertionError("not called here")


def _batch():
    boxes = np.zeros((3, 2, 4), np.float32)
    boxes[0, 0] = (2, 2, 20, 20)
    boxes[1, 0], boxes[1, 1] = (5, 5, 30, 25), (32, 32, 60, 60)
    boxes[2, 0] = (0, 0, 10, 10)  # a padding example: must not count
    return {"image": np.zeros((3, 64, 64, 1), np.uint8), "boxes": boxes,
            "classes": np.array([[3, 0], [1, 7], [2, 0]], np.int32),
            "box_mask": np.array([[True, False], [True, True], [True, False]]),
            "mask": np.array([1, 1, 0], np.int32)}


def _detections(batch, hit_second=True):
    det = {"boxes": batch["boxes"].copy(), "scores": np.full((3, 2), 0.9, np.float32),
           "classes": batch["classes"].copy(), "count": np.array([1, 2 if hit_second else 1, 1], np.int32)}
    return jax.tree.map(jnp.asarray, det)


def test_detection_scores_gathered_detections_with_coco_and_voc_ap_on_real_images_only():
    task = DetectionTask(mean=(0.0,), std=(1.0,), model=OracleDetector())
    batch = _batch()
    perfect = task.host_metrics(jax.device_get(task.host_outputs(_detections(batch), batch)))
    assert perfect["AP50"] == pytest.approx(1.0) and perfect["AP"] == pytest.approx(1.0)
    assert perfect["voc_mAP"] == pytest.approx(1.0)
    missed = task.host_metrics(jax.device_get(task.host_outputs(_detections(batch, hit_second=False), batch)))
    # class 7 is never detected: its AP is 0, the other two classes' 1 -> mean 2/3
    assert missed["AP50"] == pytest.approx(2 / 3) and missed["voc_mAP"] == pytest.approx(2 / 3)
    # the error breakdown of the same detections: every box found, all but class 7's first
    assert perfect["found50"] == perfect["found_class50"] == perfect["top_class50"] == 1.0
    assert missed["found50"] < 1.0 and missed["found50"] == missed["found_class50"] == missed["top_class50"]
    assert task.summarize(task.eval_sums(None, batch)) == {"count": 2}


def test_two_stage_detectors_get_the_ground_truth_in_training_only():
    batch = _batch()
    assert DetectionTask(mean=(0.0,), std=(1.0,), model=OracleDetector()).model_kwargs(batch, True) == {}
    task = DetectionTask(mean=(0.0,), std=(1.0,), model=TwoStage())
    given = task.model_kwargs(batch, True)["targets"]
    assert set(given) == {"boxes", "classes", "box_mask"} and task.model_kwargs(batch, False) == {}
    loss, sums = task.train_loss({"boxes": jnp.ones((2, 3))}, batch)
    assert float(loss) == 1.0 and task.summarize(sums)["loss"] == pytest.approx(1.0)


class Localizer:
    def loss(self, outputs, batch):
        return jnp.float32(0.5), {}


def test_localization_reports_accuracy_box_iou_and_both_right():
    task = LocalizationTask(mean=(0.0,), std=(1.0,), model=Localizer())
    batch = {"label": np.array([1, 2, 0]), "boxes": np.array([[[0, 0, 10, 10]], [[0, 0, 10, 10]], [[0, 0, 4, 4]]],
                                                               np.float32), "mask": np.array([1, 1, 0])}
    outputs = {"logits": jnp.array([[0.0, 5.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 5.0]]),
               "box": jnp.array([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 5.0], [0.0, 0.0, 1.0, 1.0]])}
    metrics = task.summarize(task.eval_sums(outputs, batch))
    assert metrics == {"accuracy": 0.5, "mean_iou": pytest.approx(0.75), "localization_accuracy": 0.5,
                       "count": 2}
