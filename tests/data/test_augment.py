"""Specification of cnn_jax.data.augment: batch ops that are deterministic from a seed and do what
their names say (crop shifts content with zero fill, flip mirrors), built from the config."""

import ml_collections
import numpy as np
import pytest

from cnn_jax.data.augment import (
    Compose,
    RandomCrop,
    RandomFlipLR,
    build_augment,
    random_crop,
    random_flip_lr,
)


def _batch(n=32, h=8, w=8, c=3, seed=0):
    # 1..255 so that every zero in an output is padding.
    return np.random.default_rng(seed).integers(1, 256, (n, h, w, c), dtype=np.uint8)


def _shift(image, dy, dx):
    """image moved by (dy, dx) pixels, zeros where nothing moved in."""
    h, w = image.shape[:2]
    out = np.zeros_like(image)
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        image[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def test_random_crop_is_a_function_of_the_seed():
    x = _batch()
    assert np.array_equal(random_crop(x, 2, 7), random_crop(x, 2, np.random.default_rng(7)))
    assert not np.array_equal(random_crop(x, 2, 7), random_crop(x, 2, 8))


def test_random_crop_shifts_each_image_by_at_most_padding_with_zero_fill():
    x, p = _batch(), 3
    out = random_crop(x, p, 0)
    assert out.shape == x.shape and out.dtype == np.uint8
    shifts = []
    for orig, crop in zip(x, out, strict=True):
        found = [(dy, dx) for dy in range(-p, p + 1) for dx in range(-p, p + 1)
                 if np.array_equal(crop, _shift(orig, dy, dx))]
        assert len(found) == 1
        shifts.append(found[0])
    # 32 draws from 49 offsets: many distinct shifts, including some that move the content.
    assert len(set(shifts)) > 10
    assert any(s != (0, 0) for s in shifts)


def test_random_crop_without_padding_returns_the_images():
    x = _batch()
    assert np.array_equal(random_crop(x, 0, 1), x)


def test_random_flip_mirrors_about_half_the_images_and_keeps_the_rest():
    x = _batch(n=400)
    out = random_flip_lr(x, 3)
    mirrored = np.array([np.array_equal(o, i[:, ::-1]) for o, i in zip(out, x, strict=True)])
    kept = np.array([np.array_equal(o, i) for o, i in zip(out, x, strict=True)])
    assert np.all(mirrored ^ kept)  # each image is exactly one of the two
    assert 150 < mirrored.sum() < 250
    assert np.array_equal(out, random_flip_lr(x, 3))


def test_ops_accept_only_generators_or_int_seeds():
    with pytest.raises(TypeError, match="Generator or an int seed"):
        random_flip_lr(_batch(), 0.5)


def test_build_augment_applies_crop_then_flip_from_one_generator():
    x = _batch()
    fn = build_augment({"random_crop_padding": 2, "horizontal_flip": True})
    assert fn == Compose((RandomCrop(2), RandomFlipLR()))
    g = np.random.default_rng(5)
    expected = random_flip_lr(random_crop(x, 2, g), g)
    assert np.array_equal(fn(x, 5), expected)


def test_build_augment_reads_a_configdict_and_skips_switched_off_ops():
    cfg = ml_collections.ConfigDict({"random_crop_padding": 0, "horizontal_flip": True})
    assert build_augment(cfg) == Compose((RandomFlipLR(),))


def test_build_augment_with_nothing_enabled_returns_images_unchanged():
    x = _batch()
    fn = build_augment({"random_crop_padding": 0, "horizontal_flip": False})
    assert not fn
    assert np.array_equal(fn(x, 0), x)
    assert not build_augment(None)


def test_build_augment_rejects_unknown_options_naming_the_known_ones():
    with pytest.raises(ValueError, match="horizontal_flip"):
        build_augment({"horizontal_flips": True})


def test_build_augment_leaves_random_resized_crop_to_the_per_photo_transform():
    fn = build_augment({"random_resized_crop": True, "horizontal_flip": True, "random_crop_padding": 0})
    assert fn == Compose((RandomFlipLR(),))
    assert not build_augment({"random_resized_crop": True})
