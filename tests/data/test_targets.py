"""Specification of cnn_jax.data.targets: tight boxes of instance maps, and what happens to a box
that a geometric op moves partly out of the image."""

import numpy as np

from cnn_jax.data.targets import (
    IGNORE,
    MIN_VISIBLE_FRACTION,
    box_area,
    keep_instances,
    pad_box_targets,
    pad_boxes,
    settle_boxes,
    tight_boxes,
)


def test_ignore_is_255_the_void_label_of_voc_and_pytorchs_convention():
    assert IGNORE == 255


def test_tight_box_of_a_pixel_set_spans_its_pixels_edges():
    instances = np.zeros((2, 8, 10), np.uint8)
    instances[0, 2:5, 3:7] = 1  # rows 2..4, columns 3..6
    instances[0, 6, 9] = 2  # one pixel in the corner
    instances[1, 0, 0] = 3
    boxes, present = tight_boxes(instances, 3)
    assert present.tolist() == [[True, True, False], [False, False, True]]
    assert boxes[0, 0].tolist() == [3, 2, 7, 5]
    assert boxes[0, 1].tolist() == [9, 6, 10, 7]  # a single pixel is a 1 x 1 box
    assert boxes[1, 2].tolist() == [0, 0, 1, 1]
    assert not boxes[0, 2].any() and not boxes[1, :2].any()


def test_a_box_keeps_its_clipped_part_or_becomes_padding_with_its_instance_pixels():
    instances = np.zeros((1, 10, 10), np.uint8)
    instances[0, 0:2, 0:2] = 1
    instances[0, 5:9, 5:9] = 2
    targets = {"boxes": np.zeros((1, 3, 4), np.float32), "classes": np.array([[4, 7, 0]], np.int32),
               "box_mask": np.array([[True, True, False]]), "instances": instances}
    moved = np.array([[[-3, 0, 2, 4],  # 2 x 4 of 5 x 4 visible: kept, clipped
                       [8, 8, 14, 14],  # 2 x 2 of 6 x 6 visible (1/9 < 1/4): dropped
                       [0, 0, 0, 0]]], np.float32)
    out = settle_boxes(targets, moved, 10, 10)
    assert out["box_mask"].tolist() == [[True, False, False]]
    assert out["boxes"][0].tolist() == [[0, 0, 2, 4], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert out["classes"].tolist() == [[4, 0, 0]]
    assert np.array_equal(out["instances"], np.where(instances == 2, 0, instances))
    assert MIN_VISIBLE_FRACTION == 0.25


def test_a_box_below_one_square_pixel_is_dropped_even_when_wholly_visible():
    targets = {"boxes": np.zeros((1, 1, 4), np.float32), "box_mask": np.ones((1, 1), bool)}
    out = settle_boxes(targets, np.array([[[2, 2, 2.5, 3.5]]], np.float32), 8, 8)
    assert not out["box_mask"].any() and not out["boxes"].any()


def test_box_area_is_zero_for_empty_boxes():
    assert box_area(np.array([[0, 0, 2, 3], [5, 5, 4, 9]], np.float32)).tolist() == [6, 0]


def test_keep_instances_zeroes_the_pixels_of_dropped_rows_only():
    instances = np.array([[[0, 1, 2, 3]]], np.uint8)
    assert keep_instances(instances, np.array([[True, False, True]])).tolist() == [[[0, 1, 0, 3]]]


def test_an_examples_boxes_are_padded_to_max_boxes_with_a_mask():
    boxes, classes, mask = pad_boxes(np.array([[1, 2, 3, 4]]), np.array([7]), 3)
    assert boxes.dtype == np.float32 and classes.dtype == np.int32 and mask.dtype == bool
    assert boxes.tolist() == [[1, 2, 3, 4], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert classes.tolist() == [7, 0, 0] and mask.tolist() == [True, False, False]
    empty = pad_boxes(np.zeros((0, 4)), np.zeros((0,)), 2)
    assert not empty[2].any()


def test_per_box_flags_are_padded_with_false_and_dropped_with_their_box():
    example = {"boxes": np.array([[0, 0, 4, 4], [6, 6, 9, 9]], np.float32),
               "classes": np.array([3, 5]), "difficult": np.array([False, True]),
               "crowd": np.array([True, True])}
    padded = pad_box_targets(example, 3)
    assert set(padded) == {"boxes", "classes", "box_mask", "difficult", "crowd"}
    assert padded["difficult"].tolist() == [False, True, False]
    assert padded["crowd"].tolist() == [True, True, False] and padded["crowd"].dtype == bool
    assert "crowd" not in pad_box_targets({k: example[k] for k in ("boxes", "classes")}, 3)
    batch = {k: v[None] for k, v in padded.items()}
    moved = batch["boxes"] + np.array([7, 7, 7, 7], np.float32)  # the second box leaves a 10x10
    out = settle_boxes(batch, moved, 10, 10)
    assert out["box_mask"].tolist() == [[True, False, False]]
    assert out["difficult"].tolist() == [[False, False, False]]
    assert out["crowd"].tolist() == [[True, False, False]]
