"""Specification of cnn_jax.data.scenes: digit scenes whose ground truth is exact, against a
digit-by-digit painter written out plainly here."""

import numpy as np
import pytest
from PIL import Image

from cnn_jax.data.scenes import INK, DigitSceneParams, render_scenes, resize_digits, split_rng
from cnn_jax.data.targets import IGNORE, tight_boxes

CROWDED = DigitSceneParams(canvas=40, max_digits=5, min_height=14, max_height=26, max_overlap=1.0)


@pytest.fixture(scope="module")
def digits(shared_data):
    with np.load(shared_data / "mnist.npz") as z:
        return z["x_train"][:500], z["y_train"][:500].astype(np.int64)


def paint(digits, labels, placement, canvas, max_digits):
    """The scenes painted one digit at a time from `placement`, rule by rule (module docs)."""
    n = len(placement)
    image = np.zeros((n, canvas, canvas), np.uint8)
    seg = np.zeros_like(image)
    slots = np.zeros_like(image)
    for i in range(n):
        for j, (row, top, left, side) in enumerate(placement[i]):
            if row < 0:
                continue
            patch = resize_digits(digits[row][None], side)[0]
            window = np.s_[top:top + side, left:left + side]
            image[i][window] = np.maximum(image[i][window], patch)
            support, ink = patch > 0, patch >= INK
            seg[i][window][support] = np.where(ink, labels[row] + 1, IGNORE)[support]
            slots[i][window][support] = np.where(ink, j + 1, 0)[support]
    boxes, visible = tight_boxes(slots, max_digits)
    out_boxes = np.zeros((n, max_digits, 4), np.float32)
    classes = np.zeros((n, max_digits), np.int64)
    instances = np.zeros_like(image)
    for i in range(n):
        for rank, j in enumerate(np.flatnonzero(visible[i])):  # visible digits, pasting order
            out_boxes[i, rank] = boxes[i, j]
            classes[i, rank] = labels[placement[i, j, 0]]
            instances[i][slots[i] == j + 1] = rank + 1
    return image, seg, instances, out_boxes, classes, visible.sum(1)


def test_scenes_are_the_digits_pasted_back_to_front_with_hidden_digits_dropped(digits):
    x, y = digits
    out = render_scenes(x, y, 60, CROWDED, np.random.default_rng(0))
    image, seg, instances, boxes, classes, count = paint(x, y, out["placement"], 40, 5)
    assert np.array_equal(out["image"][..., 0], image)
    assert np.array_equal(out["segmentation"], seg)
    assert np.array_equal(out["instances"], instances)
    assert np.array_equal(out["boxes"], boxes)
    assert np.array_equal(out["classes"], classes)
    assert np.array_equal(out["num_boxes"], count)
    placed = (out["placement"][..., 0] >= 0).sum(1)
    assert (placed > count).any()  # crowded canvases hide whole digits: they are dropped
    assert (placed >= 2).mean() > 0.5


def test_boxes_are_the_tight_boxes_of_the_ink_and_instances_agree_with_classes(digits):
    x, y = digits
    params = DigitSceneParams(train_size=1, test_size=1)
    out = render_scenes(x, y, 200, params, np.random.default_rng(1))
    seg, inst, k = out["segmentation"], out["instances"], out["num_boxes"]
    assert out["image"].shape == (200, 64, 64, 1) and out["image"].dtype == np.uint8
    assert 1 <= k.min() and k.max() <= 4 and set(np.unique(k)) == {1, 2, 3, 4}
    boxes, present = tight_boxes(inst, 4)
    assert np.array_equal(present, np.arange(4) < k[:, None])
    assert np.array_equal(boxes, out["boxes"])
    cls = np.concatenate([np.zeros((200, 1), np.int64), out["classes"] + 1], 1)
    assert np.array_equal(seg[inst > 0], np.take_along_axis(cls, inst.reshape(200, -1).astype(int),
                                                            1).reshape(inst.shape)[inst > 0])
    assert np.array_equal((seg >= 1) & (seg <= 10), inst > 0)  # a class only on a digit's ink
    assert np.array_equal(out["image"][..., 0] > 0, seg > 0)  # background is exactly black
    assert np.all(out["image"][..., 0][inst > 0] >= INK)
    assert set(np.unique(seg)) <= {*range(11), IGNORE}
    heights = boxes[..., 3] - boxes[..., 1]
    assert heights[present].max() <= 40 and np.median(heights[present]) > 16
    assert np.array_equal(out["digit_index"] >= 0, present)
    assert np.array_equal(out["classes"][present], y[out["digit_index"][present]])


def test_scenes_are_a_pure_function_of_the_seed(digits):
    x, y = digits
    params = DigitSceneParams()
    a = render_scenes(x, y, 30, params, split_rng(3, "train"))
    b = render_scenes(x, y, 30, params, split_rng(3, "train"))
    c = render_scenes(x, y, 30, params, split_rng(4, "train"))
    d = render_scenes(x, y, 30, params, split_rng(3, "test"))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["image"], c["image"]) and not np.array_equal(a["image"], d["image"])


def test_a_digit_is_its_mnist_frame_scaled_so_its_20_pixel_box_gets_the_drawn_height(digits):
    assert DigitSceneParams.frame_side(20) == 28 and DigitSceneParams.frame_side(40) == 56
    x = digits[0][:20]
    for side in (28, 35, 56):  # enlargements: PIL's bilinear filter, to one grey level
        pil = np.stack([np.asarray(Image.fromarray(d).resize((side, side), Image.BILINEAR))
                        for d in x])
        assert np.abs(resize_digits(x, side).astype(int) - pil).max() <= 1


def test_variants_are_named_by_their_options_and_bad_options_say_what_is_allowed():
    params = DigitSceneParams.parse("canvas=96, max_digits=6,max_overlap=0.5")
    assert (params.canvas, params.max_digits, params.max_overlap) == (96, 6, 0.5)
    assert params.options() == "canvas=96,max_digits=6,max_overlap=0.5"
    assert params.config_name() == ("canvas96_digits1-6_height16-40_overlap50_train12000_test2000"
                                    "_seed0")
    assert DigitSceneParams.parse("") == DigitSceneParams()
    with pytest.raises(ValueError, match="among canvas, min_digits"):
        DigitSceneParams.parse("digits=3")
    with pytest.raises(ValueError, match="<= canvas"):
        DigitSceneParams.parse("canvas=48")
    with pytest.raises(ValueError, match="has max_digits=1"):
        DigitSceneParams.parse("max_digits=2", min_digits=1, max_digits=1)


def test_digits_are_placed_so_that_their_ink_boxes_overlap_by_at_most_max_overlap(digits):
    x, y = digits
    out = render_scenes(x, y, 100, DigitSceneParams(max_overlap=0.1), np.random.default_rng(2))
    worst = 0.0
    for scene in out["placement"]:
        ink = []
        for row, top, left, side in scene[scene[:, 0] >= 0]:
            ink_map = (resize_digits(x[row][None], side) >= INK).astype(np.uint8)
            box = tight_boxes(ink_map, 1)[0][0, 0]
            ink.append(box + [left, top, left, top])
        for a in range(len(ink)):
            for b in range(a):
                w = max(0, min(ink[a][2], ink[b][2]) - max(ink[a][0], ink[b][0]))
                h = max(0, min(ink[a][3], ink[b][3]) - max(ink[a][1], ink[b][1]))
                area = np.prod(ink[a][2:] - ink[a][:2]) + np.prod(ink[b][2:] - ink[b][:2])
                worst = max(worst, w * h / (area - w * h))
    assert 0 < worst <= 0.1
