"""Specification of the photometric and occlusion augmentation: the vertical flip, brightness /
contrast / saturation / channel-shift jitter within their ranges and the uint8 range, and cutout's
clipped zero square (DeVries & Taylor 2017)."""

import numpy as np
import pytest

from cnn_jax.data.augment import color_jitter, cutout, random_flip_ud


def _batch(n=32, h=8, w=8, c=3, low=1, high=256, seed=0):
    return np.random.default_rng(seed).integers(low, high, (n, h, w, c), dtype=np.uint8)


def test_vertical_flip_turns_about_half_the_images_upside_down():
    x = _batch(n=400)
    out = random_flip_ud(x, 3)
    flipped = np.array([np.array_equal(o, i[::-1]) for o, i in zip(out, x, strict=True)])
    kept = np.array([np.array_equal(o, i) for o, i in zip(out, x, strict=True)])
    assert np.all(flipped ^ kept)
    assert 150 < flipped.sum() < 250
    assert np.array_equal(out, random_flip_ud(x, 3))


def test_brightness_multiplies_each_image_by_one_factor_in_range():
    x = _batch(n=64, low=60, high=120, c=1)
    out = color_jitter(x, 0, brightness=0.5)
    ratio = out.astype(float) / x
    per_image = ratio.reshape(64, -1)
    assert np.all(per_image.max(1) - per_image.min(1) < 0.03)  # one factor per image (+ rounding)
    f = per_image.mean(1)
    assert np.all((f > 0.5 - 0.01) & (f < 1.5 + 0.01)) and f.min() < 0.7 and f.max() > 1.3


def test_contrast_scales_deviations_from_the_mean_grey():
    x = _batch(n=64, low=80, high=176)
    out = color_jitter(x, 1, contrast=0.5).astype(float)
    xf = x.astype(float)
    grey_mean = (xf @ [0.299, 0.587, 0.114]).mean(axis=(1, 2))
    f = (out.std(axis=(1, 2, 3)) / xf.std(axis=(1, 2, 3)))
    assert np.all((f > 0.5 - 0.02) & (f < 1.5 + 0.02)) and f.min() < 0.7 and f.max() > 1.3
    # out = f * x + (1 - f) * mean: the image's mean grey stays where it was.
    assert np.allclose((out @ [0.299, 0.587, 0.114]).mean(axis=(1, 2)), grey_mean, atol=0.6)


def test_saturation_leaves_grey_pixels_and_keeps_the_grey_level():
    grey = np.repeat(_batch(n=16, c=1), 3, axis=-1)
    assert np.array_equal(color_jitter(grey, 2, saturation=0.8), grey)
    x = _batch(n=64, low=90, high=170)  # no clipping at factors up to 1.5
    out = color_jitter(x, 2, saturation=0.5).astype(float)
    luma = [0.299, 0.587, 0.114]
    assert np.abs(out @ luma - x.astype(float) @ luma).max() <= 0.51  # rounding only
    spread = out.std(axis=-1).mean(axis=(1, 2)) / x.astype(float).std(axis=-1).mean(axis=(1, 2))
    assert np.all((spread > 0.5 - 0.03) & (spread < 1.5 + 0.03))
    assert spread.min() < 0.7 and spread.max() > 1.3  # desaturated and oversaturated images


def test_saturation_needs_three_channels():
    with pytest.raises(ValueError, match="RGB"):
        color_jitter(_batch(c=1), 0, saturation=0.2)


def test_channel_shift_adds_one_offset_per_image_and_channel():
    x = _batch(n=64, low=40, high=200)
    out = color_jitter(x, 3, channel_shift=30.0).astype(int)
    shift = out - x
    per = shift.reshape(64, -1, 3)
    assert np.all(per.max(1) - per.min(1) <= 1)  # constant over the pixels of a channel
    offsets = per.mean(1)
    assert np.all(np.abs(offsets) <= 30.5) and offsets.min() < -20 and offsets.max() > 20
    assert np.abs(np.corrcoef(offsets[:, 0], offsets[:, 1])[0, 1]) < 0.5  # channels independent


def test_channel_shift_saturates_at_0_and_255_instead_of_wrapping():
    bright = color_jitter(np.full((64, 2, 2, 3), 250, np.uint8), 4, channel_shift=100.0)
    dark = color_jitter(np.full((64, 2, 2, 3), 5, np.uint8), 4, channel_shift=100.0)
    assert bright.dtype == dark.dtype == np.uint8
    # 250 + U[-100, 100]: 255 when the offset is above 5, else 150..255. uint8 wrapping would
    # give 250 + 100 = 94.
    assert bright.min() >= 150 and 0.3 < (bright == 255).mean() < 0.7
    assert dark.max() <= 105 and 0.3 < (dark == 0).mean() < 0.7


def test_brightness_of_white_images_clips_at_255():
    x = np.full((64, 2, 2, 1), 250, np.uint8)
    out = color_jitter(x, 5, brightness=0.9)
    f = out[:, 0, 0, 0].astype(float) / 250
    # Factors above 1.02 give 255, never a wrapped small value.
    assert np.all((out[:, 0, 0, 0] == 255) | (f <= 1.02)) and (out == 255).sum() > 40


def test_cutout_zeroes_one_square_clipped_at_the_borders():
    x, size = _batch(n=300, h=16, w=16), 6
    out = cutout(x, size, 0)
    zero = (out == 0).all(-1)
    assert np.array_equal(out[~zero], x[~zero])  # nothing else changes
    full, heights = 0, []
    for z in zero:
        rows, cols = np.nonzero(z.any(1))[0], np.nonzero(z.any(0))[0]
        h, w = np.ptp(rows) + 1, np.ptp(cols) + 1
        assert z.sum() == h * w and z[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all()  # a box
        assert h <= size and w <= size
        full += (h, w) == (size, size)
        heights.append(h)
    # centres uniform over the image: most boxes are whole, some are cut by a border
    assert 70 < full < 200 and min(heights) <= 3
    assert np.array_equal(out, cutout(x, size, 0)) and not np.array_equal(out, cutout(x, size, 1))


def test_cutout_of_the_whole_image_side_still_keeps_part_of_most_images():
    x = _batch(n=64, h=8, w=8)
    out = cutout(x, 8, 1)
    kept = (out != 0).all(-1).mean(axis=(1, 2))
    assert np.all(kept < 1) and np.mean(kept > 0) > 0.9
