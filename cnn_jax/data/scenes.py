"""Digit scenes: canvases of MNIST digits with exact segmentation, instances and boxes.

A scene is a black `canvas` x `canvas` image holding `min_digits`..`max_digits` MNIST digits
(LeCun et al. 1998) pasted back to front, each at a random height in [min_height, max_height]
pixels and a random position. MNIST digits are size-normalised to a 20 x 20 box centred in 28 x 28
(LeCun et al. 1998), so a digit of height h is its 28 x 28 frame resized (bilinearly) to
round(28 h / 20) pixels and pasted whole inside the canvas. Ground truth is exact by construction:

  * image: the brightest of the pasted digits at each pixel (white strokes drawn on black);
  * segmentation: at every pixel the digit pasted last among those whose resized frame is
    non-zero there decides: its class + 1 where its intensity is ink (>= INK), IGNORE on its
    anti-aliased rim (0 < intensity < INK), so no pixel's class is a guess; 0 elsewhere;
  * instances: i + 1 on the ink of the i-th visible digit (same rule), 0 elsewhere;
  * boxes: the tight box of each visible digit's ink (after occlusion); a digit whose ink is
    entirely hidden is dropped. Rows follow the pasting order (back to front).

Placement: a digit's position is the first of `PLACEMENT_TRIES` uniform draws whose ink box
overlaps every earlier digit's ink box with IoU <= `max_overlap`; if none does, the digit is left
out (the first digit always goes in). Occlusion stays partial, so every digit stays a fair target.

Everything is vectorised numpy over the whole split (one resize per digit height, one paste per
slot and height), a pure function of the digits and a `np.random.Generator`; `DigitSceneParams`
names a variant: 'digit_scenes' uses the defaults, 'digit_scenes/canvas=96,max_digits=6' others.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from cnn_jax.data.targets import IGNORE, tight_boxes
from cnn_jax.data.variants import Variant

INK = 128  # pasted intensity from which a pixel is the digit's ink (its class); below: its rim
MNIST_FRAME, MNIST_BOX = 28, 20  # frame and size-normalisation box of MNIST (LeCun et al. 1998)
PLACEMENT_TRIES = 8


@dataclasses.dataclass(frozen=True)
class DigitSceneParams(Variant):
    """The generation parameters of one digit-scene variant (module docstring)."""

    KIND = "digit scene"

    canvas: int = 64
    min_digits: int = 1
    max_digits: int = 4
    min_height: int = 16
    max_height: int = 40
    max_overlap: float = 0.3
    train_size: int = 12_000
    test_size: int = 2_000
    seed: int = 0

    def __post_init__(self):
        needs = []
        if not 1 <= self.min_digits <= self.max_digits <= 255:
            needs.append("1 <= min_digits <= max_digits <= 255")
        if not 1 <= self.min_height <= self.max_height:
            needs.append("1 <= min_height <= max_height")
        elif self.frame_side(self.max_height) > self.canvas:
            needs.append(f"the frame of a max_height digit ({self.frame_side(self.max_height)} px) "
                         f"<= canvas")
        if not 0 <= self.max_overlap <= 1:
            needs.append("0 <= max_overlap <= 1")
        if self.train_size < 1 or self.test_size < 1 or self.seed < 0:
            needs.append("train_size >= 1, test_size >= 1, seed >= 0")
        self.require(needs)

    @staticmethod
    def frame_side(height: int) -> int:
        """Side of the resized 28 x 28 MNIST frame that makes the digit `height` pixels tall."""
        return int(np.rint(MNIST_FRAME * height / MNIST_BOX))

    def config_name(self) -> str:
        """The folder of this variant in the data_dir (a tfds config name: letters, digits, -_.)."""
        return (f"canvas{self.canvas}_digits{self.min_digits}-{self.max_digits}_height"
                f"{self.min_height}-{self.max_height}_overlap{round(100 * self.max_overlap)}_train"
                f"{self.train_size}_test{self.test_size}_seed{self.seed}")


@functools.lru_cache(maxsize=64)
def _resize_matrix(size_out: int, size_in: int = MNIST_FRAME) -> np.ndarray:
    """(size_out, size_in) bilinear interpolation weights with pixel centres at i + 0.5 in both
    grids (PIL's and torch's align_corners=False), edges clamped: resize(x) = R @ x @ R.T."""
    centres = (np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5
    centres = np.clip(centres, 0, size_in - 1)
    lo = np.minimum(np.floor(centres).astype(int), size_in - 2)
    frac = centres - lo
    r = np.zeros((size_out, size_in), np.float32)
    r[np.arange(size_out), lo] = 1 - frac
    r[np.arange(size_out), lo + 1] += frac
    return r


def resize_digits(digits: np.ndarray, side: int) -> np.ndarray:
    """uint8 (k, 28, 28) -> uint8 (k, side, side), bilinear (separable: two matrix products)."""
    r = _resize_matrix(side)
    out = r @ digits.astype(np.float32) @ r.T  # weights are convex: values stay in [0, 255]
    return np.rint(out, out=out).astype(np.uint8)


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xyxy boxes a (..., 4) and b (..., 4), broadcast."""
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = w * h
    area = ((a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
            + (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]))
    return inter / np.maximum(area - inter, 1e-9)


def render_scenes(digits: np.ndarray, labels: np.ndarray, count: int, params: DigitSceneParams,
                  rng: np.random.Generator) -> dict[str, np.ndarray]:
    """`count` scenes from MNIST `digits` uint8 (K, 28, 28) with `labels` (K,) (module docstring).

    Returns image uint8 (count, C, C, 1), segmentation and instances uint8 (count, C, C), boxes
    float32 (count, M, 4), classes int32 (count, M), num_boxes int32 (count,), digit_index
    int64 (count, M) (the row of `digits` behind each box; -1 on padding) and placement int64
    (count, M, 4) (per pasting slot: row of `digits`, top, left, frame side; -1 when the slot was
    left empty), M = max_digits.
    """
    n, c, m = count, params.canvas, params.max_digits
    # Every random number is drawn up front, in a fixed order: the scenes depend on nothing else.
    wanted = rng.integers(params.min_digits, m + 1, n)
    index = rng.integers(0, len(digits), (m, n))
    heights = rng.integers(params.min_height, params.max_height + 1, (m, n))
    tries = rng.random((m, PLACEMENT_TRIES, n, 2))
    sides = np.rint(heights * MNIST_FRAME / MNIST_BOX).astype(np.int64)  # frame_side, vectorised

    image = np.zeros((n, c, c), np.uint8)
    segmentation = np.zeros((n, c, c), np.uint8)
    instances = np.zeros((n, c, c), np.uint8)
    placed = np.zeros((m, n), bool)
    placement = np.full((n, m, 4), -1, np.int64)  # per slot: digit row, top, left, frame side
    ink_boxes = np.zeros((m, n, 4), np.float64)  # where each placed digit's ink is
    lab = np.asarray(labels)
    for j in range(m):
        active = np.flatnonzero(wanted > j)
        for side in np.unique(sides[j, active]):
            rows = active[sides[j, active] == side]
            patches = resize_digits(digits[index[j, rows]], int(side))
            rel = tight_boxes((patches >= INK).astype(np.uint8), 1)[0][:, 0]  # (g, 4)
            # Candidate top-left corners, uniform over the positions where the frame fits.
            corner = np.floor(tries[j, :, rows] * (c - side + 1)).astype(np.int64)  # (g, T, 2)
            cand = rel[:, None, :] + np.concatenate([corner[..., ::-1], corner[..., ::-1]], -1)
            if j:
                iou = _box_iou(cand[:, :, None, :], ink_boxes[:j, rows].transpose(1, 0, 2)[:, None])
                iou = np.where(placed[:j, rows].T[:, None, :], iou, 0).max(axis=-1)  # (g, T)
                fits = iou <= params.max_overlap
            else:
                fits = np.ones(cand.shape[:2], bool)
            ok = fits.any(axis=1)
            pick = fits.argmax(axis=1)
            rows, patches = rows[ok], patches[ok]
            top, left = corner[ok, pick[ok], 0], corner[ok, pick[ok], 1]
            placed[j, rows] = True
            ink_boxes[j, rows] = cand[ok, pick[ok]]
            placement[rows, j] = np.stack([index[j, rows], top, left, np.full_like(top, side)], -1)
            # Paste the frame's non-zero pixels through flat indices (one gather, one scatter).
            flat = ((rows * c * c + top * c + left)[:, None, None] + np.arange(side)[:, None] * c
                    + np.arange(side))
            support = patches > 0
            at, values = flat[support], patches[support]
            ink = values >= INK
            cls = np.broadcast_to((lab[index[j, rows]] + 1)[:, None, None], patches.shape)[support]
            image.reshape(-1)[at] = np.maximum(image.reshape(-1)[at], values)
            segmentation.reshape(-1)[at] = np.where(ink, cls, IGNORE)
            instances.reshape(-1)[at] = np.where(ink, j + 1, 0)

    boxes, visible = tight_boxes(instances, m)  # per slot; a fully hidden digit has no pixels
    order = np.argsort(~visible, axis=1, kind="stable")  # visible slots first, pasting order kept
    visible_sorted = np.take_along_axis(visible, order, axis=1)
    boxes = np.take_along_axis(boxes, order[..., None], axis=1)
    boxes = np.where(visible_sorted[..., None], boxes, 0)
    slot_index = index.T
    classes = np.where(visible_sorted, np.take_along_axis(lab[slot_index], order, axis=1), 0)
    digit_index = np.where(visible_sorted, np.take_along_axis(slot_index, order, axis=1), -1)
    # Renumber instance ids from slots to box rows: id j + 1 -> (rank of slot j among visible)
    # + 1, never larger, so renumbering slot by slot in order cannot collide.
    rank = np.cumsum(visible, axis=1).astype(np.uint8)
    for j in range(1, m):
        moved = instances == j + 1
        instances[moved] = np.broadcast_to(rank[:, j, None, None], instances.shape)[moved]
    return {"image": image[..., None], "segmentation": segmentation,
            "instances": instances, "boxes": boxes.astype(np.float32),
            "classes": classes.astype(np.int32), "num_boxes": visible.sum(1).astype(np.int32),
            "digit_index": digit_index.astype(np.int64), "placement": placement}


def split_rng(seed: int, split: str) -> np.random.Generator:
    """The generator of one split ('train' or 'test') of a variant: independent streams."""
    return np.random.default_rng([seed, {"train": 0, "test": 1}[split]])
