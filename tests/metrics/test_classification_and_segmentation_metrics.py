"""Metrics against hand-computed cases: top-k, confusion matrices, segmentation IoU."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax.metrics import confusion_counts, confusion_matrix, segmentation_scores, topk_correct


def test_topk_counts_ties_for_the_label():
    logits = jnp.array([[3.0, 1.0, 2.0], [1.0, 1.0, 0.0], [0.0, 1.0, 2.0]])
    labels = jnp.array([0, 1, 0])
    np.testing.assert_array_equal(topk_correct(logits, labels, 1), [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(topk_correct(logits, labels, 2), [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(topk_correct(logits, labels, 3), [1.0, 1.0, 1.0])


def test_confusion_matrix_rows_are_the_true_class():
    m = confusion_matrix(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0, 2]), 3)
    np.testing.assert_array_equal(m, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])


def test_confusion_counts_skip_the_ignore_label_and_padding_examples():
    labels = jnp.array([[[0, 1], [255, 2]], [[2, 2], [2, 2]]])
    predictions = jnp.array([[[0, 2], [1, 2]], [[0, 0], [0, 0]]])
    counts = jax.jit(lambda p, y, w: confusion_counts(p, y, 3, ignore_index=255, weights=w))(
        predictions, labels, jnp.array([1.0, 0.0]))
    assert counts.dtype == jnp.int32
    np.testing.assert_array_equal(counts, [[1, 0, 0], [0, 0, 1], [0, 0, 1]])


def test_segmentation_scores_of_a_hand_computed_confusion_matrix():
    # rows: truth, columns: prediction
    n = np.array([[50, 10, 0],
                  [5, 35, 0],
                  [0, 0, 0]])      # class 2: never in the truth, never predicted -> no IoU
    scores = segmentation_scores(n)
    iou0 = 50 / (60 + 55 - 50)
    iou1 = 35 / (40 + 45 - 35)
    assert scores["per_class_iou"][:2] == pytest.approx([iou0, iou1]) and scores["per_class_iou"][2] is None
    assert scores["mean_iou"] == pytest.approx((iou0 + iou1) / 2)
    assert scores["pixel_accuracy"] == pytest.approx(85 / 100)
    assert scores["mean_accuracy"] == pytest.approx((50 / 60 + 35 / 40) / 2)
    assert scores["frequency_weighted_iou"] == pytest.approx((60 * iou0 + 40 * iou1) / 100)


def test_a_class_only_predicted_counts_with_iou_zero():
    scores = segmentation_scores(np.array([[8, 2], [0, 0]]))
    assert scores["per_class_iou"] == pytest.approx([0.8, 0.0])
    assert scores["mean_iou"] == pytest.approx(0.4)
