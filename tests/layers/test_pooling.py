"""Specification of cnn_jax.layers.pooling: the lecture's 2x2 example, torch's ceil_mode and
count_include_pad rules (checked against a direct transcription of torch's loops), global pooling."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax.layers import (
    avg_pool,
    conv_output_size,
    global_avg_pool,
    global_max_pool,
    max_pool,
    sum_pool,
)

# Lecture example: 2x2 windows, stride 2.
FEATURE_MAP = np.array(
    [[29, 15, 28, 184], [0, 100, 70, 38], [12, 12, 7, 2], [12, 12, 45, 6]],
    np.float32,
)


def _nhwc(a: np.ndarray) -> jnp.ndarray:
    return jnp.asarray(a)[None, :, :, None]


def _torch_out_size(size: int, k: int, s: int, p: int, ceil_mode: bool) -> int:
    # torch's pooling_output_shape, written the way torch writes it (rounding up via s - 1).
    out = (size + 2 * p - (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def torch_pool2d_reference(
    x: np.ndarray,
    k: int,
    s: int,
    p: int,
    ceil_mode: bool,
    mode: str,
    count_include_pad: bool = True,
) -> np.ndarray:
    """torch's max_pool2d / avg_pool2d on one (H, W) map, transcribed loop by loop."""
    h, w = x.shape
    oh, ow = _torch_out_size(h, k, s, p, ceil_mode), _torch_out_size(w, k, s, p, ceil_mode)
    out = np.zeros((oh, ow), np.float64)
    for i, j in itertools.product(range(oh), range(ow)):
        h0, w0 = i * s - p, j * s - p
        h1, w1 = min(h0 + k, h + p), min(w0 + k, w + p)
        pool_size = (h1 - h0) * (w1 - w0)
        h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, h), min(w1, w)
        window = x[h0:h1, w0:w1]
        if mode == "max":
            out[i, j] = window.max()
        else:
            divisor = pool_size if count_include_pad else (h1 - h0) * (w1 - w0)
            out[i, j] = window.sum() / divisor
    return out


def test_lecture_max_pool_two_by_two_stride_two():
    out = max_pool(_nhwc(FEATURE_MAP), 2, 2)
    np.testing.assert_array_equal(np.asarray(out[0, :, :, 0]), [[100, 184], [12, 45]])


def test_lecture_average_pool_two_by_two_stride_two():
    out = avg_pool(_nhwc(FEATURE_MAP), 2, 2)
    np.testing.assert_array_equal(np.asarray(out[0, :, :, 0]), [[36, 80], [12, 15]])


def test_lecture_sum_pool_two_by_two_stride_two():
    out = sum_pool(_nhwc(FEATURE_MAP), 2, 2)
    np.testing.assert_array_equal(np.asarray(out[0, :, :, 0]), [[144, 320], [48, 60]])


def test_lecture_global_average_and_max_pool():
    x = _nhwc(FEATURE_MAP)
    np.testing.assert_array_equal(np.asarray(global_avg_pool(x)), [[35.75]])  # 572 / 16
    np.testing.assert_array_equal(np.asarray(global_max_pool(x)), [[184.0]])
    assert global_avg_pool(x, keepdims=True).shape == (1, 1, 1, 1)


def test_global_pools_reduce_every_spatial_dim_of_one_two_and_three_d_input_per_channel():
    x = jnp.arange(2 * 3 * 4 * 5 * 2, dtype=jnp.float32).reshape(2, 3, 4, 5, 2)
    np.testing.assert_array_equal(np.asarray(global_max_pool(x)), np.asarray(x[:, -1, -1, -1, :]))
    np.testing.assert_allclose(np.asarray(global_avg_pool(x)), np.asarray(x.mean(axis=(1, 2, 3))))
    assert global_avg_pool(jnp.ones((2, 7, 3))).shape == (2, 3)


def test_strides_default_to_the_window():
    x = jnp.arange(36, dtype=jnp.float32).reshape(1, 6, 6, 1)
    assert max_pool(x, 3).shape == (1, 2, 2, 1)
    np.testing.assert_array_equal(np.asarray(max_pool(x, 3)[0, :, :, 0]), [[14, 17], [32, 35]])


def test_overlapping_max_pool_of_alexnet_shrinks_55_to_27_to_13():
    # Krizhevsky et al. 2012 §3.4: z = 3, s = 2.
    x = jnp.ones((1, 55, 55, 1))
    assert max_pool(x, 3, 2).shape == (1, 27, 27, 1)
    assert max_pool(max_pool(x, 3, 2), 3, 2).shape == (1, 13, 13, 1)


def test_googlenet_ceil_mode_max_pools_halve_rounding_up():
    x = jnp.ones((1, 112, 112, 1))
    sizes = []
    for _ in range(4):
        x = max_pool(x, 3, 2, ceil_mode=True)
        sizes.append(x.shape[1])
    assert sizes == [56, 28, 14, 7]


@pytest.mark.parametrize(
    "size,k,s,p,ceil_mode",
    [
        (7, 3, 2, 0, True),
        (6, 3, 2, 0, True),
        (5, 2, 2, 1, True),  # the ceil window would start in the right padding: torch drops it
        (8, 3, 3, 1, True),
        (9, 3, 3, 1, True),
        (7, 3, 2, 1, False),
        (10, 4, 3, 2, True),
        (6, 2, 2, 0, False),
    ],
)
def test_max_and_avg_pool_match_torch_semantics(size, k, s, p, ceil_mode):
    rng = np.random.default_rng(size * 100 + k * 10 + s)
    # Negative values check that max padding is -inf, not zero.
    x = rng.normal(size=(size, size + 1)).astype(np.float32) - 1.0
    got_max = max_pool(_nhwc(x), k, s, p, ceil_mode=ceil_mode)[0, :, :, 0]
    expected_max = torch_pool2d_reference(x, k, s, p, ceil_mode, "max")
    np.testing.assert_array_equal(np.asarray(got_max), expected_max.astype(np.float32))
    for include in (True, False):
        got_avg = avg_pool(_nhwc(x), k, s, p, ceil_mode=ceil_mode, count_include_pad=include)[
            0, :, :, 0
        ]
        expected_avg = torch_pool2d_reference(x, k, s, p, ceil_mode, "avg", include)
        np.testing.assert_allclose(np.asarray(got_avg), expected_avg, rtol=1e-5, atol=1e-6)
    assert got_max.shape[0] == conv_output_size(size, k, s, p, ceil_mode=ceil_mode)


def test_avg_pool_count_include_pad_divides_corners_by_the_full_window():
    x = jnp.ones((1, 3, 3, 1))
    include = avg_pool(x, 3, 1, padding=1, count_include_pad=True)[0, :, :, 0]
    exclude = avg_pool(x, 3, 1, padding=1, count_include_pad=False)[0, :, :, 0]
    np.testing.assert_allclose(
        np.asarray(include), np.array([[4, 6, 4], [6, 9, 6], [4, 6, 4]]) / 9.0
    )
    np.testing.assert_allclose(np.asarray(exclude), np.ones((3, 3)))


def test_avg_pool_ceil_mode_cells_beyond_the_padding_are_never_counted():
    # 3 samples, window 2, stride 2, ceil: windows [0, 1] and [2] (+ one cell past the end).
    x = jnp.array([2.0, 4.0, 9.0]).reshape(1, 3, 1)
    out = avg_pool(x, 2, ceil_mode=True, count_include_pad=True)
    np.testing.assert_allclose(np.asarray(out[0, :, 0]), [3.0, 9.0])


def test_max_pool_padding_never_wins_over_negative_inputs():
    x = -jnp.ones((1, 2, 2, 1))
    np.testing.assert_array_equal(np.asarray(max_pool(x, 3, 1, padding=1)), -np.ones((1, 2, 2, 1)))


def test_same_padding_gives_ceil_of_size_over_stride():
    x = jnp.ones((1, 7, 7, 2))
    assert max_pool(x, 3, 2, padding="SAME").shape == (1, 4, 4, 2)
    assert avg_pool(x, 3, 2, padding="SAME").shape == (1, 4, 4, 2)


def test_pooling_works_on_one_d_and_three_d_input_with_per_dim_windows():
    seq = jnp.arange(8, dtype=jnp.float32).reshape(1, 8, 1)
    np.testing.assert_array_equal(np.asarray(max_pool(seq, 2)[0, :, 0]), [1, 3, 5, 7])
    np.testing.assert_array_equal(np.asarray(avg_pool(seq, 4)[0, :, 0]), [1.5, 5.5])
    volume = jnp.ones((2, 4, 6, 6, 3))
    assert max_pool(volume, (1, 2, 2)).shape == (2, 4, 3, 3, 3)
    assert avg_pool(volume, 2, strides=(2, 3, 3)).shape == (2, 2, 2, 2, 3)


def test_pooling_rejects_a_window_with_the_wrong_number_of_dims():
    with pytest.raises(ValueError, match="window"):
        max_pool(jnp.ones((1, 4, 4, 1)), (2, 2, 2))


@pytest.mark.parametrize("pool", [max_pool, avg_pool, sum_pool])
def test_pooling_is_differentiable_under_jit(pool):
    # Models backpropagate through every pooling layer; the gradient of a 2x2/2 sum of windows
    # is 1 per input cell (sum), 1/4 (average), or 1 at each window's maximum (max).
    x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    grad = jax.jit(jax.grad(lambda x: pool(x, 2).sum()))(x)[0, :, :, 0]
    expected = {"sum_pool": np.ones((4, 4)), "avg_pool": np.full((4, 4), 0.25),
                "max_pool": np.kron(np.ones((2, 2)), np.array([[0, 0], [0, 1]]))}[pool.__name__]
    np.testing.assert_allclose(grad, expected)


@pytest.mark.parametrize("shape,window", [((2, 8, 6, 3), (2, 2)), ((2, 9, 6, 3), (3, 3)),
                                          ((2, 8, 3), (2,)), ((1, 4, 4, 4, 2), (2, 2, 2))])
def test_tiling_max_pool_gradient_is_select_and_scatter_bit_for_bit_even_with_ties(shape, window):
    # Non-overlapping windows that tile the input take max_pool's elementwise gradient; it must
    # give each window's gradient to its first maximum, as lax.reduce_window's own gradient does.
    from jax import lax

    x = jnp.asarray(np.random.default_rng(0).integers(0, 3, shape), jnp.float32)  # many ties
    g = jnp.asarray(np.random.default_rng(1).standard_normal(max_pool(x, window).shape), jnp.float32)
    dims = (1, *window, 1)

    def reference(x):
        return lax.reduce_window(x, -jnp.inf, lax.max, dims, dims, "VALID")

    ours = jax.jit(lambda x: jax.vjp(lambda x: max_pool(x, window), x)[1](g)[0])(x)
    theirs = jax.jit(lambda x: jax.vjp(reference, x)[1](g)[0])(x)
    assert jnp.array_equal(max_pool(x, window), reference(x))
    assert jnp.array_equal(ours, theirs)
    # XLA:CPU expands select-and-scatter into a scatter; the tiled gradient needs none.
    def compiled(pool):
        return jax.jit(jax.grad(lambda x: jnp.sum(pool(x) * g))).lower(x).compile().as_text()

    assert " scatter(" in compiled(reference)
    assert " scatter(" not in compiled(lambda x: max_pool(x, window))
