"""Specification of cnn_jax.data.moving_mnist: clips of MNIST digits moving together in one of
eight directions, the label, which two frames show exactly and no single frame shows at all."""

import numpy as np
import pytest

from cnn_jax.data.moving_mnist import (
    DIRECTIONS,
    MovingMnistParams,
    paste_clips,
    render_clips,
    velocities,
)
from cnn_jax.data.scenes import split_rng

PARAMS = MovingMnistParams()


@pytest.fixture(scope="module")
def digits(shared_data):
    with np.load(shared_data / "mnist.npz") as z:
        return z["x_train"][:2000], z["x_test"][:1000]


@pytest.fixture(scope="module")
def clips(digits):
    return render_clips(digits[0], 400, PARAMS, np.random.default_rng(3))


def test_the_eight_directions_turn_counter_clockwise_from_east_with_y_pointing_down():
    assert DIRECTIONS[0] == "east" and DIRECTIONS[2] == "north" and DIRECTIONS[6] == "south"
    assert velocities(3).tolist() == [[3, 0], [2, -2], [0, -3], [-2, -2], [-3, 0], [-2, 2],
                                      [0, 3], [2, 2]]


def test_a_frame_is_the_digits_pasted_at_their_positions_with_the_maximum(digits):
    x = digits[0]
    clip = paste_clips(x[[5, 9]][None], np.array([[[10, 3], [40, 50]]]), np.array([[2, -2]]), 3, 64)
    assert clip.shape == (1, 3, 64, 64) and clip.dtype == np.uint8
    expected = np.zeros((64, 64), np.int64)
    for (left, top), digit in (((12, 1), x[5]), ((42, 48), x[9])):  # frame 1: moved by (2, -2)
        canvas = np.zeros((64 + 28, 64 + 28), np.int64)
        canvas[top:top + 28, left:left + 28] = digit
        wrapped = canvas[:64, :64].copy()
        wrapped[:28, :] += canvas[64:, :64]  # the part beyond the bottom edge comes in at the top
        wrapped[:, :28] += canvas[:64, 64:]
        expected = np.maximum(expected, wrapped)
    assert np.array_equal(clip[0, 1], expected)


def test_every_frame_is_the_first_rolled_by_the_labels_velocity(clips):
    v = velocities(PARAMS.speed)
    assert np.array_equal(clips["velocity"], v[clips["label"]])
    assert clips["clip"].shape == (400, 20, 64, 64, 1) and clips["clip"].dtype == np.uint8
    for i in range(0, 400, 7):
        first = clips["clip"][i, 0, ..., 0]
        for t in (1, 9, 19):
            dx, dy = clips["velocity"][i] * t
            rolled = np.roll(first, (dy, dx), axis=(0, 1))
            assert np.array_equal(rolled, clips["clip"][i, t, ..., 0])


def test_two_frames_give_the_direction_of_every_clip(clips):
    v = velocities(PARAMS.speed)
    for i in range(400):
        a, b = clips["clip"][i, 0, ..., 0], clips["clip"][i, 1, ..., 0]
        fits = [k for k, (dx, dy) in enumerate(v)
                if np.array_equal(np.roll(a, (dy, dx), (0, 1)), b)]
        assert fits == [clips["label"][i]]


def test_any_one_frame_of_a_direction_is_a_frame_of_every_other_direction_as_likely(clips,
                                                                                   digits):
    # Shifting the starts by (v - v') t is a bijection of the uniform starts that turns a clip of
    # direction v into one of direction v' with the same frame t: frame t says nothing of v.
    v = velocities(PARAMS.speed)
    n = 100
    pasted = digits[0][clips["digit_index"][:n]]
    for t in (0, 7, 19):
        for other in range(8):
            starts = (clips["starts"][:n] + (clips["velocity"][:n] - v[other])[:, None] * t) % 64
            moved = paste_clips(pasted, starts, np.broadcast_to(v[other], (n, 2)), t + 1, 64)
            assert np.array_equal(moved[:, t], clips["clip"][:n, t, ..., 0])


def test_start_positions_are_uniform_and_independent_of_the_direction(clips):
    starts = clips["starts"].reshape(400, -1)  # x and y of both digits
    assert starts.min() == 0 and starts.max() == 63
    quarters = starts // 16
    for label in range(8):  # every direction sees each quarter of the canvas about as often
        share = np.bincount(quarters[clips["label"] == label].reshape(-1), minlength=4)
        share = share / share.sum()
        assert np.abs(share - 0.25).max() < 0.12


def test_a_nearest_mean_classifier_on_one_frame_is_at_chance(digits):
    params = MovingMnistParams(frames=11)
    train = render_clips(digits[0], 1200, params, split_rng(0, "train"))
    test = render_clips(digits[1], 600, params, split_rng(0, "test"))
    x = train["clip"][:, 10, ..., 0].reshape(1200, -1).astype(np.float32)
    means = np.stack([x[train["label"] == k].mean(0) for k in range(8)])
    y = test["clip"][:, 10, ..., 0].reshape(600, -1).astype(np.float32)
    guess = ((y[:, None] - means[None]) ** 2).sum(-1).argmin(1)
    assert (guess == test["label"]).mean() < 0.2  # chance is 1/8


def test_train_clips_use_training_digits_and_variants_are_checked(digits):
    out = render_clips(digits[0], 50, MovingMnistParams(frames=4, digits=3), split_rng(0, "train"))
    assert out["clip"].shape == (50, 4, 64, 64, 1) and out["digit_index"].shape == (50, 3)
    assert out["digit_index"].max() < 2000
    params = MovingMnistParams.parse("frames=16,speed=2")
    assert params.options() == "frames=16,speed=2"
    assert params.config_name() == ("frames16_canvas64_digits2_speed2_train_size3000_"
                                    "test_size600_seed0")
    with pytest.raises(ValueError, match="speed < canvas / 2"):
        MovingMnistParams(speed=32)
    with pytest.raises(ValueError, match="among frames, canvas"):
        MovingMnistParams.parse("length=3")
