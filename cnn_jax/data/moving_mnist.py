"""Moving MNIST clips whose label is the direction of motion, which no single frame shows.

A clip is `frames` frames of a black `canvas` x `canvas` image in which `digits` MNIST digits
(LeCun et al. 1998; their 28 x 28 frames) move at constant velocity, combined by the pixel-wise
maximum as in Srivastava et al. 2015. All digits of a clip move the same way: one of the eight
compass directions of `DIRECTIONS`, which is the label, at `speed` pixels per frame (rounded per
axis: speed 3 moves (3, 0) or (2, 2) pixels), so every frame is a whole-pixel shift of the first.

Walls: Srivastava et al.'s digits bounce off the walls, but a bounce turns the direction, and
with a fixed direction label a bouncing clip leaks its label into single frames (digits moving
east pile up at the east wall; none can be near the west wall late in the clip). Here the canvas
wraps around (a torus: a digit leaving at one edge comes back in at the opposite one), and every
digit starts at an independent position uniform over the canvas's integer positions. Then the
positions in any one frame are uniform and independent of the direction: for frame t the map
start -> start + (v - v') t (mod canvas) sends the clips of direction v to equally likely clips
of direction v' with the same frame t. So a per-frame classifier can do no better than chance
(1/8), while two consecutive frames give the direction exactly (frame t + 1 is frame t rolled
by v).

Clips keep the issue's 20 frames; a model that takes 16 (C3D, Tran et al. 2015) uses the first
16. Everything is vectorised numpy over a split, a pure function of the digits and a
`np.random.Generator` (train clips from training digits, test clips from test digits).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from cnn_jax.data.variants import Variant

# The eight directions, counter-clockwise from east as displayed (y points down).
DIRECTIONS = ("east", "north-east", "north", "north-west", "west", "south-west", "south",
              "south-east")
DIGIT = 28  # the side of an MNIST frame


@dataclasses.dataclass(frozen=True)
class MovingMnistParams(Variant):
    """The generation parameters of one Moving MNIST variant (module docstring)."""

    KIND = "moving MNIST"

    frames: int = 20
    canvas: int = 64
    digits: int = 2
    speed: int = 3
    train_size: int = 3000
    test_size: int = 600
    seed: int = 0

    def __post_init__(self):
        needs = []
        if self.frames < 2 or self.canvas < DIGIT or self.digits < 1:
            needs.append(f"frames >= 2, canvas >= {DIGIT}, digits >= 1")
        if not 1 <= self.speed < self.canvas // 2:
            needs.append("1 <= speed < canvas / 2 (a faster shift looks like a slower one back)")
        if self.train_size < 1 or self.test_size < 1 or self.seed < 0:
            needs.append("train_size >= 1, test_size >= 1, seed >= 0")
        self.require(needs)


def velocities(speed: int) -> np.ndarray:
    """(8, 2) int64 (dx, dy) pixels per frame of the DIRECTIONS at `speed`."""
    angle = np.deg2rad(45.0 * np.arange(len(DIRECTIONS)))
    return np.rint(np.stack([speed * np.cos(angle), -speed * np.sin(angle)], -1)).astype(np.int64)


def paste_clips(digits: np.ndarray, starts: np.ndarray, velocity: np.ndarray, frames: int,
                canvas: int) -> np.ndarray:
    """Clips uint8 (n, T, C, C): digits uint8 (n, D, 28, 28) whose top-left corners start at
    `starts` (n, D, 2) (x, y) and move by `velocity` (n, 2) (dx, dy) per frame on the torus,
    combined by the maximum."""
    n, d = starts.shape[:2]
    clips = np.zeros((n, frames, canvas, canvas), np.uint8)
    rows = np.arange(n)[:, None, None]
    offsets = np.arange(DIGIT)
    for t in range(frames):
        where = (starts + velocity[:, None] * t) % canvas  # (n, D, 2)
        frame = clips[:, t]
        for j in range(d):  # the 28 rows (columns) of one digit are distinct on the torus
            ys = ((where[:, j, 1, None] + offsets) % canvas)[:, :, None]
            xs = ((where[:, j, 0, None] + offsets) % canvas)[:, None, :]
            frame[rows, ys, xs] = np.maximum(frame[rows, ys, xs], digits[:, j])
    return clips


def render_clips(digits: np.ndarray, count: int, params: MovingMnistParams,
                 rng: np.random.Generator) -> dict[str, np.ndarray]:
    """`count` clips from MNIST `digits` uint8 (K, 28, 28) (module docstring).

    Returns clip uint8 (n, T, C, C, 1), label int64 (n,) (index into DIRECTIONS) and, to check
    them: digit_index int64 (n, D) (the rows of `digits`), starts int64 (n, D, 2) (x, y of each
    digit's top-left corner in frame 0) and velocity int64 (n, 2).
    """
    n, d, c = count, params.digits, params.canvas
    # Every random number is drawn up front, in a fixed order: the clips depend on nothing else.
    label = rng.integers(0, len(DIRECTIONS), n)
    index = rng.integers(0, len(digits), (n, d))
    starts = rng.integers(0, c, (n, d, 2))
    velocity = velocities(params.speed)[label]
    clips = paste_clips(digits[index], starts, velocity, params.frames, c)
    return {"clip": clips[..., None], "label": label, "digit_index": index, "starts": starts,
            "velocity": velocity}
