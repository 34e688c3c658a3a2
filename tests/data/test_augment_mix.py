"""Specification of mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019): each image is mixed
with a partner of the same batch, the targets are mixed in the same proportion and sum to one,
CutMix's lambda is the fraction of pixels kept, and with both on each batch uses one of them."""

import numpy as np

from cnn_jax.data.augment import Compose, Mix, build_augment, cutmix, mixup, one_hot


def _constant_images(n=16, h=10, w=12, c=3):
    """Image i is all (10 * i + 5): every pixel tells which image it came from."""
    return np.broadcast_to((10 * np.arange(n) + 5).astype(np.uint8)[:, None, None, None],
                           (n, h, w, c)).copy()


def test_mixup_blends_each_image_with_one_partner_and_the_targets_alike():
    x, y = _constant_images(), np.arange(16) % 10
    out, targets, lam = mixup(x, one_hot(y, 10), 0.4, 0)
    assert out.dtype == np.uint8 and targets.dtype == np.float32 and 0 <= lam <= 1
    assert np.allclose(targets.sum(1), 1)
    for i in range(16):
        value = out[i].astype(float)
        assert np.all(value == value.flat[0])  # a blend of two constant images
        # the partner j solves value = lam * x_i + (1 - lam) * x_j (to rounding)
        partner = (value.flat[0] - lam * x[i, 0, 0, 0]) / (1 - lam)
        j = int(np.argmin(np.abs(x[:, 0, 0, 0] - partner)))
        assert abs(x[j, 0, 0, 0] - partner) <= 0.5 / (1 - lam) + 1e-6
        assert np.allclose(targets[i], lam * one_hot(y[i], 10) + (1 - lam) * one_hot(y[j], 10))


def test_mixup_lambda_follows_beta_alpha_alpha():
    x, t = _constant_images(n=4), one_hot(np.arange(4), 4)
    lams = np.array([mixup(x, t, 0.2, s)[2] for s in range(300)])
    # Beta(0.2, 0.2) is U-shaped: most draws near 0 or 1; Beta(50, 50) is concentrated at 1/2.
    assert np.mean((lams < 0.1) | (lams > 0.9)) > 0.5 and abs(lams.mean() - 0.5) < 0.06
    lams = np.array([mixup(x, t, 50.0, s)[2] for s in range(100)])
    assert np.all(np.abs(lams - 0.5) < 0.2)


def test_cutmix_pastes_one_box_from_the_partner_and_lambda_is_the_kept_fraction():
    x, y = _constant_images(n=16), np.arange(16)
    for seed in range(20):
        out, targets, lam = cutmix(x, one_hot(y, 16), 1.0, seed)
        assert np.allclose(targets.sum(1), 1)
        pasted = out != x
        box = pasted.any(0).all(-1)  # the box is the same for the whole batch
        if box.any():
            rows, cols = np.nonzero(box.any(1))[0], np.nonzero(box.any(0))[0]
            assert box.sum() == len(rows) * len(cols)
        kept = 1 - box.mean()
        assert np.isclose(lam, kept)
        for i in range(16):
            inside = out[i][box]
            j = int(inside.flat[0] - 5) // 10 if box.any() else i
            assert np.all(inside == x[j, 0, 0, 0])
            expected = lam * one_hot(y[i], 16) + (1 - lam) * one_hot(y[j], 16)
            assert np.allclose(targets[i], expected)
            # the kept pixels' share is the weight of the own label
            assert np.isclose((out[i] == x[i]).all(-1).mean(), lam if j != i else 1.0)


def test_cutmix_boxes_vary_in_size_and_place_and_are_clipped():
    x = _constant_images(n=8, h=20, w=20)
    lams, corners = [], set()
    for seed in range(60):
        out, _, lam = cutmix(x, one_hot(np.arange(8), 8), 1.0, seed)
        lams.append(lam)
        box = (out != x).any(0).all(-1)
        if box.any():
            corners.add((np.nonzero(box.any(1))[0][0], np.nonzero(box.any(0))[0][0]))
    assert min(lams) < 0.5 and max(lams) > 0.9 and len(corners) > 20


def test_mix_with_both_alphas_picks_mixup_or_cutmix_per_batch():
    x, y = _constant_images(n=8), np.arange(8)
    mix = Mix(mixup_alpha=1.0, cutmix_alpha=1.0, num_classes=8)
    kinds = []
    for seed in range(60):
        out, targets = mix(x, y, np.random.default_rng(seed))
        assert targets.shape == (8, 8) and np.allclose(targets.sum(1), 1)
        values_per_image = [len(np.unique(o)) for o in out]
        kinds.append("cutmix" if max(values_per_image) == 2 else "mixup")
    assert 15 < kinds.count("mixup") < 45


def test_compose_apply_adds_targets_and_the_majority_label():
    x = np.random.default_rng(0).integers(0, 256, (32, 8, 8, 3), dtype=np.uint8)
    y = (np.arange(32) % 10).astype(np.int32)
    aug = build_augment({"mixup_alpha": 0.4, "horizontal_flip": True}, image_shape=(8, 8, 3),
                        num_classes=10)
    out = aug.apply({"image": x, "label": y, "extra": "kept"}, 1)
    assert out["extra"] == "kept"
    assert out["targets"].shape == (32, 10) and out["targets"].dtype == np.float32
    assert np.allclose(out["targets"].sum(1), 1)
    assert out["label"].dtype == np.int32 and np.array_equal(out["label"], out["targets"].argmax(1))
    again = aug.apply({"image": x, "label": y}, 1)
    assert np.array_equal(again["image"], out["image"]) and np.array_equal(again["targets"], out["targets"])
    assert not np.array_equal(aug.apply({"image": x, "label": y}, 2)["targets"], out["targets"])
    # Without mixing there are no targets.
    plain = Compose(aug.ops).apply({"image": x, "label": y}, 1)
    assert set(plain) == {"image", "label"} and np.array_equal(plain["label"], y)
