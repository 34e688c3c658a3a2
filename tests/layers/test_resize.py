"""Bilinear resizing with torch's sampling (``F.interpolate(mode='bilinear',
align_corners=False)``, what torchvision's segmentation models upsample with) and centre crops.

Tolerance: each output is a weighted sum of four inputs with weights computed in float64 (ours) or
float32 (torch's), a difference of a few float32 roundings: 1e-6 of the values' scale (about 4 at
most for these standard normal inputs, so 4e-6 absolute) leaves a margin over them.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax.layers import center_crop, resize_bilinear
from cnn_jax.layers.resize import bilinear_matrix

SIZES = [(12, 16, 96, 128), (12, 16, 97, 130), (12, 16, 5, 7), (1, 1, 8, 6), (7, 9, 7, 9)]


@pytest.fixture(scope="module")
def torch():
    import torch

    return torch


@pytest.mark.parametrize("h,w,out_h,out_w", SIZES)
def test_resize_equals_torch_interpolate_bilinear_without_corner_alignment(torch, h, w, out_h,
                                                                          out_w):
    x = np.random.default_rng(0).standard_normal((2, 3, h, w)).astype(np.float32)
    expected = torch.nn.functional.interpolate(torch.tensor(x), size=(out_h, out_w),
                                               mode="bilinear", align_corners=False).numpy()
    ours = np.asarray(resize_bilinear(jnp.asarray(x.transpose(0, 2, 3, 1)), (out_h, out_w)))
    np.testing.assert_allclose(ours, expected.transpose(0, 2, 3, 1), atol=4e-6, rtol=0)


@pytest.mark.parametrize("h,w,out_h,out_w", SIZES)
def test_jax_image_resize_samples_the_same_points_only_without_antialiasing(h, w, out_h, out_w):
    x = jnp.asarray(np.random.default_rng(1).standard_normal((2, h, w, 3)), jnp.float32)
    ours = resize_bilinear(x, (out_h, out_w))
    shape = (2, out_h, out_w, 3)
    plain = jax.image.resize(x, shape, "bilinear", antialias=False)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(plain), atol=4e-6, rtol=0)
    if out_h < h:  # shrinking: the default antialiasing averages more inputs than torch does
        antialiased = jax.image.resize(x, shape, "bilinear")
        assert float(jnp.max(jnp.abs(antialiased - ours))) > 0.1


def test_upsampling_by_two_weights_neighbours_three_to_one():
    # Half-pixel centres: output 1 of 0..3 sits at input 0.25 -> 3/4 of row 0, 1/4 of row 1; the
    # first and last outputs fall outside the input's centres and repeat the edge rows.
    np.testing.assert_allclose(bilinear_matrix(2, 4), [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
    assert bilinear_matrix(5, 5).tolist() == np.eye(5).tolist()


def test_resize_keeps_a_constant_and_is_differentiable():
    x = jnp.full((1, 3, 4, 2), 7.0)
    np.testing.assert_allclose(resize_bilinear(x, (9, 10)), 7.0, rtol=1e-6)
    grad = jax.grad(lambda x: jnp.sum(resize_bilinear(x, (6, 8))))(jnp.ones((1, 3, 4, 2)))
    # Each output distributes a total weight of 1: the gradient sums to the number of outputs.
    assert float(jnp.sum(grad)) == pytest.approx(6 * 8 * 2, rel=1e-6)


def test_centre_crop_takes_the_middle_and_puts_an_odd_row_at_the_end():
    x = jnp.arange(7 * 6, dtype=jnp.float32).reshape(1, 7, 6, 1)
    crop = center_crop(x, (4, 2))
    assert crop.shape == (1, 4, 2, 1)
    # Rows 1..4 (3 spare rows: 1 before, 2 after), columns 2..3.
    np.testing.assert_array_equal(crop[0, :, :, 0], np.asarray(x)[0, 1:5, 2:4, 0])
    with pytest.raises(ValueError, match="cannot crop"):
        center_crop(x, (8, 2))
