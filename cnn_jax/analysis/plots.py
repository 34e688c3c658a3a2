"""Image panels of the analysis as matplotlib Figures: filter grids, feature-map grids, image grids
with titles, heat maps over images (saliency, Grad-CAM, occlusion) and a receptive field drawn on
its image.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot state): a notebook shows the
returned Figure, a report saves it with ``fig.savefig``. Each filter and each feature map is
scaled to [0, 1] on its own (per channel, as Zeiler & Fergus 2014 show them), so a grid shows
patterns rather than which channel is largest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle


def normalize01(x: np.ndarray, axes: tuple[int, ...] | None = None) -> np.ndarray:
    """`x` scaled to [0, 1] over `axes` (all when None); a constant array becomes 0.5."""
    x = np.asarray(x, np.float64)
    lo = x.min(axis=axes, keepdims=True)
    hi = x.max(axis=axes, keepdims=True)
    span = hi - lo
    return np.where(span > 0, (x - lo) / np.where(span > 0, span, 1), 0.5)


def _grid(n: int, columns: int | None) -> tuple[int, int]:
    columns = columns or min(n, math.ceil(math.sqrt(n)) if n > 16 else 8)
    columns = max(1, min(columns, n))
    return math.ceil(n / columns), columns


def _tiles(tiles: Sequence[np.ndarray], titles: Sequence[str] | None, title: str | None,
           columns: int | None, cmap: str, tile_inches: float) -> Figure:
    rows, columns = _grid(len(tiles), columns)
    fig = Figure(figsize=(columns * tile_inches, rows * tile_inches + (0.4 if title else 0)),
                 layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if k < len(tiles):
            tile = tiles[k]
            ax.imshow(tile, cmap=None if tile.ndim == 3 else cmap, vmin=0, vmax=1,
                      interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[k], fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def filter_grid(kernel: np.ndarray, title: str | None = None, columns: int | None = None,
                input_channel: int | None = None) -> Figure:
    """One tile per output channel of a ``(kH, kW, C_in, C_out)`` kernel, each scaled on its own:
    RGB when the kernel reads 3 channels, else the input channel `input_channel` (default the
    mean over input channels) in grey."""
    kernel = np.asarray(kernel, np.float64)
    if kernel.ndim != 4:
        raise ValueError(f"a convolution kernel is (kH, kW, C_in, C_out), got shape {kernel.shape}")
    if kernel.shape[2] == 3 and input_channel is None:
        tiles = [normalize01(kernel[..., o]) for o in range(kernel.shape[3])]
    else:
        plane = kernel.mean(2) if input_channel is None else kernel[:, :, input_channel]
        tiles = [normalize01(plane[..., o]) for o in range(plane.shape[-1])]
    return _tiles(tiles, [str(o) for o in range(len(tiles))], title, columns, "gray", 0.9)


def feature_map_grid(maps: np.ndarray, title: str | None = None, columns: int | None = None,
                     max_maps: int | None = 64) -> Figure:
    """One tile per channel of one image's feature maps ``(H, W, C)``, each scaled on its own."""
    maps = np.asarray(maps, np.float64)
    if maps.ndim != 3:
        raise ValueError(f"feature maps of one image are (H, W, C), got shape {maps.shape}")
    channels = range(min(maps.shape[-1], max_maps or maps.shape[-1]))
    tiles = [normalize01(maps[..., c]) for c in channels]
    return _tiles(tiles, [str(c) for c in channels], title, columns, "viridis", 1.0)


def _image(image: np.ndarray) -> np.ndarray:
    """A pixel image (H, W[, C]) as something imshow draws: (H, W) grey or (H, W, 3) in [0, 1]."""
    image = np.asarray(image, np.float64)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    return normalize01(image)


def image_grid(images: np.ndarray, titles: Sequence[str] | None = None, title: str | None = None,
               columns: int | None = None, tile_inches: float = 1.4) -> Figure:
    """Images (N, H, W[, C]) side by side, each scaled to its own range, with optional titles."""
    return _tiles([_image(x) for x in images], titles, title, columns, "gray", tile_inches)


def heatmap_grid(images: np.ndarray, heatmaps: np.ndarray, titles: Sequence[str] | None = None,
                 title: str | None = None, cmap: str = "jet", alpha: float = 0.5) -> Figure:
    """Each image (top row) and its heat map over it (bottom row); the maps (N, h, w) are shown
    at the image's size, each scaled to [0, 1] on its own."""
    n = len(images)
    fig = Figure(figsize=(1.6 * n, 3.4 + (0.4 if title else 0)), layout="constrained")
    axes = fig.subplots(2, n, squeeze=False)
    for k in range(n):
        image = _image(images[k])
        height, width = image.shape[:2]
        for ax in axes[:, k]:
            ax.set_axis_off()
            ax.imshow(image, cmap="gray", interpolation="nearest")
        axes[1, k].imshow(normalize01(heatmaps[k]), cmap=cmap, alpha=alpha, vmin=0, vmax=1,
                          extent=(-0.5, width - 0.5, height - 0.5, -0.5), interpolation="bilinear")
        if titles is not None:
            axes[0, k].set_title(titles[k], fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def receptive_field_figure(image: np.ndarray, box, support: np.ndarray | None = None,
                           title: str | None = None) -> Figure:
    """An image with a unit's receptive field (a :class:`~cnn_jax.analysis.unit_field.FieldBox`)
    drawn on it, and the gradient's non-zero support beside it when given."""
    panels = 1 if support is None else 2
    fig = Figure(figsize=(3 * panels, 3.2), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    axes[0].imshow(_image(image), cmap="gray", interpolation="nearest")
    axes[0].add_patch(Rectangle((box.left - 0.5, box.top - 0.5), box.width, box.height, fill=False,
                                edgecolor="red", linewidth=2))
    axes[0].set_title(f"field {box.height}x{box.width}", fontsize=9)
    if support is not None:
        axes[1].imshow(np.asarray(support, float), cmap="gray", vmin=0, vmax=1,
                       interpolation="nearest")
        axes[1].add_patch(Rectangle((box.left - 0.5, box.top - 0.5), box.width, box.height,
                                    fill=False, edgecolor="red", linewidth=2))
        axes[1].set_title("gradient != 0", fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    return fig
