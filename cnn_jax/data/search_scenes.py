"""Visual-search scenes: saliency data whose ground truth is known exactly.

A scene is a `grid` x `grid` array of items on a plain grey `canvas` x `canvas` RGB image, one
item per cell (centred, shifted by up to `jitter` pixels). All items share a shape (bars or discs),
a colour, an orientation (bars) and a size, except `min_odd`..`max_odd` odd ones out that differ
in one feature, the same for every odd item of the scene: colour, size, or (bars) orientation
turned by 90 degrees. Such a singleton pops out: it is found at a glance whatever the number of
distractors (feature search, Treisman & Gelade 1980), so it is where observers look.

Ground truth, exact by construction (pixel (r, c) covers [c, c + 1) x [r, r + 1), its centre at
(c + 1/2, r + 1/2)):

  * the fixation density p is a mixture over the pixel grid: with weight 1 - `centre_bias` an
    equal mixture of isotropic Gaussians of standard deviation `sigma` at the odd items' centres,
    with weight `centre_bias` one Gaussian of standard deviation `centre_sigma` at the canvas
    centre; each component is evaluated at the pixel centres and normalised to sum 1 over the
    canvas (the part of a Gaussian outside the canvas is given back to the pixels inside it);
  * `saliency` = p / max p, in [0, 1] (peak 1) for the pixel losses; a distribution loss
    renormalises it to p;
  * `fixations`: `fixations` pixels drawn independently from p (inverse CDF of seeded uniforms);
    1 where at least one landed, so two fixations on one pixel mark it once.

The centre bias imitates the central tendency of free viewing (Tatler 2007) weakly: with the
default 0.1 a tenth of the fixations follow it. Odd items are uniform over the grid, so without
it a centre-bias baseline is at chance by NSS and CC (its AUC-Judd sits a little above 0.5 only
because no item lies on the canvas's outermost pixels); with it the baseline beats chance on
every metric, a real but low bar: a model must find the odd items to clear it by much.

Items are drawn by testing each pixel centre against the item (inside a bar's rectangle, inside
a disc's circle), no anti-aliasing, so an item's pixels are those `skimage.draw.polygon` and
`skimage.draw.disk` fill. Everything is vectorised numpy over a whole split, a pure function of
the parameters and a `np.random.Generator` (all numbers drawn up front in a fixed order); train
and test splits use independent streams of the variant's seed (`scenes.split_rng`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from cnn_jax.data.variants import Variant

BACKGROUND = (110, 110, 110)
PALETTE = ((230, 40, 40), (40, 190, 60), (50, 90, 235), (235, 200, 30))  # red, green, blue, yellow
ORIENTATIONS = (0.0, 45.0, 90.0, 135.0)  # bar orientations, degrees counter-clockwise as displayed
BAR_LENGTH, BAR_WIDTH, DISC_RADIUS = 0.6, 0.2, 0.22  # in cells
ODD_SCALE = 1.5  # the size of an odd item of a size-defined scene
SHAPES = ("bar", "disc")
FEATURES = ("colour", "size", "orientation")  # what the odd items differ in; discs: first two
BLOCK = 512  # scenes per block of the density computation (bounds its float64 memory)


@dataclasses.dataclass(frozen=True)
class SearchSceneParams(Variant):
    """The generation parameters of one search-scene variant (module docstring)."""

    KIND = "search scene"

    canvas: int = 64
    grid: int = 4
    min_odd: int = 1
    max_odd: int = 2
    jitter: int = 2
    sigma: float = 3.0
    centre_bias: float = 0.1
    centre_sigma: float = 16.0
    fixations: int = 16
    train_size: int = 4000
    test_size: int = 400
    seed: int = 0

    def __post_init__(self):
        needs = []
        if self.grid < 2 or self.canvas % self.grid or self.canvas // self.grid < 8:
            needs.append("grid >= 2 dividing canvas into cells of at least 8 px")
        elif not 0 <= self.jitter <= self.canvas // self.grid // 8:
            needs.append("0 <= jitter <= cell / 8")
        if not 1 <= self.min_odd <= self.max_odd < self.grid ** 2 / 2:
            needs.append("1 <= min_odd <= max_odd < grid^2 / 2 (odd items are a minority)")
        if self.sigma <= 0 or self.centre_sigma <= 0 or not 0 <= self.centre_bias < 1:
            needs.append("sigma > 0, centre_sigma > 0, 0 <= centre_bias < 1")
        if self.fixations < 1 or self.train_size < 1 or self.test_size < 1 or self.seed < 0:
            needs.append("fixations >= 1, train_size >= 1, test_size >= 1, seed >= 0")
        self.require(needs)

    @property
    def cell(self) -> int:
        return self.canvas // self.grid


def _item_masks(dx: np.ndarray, dy: np.ndarray, bar: np.ndarray, angle: np.ndarray,
                scale: np.ndarray, cell: int) -> np.ndarray:
    """Which pixels an item covers, from the offsets (n, h, w) of the pixel centres from the
    item's centre; per item (n,): bar or disc, orientation in degrees, size factor."""
    theta = np.deg2rad(angle)[:, None, None]
    along = dx * np.cos(theta) - dy * np.sin(theta)  # y points down: angle turns counter-clockwise
    across = dx * np.sin(theta) + dy * np.cos(theta)
    s = scale[:, None, None] * cell
    in_bar = (np.abs(along) <= s * BAR_LENGTH / 2) & (np.abs(across) <= s * BAR_WIDTH / 2)
    in_disc = dx * dx + dy * dy <= (s * DISC_RADIUS) ** 2
    return np.where(bar[:, None, None], in_bar, in_disc)


def _gaussians(centres: np.ndarray, sigma: float, size: int) -> np.ndarray:
    """(..., size) 1-D Gaussians at `centres` (...,) over the pixel centres 0.5..size - 0.5, each
    normalised to sum 1."""
    x = np.arange(size) + 0.5
    g = np.exp(-((x - centres[..., None]) ** 2) / (2.0 * sigma * sigma))
    return g / g.sum(-1, keepdims=True)


def fixation_density(odd_centres: np.ndarray, odd_count: np.ndarray,
                     params: SearchSceneParams) -> np.ndarray:
    """The density p float64 (n, C, C), each summing to 1 (module docstring), of scenes whose
    first `odd_count` (n,) rows of `odd_centres` (n, max_odd, 2) are the (x, y) centres of their
    odd items. Each Gaussian is separable, and so is its normalisation over the grid."""
    c = params.canvas
    gx = _gaussians(odd_centres[..., 0], params.sigma, c)  # (n, K, C)
    gy = _gaussians(odd_centres[..., 1], params.sigma, c)
    weight = (np.arange(odd_centres.shape[1]) < odd_count[:, None]) / odd_count[:, None]
    items = np.einsum("nk,nky,nkx->nyx", weight, gy, gx)
    centre = _gaussians(np.array(c / 2), params.centre_sigma, c)
    w = params.centre_bias
    return (1.0 - w) * items + w * np.outer(centre, centre)


def sample_fixations(density: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Flat pixel indices (n, F) drawn from the densities (n, H, W) by inverse CDF of
    `uniforms` (n, F) in [0, 1)."""
    n = len(density)
    cdf = np.cumsum(density.reshape(n, -1), axis=1)
    last = cdf.shape[1] - 1
    return np.stack([np.minimum(np.searchsorted(cdf[i], uniforms[i] * cdf[i, -1], side="right"),
                                last) for i in range(n)])


def render_search_scenes(count: int, params: SearchSceneParams,
                         rng: np.random.Generator) -> dict[str, np.ndarray]:
    """`count` scenes (module docstring).

    Returns image uint8 (n, C, C, 3), saliency float32 (n, C, C), fixations uint8 (n, C, C) and,
    to check them: odd_centres float64 (n, max_odd, 2) ((x, y) of the odd items; -1 on rows
    beyond odd_count), odd_count int64 (n,), shape and feature int64 (n,) (indices into SHAPES
    and FEATURES), fixation_index int64 (n, fixations) (flat pixel index of every draw) and the
    items of the grid cells in row-major order, as drawn: item_centre float64 (n, G^2, 2) (x,
    y), item_colour uint8 (n, G^2, 3), item_angle float64 (n, G^2) (degrees), item_scale
    float64 (n, G^2) (size factor), item_odd bool (n, G^2).
    """
    n, g, cell, c = count, params.grid, params.cell, params.canvas
    cells = g * g
    # Every random number is drawn up front, in a fixed order: the scenes depend on nothing else.
    shape = rng.integers(0, len(SHAPES), n)
    feature = rng.integers(0, 6, n) % np.where(shape == 0, 3, 2)  # discs have no orientation
    colour = rng.integers(0, len(PALETTE), n)
    odd_colour = (colour + rng.integers(1, len(PALETTE), n)) % len(PALETTE)
    angle = np.asarray(ORIENTATIONS)[rng.integers(0, len(ORIENTATIONS), n)]
    odd_count = rng.integers(params.min_odd, params.max_odd + 1, n)
    order = rng.random((n, cells)).argsort(axis=1)  # the first odd_count cells hold odd items
    jitter = rng.integers(-params.jitter, params.jitter + 1, (n, cells, 2))
    uniforms = rng.random((n, params.fixations))

    odd = order.argsort(axis=1) < odd_count[:, None]  # (n, cells): the rank of each cell
    palette = np.asarray(PALETTE, np.uint8)
    item_colour = palette[np.where(odd & (feature == 0)[:, None], odd_colour[:, None],
                                   colour[:, None])]  # (n, cells, 3)
    item_scale = np.where(odd & (feature == 1)[:, None], ODD_SCALE, 1.0)
    item_angle = angle[:, None] + np.where(odd & (feature == 2)[:, None], 90.0, 0.0)
    k = np.arange(cells)
    centres = (np.stack([k % g, k // g], -1) + 0.5) * cell + jitter  # (n, cells, 2): (x, y)

    image = np.empty((n, c, c, 3), np.uint8)
    image[:] = BACKGROUND
    pad = params.jitter
    for j in range(cells):  # one window per grid cell, all scenes at once
        y0, x0 = max((j // g) * cell - pad, 0), max((j % g) * cell - pad, 0)
        y1, x1 = min((j // g + 1) * cell + pad, c), min((j % g + 1) * cell + pad, c)
        dx = (np.arange(x0, x1) + 0.5)[None, None, :] - centres[:, j, 0, None, None]
        dy = (np.arange(y0, y1) + 0.5)[None, :, None] - centres[:, j, 1, None, None]
        inside = _item_masks(dx, dy, shape == 0, item_angle[:, j], item_scale[:, j], cell)
        window = image[:, y0:y1, x0:x1]
        window[...] = np.where(inside[..., None], item_colour[:, j, None, None], window)

    odd_centres = np.full((n, params.max_odd, 2), -1.0)
    for i in range(params.max_odd):
        has = odd_count > i
        odd_centres[has, i] = centres[has, order[has, i]]
    saliency = np.empty((n, c, c), np.float32)
    fixations = np.zeros((n, c * c), np.uint8)
    index = np.empty((n, params.fixations), np.int64)
    for b in range(0, n, BLOCK):
        part = slice(b, b + BLOCK)
        p = fixation_density(odd_centres[part], odd_count[part], params)
        saliency[part] = p / p.max(axis=(1, 2), keepdims=True)
        index[part] = sample_fixations(p, uniforms[part])
    np.put_along_axis(fixations, index, 1, axis=1)
    return {"image": image, "saliency": saliency, "fixations": fixations.reshape(n, c, c),
            "odd_centres": odd_centres, "odd_count": odd_count, "shape": shape,
            "feature": feature, "fixation_index": index, "item_centre": centres.astype(np.float64),
            "item_colour": item_colour, "item_angle": item_angle, "item_scale": item_scale,
            "item_odd": odd}
