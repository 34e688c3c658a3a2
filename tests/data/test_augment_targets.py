"""Specification of target-aware augmentation: every geometric op moves segmentation, instances
and boxes with the draw that moves the image; photometric ops leave them; mixing refuses them.

The acceptance test of the segmentation issue: an image whose mask is `image > 0` keeps that
property after every geometric op and after the composed augmentation. Crops and flips move
whole pixels, so the property holds exactly, with IGNORE exactly where the op padded. The warps
sample the image bilinearly and the mask at the nearest pixel of the same coordinates, whose
bilinear weight is at least 1/4: on an image of 0 and 255, a pixel the mask calls object is
non-zero, a pixel it calls background is below 255, and IGNORE marks exactly the pixels whose
nearest input pixel is outside the image.
"""

import numpy as np
import pytest

from cnn_jax.data.augment import (
    RandomCrop,
    RandomFlipLR,
    RandomFlipUD,
    RandomWarp,
    affine_boxes,
    build_augment,
    check_for_targets,
)
from cnn_jax.data.targets import IGNORE, tight_boxes
from cnn_jax.errors import ConfigError

N, H, W, M = 48, 36, 44, 3
WARP = {"rotation": 25.0, "translate": 0.15, "shear": 10.0, "zoom": 0.2, "squeeze": 0.2}
ELASTIC = {"rotation": 10.0, "elastic_alpha": 6.0, "elastic_sigma": 4.0}
OPS = {"crop": RandomCrop(6), "flip_lr": RandomFlipLR(), "flip_ud": RandomFlipUD(),
       "warp": RandomWarp(**WARP), "elastic": RandomWarp(**ELASTIC)}
EXACT = ("crop", "flip_lr", "flip_ud")


def rectangles(seed: int = 0, per_image: int = M) -> dict:
    """Images of 0 and 255 holding filled rectangles, with mask `image > 0`, the rectangles as
    instances (later ones on top) and their tight boxes."""
    rng = np.random.default_rng(seed)
    image = np.zeros((N, H, W, 1), np.uint8)
    instances = np.zeros((N, H, W), np.uint8)
    for n in range(N):
        for i in range(per_image):
            w, h = rng.integers(3, 14, 2)
            x, y = rng.integers(0, W - w), rng.integers(0, H - h)
            image[n, y:y + h, x:x + w] = 255
            instances[n, y:y + h, x:x + w] = i + 1
    boxes, present = tight_boxes(instances, M)
    return {"image": image, "segmentation": (image[..., 0] > 0).astype(np.uint8), "boxes": boxes,
            "classes": np.where(present, np.arange(M) + 1, 0).astype(np.int32), "box_mask": present,
            "instances": instances}


def moved(op, batch, seed=1):
    params = op.draw(np.random.default_rng(seed), batch["image"].shape)
    shape = batch["image"].shape
    return op.apply_image(batch["image"], params), op.apply_targets(batch, params, shape), params


def assert_mask_is_image_above_zero(image, mask, exact):
    image = image[..., 0]
    if exact:
        assert np.array_equal(mask == 1, image > 0)
        assert np.all(image[mask == IGNORE] == 0)
    else:
        assert np.all(image[mask == 1] > 0)
        assert np.all(image[mask == 0] < 255)
    assert set(np.unique(mask)) <= {0, 1, IGNORE}


@pytest.mark.parametrize("name", list(OPS))
def test_a_mask_of_image_above_zero_keeps_that_property_after_each_geometric_op(name):
    batch = rectangles()
    image, targets, params = moved(OPS[name], batch)
    assert_mask_is_image_above_zero(image, targets["segmentation"], name in EXACT)
    # IGNORE exactly where the op leaves the image: where a map of ones moves in as fill.
    outside = OPS[name].apply_map(np.ones((N, H, W), np.uint8), params, 0) == 0
    assert np.array_equal(targets["segmentation"] == IGNORE, outside)
    # Instances move alike; only boxes dropped as mostly outside leave object pixels without id.
    assert np.all(targets["segmentation"][targets["instances"] > 0] == 1)
    lost = (targets["segmentation"] == 1) & (targets["instances"] == 0)
    assert not lost[targets["box_mask"].all(axis=1)].any()
    if name == "crop":
        assert outside.any()  # the padding is really used


def test_the_composed_augmentation_keeps_the_mask_and_photometric_ops_leave_targets_alone():
    batch = rectangles(3)
    geometry = {"random_crop_padding": 4, **WARP, "horizontal_flip": True, "vertical_flip": True}
    augment = build_augment(geometry)
    out = augment.apply(batch, np.random.default_rng(5))
    assert_mask_is_image_above_zero(out["image"], out["segmentation"], exact=False)
    assert (out["segmentation"] == IGNORE).any() and (out["segmentation"] == 1).mean() > 0.05
    # Colour and cutout come after the geometry and draw after it: same targets, other pixels.
    photometric = build_augment({**geometry, "brightness": 0.5, "contrast": 0.5, "cutout": 10})
    again = photometric.apply(batch, np.random.default_rng(5))
    for key in ("segmentation", "instances", "boxes", "classes", "box_mask"):
        assert np.array_equal(again[key], out[key]), key
    assert not np.array_equal(again["image"], out["image"])


def test_targets_do_not_change_the_augmented_images():
    batch = rectangles(4)
    augment = build_augment({"random_crop_padding": 4, **ELASTIC, "horizontal_flip": True,
                             "brightness": 0.3})
    with_targets = augment.apply(batch, np.random.default_rng(2))
    images_only = augment.apply({"image": batch["image"], "label": np.zeros(N, np.int32)},
                                np.random.default_rng(2))
    assert np.array_equal(with_targets["image"], images_only["image"])
    assert np.array_equal(images_only["image"], augment(batch["image"], np.random.default_rng(2)))


@pytest.mark.parametrize("name", EXACT)
def test_boxes_stay_the_tight_boxes_of_their_rectangles_after_crops_and_flips(name):
    batch = rectangles(per_image=1)
    image, targets, _ = moved(OPS[name], batch, seed=7)
    drawn, present = tight_boxes((image[..., 0] > 0).astype(np.uint8), 1)
    keep = targets["box_mask"][:, 0]
    assert keep.sum() >= N - 4  # a crop of 6 pixels rarely hides three quarters of a box
    assert np.array_equal(targets["boxes"][keep, 0], drawn[keep, 0])
    assert np.array_equal(targets["boxes"], tight_boxes(targets["instances"], M)[0])
    assert not targets["boxes"][~targets["box_mask"]].any()


def test_boxes_after_the_affine_warp_enclose_the_warped_rectangle_within_one_pixel():
    # A box's four corners go through the affine map; a pixel of the warped rectangle is one
    # whose centre maps inside it (nearest neighbour), so the tight box of those pixels lies
    # between half a pixel outside and one pixel inside the enclosing box of the corners, as
    # long as that box is inside the image (else clipping cuts a corner the box still holds).
    batch = rectangles(per_image=1)
    checked = 0
    for seed in range(10):
        image, targets, params = moved(OPS["warp"], batch, seed)
        inside = ((affine_boxes(batch["boxes"], params.forward)[:, 0] >= 0)
                  & (affine_boxes(batch["boxes"], params.forward)[:, 0] <= [W, H, W, H])).all(1)
        keep = targets["box_mask"][:, 0] & inside
        for pixels in (targets["instances"], (image[..., 0] >= 128).astype(np.uint8)):
            tight = tight_boxes(pixels, 1)[0][keep, 0]
            inward = (tight - targets["boxes"][keep, 0]) * [1, 1, -1, -1]
            assert inward.min() >= -0.5 - 1e-4 and inward.max() <= 1.0
        checked += keep.sum()
    assert checked > 200


def test_the_elastic_warp_recomputes_boxes_exactly_from_the_warped_instances():
    batch = rectangles(2)
    _, targets, _ = moved(OPS["elastic"], batch)
    boxes, present = tight_boxes(targets["instances"], M)
    assert np.array_equal(targets["boxes"], boxes)
    assert np.array_equal(targets["box_mask"], present & batch["box_mask"])
    assert targets["box_mask"].sum() >= batch["box_mask"].sum() - 5


def test_a_crop_that_hides_most_of_a_box_turns_it_into_padding():
    batch = rectangles(per_image=1)
    batch["image"][:] = 0
    batch["instances"][:] = 0
    batch["image"][:, 0:4, 0:4] = 255  # a 4 x 4 square in the corner
    batch["instances"][:, 0:4, 0:4] = 1
    batch["segmentation"] = (batch["image"][..., 0] > 0).astype(np.uint8)
    batch["boxes"][:, 0] = [0, 0, 4, 4]
    op = RandomCrop(6)
    params = op.draw(np.random.default_rng(0), batch["image"].shape)
    targets = op.apply_targets(batch, params, batch["image"].shape)
    visible = np.clip(4 - (params.dx - 6), 0, 4) * np.clip(4 - (params.dy - 6), 0, 4)
    expected = visible >= 4  # at least a quarter of 16 pixels
    assert np.array_equal(targets["box_mask"][:, 0], expected)
    assert 0 < expected.sum() < N
    assert not targets["instances"][~expected].any()  # dropped: its pixels left `instances`
    # but stay in `segmentation`, which says what is visible
    assert np.array_equal((targets["segmentation"] == 1).sum(axis=(1, 2)), visible)
    assert ((visible > 0) & ~expected).any()


def test_each_process_moves_the_targets_of_its_rows_as_one_process_would():
    batch = rectangles(6)
    augment = build_augment({"random_crop_padding": 3, **ELASTIC, "horizontal_flip": True})
    whole = augment.apply(batch, np.random.default_rng(9))
    half = N // 2
    parts = [augment.apply({k: v[i * half:(i + 1) * half] for k, v in batch.items()},
                           np.random.default_rng(9), rows=(i * half, N)) for i in range(2)]
    for key in whole:
        assert np.array_equal(np.concatenate([p[key] for p in parts]), whole[key]), key


@pytest.mark.parametrize("key", ["mixup_alpha", "cutmix_alpha"])
def test_mixing_is_refused_for_dense_targets_with_the_option_to_switch_off(key):
    with pytest.raises(ConfigError, match=f"set data.augment.{key}=0"):
        check_for_targets({key: 0.4}, ("segmentation",))
    with pytest.raises(ConfigError, match="boxes"):
        check_for_targets({key: 0.4}, ("label", "boxes", "classes", "box_mask"))
    check_for_targets({key: 0.4}, ("label",))  # classification mixes as before
    with pytest.raises(ValueError, match="cannot mix segmentation"):
        build_augment({key: 0.4}, num_classes=2).apply(rectangles(), np.random.default_rng(0))


def test_elastic_distortion_of_boxes_needs_instances():
    with pytest.raises(ConfigError, match="set data.augment.elastic_alpha=0"):
        check_for_targets({"elastic_alpha": 30.0}, ("label", "boxes", "classes", "box_mask"))
    check_for_targets({"elastic_alpha": 30.0}, ("segmentation", "boxes", "classes", "box_mask",
                                                "instances"))
    check_for_targets(None, ("segmentation",))
