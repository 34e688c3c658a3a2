"""Specification of cnn_jax.ops.nms: kept indices exactly torchvision's (ties, degenerate boxes,
IoU on the threshold, empty sets), padded rows ignored, per-category suppression, under jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torchvision.ops as tvo

from cnn_jax import ops


def random_boxes(rng: np.random.Generator, n: int, integer: bool = False) -> np.ndarray:
    """n xyxy float32 boxes, crowded enough in a 100 x 100 image that many overlap."""
    xy = rng.uniform(0, 80, (n, 2))
    wh = rng.uniform(1, 30, (n, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1)
    return (np.round(boxes) if integer else boxes).astype(np.float32)


def torchvision_nms(boxes, scores, threshold) -> np.ndarray:
    return tvo.nms(torch.from_numpy(boxes), torch.from_numpy(scores), threshold).numpy()


def jit_nms(boxes, scores, threshold, max_output_size, valid=None):
    # The threshold is a Python number inside the compiled function, as in a detector's config.
    fn = jax.jit(ops.nms, static_argnums=(2, 3))
    keep, count = fn(boxes, scores, threshold, max_output_size, valid)
    return np.asarray(keep), int(count)


def assert_kept(keep: np.ndarray, count: int, expected: np.ndarray) -> None:
    assert count == len(expected)
    np.testing.assert_array_equal(keep[:count], expected)
    assert (keep[count:] == -1).all()


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.7, 1.0])
def test_nms_keeps_exactly_torchvisions_indices_in_score_order(threshold):
    rng = np.random.default_rng(0)
    boxes, scores = random_boxes(rng, 300), rng.uniform(size=300).astype(np.float32)
    keep, count = jit_nms(boxes, scores, threshold, 300)
    assert_kept(keep, count, torchvision_nms(boxes, scores, threshold))
    assert 0 < count <= 300
    assert (np.diff(scores[keep[:count]]) <= 0).all()


def test_nms_breaks_score_ties_by_lower_index_as_torchvision_does():
    # Five distinct scores over 400 boxes: most comparisons are ties. torchvision's CPU kernel
    # sorts the scores stably, so of two tied boxes the lower index comes first and suppresses.
    rng = np.random.default_rng(1)
    boxes = random_boxes(rng, 400, integer=True)
    scores = rng.integers(0, 5, 400).astype(np.float32)
    expected = torchvision_nms(boxes, scores, 0.4)
    keep, count = jit_nms(boxes, scores, 0.4, 400)
    assert_kept(keep, count, expected)
    tied = scores[expected] == scores[expected[0]]
    assert (np.diff(expected[tied]) > 0).all()


def test_nms_suppresses_only_iou_strictly_greater_than_the_threshold():
    # IoU of the second box with the first is exactly 0.5 (overlap 2, union 4): kept at 0.5.
    boxes = np.array([[0, 0, 2, 2], [0, 0, 2, 1]], np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    assert_kept(*jit_nms(boxes, scores, 0.5, 2), np.array([0, 1]))
    assert_kept(*jit_nms(boxes, scores, 0.4999, 2), np.array([0]))
    np.testing.assert_array_equal(torchvision_nms(boxes, scores, 0.5), [0, 1])


def test_nms_compares_the_iou_with_the_threshold_in_double_precision_as_torchvision():
    # IoU 3/10 rounds to float32 0.30000001 > 0.3: torchvision suppresses at threshold 0.3.
    # Rounding the threshold to float32 as well would keep the box.
    boxes = np.array([[0, 0, 10, 1], [0, 0, 3, 1]], np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    np.testing.assert_array_equal(torchvision_nms(boxes, scores, 0.3), [0])
    assert_kept(*jit_nms(boxes, scores, 0.3, 2), np.array([0]))


def test_nms_never_suppresses_with_or_suppresses_zero_area_boxes():
    rng = np.random.default_rng(2)
    boxes, scores = random_boxes(rng, 40), rng.uniform(size=40).astype(np.float32)
    boxes[3, 2:] = boxes[3, :2]  # a point
    boxes[4] = boxes[3]  # the same point again: IoU 0/0 = nan, not > threshold
    boxes[5, 2] = boxes[5, 0]  # a vertical line
    scores[3:6] = 2.0  # highest scores
    expected = torchvision_nms(boxes, scores, 0.2)
    assert {3, 4, 5} <= set(expected.tolist())
    assert_kept(*jit_nms(boxes, scores, 0.2, 40), expected)


def test_nms_of_no_boxes_keeps_nothing():
    empty = np.zeros((0, 4), np.float32)
    keep, count = jit_nms(empty, np.zeros((0,), np.float32), 0.5, 5)
    assert_kept(keep, count, torchvision_nms(empty, np.zeros((0,), np.float32), 0.5))
    np.testing.assert_array_equal(keep, [-1] * 5)


def test_nms_stops_at_max_output_size_with_torchvisions_first_indices():
    rng = np.random.default_rng(3)
    boxes, scores = random_boxes(rng, 200), rng.uniform(size=200).astype(np.float32)
    expected = torchvision_nms(boxes, scores, 0.5)
    assert len(expected) > 10
    keep, count = jit_nms(boxes, scores, 0.5, 10)
    assert count == 10
    np.testing.assert_array_equal(keep, expected[:10])


def test_nms_under_jit_ignores_padded_rows():
    rng = np.random.default_rng(4)
    real, scores = random_boxes(rng, 50), rng.uniform(size=50).astype(np.float32)
    # Padding: copies of real boxes with the highest scores, which would suppress them if used.
    padded = np.concatenate([real, real[:14]])
    padded_scores = np.concatenate([scores, np.full(14, 5.0, np.float32)])
    valid = np.arange(64) < 50
    keep, count = jit_nms(padded, padded_scores, 0.5, 64, valid)
    assert_kept(keep, count, torchvision_nms(real, scores, 0.5))


def test_nms_takes_a_traced_threshold_and_vmaps_over_images():
    rng = np.random.default_rng(5)
    boxes = np.stack([random_boxes(rng, 60) for _ in range(3)])
    scores = rng.uniform(size=(3, 60)).astype(np.float32)
    thresholds = jnp.array([0.3, 0.5, 0.7])
    fn = jax.jit(jax.vmap(lambda b, s, th: ops.nms(b, s, th, 60)))
    keep, count = fn(boxes, scores, thresholds)
    for i, th in enumerate([0.3, 0.5, 0.7]):
        # 0.3, 0.5 and 0.7 round to float32 values whose comparisons agree with the doubles
        # for these random IoUs: the traced threshold is compared in float32.
        assert_kept(np.asarray(keep[i]), int(count[i]), torchvision_nms(boxes[i], scores[i], th))


@pytest.mark.parametrize("n", [300, 1500])
def test_batched_nms_equals_torchvision_per_category(n):
    # torchvision takes its coordinate-shift path up to 1,000 boxes on the CPU and one NMS per
    # category above; integer coordinates keep the shift exact, so both paths are comparable.
    rng = np.random.default_rng(6)
    boxes = random_boxes(rng, n, integer=True)
    scores = rng.permutation(n).astype(np.float32) / n  # distinct scores: see below
    idxs = rng.integers(0, 7, n)
    expected = tvo.batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores),
                               torch.from_numpy(idxs), 0.5).numpy()
    fn = jax.jit(ops.batched_nms, static_argnums=(3, 4))
    keep, count = fn(boxes, scores, idxs, 0.5, n)
    assert_kept(np.asarray(keep), int(count), expected)
    # Fewer boxes are suppressed than by class-blind NMS.
    assert int(count) > len(torchvision_nms(boxes, scores, 0.5))


def test_batched_nms_with_tied_scores_equals_torchvisions_shift_path():
    # torchvision's per-category path (over 1,000 boxes) re-sorts the kept scores with an
    # unstable sort, so ties are compared on its coordinate-shift path, which sorts stably.
    rng = np.random.default_rng(7)
    boxes = random_boxes(rng, 500, integer=True)
    scores = rng.integers(0, 4, 500).astype(np.float32)
    idxs = rng.integers(0, 3, 500)
    expected = tvo.batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores),
                               torch.from_numpy(idxs), 0.3).numpy()
    keep, count = jax.jit(ops.batched_nms, static_argnums=(3, 4))(boxes, scores, idxs, 0.3, 500)
    assert_kept(np.asarray(keep), int(count), expected)


def test_batched_nms_keeps_overlapping_boxes_of_different_categories_with_negative_coords():
    # Identical boxes in different categories both survive. torchvision's coordinate shift,
    # category x (largest coordinate + 1), is 0 here (the largest coordinate is -1), so its
    # shift path would let box 0 suppress box 1; its per-category path and ours do not.
    boxes = np.array([[-20, -20, -5, -5], [-20, -20, -5, -5], [-19, -20, -5, -5],
                      [-16, -16, -1, -1]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    idxs = np.array([0, 1, 0, 0])
    keep, count = ops.batched_nms(boxes, scores, idxs, 0.5, 4)
    per_category = tvo.boxes._batched_nms_vanilla(  # torchvision's path above 1,000 boxes
        torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(idxs), 0.5).numpy()
    np.testing.assert_array_equal(per_category, [0, 1, 3])
    assert_kept(np.asarray(keep), int(count), per_category)


def test_nms_of_ten_thousand_boxes_equals_torchvision():
    rng = np.random.default_rng(8)
    boxes = random_boxes(rng, 10_000) * 10  # a 1000 x 1000 image
    scores = rng.uniform(size=10_000).astype(np.float32)
    expected = torchvision_nms(boxes, scores, 0.5)
    assert 1_000 < len(expected) < 9_000
    keep, count = jit_nms(boxes, scores, 0.5, 10_000)
    assert_kept(keep, count, expected)
