"""Figures: one tile per filter or feature map, each scaled to [0, 1] on its own; heat maps over
their images; the confusion matrix's counts in its cells; the reliability diagram's bars; the
accuracy-vs-epsilon lines; the receptive field drawn where it is."""

import numpy as np
import pytest

from cnn_jax.analysis import (
    FieldBox,
    confusion_matrix_figure,
    epsilon_figure,
    feature_map_grid,
    filter_grid,
    heatmap_grid,
    image_grid,
    receptive_field_figure,
    reliability_bins,
    reliability_figure,
)


def _tiles(fig):
    return [ax.get_images()[0].get_array() for ax in fig.axes if ax.get_images()]


def test_filter_grid_scales_each_filter_on_its_own():
    kernel = np.random.default_rng(0).normal(size=(5, 5, 1, 6))
    kernel[..., 3] *= 100  # a large filter does not wash out the others
    tiles = _tiles(filter_grid(kernel))
    assert len(tiles) == 6 and tiles[0].shape == (5, 5)
    for o, tile in enumerate(tiles):
        assert tile.min() == 0 and tile.max() == 1
        k = kernel[:, :, 0, o]
        np.testing.assert_allclose(tile, (k - k.min()) / (k.max() - k.min()))


def test_filter_grid_draws_rgb_filters_in_colour_and_refuses_other_shapes():
    tiles = _tiles(filter_grid(np.random.default_rng(1).normal(size=(3, 3, 3, 4))))
    assert len(tiles) == 4 and tiles[0].shape == (3, 3, 3)
    with pytest.raises(ValueError, match="kH, kW, C_in, C_out"):
        filter_grid(np.zeros((3, 3, 4)))


def test_feature_map_grid_scales_each_channel_and_a_constant_map_is_grey():
    maps = np.random.default_rng(2).normal(size=(10, 10, 5))
    maps[..., 2] = 7.0
    tiles = _tiles(feature_map_grid(maps, max_maps=4))
    assert len(tiles) == 4
    assert tiles[0].min() == 0 and tiles[0].max() == 1
    np.testing.assert_array_equal(tiles[2], 0.5)


def test_image_and_heatmap_grids_have_one_panel_per_image():
    images = np.random.default_rng(3).integers(0, 255, size=(3, 8, 8, 1)).astype(np.uint8)
    fig = image_grid(images, ["a", "b", "c"])
    assert [ax.get_title() for ax in fig.axes if ax.get_images()] == ["a", "b", "c"]
    heat = heatmap_grid(images, np.random.default_rng(4).random((3, 4, 4)))
    assert sum(len(ax.get_images()) for ax in heat.axes) == 3 + 3 * 2  # image; image + map


def test_the_confusion_matrix_writes_every_nonzero_count_in_its_cell():
    matrix = np.array([[5, 0, 1], [2, 7, 0], [0, 0, 9]])
    ax = confusion_matrix_figure(matrix, ["a", "b", "c"]).axes[0]
    cells = {(int(t.get_position()[1]), int(t.get_position()[0])): t.get_text() for t in ax.texts}
    assert cells == {(0, 0): "5", (0, 2): "1", (1, 0): "2", (1, 1): "7", (2, 2): "9"}
    np.testing.assert_allclose(ax.get_images()[0].get_array()[1], [2 / 9, 7 / 9, 0])


def test_the_reliability_diagram_draws_the_accuracy_of_the_used_bins():
    bins = reliability_bins(np.array([0.95, 0.95, 0.55]), np.array([1, 0, 1]), 10)
    ax = reliability_figure(bins).axes[0]
    heights = [p.get_height() for p in ax.containers[0]]
    np.testing.assert_allclose(heights, [1.0, 0.5])
    # 1/3 * |1 - 0.55| + 2/3 * |0.5 - 0.95| = 0.45
    assert "ECE 0.450" in ax.get_legend().get_texts()[1].get_text()


def test_epsilon_figure_draws_one_line_per_attack():
    ax = epsilon_figure([0, 0.1, 0.2], {"FGSM": [0.9, 0.5, 0.2], "PGD": [0.9, 0.2, 0.0]}).axes[0]
    lines = {line.get_label(): line.get_ydata() for line in ax.get_lines()}
    np.testing.assert_allclose(lines["PGD"], [0.9, 0.2, 0.0])


def test_the_receptive_field_is_drawn_on_its_pixels():
    fig = receptive_field_figure(np.zeros((28, 28, 1)), FieldBox(4, 6, 17, 19), np.ones((28, 28)))
    rectangle = fig.axes[0].patches[0]
    assert rectangle.get_xy() == (5.5, 3.5) and rectangle.get_width() == 14
    assert len(fig.axes) == 2
