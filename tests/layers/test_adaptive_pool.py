"""adaptive_avg_pool: PyTorch AdaptiveAvgPool2d bins, start floor(i*L/o), end ceil((i+1)*L/o)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax.layers.adaptive_pool import adaptive_avg_pool


def adaptive_bins(input_size: int, output_size: int) -> list[tuple[int, int]]:
    """torch's rule, written out: cell i averages [floor(i * L / o), ceil((i + 1) * L / o))."""
    return [
        (i * input_size // output_size, -(-(i + 1) * input_size // output_size))
        for i in range(output_size)
    ]


def reference(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Loop over the bins, the way the rule is written."""
    n, h, w, c = x.shape
    y = np.zeros((n, out_h, out_w, c), x.dtype)
    for i, (h0, h1) in enumerate(adaptive_bins(h, out_h)):
        for j, (w0, w1) in enumerate(adaptive_bins(w, out_w)):
            y[:, i, j] = x[:, h0:h1, w0:w1].mean(axis=(1, 2))
    return y


def test_5_cells_pooled_to_3_average_overlapping_bins_like_torch():
    # bins [0, 2), [1, 4), [3, 5): floor(i*5/3) .. ceil((i+1)*5/3)
    x = jnp.array([1.0, 2.0, 4.0, 8.0, 16.0]).reshape(1, 5, 1, 1)
    y = adaptive_avg_pool(x, (3, 1))
    np.testing.assert_allclose(y.reshape(3), [1.5, 14 / 3, 12.0])


def test_a_single_cell_is_repeated_into_every_bin():
    x = jnp.arange(3.0).reshape(1, 1, 1, 3)
    y = adaptive_avg_pool(x, 7)
    assert y.shape == (1, 7, 7, 3)
    np.testing.assert_array_equal(y, jnp.broadcast_to(x, (1, 7, 7, 3)))


@pytest.mark.parametrize(
    "in_hw, out", [((13, 13), 6), ((5, 7), (3, 2)), ((3, 3), 6), ((14, 14), 7), ((2, 9), (4, 4))]
)
def test_matches_the_bin_by_bin_definition(in_hw, out):
    x = np.asarray(jax.random.normal(jax.random.key(0), (2, *in_hw, 3)))
    out_h, out_w = (out, out) if isinstance(out, int) else out
    np.testing.assert_allclose(
        adaptive_avg_pool(jnp.asarray(x), out), reference(x, out_h, out_w), rtol=1e-6, atol=1e-6
    )


def test_same_size_is_the_identity():
    x = jax.random.normal(jax.random.key(0), (1, 6, 6, 2))
    np.testing.assert_allclose(adaptive_avg_pool(x, 6), x, rtol=1e-6)


def test_gradient_spreads_each_output_over_its_bin():
    x = jnp.ones((1, 4, 4, 1))
    grad = jax.grad(lambda x: adaptive_avg_pool(x, 1).sum())(x)  # one bin: the global mean
    np.testing.assert_allclose(grad, np.full((1, 4, 4, 1), 1 / 16))


def test_rejects_an_output_size_with_the_wrong_number_of_dims():
    with pytest.raises(ValueError, match="spatial dims"):
        adaptive_avg_pool(jnp.zeros((1, 4, 4, 3)), (2, 2, 2))
