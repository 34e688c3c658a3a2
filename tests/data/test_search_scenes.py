"""Specification of cnn_jax.data.search_scenes: visual-search scenes whose items, saliency map and
fixations are exactly what the definitions say, checked against skimage's drawing, a direct
evaluation of the Gaussian mixture, inverse-CDF sampling and the saliency metrics."""

import hashlib

import numpy as np
import pytest
from skimage.draw import disk, polygon

from cnn_jax.data.scenes import split_rng
from cnn_jax.data.search_scenes import (
    BACKGROUND,
    BAR_LENGTH,
    BAR_WIDTH,
    DISC_RADIUS,
    FEATURES,
    ODD_SCALE,
    PALETTE,
    SHAPES,
    SearchSceneParams,
    render_search_scenes,
    sample_fixations,
)
from cnn_jax.metrics.saliency import auc_judd, nss

PARAMS = SearchSceneParams()


@pytest.fixture(scope="module")
def scenes():
    return render_search_scenes(120, PARAMS, np.random.default_rng(7))


def _skimage_item(centre, angle, size, bar, shape):
    """The pixels skimage fills for an item (its pixel centres at integers, ours at + 1/2)."""
    mask = np.zeros(shape, bool)
    x, y = centre[0] - 0.5, centre[1] - 0.5
    if bar:
        t = np.deg2rad(angle)
        along = np.array([np.cos(t), -np.sin(t)]) * size * BAR_LENGTH / 2  # (dx, dy), y down
        across = np.array([np.sin(t), np.cos(t)]) * size * BAR_WIDTH / 2
        corners = np.array([along + across, along - across, -along - across, -along + across])
        mask[polygon(y + corners[:, 1], x + corners[:, 0], shape)] = True
    else:
        mask[disk((y, x), size * DISC_RADIUS, shape=shape)] = True
    return mask


def test_every_item_is_what_skimage_draws_for_it_and_the_rest_is_plain_background(scenes):
    c = PARAMS.canvas
    for i in range(40):
        expected = np.empty((c, c, 3), np.uint8)
        expected[:] = BACKGROUND
        bar = SHAPES[scenes["shape"][i]] == "bar"
        for k in range(PARAMS.grid ** 2):  # in the order they are drawn
            mask = _skimage_item(scenes["item_centre"][i, k], scenes["item_angle"][i, k],
                                 scenes["item_scale"][i, k] * PARAMS.cell, bar, (c, c))
            expected[mask] = scenes["item_colour"][i, k]
        assert np.array_equal(scenes["image"][i], expected), i


def test_the_odd_items_differ_from_all_others_in_exactly_the_feature_of_their_scene(scenes):
    seen = set()
    for i in range(len(scenes["image"])):
        odd = scenes["item_odd"][i]
        feature, shape = FEATURES[scenes["feature"][i]], SHAPES[scenes["shape"][i]]
        seen.add((shape, feature))
        assert 1 <= odd.sum() == scenes["odd_count"][i] <= 2
        values = {"colour": [tuple(v) for v in scenes["item_colour"][i]],
                  "size": list(scenes["item_scale"][i]),
                  "orientation": list(scenes["item_angle"][i])}
        for name, per_item in values.items():
            common = {per_item[k] for k in np.flatnonzero(~odd)}
            odd_values = {per_item[k] for k in np.flatnonzero(odd)}
            assert len(common) == 1 and len(odd_values) == 1
            assert (odd_values != common) == (name == feature), (i, name)
        base = values["colour"][np.flatnonzero(~odd)[0]]
        assert base in map(tuple, PALETTE)
        if feature == "size":
            assert values["size"][np.flatnonzero(odd)[0]] == ODD_SCALE
        if feature == "orientation":
            assert (values["orientation"][np.flatnonzero(odd)[0]]
                    - values["orientation"][np.flatnonzero(~odd)[0]]) == 90
        odd_centres = scenes["odd_centres"][i, :odd.sum()]
        assert sorted(map(tuple, odd_centres)) == sorted(map(tuple, scenes["item_centre"][i, odd]))
    # discs have no orientation; every other pairing occurs
    assert seen == {("bar", f) for f in FEATURES} | {("disc", "colour"), ("disc", "size")}


def test_saliency_is_the_gaussian_mixture_at_the_odd_items_scaled_to_peak_one(scenes):
    c, s, w = PARAMS.canvas, PARAMS.sigma, PARAMS.centre_bias
    ys, xs = np.mgrid[0:c, 0:c] + 0.5  # pixel centres

    def gaussian(x, y, sigma):
        g = np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma ** 2))
        return g / g.sum()

    for i in range(30):
        odd = scenes["odd_centres"][i, :scenes["odd_count"][i]]
        p = (1 - w) * np.mean([gaussian(x, y, s) for x, y in odd], axis=0)
        p += w * gaussian(c / 2, c / 2, PARAMS.centre_sigma)
        saliency = scenes["saliency"][i]
        assert saliency.dtype == np.float32 and saliency.max() == 1 and saliency.min() > 0
        np.testing.assert_allclose(saliency, p / p.max(), rtol=0, atol=1e-6)
        peak = np.array(np.unravel_index(saliency.argmax(), saliency.shape))[::-1] + 0.5
        assert min(np.abs(peak - o).max() for o in odd) <= 0.5  # at an odd item's centre


def test_a_fixation_lands_on_pixel_k_for_uniforms_in_its_slice_of_the_cumulative_density():
    density = np.array([[[0.25, 0.5], [0.0, 0.25]]])  # cdf 0.25, 0.75, 0.75, 1
    index = sample_fixations(density, np.array([[0.0, 0.1, 0.25, 0.5, 0.75, 0.99]]))
    assert index.tolist() == [[0, 0, 1, 1, 3, 3]]  # never pixel 2, whose density is 0


def test_fixations_mark_the_drawn_pixels_and_follow_the_density(scenes):
    n, f = scenes["fixation_index"].shape
    assert f == PARAMS.fixations
    for i in range(n):
        marked = np.flatnonzero(scenes["fixations"][i])
        assert marked.tolist() == sorted(set(scenes["fixation_index"][i].tolist()))
    # Draws within 2 sigma of an odd item against the density's mass there (binomial tolerance).
    c = PARAMS.canvas
    ys, xs = np.mgrid[0:c, 0:c] + 0.5
    expected = variance = observed = 0.0
    for i in range(n):
        odd = scenes["odd_centres"][i, :scenes["odd_count"][i]]
        near = np.zeros((c, c), bool)
        for x, y in odd:
            near |= (xs - x) ** 2 + (ys - y) ** 2 <= (2 * PARAMS.sigma) ** 2
        p = scenes["saliency"][i].astype(np.float64)
        mass = p[near].sum() / p.sum()
        expected, variance = expected + f * mass, variance + f * mass * (1 - mass)
        observed += near.reshape(-1)[scenes["fixation_index"][i]].sum()
    assert 0.7 * n * f < expected  # most of the density is at the odd items
    assert abs(observed - expected) < 4 * np.sqrt(variance)


def test_the_same_stream_gives_the_same_scenes_and_test_scenes_are_not_training_scenes():
    params = SearchSceneParams(train_size=400, test_size=100)
    train = render_search_scenes(400, params, split_rng(0, "train"))
    again = render_search_scenes(400, params, split_rng(0, "train"))
    assert all(np.array_equal(train[k], again[k]) for k in train)
    test = render_search_scenes(100, params, split_rng(0, "test"))

    def digests(images):
        return {hashlib.sha256(x.tobytes()).hexdigest() for x in images}

    assert not digests(train["image"]) & digests(test["image"])
    other_seed = render_search_scenes(100, params, split_rng(1, "test"))
    assert not np.array_equal(test["image"], other_seed["image"])


def test_a_centre_bias_baseline_is_at_chance_without_the_bias_and_a_low_bar_with_it():
    c = PARAMS.canvas
    g = np.exp(-((np.arange(c) + 0.5 - c / 2) ** 2) / (2 * 16.0 ** 2))
    centre = np.outer(g, g)
    scores = {}
    for bias in (0.0, 0.1):
        params = SearchSceneParams(centre_bias=bias)
        out = render_search_scenes(400, params, np.random.default_rng(1))
        scores[bias] = (np.mean([nss(centre, f) for f in out["fixations"]]),
                        np.mean([auc_judd(centre, f) for f in out["fixations"]]),
                        np.mean([auc_judd(s, f) for s, f in zip(out["saliency"], out["fixations"],
                                                                strict=True)]))
    assert abs(scores[0.0][0]) < 0.04  # NSS at chance: odd items are uniform over the grid
    assert scores[0.1][0] > 0.04 + scores[0.0][0] and scores[0.1][1] > scores[0.0][1] > 0.5
    assert scores[0.1][2] > 0.9 > scores[0.1][1]  # the ground truth leaves the baseline far behind


def test_variants_are_named_by_their_options_and_bad_options_say_what_is_needed():
    params = SearchSceneParams.parse("grid=8, jitter=1,centre_bias=0")
    assert (params.grid, params.cell, params.centre_bias) == (8, 8, 0.0)
    assert params.options() == "grid=8,jitter=1,centre_bias=0.0"
    assert params.config_name() == ("canvas64_grid8_min_odd1_max_odd2_jitter1_sigma3_centre_bias0_"
                                    "centre_sigma16_fixations16_train_size4000_test_size400_seed0")
    with pytest.raises(ValueError, match="among canvas, grid"):
        SearchSceneParams.parse("items=3")
    with pytest.raises(ValueError, match="cells of at least 8 px"):
        SearchSceneParams.parse("grid=5")
    with pytest.raises(ValueError, match="jitter <= cell / 8"):
        SearchSceneParams.parse("grid=8")
    with pytest.raises(ValueError, match="odd items are a minority"):
        SearchSceneParams.parse("grid=2,max_odd=2")
    with pytest.raises(ValueError, match="centre_bias < 1"):
        SearchSceneParams(centre_bias=1.0)
