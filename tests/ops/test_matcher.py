"""Specification of cnn_jax.ops.matcher: matches equal to torchvision's Matcher (thresholds,
low-quality matches with ties, padded ground truth and predictions), and a balanced sampler with
torchvision's counts, drawn uniformly, under jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from torchvision.models.detection._utils import BalancedPositiveNegativeSampler, Matcher

from cnn_jax import ops


def iou_matrix(rng: np.random.Generator, m: int, n: int, isolated: bool = False) -> np.ndarray:
    """IoUs of m ground-truth boxes with n anchors on a coarse integer grid: many exact ties.
    With `isolated`, ground-truth row 2 overlaps no anchor."""
    def boxes(k):
        xy = rng.integers(0, 40, (k, 2))
        return np.concatenate([xy, xy + rng.integers(4, 24, (k, 2))], axis=1).astype(np.float32)

    gt, anchors = boxes(m), boxes(n)
    gt[1] = gt[0]  # two identical ground-truth boxes: every IoU tied between rows 0 and 1
    if isolated:
        gt[2] = [200, 200, 210, 210]
    return np.array(ops.box_iou(gt, anchors))


def torchvision_match(quality, high, low, allow_low) -> np.ndarray:
    return Matcher(high, low, allow_low)(torch.from_numpy(quality)).numpy()


@pytest.mark.parametrize("high,low,allow_low", [(0.7, 0.3, True), (0.5, 0.5, False),
                                                (0.5, 0.4, True), (0.6, 0.2, False)])
def test_match_equals_torchvisions_matcher(high, low, allow_low):
    quality = iou_matrix(np.random.default_rng(0), 8, 300)
    ours = np.asarray(jax.jit(lambda q: ops.match(q, high, low, allow_low))(quality))
    expected = torchvision_match(quality, high, low, allow_low)
    np.testing.assert_array_equal(ours, expected)
    assert {-1, -2} & set(ours.tolist()) and (ours >= 0).any()
    assert not (ours == 1).any()  # ties between rows 0 and 1 go to the lower index


def test_ground_truth_overlapping_no_anchor_makes_every_anchor_a_low_quality_match():
    # Its best IoU, 0, is tied by every anchor, so torchvision's rule matches them all (each to
    # its own best row): the specification follows torchvision, quirk included.
    quality = iou_matrix(np.random.default_rng(5), 8, 300, isolated=True)
    ours = np.asarray(ops.match(quality, 0.7, 0.3, allow_low_quality_matches=True))
    np.testing.assert_array_equal(ours, torchvision_match(quality, 0.7, 0.3, True))
    np.testing.assert_array_equal(ours, np.asarray(quality).argmax(axis=0))
    assert (np.asarray(ops.match(quality, 0.7, 0.3)) < 0).any()


def test_low_quality_matches_give_every_ground_truth_its_best_anchors():
    quality = np.array([[0.1, 0.6, 0.6, 0.0], [0.0, 0.2, 0.5, 0.8]], np.float32)
    ours = np.asarray(ops.match(quality, 0.7, 0.3, allow_low_quality_matches=True))
    # Row 0's best IoU, 0.6, is tied between anchors 1 and 2: both take their own best row, 0,
    # although 0.6 < 0.7. Anchor 3 is above 0.7 for row 1; anchor 0 is background.
    np.testing.assert_array_equal(ours, [-1, 0, 0, 1])
    np.testing.assert_array_equal(ours, torchvision_match(quality, 0.7, 0.3, True))
    np.testing.assert_array_equal(np.asarray(ops.match(quality, 0.7, 0.3)), [-1, -2, -2, 1])


def test_match_never_matches_padded_ground_truth():
    quality = iou_matrix(np.random.default_rng(1), 10, 200)
    padded = np.concatenate([quality, np.ones((4, 200), np.float32)])  # padding rows of IoU 1
    gt_mask = np.arange(14) < 10
    ours = jax.jit(lambda q, m: ops.match(q, 0.7, 0.3, True, gt_mask=m))(padded, gt_mask)
    np.testing.assert_array_equal(np.asarray(ours), torchvision_match(quality, 0.7, 0.3, True))


def test_match_labels_padded_predictions_ignored_and_keeps_them_out_of_low_quality_ties():
    quality = iou_matrix(np.random.default_rng(2), 6, 150)
    padded = np.concatenate([quality, np.ones((6, 10), np.float32)], axis=1)
    pred_mask = np.arange(160) < 150
    ours = np.asarray(jax.jit(lambda q, m: ops.match(q, 0.7, 0.3, True, pred_mask=m))(padded,
                                                                                   pred_mask))
    np.testing.assert_array_equal(ours[:150], torchvision_match(quality, 0.7, 0.3, True))
    np.testing.assert_array_equal(ours[150:], ops.BETWEEN_THRESHOLDS)


def test_match_without_ground_truth_makes_every_prediction_background():
    ours = np.asarray(ops.match(np.zeros((0, 5), np.float32), 0.7, 0.3, True))
    np.testing.assert_array_equal(ours, [ops.BELOW_LOW_THRESHOLD] * 5)
    all_padded = np.asarray(ops.match(np.ones((3, 5), np.float32), 0.7, 0.3, True,
                                      gt_mask=np.zeros(3, bool)))
    np.testing.assert_array_equal(all_padded, [-1] * 5)


def test_match_of_nan_quality_equals_torchvision():
    # Two zero-area boxes have IoU 0/0 = nan; torch's max propagates it and so does ours.
    quality = np.array([[0.8, np.nan, 0.1], [0.2, 0.3, 0.9]], np.float32)
    for allow_low in (False, True):
        np.testing.assert_array_equal(np.asarray(ops.match(quality, 0.7, 0.3, allow_low)),
                                      torchvision_match(quality, 0.7, 0.3, allow_low))


def test_match_rejects_low_above_high():
    with pytest.raises(ValueError, match="pass low <= high"):
        ops.match(np.zeros((1, 1), np.float32), 0.3, 0.7)


def random_labels(rng: np.random.Generator, n: int, n_pos: int, n_neg: int) -> np.ndarray:
    labels = np.full(n, -1)
    order = rng.permutation(n)
    labels[order[:n_pos]] = rng.integers(1, 5, n_pos)
    labels[order[n_pos:n_pos + n_neg]] = 0
    return labels


@pytest.mark.parametrize("n_pos,n_neg", [(5, 900), (300, 900), (300, 40), (0, 0), (3, 2)])
def test_sample_balanced_takes_torchvisions_counts_from_the_right_sets(n_pos, n_neg):
    labels = random_labels(np.random.default_rng(3), 1000, n_pos, n_neg)
    sample = jax.jit(lambda key, lab: ops.sample_balanced(key, lab, 256, 0.5))
    pos, neg = sample(jax.random.key(0), labels)
    pos, neg = np.asarray(pos), np.asarray(neg)
    ref_pos, ref_neg = BalancedPositiveNegativeSampler(256, 0.5)([torch.from_numpy(labels)])
    assert pos.sum() == int(ref_pos[0].sum()) and neg.sum() == int(ref_neg[0].sum())
    assert (labels[pos] >= 1).all() and (labels[neg] == 0).all()
    assert pos.sum() == min(n_pos, 128) and neg.sum() == min(n_neg, 256 - pos.sum())


def test_sample_balanced_draws_each_candidate_equally_often():
    # 20 positives, 4 drawn per key: over 500 keys each is drawn 100 times on average with a
    # binomial standard deviation of sqrt(500 x 0.2 x 0.8) = 8.9; 5 sigma is 45.
    labels = np.concatenate([np.ones(20, int), np.full(5, -1)])
    keys = jax.random.split(jax.random.key(1), 500)
    pos, _ = jax.jit(jax.vmap(lambda k: ops.sample_balanced(k, labels, 8, 0.5)))(keys)
    counts = np.asarray(pos).sum(axis=0)
    assert (np.asarray(pos).sum(axis=1) == 4).all()
    assert np.abs(counts[:20] - 100).max() < 45 and counts[20:].sum() == 0


def test_sample_balanced_depends_on_the_key_only():
    labels = random_labels(np.random.default_rng(4), 500, 100, 300)
    a = ops.sample_balanced(jax.random.key(7), labels, 64, 0.25)
    b = ops.sample_balanced(jax.random.key(7), jnp.asarray(labels), 64, 0.25)
    c = ops.sample_balanced(jax.random.key(8), labels, 64, 0.25)
    np.testing.assert_array_equal(np.asarray(a[0]), np.asarray(b[0]))
    assert (np.asarray(a[0]) != np.asarray(c[0])).any()


def test_match_of_no_predictions_is_empty():
    assert ops.match(np.zeros((3, 0), np.float32), 0.7, 0.3, True).shape == (0,)
