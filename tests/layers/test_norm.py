"""Specification of cnn_jax.layers.norm: LocalResponseNorm against the formula written out in numpy,
and BatchNorm's train/eval behaviour and momentum-0.9 running statistics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax.layers import BatchNorm, LocalResponseNorm, local_response_norm


def lrn_reference(a: np.ndarray, size: int, alpha: float, beta: float, k: float) -> np.ndarray:
    """b_c = a_c / (k + alpha / n * sum_{c' in [c - n//2, c + (n-1)//2] ∩ channels} a_c'^2)^beta."""
    channels = a.shape[-1]
    b = np.empty_like(a, dtype=np.float64)
    for c in range(channels):
        lo, hi = max(0, c - size // 2), min(channels - 1, c + (size - 1) // 2)
        energy = (a[..., lo : hi + 1].astype(np.float64) ** 2).sum(axis=-1)
        b[..., c] = a[..., c] / (k + alpha / size * energy) ** beta
    return b


@pytest.mark.parametrize(
    "size,alpha,beta,k,channels",
    [
        (5, 1e-4, 0.75, 2.0, 8),  # AlexNet §3.3
        (5, 1.0, 0.75, 2.0, 8),  # a large alpha so the normalisation visibly matters
        (4, 0.5, 0.5, 1.0, 6),  # even size: window extends 2 back and 1 forward
        (7, 2.0, 1.0, 1.0, 3),  # window wider than the channels: borders are zero padded
    ],
)
def test_local_response_norm_matches_the_formula_written_in_numpy(size, alpha, beta, k, channels):
    a = np.random.default_rng(size).normal(scale=2.0, size=(2, 3, 4, channels)).astype(np.float32)
    got = LocalResponseNorm(size, alpha, beta, k).apply({}, jnp.asarray(a))
    np.testing.assert_allclose(np.asarray(got), lrn_reference(a, size, alpha, beta, k), rtol=1e-5)


def test_local_response_norm_hand_computed_single_pixel():
    # Channels [1, 2, 3], size 3, alpha 3 (so alpha / size = 1), beta 1, k 1:
    # c0 sees 1 + 4 = 5, c1 sees 1 + 4 + 9 = 14, c2 sees 4 + 9 = 13.
    a = jnp.array([1.0, 2.0, 3.0]).reshape(1, 1, 1, 3)
    got = local_response_norm(a, size=3, alpha=3.0, beta=1.0, k=1.0)
    np.testing.assert_allclose(np.asarray(got).ravel(), [1 / 6, 2 / 15, 3 / 14], rtol=1e-6)


def test_local_response_norm_defaults_are_alexnets():
    layer = LocalResponseNorm()
    assert (layer.size, layer.alpha, layer.beta, layer.k) == (5, 1e-4, 0.75, 2.0)


def _stats(momentum: float = 0.9):
    bn = BatchNorm(momentum=momentum)
    scale, shift = jnp.array([1.0, 2.0, 3.0, 4.0]), jnp.array([0.0, 1.0, -2.0, 5.0])
    x = jax.random.normal(jax.random.key(0), (8, 3, 3, 4)) * scale + shift
    variables = bn.init(jax.random.key(1), x, train=False)
    return bn, x, variables


def test_batch_norm_variables_are_scale_bias_and_running_mean_var():
    _, _, variables = _stats()
    assert jax.tree.map(jnp.shape, variables) == {
        "params": {"scale": (4,), "bias": (4,)},
        "batch_stats": {"mean": (4,), "var": (4,)},
    }
    np.testing.assert_array_equal(np.asarray(variables["batch_stats"]["var"]), np.ones(4))


def test_batch_norm_in_training_uses_batch_statistics():
    bn, x, variables = _stats()
    y, _ = bn.apply(variables, x, train=True, mutable=["batch_stats"])
    xn = np.asarray(x)
    mean, var = xn.mean(axis=(0, 1, 2)), xn.var(axis=(0, 1, 2))
    np.testing.assert_allclose(
        np.asarray(y), (xn - mean) / np.sqrt(var + 1e-5), rtol=1e-4, atol=1e-5
    )


def test_batch_norm_running_stats_update_with_momentum_point_nine():
    bn, x, variables = _stats()
    xn = np.asarray(x)
    batch_mean, batch_var = xn.mean(axis=(0, 1, 2)), xn.var(axis=(0, 1, 2))
    _, updates = bn.apply(variables, x, train=True, mutable=["batch_stats"])
    stats = updates["batch_stats"]
    np.testing.assert_allclose(np.asarray(stats["mean"]), 0.1 * batch_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(stats["var"]), 0.9 * 1.0 + 0.1 * batch_var, rtol=1e-5)
    # A second step on the same batch moves another 10% of the remaining distance.
    _, updates = bn.apply({**variables, **updates}, x, train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(
        np.asarray(updates["batch_stats"]["mean"]), 0.19 * batch_mean, rtol=1e-5, atol=1e-6
    )


def test_batch_norm_in_eval_uses_running_statistics_and_leaves_them_alone():
    bn, x, variables = _stats()
    variables = {
        "params": {
            "scale": jnp.array([1.0, 2.0, 0.5, 1.0]),
            "bias": jnp.array([0.0, 1.0, 0.0, -1.0]),
        },
        "batch_stats": {
            "mean": jnp.array([0.5, 1.0, -1.0, 0.0]),
            "var": jnp.array([4.0, 1.0, 0.25, 9.0]),
        },
    }
    y, updates = bn.apply(variables, x, train=False, mutable=["batch_stats"])
    stats = variables["batch_stats"]
    expected = (np.asarray(x) - np.asarray(stats["mean"])) / np.sqrt(
        np.asarray(stats["var"]) + 1e-5
    )
    expected = expected * np.asarray(variables["params"]["scale"]) + np.asarray(
        variables["params"]["bias"]
    )
    np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(
        np.asarray(updates["batch_stats"]["mean"]), np.asarray(stats["mean"])
    )


def test_batch_norm_train_and_eval_outputs_differ_before_the_stats_converge():
    bn, x, variables = _stats()
    y_train, _ = bn.apply(variables, x, train=True, mutable=["batch_stats"])
    y_eval = bn.apply(variables, x, train=False)
    # Fresh running stats are (0, 1): eval is the identity (up to epsilon), train is not.
    np.testing.assert_allclose(np.asarray(y_eval), np.asarray(x) / np.sqrt(1 + 1e-5), rtol=1e-6)
    assert not np.allclose(np.asarray(y_train), np.asarray(y_eval), atol=1e-2)


def test_batch_norm_zero_scale_init_silences_the_output():
    bn = BatchNorm(scale_init="zeros")
    x = jax.random.normal(jax.random.key(0), (4, 2, 2, 3))
    y, _ = bn.init_with_output(jax.random.key(1), x, train=False)
    np.testing.assert_array_equal(np.asarray(y), np.zeros((4, 2, 2, 3)))
