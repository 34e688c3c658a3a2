"""Specification of the geometric augmentation: the affine matrices move points as documented,
resampling with them reproduces exact rotations and shifts, the random affine op draws within its
ranges, and the elastic distortion of Simard et al. 2003 is the smoothed random field it claims."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from cnn_jax.data.augment import (
    RandomCrop,
    RandomFlipLR,
    RandomFlipUD,
    RandomWarp,
    affine_matrices,
    elastic_displacement,
    invert_affine,
    random_warp,
    warp,
)


def _batch(n=4, h=8, w=8, c=3, seed=0):
    return np.random.default_rng(seed).integers(1, 256, (n, h, w, c), dtype=np.uint8)


def _apply(matrix, points):
    """2x3 matrix applied to (x, y) points."""
    points = np.asarray(points, float)
    return points @ matrix[:, :2].T + matrix[:, 2]


def _warp_all(images, **kwargs):
    m = affine_matrices(images.shape[1], images.shape[2], **kwargs)
    return warp(images, invert_affine(np.repeat(m, len(images), 0)))


def test_matrices_move_points_about_the_image_centre():
    h, w = 9, 13
    c = np.array([(w - 1) / 2, (h - 1) / 2])  # (6, 4)
    (rot,) = affine_matrices(h, w, rotation=90)
    # A point right of the centre goes above it: counter-clockwise as displayed (y points down).
    assert np.allclose(_apply(rot, [c + (2, 0), c, c + (0, 3)]), [c + (0, -2), c, c + (3, 0)])
    (shear,) = affine_matrices(h, w, shear=45)
    assert np.allclose(_apply(shear, [c + (1, 0), c + (0, 2), c + (0, -2)]),
                       [c + (1, 0), c + (2, 2), c + (-2, -2)])
    (scale,) = affine_matrices(h, w, scale_x=2.0, scale_y=0.5)
    assert np.allclose(_apply(scale, [c + (1, 1), c]), [c + (2, 0.5), c])
    (shift,) = affine_matrices(h, w, translate_x=3, translate_y=-1.5)
    assert np.allclose(_apply(shift, [(0, 0), (5, 7)]), [(3, -1.5), (8, 5.5)])


def test_matrices_compose_scale_then_shear_then_rotation_then_translation():
    (m,) = affine_matrices(10, 10, rotation=30, shear=20, scale_x=1.2, scale_y=0.9,
                           translate_x=1, translate_y=2)
    p = np.array([[7.0, 2.0], [1.0, 8.0]])
    c = np.array([4.5, 4.5])
    steps = [affine_matrices(10, 10, scale_x=1.2, scale_y=0.9)[0], affine_matrices(10, 10, shear=20)[0],
             affine_matrices(10, 10, rotation=30)[0]]
    q = p
    for s in steps:
        q = _apply(s, q)
    assert np.allclose(_apply(m, p), q + (1, 2))
    assert np.allclose(_apply(m, c), c + (1, 2))  # the centre only moves by the translation
    assert np.allclose(_apply(invert_affine(m[None])[0], _apply(m, p)), p)


@pytest.mark.parametrize("size", [8, 7])
def test_rotating_a_square_image_by_right_angles_is_exact(size):
    x = _batch(h=size, w=size)
    assert np.array_equal(_warp_all(x, rotation=90), np.rot90(x, 1, axes=(1, 2)))
    assert np.array_equal(_warp_all(x, rotation=-90), np.rot90(x, -1, axes=(1, 2)))
    assert np.array_equal(_warp_all(x, rotation=180), x[:, ::-1, ::-1])


def test_translating_by_whole_pixels_shifts_the_array_with_zero_fill():
    x = _batch(h=6, w=9)
    out = _warp_all(x, translate_x=2, translate_y=-1)
    expected = np.zeros_like(x)
    expected[:, :5, 2:] = x[:, 1:, :7]
    assert np.array_equal(out, expected)
    assert np.array_equal(_warp_all(x), x)  # the identity resamples nothing


def test_half_pixel_shift_averages_neighbours():
    x = np.zeros((1, 1, 4, 1), np.uint8)
    x[0, 0, :, 0] = [10, 30, 50, 70]
    out = _warp_all(x, translate_x=0.5)
    assert out[0, 0, :, 0].tolist() == [5, 20, 40, 60]  # bilinear; zero comes in from the left


def test_warp_samples_bilinearly_with_zero_fill_like_scipy_map_coordinates():
    from scipy.ndimage import map_coordinates

    x = _batch(n=3, h=12, w=10, c=2)
    forward = affine_matrices(12, 10, rotation=[20, -35, 5], scale_x=[1.1, 0.8, 1.0],
                              translate_x=[0.3, -2.2, 1.0], shear=[0, 10, -5])
    field = elastic_displacement(3, 12, 10, 3.0, 2.0, 1)
    inverse = invert_affine(forward)
    out = warp(x, inverse, field)
    ys, xs = np.mgrid[0:12, 0:10].astype(float)
    for i in range(3):
        a = inverse[i]
        src_x = a[0, 0] * xs + a[0, 1] * ys + a[0, 2] + field[0, i]
        src_y = a[1, 0] * xs + a[1, 1] * ys + a[1, 2] + field[1, i]
        for ch in range(2):
            ref = map_coordinates(x[i, :, :, ch].astype(float), [src_y, src_x], order=1,
                                  mode="grid-constant", cval=0.0)
            assert np.abs(out[i, :, :, ch] - ref).max() <= 0.51  # float32, then rounded


def _bar(n, size=64, length=40, thickness=4):
    """n images of a horizontal bright bar through the centre."""
    x = np.zeros((n, size, size, 1), np.uint8)
    mid = size // 2
    x[:, mid - thickness // 2:mid + thickness // 2, mid - length // 2:mid + length // 2] = 255
    return x


def _moments(images):
    """Per image: centre of mass (x, y), principal-axis angle (degrees, counter-clockwise as
    displayed), and extents (width, height) along x and y of the pixels above half intensity."""
    out = []
    for img in images[..., 0].astype(float):
        ys, xs = np.nonzero(img > 127)
        wts = img[img > 127]
        cx, cy = np.average(xs, weights=wts), np.average(ys, weights=wts)
        cov = np.cov(np.stack([xs - cx, -(ys - cy)]), aweights=wts)
        evals, evecs = np.linalg.eigh(cov)
        vx, vy = evecs[:, 1]
        angle = np.degrees(np.arctan2(vy, vx))
        angle = (angle + 90) % 180 - 90
        out.append((cx, cy, angle, xs.max() - xs.min() + 1, ys.max() - ys.min() + 1))
    return np.array(out)


def test_random_rotation_turns_each_image_within_the_range():
    m = _moments(random_warp(_bar(64), 0, rotation=30))
    assert np.all(np.abs(m[:, 2]) <= 31)
    assert m[:, 2].min() < -20 and m[:, 2].max() > 20  # spread over the range, both ways


def test_random_translation_moves_the_centre_by_at_most_the_fraction():
    x = np.zeros((64, 40, 40, 1), np.uint8)
    x[:, 18:22, 18:22] = 255
    m = _moments(random_warp(x, 1, translate=0.2))  # up to 8 pixels each way
    dx, dy = m[:, 0] - 19.5, m[:, 1] - 19.5
    assert np.all(np.abs(dx) <= 8.01) and np.all(np.abs(dy) <= 8.01)
    assert dx.max() > 5 and dx.min() < -5 and dy.max() > 5 and dy.min() < -5
    assert np.corrcoef(dx, dy)[0, 1] < 0.5  # drawn independently


def _square(n, size=64, side=24):
    x = np.zeros((n, size, size, 1), np.uint8)
    lo = (size - side) // 2
    x[:, lo:lo + side, lo:lo + side] = 255
    return x


def test_random_zoom_scales_both_axes_alike_within_the_range():
    m = _moments(random_warp(_square(48), 2, zoom=0.3))
    sx, sy = m[:, 3] / 24, m[:, 4] / 24
    assert np.all(np.abs(sx - sy) <= 2 / 24)  # same factor on x and y (to a pixel)
    assert np.all((sx >= 0.7 - 0.05) & (sx <= 1.3 + 0.05))
    assert sx.min() < 0.85 and sx.max() > 1.15


def test_random_squeeze_stretches_one_axis_and_shrinks_the_other():
    m = _moments(random_warp(_square(48), 3, squeeze=0.5))
    sx, sy = m[:, 3] / 24, m[:, 4] / 24
    assert np.all(np.abs(sx * sy - 1) < 0.12)  # area kept: x by k, y by 1/k
    assert np.all((sx >= 1 / 1.5 - 0.05) & (sx <= 1.5 + 0.05))
    assert sx.min() < 0.8 and sx.max() > 1.25


def test_random_shear_slants_vertical_edges_within_the_range():
    x = np.zeros((32, 64, 64, 1), np.uint8)
    x[:, 12:52, 30:34] = 255  # a vertical bar
    m = _moments(random_warp(x, 4, shear=30))
    # x += tan(s) * y turns a vertical bar by s away from vertical.
    tilt = 90 - np.abs(m[:, 2])
    assert np.all(tilt <= 31) and tilt.max() > 20


def test_elastic_field_is_alpha_times_a_gaussian_smoothed_uniform_field():
    n, h, w, alpha, sigma = 3, 28, 20, 34.0, 4.0
    field = elastic_displacement(n, h, w, alpha, sigma, 5)
    raw = np.random.default_rng(5).random((2 * n, h, w), dtype=np.float32) * 2 - 1
    expected = alpha * gaussian_filter(raw.astype(np.float64), (0, sigma, sigma))
    assert field.shape == (2, n, h, w) and field.dtype == np.float32
    assert np.allclose(field.reshape(2 * n, h, w), expected, atol=1e-4)
    assert 0.5 < np.abs(field).mean() < 3  # ~1-2 pixels for Simard's alpha 34, sigma 4


def test_elastic_alpha_zero_is_the_identity_and_alpha_moves_pixels(shared_data):
    with np.load(shared_data / "mnist.npz") as z:
        digits = z["x_train"][:64, :, :, None]
    assert np.array_equal(random_warp(digits, 0, elastic_alpha=0.0, elastic_sigma=4.0), digits)
    out = random_warp(digits, 0, elastic_alpha=34.0, elastic_sigma=4.0)
    changed = [(o != d).mean() for o, d in zip(out, digits, strict=True)]
    assert min(changed) > 0.02
    # The field compresses strokes here and stretches them there (its divergence has a standard
    # deviation of ~0.4 at alpha 34, sigma 4): a digit's ink varies, the batch's is kept.
    ink_ratio = out.reshape(64, -1).mean(1) / digits.reshape(64, -1).mean(1)
    assert np.all((ink_ratio > 0.5) & (ink_ratio < 2)) and abs(ink_ratio.mean() - 1) < 0.05


def test_random_warp_is_a_function_of_the_seed():
    op = RandomWarp(rotation=10, translate=0.1, shear=10, zoom=0.1, squeeze=0.1, elastic_alpha=34)
    x = _batch(n=8, h=28, w=28, c=1)
    a = op(x, np.random.default_rng(9))
    assert np.array_equal(a, op(x, np.random.default_rng(9)))
    assert not np.array_equal(a, op(x, np.random.default_rng(10)))
    assert a.dtype == np.uint8 and a.shape == x.shape
    # Each image of the batch gets its own map.
    same = np.repeat(x[:1], 8, 0)
    out = op(same, np.random.default_rng(9))
    assert len({o.tobytes() for o in out}) == 8


@pytest.mark.parametrize("op", [RandomCrop(3), RandomFlipLR(), RandomFlipUD(),
                                RandomWarp(rotation=30, zoom=0.2, elastic_alpha=8.0)],
                         ids=["crop", "flip_lr", "flip_ud", "warp"])
def test_geometric_op_draws_its_parameters_once_and_moves_every_array_alike(op):
    x = _batch(n=6, h=12, w=10)
    params = op.draw(np.random.default_rng(4), x.shape)
    whole = op(x, np.random.default_rng(4))
    assert np.array_equal(op.apply_image(x, params), whole)  # calling = draw, then apply
    # A second array in the same coordinates (as a mask will be) moved with the same draw lands
    # where its pixels did: each channel of the output is the op applied to that channel alone.
    for ch in range(3):
        assert np.array_equal(op.apply_image(x[..., ch:ch + 1], params), whole[..., ch:ch + 1])
    # The draw is the batch's: a slice of a global batch gets the rows of the whole draw.
    part = op.draw(np.random.default_rng(4), (2, *x.shape[1:]), rows=(2, 6))
    assert np.array_equal(op.apply_image(x[2:4], part), whole[2:4])
