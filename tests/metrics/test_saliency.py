"""Saliency losses (the lecture's formulas) and metrics (the MIT benchmark's definitions), against
hand-computed cases and pysaliency's formulas where they apply."""

import importlib.util
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax import losses
from cnn_jax.metrics import saliency


def _pysaliency_metrics():
    """pysaliency's metrics module, loaded from its file: importing the package pulls in modules
    that need setuptools' removed pkg_resources, and its metric formulas need only numpy."""
    spec = importlib.util.find_spec("pysaliency")
    assert spec is not None, "pysaliency is a test dependency: pip install -e '.[test]'"
    path = Path(spec.submodule_search_locations[0]) / "metrics.py"
    module_spec = importlib.util.spec_from_file_location("pysaliency_metrics", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def _maps(seed=0, shape=(12, 16)):
    rng = np.random.default_rng(seed)
    density = rng.random(shape) ** 3
    prediction = np.clip(density + 0.3 * rng.random(shape), 0, None)
    fixations = np.zeros(shape, np.uint8)
    fixations[rng.integers(0, shape[0], 9), rng.integers(0, shape[1], 9)] = 1
    return prediction, density, fixations


# ---- losses ---------------------------------------------------------------------------------
def test_pixel_saliency_losses_follow_their_formulas():
    s = jnp.array([[0.0, 0.5, 1.0, 0.2]])
    s_hat = jnp.array([[0.1, 0.5, 0.6, 0.0]])
    d = np.abs(np.array([0.0, 0.5, 1.0, 0.2]) - np.array([0.1, 0.5, 0.6, 0.0]))
    assert float(losses.mse(s_hat, s)[0]) == pytest.approx(np.mean(d ** 2), rel=1e-6)
    assert float(losses.ead(s_hat, s)[0]) == pytest.approx(np.mean(np.exp(d) - 1), rel=1e-6)
    expected = np.mean(d ** 2 / (1.1 - np.array([0.0, 0.5, 1.0, 0.2])))
    assert float(losses.mlnet_loss(s_hat, s)[0]) == pytest.approx(expected, rel=1e-6)


def test_distribution_losses_follow_their_formulas_on_normalised_maps():
    s = jnp.array([[1.0, 3.0, 0.0, 4.0]])        # -> (1/8, 3/8, 0, 1/2)
    s_hat = jnp.array([[2.0, 2.0, 2.0, 2.0]])    # -> 1/4 each
    p, q = np.array([1, 3, 0, 4]) / 8, np.full(4, 0.25)
    kl = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True) if pi > 0)
    assert float(losses.kl_divergence(s_hat, s)[0]) == pytest.approx(kl, abs=1e-6)
    assert float(losses.bhattacharyya(s_hat, s)[0]) == pytest.approx(-math.log(np.sum(np.sqrt(p * q))), abs=1e-6)
    # identical distributions: both zero
    assert abs(float(losses.kl_divergence(s, s)[0])) < 1e-6
    assert abs(float(losses.bhattacharyya(s, s)[0])) < 1e-6


@pytest.mark.parametrize("name", ["kl_divergence", "bhattacharyya", "ead", "mlnet_loss", "mse"])
def test_saliency_losses_have_finite_gradients_where_maps_are_zero(name):
    fn = getattr(losses, name)
    s = jnp.array([[0.0, 0.0, 1.0, 0.5]])
    s_hat = jnp.array([[0.0, 0.3, 0.0, 0.5]])
    grad = jax.grad(lambda x: jnp.sum(fn(x, s)))(s_hat)
    assert np.all(np.isfinite(np.asarray(grad)))
    value = fn(s_hat, s)
    assert value.shape == (1,) and np.isfinite(float(value[0]))


# ---- metrics --------------------------------------------------------------------------------
def test_cc_kl_sim_and_nss_equal_pysaliencys_formulas():
    reference = _pysaliency_metrics()
    prediction, density, fixations = _maps()
    ys, xs = np.nonzero(fixations)
    assert saliency.cc(prediction, density) == pytest.approx(reference.CC(prediction, density), rel=1e-12)
    assert saliency.kl(prediction, density) == pytest.approx(reference.MIT_KLDiv(prediction, density), rel=1e-12)
    assert saliency.sim(prediction, density) == pytest.approx(reference.SIM(prediction, density), rel=1e-12)
    assert saliency.nss(prediction, fixations) == pytest.approx(np.mean(reference.NSS(prediction, xs, ys)), rel=1e-12)


def test_metrics_of_hand_computed_cases():
    a = np.array([[1.0, 0.0], [0.0, 0.0]])
    b = np.array([[0.0, 0.0], [0.0, 1.0]])
    assert saliency.sim(a, a) == pytest.approx(1.0) and saliency.sim(a, b) == 0.0
    assert saliency.cc(a, a) == pytest.approx(1.0) and saliency.cc(a, b) == pytest.approx(-1 / 3)
    # NSS: standardised map (mean 0.25, std sqrt(3)/4) at the fixation: (1 - 0.25) / (sqrt(3)/4)
    assert saliency.nss(a, a) == pytest.approx(3 / math.sqrt(3))
    assert saliency.kl(a, a) == pytest.approx(0.0, abs=1e-12)


def test_auc_judd_of_a_hand_computed_map():
    # values 4 > 3 > 2 > 1 over four pixels, fixations on the pixels of value 4 and 2:
    # thresholds 4 then 2: tp 1/2, 1; fp 0/2, 1/2 -> points (0,0) (0,.5) (.5,1) (1,1):
    # area 0 + (0.5 + 1) / 2 * 0.5 + 1 * 0.5 = 0.875
    prediction = np.array([[4.0, 3.0], [2.0, 1.0]])
    fixations = np.array([[1, 0], [1, 0]])
    assert saliency.auc_judd(prediction, fixations) == pytest.approx(0.875)
    assert saliency.auc_judd(prediction, np.array([[1, 1], [0, 0]])) == pytest.approx(1.0)


def test_auc_borji_and_shuffled_are_one_for_a_map_that_is_high_exactly_at_the_fixations():
    fixations = np.zeros((20, 20), np.uint8)
    fixations[3, 4] = fixations[15, 9] = 1
    prediction = fixations.astype(float)
    assert saliency.auc_borji(prediction, fixations, splits=20) > 0.9
    others = np.zeros_like(fixations)
    others[10, 10] = others[0, 19] = 1
    assert saliency.auc_shuffled(prediction, fixations, others, splits=5) == pytest.approx(1.0)
    # and a map that is the inverse scores low
    assert saliency.auc_shuffled(1 - prediction, fixations, others, splits=5) == pytest.approx(0.0)


def test_saliency_scores_average_every_metric_over_images():
    maps = [_maps(seed) for seed in range(3)]
    scores = saliency.saliency_scores(*zip(*maps, strict=True), splits=10)
    assert scores["count"] == 3 and set(saliency.METRICS) <= set(scores)
    assert scores["cc"] == pytest.approx(np.mean([saliency.cc(p, d) for p, d, _ in maps]))
