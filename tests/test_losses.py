"""The losses of the lectures, from their definitions and the decks' worked numbers."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from cnn_jax import losses


def test_total_error_of_the_worked_example_is_0_55_and_mse_is_its_mean_square():
    outputs = jnp.array([[0.2, 0.4, 0.1, 0.3]])
    targets = jnp.array([[0.0, 0.0, 1.0, 0.0]])
    assert float(losses.total_error(outputs, targets)[0]) == pytest.approx(0.55, abs=1e-7)
    assert float(losses.mse(outputs, targets)[0]) == pytest.approx(1.1 / 4, abs=1e-7)


def test_squared_losses_are_per_example_not_reduced_over_the_batch():
    outputs = jnp.zeros((3, 2, 2))
    targets = jnp.arange(12.0).reshape(3, 2, 2)
    assert losses.mse(outputs, targets).shape == (3,)
    np.testing.assert_allclose(losses.total_error(outputs, targets),
                               0.5 * np.sum(np.arange(12.0).reshape(3, 4) ** 2, axis=1), rtol=1e-6)


@pytest.mark.parametrize("y, p, expected", [(1, 1 / 4, 2 * math.log(2)), (1, 1 / 8, 3 * math.log(2)),
                                            (0, 1 / 4, -math.log(3 / 4))])
def test_binary_cross_entropy_of_the_decks_examples(y, p, expected):
    assert float(losses.binary_cross_entropy(jnp.array(p), jnp.array(y))) == pytest.approx(expected, rel=1e-6)
    logit = math.log(p / (1 - p))
    assert float(losses.sigmoid_binary_cross_entropy(jnp.array(logit), jnp.array(y))) == pytest.approx(
        expected, rel=1e-6)


def test_sigmoid_binary_cross_entropy_is_finite_and_exact_for_extreme_logits():
    x = jnp.array([-200.0, -30.0, 0.0, 30.0, 200.0])
    y = jnp.array([1.0, 1.0, 1.0, 0.0, 0.0])
    out = losses.sigmoid_binary_cross_entropy(x, y)
    np.testing.assert_allclose(out, [200.0, 30.0, math.log(2), 30.0, 200.0], rtol=1e-6)
    grad = jax.grad(lambda x: jnp.sum(losses.sigmoid_binary_cross_entropy(x, y)))(x)
    assert np.all(np.isfinite(grad)) and float(grad[0]) == pytest.approx(-1.0)


def test_categorical_cross_entropy_of_the_decks_example_is_0_71355817782():
    targets = jnp.array([[0, 0, 0, 1], [0, 0, 0, 1]], jnp.float32)
    predictions = jnp.array([[0.25, 0.25, 0.25, 0.25], [0.01, 0.01, 0.01, 0.96]])
    per_example = losses.categorical_cross_entropy(predictions, targets)
    assert per_example.shape == (2,)
    assert float(jnp.mean(per_example)) == pytest.approx(0.71355817782, abs=1e-7)
    # clipping: a zero probability of the true class costs -log(epsilon), not inf
    assert float(losses.categorical_cross_entropy(jnp.array([[1.0, 0.0]]), jnp.array([[0.0, 1.0]]))[0]) == (
        pytest.approx(-math.log(1e-12), rel=1e-5))


def test_cross_entropy_on_logits_equals_categorical_cross_entropy_on_their_softmax():
    logits = jax.random.normal(jax.random.key(0), (5, 7))
    labels = jnp.arange(5) % 7
    np.testing.assert_allclose(losses.cross_entropy(logits, labels),
                               losses.categorical_cross_entropy(jax.nn.softmax(logits),
                                                                jax.nn.one_hot(labels, 7)), rtol=1e-5)


def test_losses_are_float32_for_bfloat16_inputs():
    x = jnp.ones((2, 3), jnp.bfloat16)
    for value in (losses.cross_entropy(x, jnp.array([0, 1])), losses.mse(x, x * 0),
                  losses.sigmoid_focal_loss(x, x * 0), losses.sigmoid_binary_cross_entropy(x, x)):
        assert value.dtype == jnp.float32


@pytest.mark.parametrize("alpha, gamma", [(0.25, 2.0), (0.5, 0.0), (-1, 1.5), (0.9, 3.0)])
def test_sigmoid_focal_loss_equals_torchvision(alpha, gamma):
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, (6, 9)).astype(np.float32)
    targets = (rng.random((6, 9)) < 0.3).astype(np.float32)
    ours = losses.sigmoid_focal_loss(jnp.asarray(logits), jnp.asarray(targets), alpha=alpha, gamma=gamma)
    theirs = torchvision.ops.sigmoid_focal_loss(torch.from_numpy(logits), torch.from_numpy(targets),
                                                alpha=alpha, gamma=gamma, reduction="none")
    np.testing.assert_allclose(np.asarray(ours), theirs.numpy(), rtol=1e-5, atol=1e-7)


def test_focal_loss_with_gamma_zero_and_alpha_half_is_half_the_cross_entropy():
    x, y = jnp.array([-2.0, 0.5, 3.0]), jnp.array([1.0, 0.0, 1.0])
    np.testing.assert_allclose(losses.sigmoid_focal_loss(x, y, alpha=0.5, gamma=0.0),
                               0.5 * losses.sigmoid_binary_cross_entropy(x, y), rtol=1e-6)
    with pytest.raises(ValueError, match="alpha"):
        losses.sigmoid_focal_loss(x, y, alpha=2.0)


@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_focal_loss_gradient_is_finite_and_equals_torchs_where_logits_saturate(gamma):
    # |x| = 30 rounds p_t to exactly 1 in float32 on the confident side: gamma = 0 once gave NaN
    # gradients there (0 * 0^-1), which stopped RetinaNet's alpha-balanced CE runs within 100 steps.
    logits = np.array([[-30.0, 30.0, -30.0, 30.0, 0.3]], np.float32)
    targets = np.array([[0.0, 1.0, 1.0, 0.0, 1.0]], np.float32)
    ours = jax.grad(lambda x: losses.sigmoid_focal_loss(x, jnp.asarray(targets), 0.75, gamma).sum())(
        jnp.asarray(logits))
    x = torch.from_numpy(logits).requires_grad_()
    torchvision.ops.sigmoid_focal_loss(x, torch.from_numpy(targets), 0.75, gamma, "sum").backward()
    assert np.all(np.isfinite(np.asarray(ours)))
    # Each gradient is a few float32 operations on one logit (sigmoid, a product, a power): a few
    # ulps (2^-24 each) apart between the two libraries, far inside rtol 1e-5 (~80 ulps); atol
    # covers the saturated entries, which are 0 or ~1e-13 on either side.
    np.testing.assert_allclose(np.asarray(ours), x.grad.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("weighted", [False, True])
def test_pixel_cross_entropy_equals_torch_with_ignore_index_and_class_weights(weighted):
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, (2, 5, 6, 4)).astype(np.float32)  # NHWC
    labels = rng.integers(0, 4, (2, 5, 6))
    labels[0, :2] = 255
    weights = [0.5, 1.0, 2.0, 3.0] if weighted else None
    loss, weight = losses.pixel_cross_entropy(jnp.asarray(logits), jnp.asarray(labels),
                                              ignore_index=255, class_weights=weights)
    assert loss.shape == weight.shape == labels.shape and float(jnp.sum(weight[0, :2])) == 0.0
    torch_logits = torch.from_numpy(logits).permute(0, 3, 1, 2)
    torch_weights = torch.tensor(weights) if weighted else None
    expected = F.cross_entropy(torch_logits, torch.from_numpy(labels), weight=torch_weights, ignore_index=255,
                               reduction="none")
    np.testing.assert_allclose(np.asarray(loss), expected.numpy(), rtol=1e-5, atol=1e-6)
    mean = F.cross_entropy(torch_logits, torch.from_numpy(labels), weight=torch_weights, ignore_index=255)
    assert float(jnp.sum(loss) / jnp.sum(weight)) == pytest.approx(float(mean), rel=1e-5)
