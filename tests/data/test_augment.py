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


# ---- the config: every data.augment key, order of application, validation ---------------------

ALL_ON = {"random_crop_padding": 2, "rotation": 10.0, "translate": 0.1, "shear": 10.0, "zoom": 0.1,
          "squeeze": 0.2, "elastic_alpha": 8.0, "elastic_sigma": 3.0, "horizontal_flip": True,
          "vertical_flip": True, "brightness": 0.2, "contrast": 0.2, "saturation": 0.2,
          "channel_shift": 10.0, "cutout": 4, "mixup_alpha": 0.2, "cutmix_alpha": 1.0}


def test_build_augment_covers_every_key_of_base_config():
    from cnn_jax.config import base_config
    from cnn_jax.data.augment import AUGMENT_OPS, PER_IMAGE_OPTIONS

    assert set(base_config().data.augment) == set(AUGMENT_OPS) | set(PER_IMAGE_OPTIONS)
    # base_config's defaults switch everything off.
    assert not build_augment(base_config().data.augment, image_shape=(28, 28, 1), num_classes=10)


def test_build_augment_orders_geometry_flips_colour_cutout_then_mixing():
    from cnn_jax.data.augment import ColorJitter, Cutout, Mix, RandomFlipUD, RandomWarp

    fn = build_augment(ALL_ON, image_shape=(8, 8, 3), num_classes=10)
    assert fn.ops == (RandomCrop(2), RandomWarp(10.0, 0.1, 10.0, 0.1, 0.2, 8.0, 3.0), RandomFlipLR(),
                      RandomFlipUD(), ColorJitter(0.2, 0.2, 0.2, 10.0), Cutout(4))
    assert fn.mix == Mix(0.2, 1.0, 10)
    # apply() = the image ops, then the mixing, from one generator.
    x, y = _batch(), np.arange(32) % 10
    g = np.random.default_rng(3)
    images = x
    for op in fn.ops:
        images = op(images, g)
    images, targets = fn.mix(images, y, g)
    out = fn.apply({"image": x, "label": y}, 3)
    assert np.array_equal(out["image"], images) and np.array_equal(out["targets"], targets)


@pytest.mark.parametrize("key", [k for k in ALL_ON if k not in ("elastic_sigma",)])
def test_each_option_alone_changes_the_batch_and_off_is_the_identity(key):
    x, y = _batch(n=16), np.arange(16) % 10
    off = build_augment({key: False if key.endswith("flip") else 0}, image_shape=(8, 8, 3), num_classes=10)
    assert not off and np.array_equal(off.apply({"image": x, "label": y}, 0)["image"], x)
    on = build_augment({key: ALL_ON[key]}, image_shape=(8, 8, 3), num_classes=10)
    out = on.apply({"image": x, "label": y}, 0)
    assert out["image"].dtype == np.uint8 and out["image"].shape == x.shape
    assert not np.array_equal(out["image"], x)
    assert np.array_equal(out["image"], on.apply({"image": x, "label": y}, 0)["image"])
    assert not np.array_equal(out["image"], on.apply({"image": x, "label": y}, 1)["image"])


@pytest.mark.parametrize("options, image_shape, message", [
    ({"rotation": 200.0}, None, r"rotation=200.0 is outside \[0, 180\]"),
    ({"rotation": -5.0}, None, "rotation=-5.0 is outside"),
    ({"translate": 1.0}, None, r"translate=1.0 is outside \[0, 1\)"),
    ({"shear": 90.0}, None, "shear=90.0 is outside"),
    ({"zoom": 1.0}, None, r"zoom=1.0 is outside \[0, 1\)"),
    ({"squeeze": -0.1}, None, "squeeze"),
    ({"elastic_alpha": 34.0, "elastic_sigma": 0.0}, None, "elastic_sigma=0 with elastic_alpha"),
    ({"brightness": 1.5}, None, r"brightness=1.5 is outside \[0, 1\]"),
    ({"channel_shift": 300.0}, None, "channel_shift=300.0 is outside"),
    ({"cutout": 2.5}, None, "whole number"),
    ({"mixup_alpha": -1.0}, None, "mixup_alpha"),
    ({"horizontal_flip": 1}, None, "True or False"),
    ({"rotation": "10"}, None, "must be a number"),
    ({"cutout": 33}, (32, 32, 3), "cutout=33 is larger than the 32x32 images: use at most 32"),
    ({"random_crop_padding": 28}, (28, 28, 1), "not smaller than the 28x28"),
    ({"saturation": 0.2}, (28, 28, 1), "saturation needs RGB images, but these have 1 channel"),
])
def test_build_augment_rejects_nonsense_with_a_one_line_fix(options, image_shape, message):
    with pytest.raises(ValueError, match=message) as e:
        build_augment(options, image_shape=image_shape, num_classes=10)
    assert "\n" not in str(e.value)


def test_mixing_needs_class_labels():
    with pytest.raises(ValueError, match="1 class"):
        build_augment({"cutmix_alpha": 1.0}, num_classes=1)
    with pytest.raises(ValueError, match="pass num_classes"):
        build_augment({"mixup_alpha": 0.2})


@pytest.mark.parametrize("augment, message", [
    ({"saturation": 0.3}, "saturation needs RGB"),
    ({"cutout": 40}, "cutout=40 is larger than the 28x28"),
    ({"zoom": 1.5}, "zoom=1.5 is outside"),
])
def test_config_validation_reports_augmentation_that_does_not_fit_the_dataset(augment, message):
    from cnn_jax.data.pipeline import dataset_spec_from_config

    with pytest.raises(ValueError, match=message):
        dataset_spec_from_config({"name": "mnist", "augment": augment})
    assert dataset_spec_from_config({"name": "cifar10", "augment": {"saturation": 0.3}}).num_classes == 10
