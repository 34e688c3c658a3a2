"""Specification of cnn_jax.ops.boxes: every function equal to torchvision.ops on random boxes that
include degenerate ones (points, lines, identical pairs, inverted), under jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torchvision.ops as tvo

from cnn_jax import ops

# Each value below is a handful (at most about ten) of float32 operations on coordinates, and
# both programs apply them in the same order; every operation rounds by at most 2^-24 of its
# magnitude, so the two results may differ by about 10 x 6e-8 < 1e-6 of the values involved
# (IoUs are at most 1 in size; coordinates here are below 100). atan in CIoU is library-specific
# but also accurate to a few units in the last place.
TOL = dict(rtol=1e-6, atol=1e-6)


def random_boxes(rng: np.random.Generator, n: int, degenerate: bool = True) -> np.ndarray:
    """xyxy float32 boxes in [0, 100); with `degenerate`, a third are points, lines or repeats."""
    xy = rng.uniform(0, 60, (n, 2))
    wh = rng.uniform(0.5, 40, (n, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1)
    if degenerate and n >= 6:
        boxes[0, 2:] = boxes[0, :2]  # a point
        boxes[1, 2] = boxes[1, 0]  # zero width
        boxes[2, 3] = boxes[2, 1]  # zero height
        boxes[3] = boxes[4]  # an identical pair
        boxes[5] = np.round(boxes[5])  # integer coordinates
    return boxes.astype(np.float32)


def t(a) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a))


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    return random_boxes(rng, 24), random_boxes(rng, 17)


@pytest.mark.parametrize("in_fmt", ["xyxy", "xywh", "cxcywh"])
@pytest.mark.parametrize("out_fmt", ["xyxy", "xywh", "cxcywh"])
def test_box_convert_equals_torchvision_between_all_formats(in_fmt, out_fmt):
    boxes = random_boxes(np.random.default_rng(1), 12)
    ours = jax.jit(lambda b: ops.box_convert(b, in_fmt, out_fmt))(boxes)
    np.testing.assert_array_equal(np.asarray(ours), tvo.box_convert(t(boxes), in_fmt, out_fmt))


def test_box_convert_round_trip_returns_the_boxes():
    boxes = random_boxes(np.random.default_rng(2), 8, degenerate=False)
    back = ops.box_convert(ops.box_convert(boxes, "xyxy", "cxcywh"), "cxcywh", "xyxy")
    np.testing.assert_allclose(np.asarray(back), boxes, **TOL)


def test_box_convert_names_the_formats_for_an_unknown_one():
    with pytest.raises(ValueError, match="use one of xyxy, xywh, cxcywh"):
        ops.box_convert(np.zeros((1, 4)), "xyxy", "yxyx")


def test_box_area_equals_torchvision_and_is_zero_for_points_and_lines(pair):
    boxes = pair[0]
    area = np.asarray(jax.jit(ops.box_area)(boxes))
    np.testing.assert_array_equal(area, tvo.box_area(t(boxes)))
    np.testing.assert_array_equal(area[:3], [0, 0, 0])


@pytest.mark.parametrize("name", ["box_iou", "generalized_box_iou", "distance_box_iou",
                                  "complete_box_iou"])
def test_pairwise_iou_family_equals_torchvision_including_nan_of_degenerate_pairs(name, pair):
    boxes1, boxes2 = pair
    ours = np.asarray(jax.jit(getattr(ops, name))(boxes1, boxes2))
    ref = getattr(tvo, name)(t(boxes1), t(boxes2)).numpy()
    assert ours.shape == (24, 17)
    np.testing.assert_allclose(ours, ref, equal_nan=True, **TOL)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))


def test_iou_of_a_point_with_itself_is_nan_as_in_torchvision():
    point = np.array([[3.0, 4.0, 3.0, 4.0]], np.float32)
    assert np.isnan(np.asarray(ops.box_iou(point, point))[0, 0])
    assert np.isnan(tvo.box_iou(t(point), t(point))[0, 0])
    # DIoU and CIoU add eps to the enclosing diagonal: still nan through the IoU term.
    assert np.isnan(np.asarray(ops.distance_box_iou(point, point))[0, 0])


def test_iou_of_identical_boxes_is_one_and_of_disjoint_boxes_zero():
    boxes = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    np.testing.assert_array_equal(np.asarray(ops.box_iou(boxes, boxes)), [[1, 0], [0, 1]])
    # GIoU of the disjoint pair: 0 - (enclosing 900 - union 200) / 900.
    np.testing.assert_allclose(np.asarray(ops.generalized_box_iou(boxes, boxes))[0, 1],
                               -700 / 900, rtol=1e-6)


def test_pairwise_ious_broadcast_over_leading_batch_dims(pair):
    boxes1, boxes2 = pair
    batch1, batch2 = np.stack([boxes1, boxes1[::-1]]), np.stack([boxes2, boxes2[::-1]])
    iou = jax.jit(ops.box_iou)
    ours = np.asarray(iou(batch1, batch2))
    assert ours.shape == (2, 24, 17)
    np.testing.assert_array_equal(ours[1], np.asarray(iou(boxes1[::-1], boxes2[::-1])))


@pytest.mark.parametrize("name", ["generalized_box_iou_loss", "distance_box_iou_loss",
                                  "complete_box_iou_loss"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_iou_losses_equal_torchvision_with_reductions(name, reduction):
    rng = np.random.default_rng(3)
    boxes1, boxes2 = random_boxes(rng, 30), random_boxes(rng, 30)
    boxes2[7] = boxes1[7]  # an identical pair: loss 0 (or the eps-limited value)
    ours = jax.jit(lambda a, b: getattr(ops, name)(a, b, reduction=reduction))(boxes1, boxes2)
    ref = getattr(tvo, name)(t(boxes1), t(boxes2), reduction=reduction).numpy()
    # A sum of 30 losses of size <= 3 accumulates 30 roundings more: 1e-5 of the sum's scale.
    np.testing.assert_allclose(np.asarray(ours), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["generalized_box_iou_loss", "distance_box_iou_loss",
                                  "complete_box_iou_loss"])
def test_iou_losses_with_eps_and_point_boxes_equal_torchvision(name):
    boxes1 = np.array([[1, 1, 1, 1], [0, 0, 4, 4], [2, 2, 2, 5]], np.float32)
    boxes2 = np.array([[1, 1, 1, 1], [1, 1, 2, 2], [0, 0, 3, 3]], np.float32)
    ours = np.asarray(getattr(ops, name)(boxes1, boxes2, eps=1e-3))
    ref = getattr(tvo, name)(t(boxes1), t(boxes2), eps=1e-3).numpy()
    np.testing.assert_allclose(ours, ref, equal_nan=True, **TOL)


@pytest.mark.parametrize("name", ["generalized_box_iou_loss", "distance_box_iou_loss",
                                  "complete_box_iou_loss"])
def test_iou_loss_gradients_equal_torch_autograd(name):
    rng = np.random.default_rng(4)
    boxes1, boxes2 = random_boxes(rng, 16, degenerate=False), random_boxes(rng, 16, False)
    ours = jax.jit(jax.grad(lambda b: getattr(ops, name)(b, boxes2, reduction="sum")))(boxes1)
    tb = t(boxes1.copy()).requires_grad_()
    getattr(tvo, name)(tb, t(boxes2), reduction="sum").backward()
    # Each gradient entry is a chain of about 20 float32 operations on values of order 1/size.
    np.testing.assert_allclose(np.asarray(ours), tb.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_iou_loss_mean_of_no_boxes_is_zero_as_in_torchvision():
    empty = np.zeros((0, 4), np.float32)
    assert float(ops.generalized_box_iou_loss(empty, empty, reduction="mean")) == 0.0
    assert float(tvo.generalized_box_iou_loss(t(empty), t(empty), reduction="mean")) == 0.0


def test_iou_loss_rejects_an_unknown_reduction_by_naming_the_choices():
    with pytest.raises(ValueError, match="none, mean, sum"):
        ops.distance_box_iou_loss(np.zeros((1, 4)), np.zeros((1, 4)), reduction="max")


def test_clip_boxes_to_image_equals_torchvision():
    boxes = np.array([[-5, -3, 50, 70], [10, 20, 30, 40], [90, 90, 120, 130]], np.float32)
    ours = jax.jit(lambda b: ops.clip_boxes_to_image(b, (64, 100)))(boxes)
    np.testing.assert_array_equal(np.asarray(ours), tvo.clip_boxes_to_image(t(boxes), (64, 100)))
    np.testing.assert_array_equal(np.asarray(ours)[0], [0, 0, 50, 64])


def test_clip_boxes_to_image_takes_a_traced_image_size():
    boxes = np.array([[[-5, -3, 50, 70]], [[-5, -3, 50, 70]]], np.float32)
    sizes = jnp.array([[64, 100], [32, 40]])
    ours = jax.jit(jax.vmap(ops.clip_boxes_to_image))(boxes, sizes)
    np.testing.assert_array_equal(np.asarray(ours)[:, 0], [[0, 0, 50, 64], [0, 0, 40, 32]])


def test_remove_small_boxes_mask_selects_torchvisions_indices(pair):
    boxes = pair[0]
    mask = np.asarray(jax.jit(lambda b: ops.remove_small_boxes(b, 10.0))(boxes))
    assert mask.shape == (24,)
    np.testing.assert_array_equal(np.nonzero(mask)[0], tvo.remove_small_boxes(t(boxes), 10.0))
    assert not mask[:3].any()  # the point and the two lines


@pytest.mark.parametrize("name", ["box_iou", "generalized_box_iou", "distance_box_iou",
                                  "complete_box_iou"])
def test_pairwise_ious_of_empty_sets_have_torchvisions_empty_shapes(name, pair):
    empty = np.zeros((0, 4), np.float32)
    fn = jax.jit(getattr(ops, name))
    for a, b in [(empty, pair[1]), (pair[0], empty), (empty, empty)]:
        assert fn(a, b).shape == tuple(getattr(tvo, name)(t(a), t(b)).shape)
