"""Confusion and calibration on hand-made predictions: most-confused pairs, misclassified
examples with their top-3, predictions collected from a run's padded evaluation batches, and
Guo et al.'s (2017) reliability bins and expected calibration error computed by hand."""

import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax.analysis import (
    Predictions,
    collect_predictions,
    confidences_and_correct,
    expected_calibration_error,
    images_at,
    misclassified,
    most_confused_pairs,
    reliability_bins,
)


def test_most_confused_pairs_are_the_largest_off_diagonal_counts():
    matrix = np.array([[50, 3, 7],
                       [3, 40, 0],
                       [9, 1, 60]])
    assert most_confused_pairs(matrix, 3) == [(2, 0, 9), (0, 2, 7), (0, 1, 3)]
    assert most_confused_pairs(matrix, 10)[-1] == (2, 1, 1)  # zero counts are left out
    assert most_confused_pairs(np.eye(3, dtype=int) * 5) == []


def test_misclassified_examples_come_most_confidently_wrong_first_with_their_top3():
    probabilities = np.array([[0.7, 0.2, 0.1, 0.0],   # label 0: right
                              [0.1, 0.6, 0.3, 0.0],   # label 2: wrong at 0.6
                              [0.05, 0.05, 0.1, 0.8],  # label 1: wrong at 0.8
                              [0.3, 0.4, 0.2, 0.1]])  # label 3: wrong at 0.4
    predictions = Predictions(labels=np.array([0, 2, 1, 3]), logits=np.log(probabilities + 1e-12))
    wrong = misclassified(predictions, k=3)
    assert [m.index for m in wrong] == [2, 1, 3]
    assert wrong[0].label == 1 and wrong[0].top_classes == (3, 2, 0)
    np.testing.assert_allclose(wrong[0].top_probabilities, (0.8, 0.1, 0.05), rtol=1e-6)
    assert wrong[2].top_classes == (1, 0, 2)
    assert [m.index for m in misclassified(predictions, limit=1)] == [2]
    assert predictions.accuracy == 0.25
    np.testing.assert_array_equal(predictions.confusion_matrix(),
                                  [[1, 0, 0, 0], [0, 0, 0, 1], [0, 1, 0, 0], [0, 1, 0, 0]])


class MeanClassifier(nn.Module):
    """logits = [mean pixel, 128 - mean pixel]: class 0 for bright images."""

    @nn.compact
    def __call__(self, x, train=False):
        m = x.mean((1, 2, 3))
        return jnp.stack([m, 128.0 - m], -1)


def test_predictions_of_a_run_drop_the_padding_of_its_evaluation_batches():
    images = np.arange(5, dtype=np.uint8)[:, None, None, None] * np.full((1, 2, 2, 1), 50, np.uint8)
    labels = np.array([1, 1, 0, 0, 1])
    batches = [  # two batches of 3, the last padded with one masked row
        {"image": images[:3], "label": labels[:3], "mask": np.array([True, True, True])},
        {"image": np.concatenate([images[3:], images[:1]]), "label": np.r_[labels[3:], 0],
         "mask": np.array([True, True, False])},
    ]
    run = types.SimpleNamespace(
        model=MeanClassifier(), variables={},
        task=types.SimpleNamespace(inputs=lambda batch: jnp.asarray(batch["image"], jnp.float32)),
        data=lambda: types.SimpleNamespace(eval_batches=lambda split: iter(batches)))
    predictions = collect_predictions(run, "test")
    np.testing.assert_array_equal(predictions.labels, labels)
    np.testing.assert_array_equal(predictions.images, images)
    np.testing.assert_allclose(predictions.logits[:, 0], [0, 50, 100, 150, 200])
    np.testing.assert_array_equal(predictions.predicted, [1, 1, 0, 0, 0])
    assert predictions.accuracy == pytest.approx(0.8)
    assert len(collect_predictions(run, "test", limit=2, keep_images=False).labels) == 2
    np.testing.assert_array_equal(images_at(run, "test", [4, 0, 3]), images[[4, 0, 3]])
    with pytest.raises(IndexError, match="has 5 examples; no example 5"):
        images_at(run, "test", [1, 5])


def test_ece_by_hand_with_ten_bins():
    confidences = np.array([0.95, 0.95, 0.85, 0.55, 0.55, 0.25])
    correct = np.array([1, 0, 1, 1, 0, 0], bool)
    # (0.9, 1]: 2 examples, accuracy 1/2, confidence 0.95 -> 2/6 * 0.45 = 0.15
    # (0.8, 0.9]: 1, accuracy 1, confidence 0.85          -> 1/6 * 0.15 = 0.025
    # (0.5, 0.6]: 2, accuracy 1/2, confidence 0.55        -> 2/6 * 0.05 = 0.016667
    # (0.2, 0.3]: 1, accuracy 0, confidence 0.25          -> 1/6 * 0.25 = 0.041667
    assert expected_calibration_error(confidences, correct, 10) == pytest.approx(0.233333, abs=1e-6)
    bins = reliability_bins(confidences, correct, 10)
    np.testing.assert_array_equal(bins.counts, [0, 0, 1, 0, 0, 2, 0, 0, 1, 2])
    np.testing.assert_allclose(bins.accuracy[[2, 5, 8, 9]], [0, 0.5, 1, 0.5])
    np.testing.assert_allclose(bins.confidence[[2, 5, 8, 9]], [0.25, 0.55, 0.85, 0.95])
    assert np.isnan(bins.accuracy[0])


def test_bins_are_closed_on_the_right_as_in_guo_et_al():
    bins = reliability_bins(np.array([0.5, 0.75, 1.0, 0.0]), np.array([1, 1, 0, 0]), 4)
    np.testing.assert_array_equal(bins.counts, [1, 1, 1, 1])  # 0.5 in (0.25, 0.5], 0 in the first


def test_a_calibrated_classifier_has_zero_ece_and_an_overconfident_one_its_gap():
    confidences = np.full(10, 0.8)
    assert expected_calibration_error(confidences, np.arange(10) < 8) == pytest.approx(0.0)
    assert expected_calibration_error(confidences, np.arange(10) < 5) == pytest.approx(0.3)


def test_confidence_is_the_top_softmax_probability():
    logits = np.log(np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3]]))
    confidences, correct = confidences_and_correct(logits, np.array([0, 2]))
    np.testing.assert_allclose(confidences, [0.6, 0.5], rtol=1e-6)
    np.testing.assert_array_equal(correct, [True, False])
    assert jax.numpy.allclose(confidences.sum(), 1.1)
