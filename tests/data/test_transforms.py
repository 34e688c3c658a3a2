"""Specification of cnn_jax.data.transforms on real full-size ImageNet photographs: every mode
decodes to RGB, evaluation is exactly resize-shorter-side-256 then center-crop-224, and the
random resized crop follows the Inception / torchvision rules, fallback included."""

import io

import numpy as np
import pytest
from data_helpers import fullsize_photo
from PIL import Image

from cnn_jax.data import transforms
from cnn_jax.data.transforms import (
    PhotoTransform,
    center_crop_box,
    decode_rgb,
    eval_image,
    random_resized_crop,
    random_resized_crop_box,
    shorter_side_size,
)

TENCH = "n01440764"  # 500x375 RGB
AIREDALE = "n02096051"  # 500x330 grayscale (mode L)


def test_grayscale_photo_decodes_to_rgb_with_three_equal_channels(shared_data):
    path = fullsize_photo(shared_data, AIREDALE)
    with Image.open(path) as im:
        assert im.mode == "L"
        gray = np.asarray(im)
    rgb = decode_rgb(path.read_bytes())
    assert rgb.mode == "RGB"
    x = np.asarray(rgb)
    assert x.shape == (330, 500, 3)
    for c in range(3):
        assert np.array_equal(x[..., c], gray)


def test_cmyk_jpeg_decodes_to_rgb_close_to_the_original_colours(shared_data):
    with Image.open(fullsize_photo(shared_data, TENCH)) as im:
        original = np.asarray(im.convert("RGB"), np.float64)
        buf = io.BytesIO()
        im.convert("CMYK").save(buf, format="JPEG", quality=95)
    rgb = decode_rgb(buf.getvalue())
    assert rgb.mode == "RGB" and rgb.size == (500, 375)
    # An inverted or channel-swapped conversion would be off by ~100 grey levels, not ~2.
    assert np.abs(np.asarray(rgb, np.float64) - original).mean() < 6


def test_a_path_a_uint8_array_and_bytes_decode_to_the_same_pixels(shared_data):
    path = fullsize_photo(shared_data, TENCH)
    from_path = np.asarray(decode_rgb(path))
    assert np.array_equal(np.asarray(decode_rgb(path.read_bytes())), from_path)
    assert np.array_equal(np.asarray(decode_rgb(from_path)), from_path)
    assert np.array_equal(np.asarray(decode_rgb(from_path[..., :1])), np.repeat(from_path[..., :1], 3, -1))


@pytest.mark.parametrize("size, expected", [((500, 375), (341, 256)), ((375, 500), (256, 341)),
                                            ((600, 399), (384, 256)), ((256, 256), (256, 256))])
def test_shorter_side_goes_to_256_and_the_longer_side_is_truncated(size, expected):
    assert shorter_side_size(*size, 256) == expected


def test_center_crop_offsets_are_rounded_half_differences():
    assert center_crop_box(341, 256, 224) == (58, 16, 282, 240)  # round(58.5) = 58
    assert center_crop_box(256, 384, 224) == (16, 80, 240, 304)
    with pytest.raises(ValueError, match="cannot center-crop"):
        center_crop_box(200, 300, 224)


def test_eval_image_is_resize_shorter_side_256_then_center_crop_224(shared_data):
    path = fullsize_photo(shared_data, TENCH)
    with Image.open(path) as im:
        expected = np.asarray(im.convert("RGB").resize((341, 256), Image.BILINEAR).crop((58, 16, 282, 240)))
    out = eval_image(decode_rgb(path), 224, 256)
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    assert np.array_equal(out, expected)
    # eval_resize=0: the shorter side goes straight to the crop size (341x256 -> 298x224).
    with Image.open(path) as im:
        direct = np.asarray(im.convert("RGB").resize((298, 224), Image.BILINEAR).crop((37, 0, 261, 224)))
    assert np.array_equal(eval_image(decode_rgb(path), 224, 0), direct)


def test_random_resized_crop_boxes_fit_and_keep_area_and_aspect_in_range():
    rng = np.random.default_rng(0)
    w_img, h_img = 500, 375
    boxes = np.array([random_resized_crop_box(w_img, h_img, rng) for _ in range(2000)])
    left, top, w, h = boxes.T
    assert np.all(left >= 0) and np.all(top >= 0)
    assert np.all(left + w <= w_img) and np.all(top + h <= h_img)
    area = w * h / (w_img * h_img)
    assert area.min() >= 0.08 * 0.95 and area.max() <= 1.0
    # Rounding w and h to whole pixels moves the ratio by at most about 1/h.
    ratio = w / h
    assert ratio.min() >= 3 / 4 - 1.5 / h.min() and ratio.max() <= 4 / 3 + 1.5 / h.min()
    assert area.min() < 0.12 and area.max() > 0.9  # the whole range is used
    assert len({tuple(b) for b in boxes}) > 1900


def test_random_resized_crop_falls_back_to_the_central_box_with_the_nearest_ratio():
    rng = np.random.default_rng(0)
    # Too wide (50:1) and too tall for any draw to fit: ratio clipped to 4/3 and 3/4.
    assert random_resized_crop_box(1000, 20, rng) == (486, 0, 27, 20)
    assert random_resized_crop_box(20, 1000, rng) == (0, 486, 20, 27)
    # With no attempts the fallback of an image inside the ratio range is the whole image.
    assert random_resized_crop_box(500, 375, rng, attempts=0) == (0, 0, 500, 375)


def test_random_resized_crop_is_a_function_of_the_generator(shared_data):
    image = decode_rgb(fullsize_photo(shared_data, TENCH))
    a = np.asarray(random_resized_crop(image, 224, np.random.default_rng(3)))
    b = np.asarray(random_resized_crop(image, 224, np.random.default_rng(3)))
    c = np.asarray(random_resized_crop(image, 224, np.random.default_rng(4)))
    assert a.shape == (224, 224, 3)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_random_resized_crop_resizes_exactly_the_drawn_box(shared_data):
    image = decode_rgb(fullsize_photo(shared_data, TENCH))
    left, top, w, h = random_resized_crop_box(500, 375, np.random.default_rng(9))
    expected = np.asarray(image.crop((left, top, left + w, top + h)).resize((224, 224), Image.BILINEAR))
    got = np.asarray(random_resized_crop(image, 224, np.random.default_rng(9)))
    assert np.array_equal(got, expected)


def test_training_without_random_resized_crop_uses_the_evaluation_crop(shared_data):
    data = fullsize_photo(shared_data, AIREDALE).read_bytes()
    t = PhotoTransform(224, 256, random_resized_crop=False)
    assert np.array_equal(t.train(data, np.random.default_rng(0)), t.eval(data))


def test_the_cached_form_gives_exactly_the_uncached_evaluation_image(shared_data):
    t = PhotoTransform(224, 256, random_resized_crop=True)
    for wnid in (TENCH, AIREDALE):
        data = fullsize_photo(shared_data, wnid).read_bytes()
        cached = t.cache(data)
        assert min(cached.shape[:2]) == 256 and cached.shape[2] == 3
        assert np.array_equal(t.eval(cached), t.eval(data))


def test_imagenet_statistics_are_the_standard_constants():
    assert transforms.IMAGENET_MEAN == (0.485, 0.456, 0.406)
    assert transforms.IMAGENET_STD == (0.229, 0.224, 0.225)
