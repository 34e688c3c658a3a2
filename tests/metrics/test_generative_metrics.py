"""Specification of cnn_jax.metrics.generative: the Fréchet distance between two sets of features
(Heusel et al. 2017) and the LeNet-5 features it is computed on."""

import jax
import numpy as np
import pytest
import scipy.linalg

from cnn_jax.analysis import intermediates
from cnn_jax.metrics import frechet_distance, lenet_features
from cnn_jax.metrics.generative import frechet_distance_gaussians, gaussian_statistics
from cnn_jax.models import create_model


def _cross(mean, u, v):
    """Four 2-D points mean +- (u, 0), mean +- (0, v): sample mean `mean`, unbiased covariance
    diag(2u^2/3, 2v^2/3) (each axis: two values +-u and two zeros, sum of squares 2u^2 over 3)."""
    return np.asarray(mean, np.float64) + np.array([[u, 0.0], [-u, 0.0], [0.0, v], [0.0, -v]])


def test_statistics_are_the_mean_and_the_unbiased_covariance():
    mu, cov = gaussian_statistics(_cross((1.0, -2.0), np.sqrt(6.0), np.sqrt(13.5)))
    np.testing.assert_allclose(mu, [1.0, -2.0], atol=1e-12)
    np.testing.assert_allclose(cov, [[4.0, 0.0], [0.0, 9.0]], atol=1e-12)


def test_distance_of_two_diagonal_gaussians_is_the_closed_form_worked_by_hand():
    # ||(0,0) - (3,4)||^2 = 25; diagonal covariances commute, so
    # Tr(S1 + S2 - 2 (S1 S2)^(1/2)) = sum (sqrt(s1_i) - sqrt(s2_i))^2 = (2 - 1)^2 + (3 - 1)^2 = 5.
    d = frechet_distance_gaussians([0.0, 0.0], np.diag([4.0, 9.0]), [3.0, 4.0], np.eye(2))
    assert d == pytest.approx(30.0, abs=1e-12)
    # The same Gaussians as the sample statistics of two point sets.
    a = _cross((0.0, 0.0), np.sqrt(6.0), np.sqrt(13.5))  # covariance diag(4, 9)
    b = _cross((3.0, 4.0), np.sqrt(1.5), np.sqrt(1.5))  # covariance I
    assert frechet_distance(a, b) == pytest.approx(30.0, abs=1e-12)


def test_distance_in_one_dimension_is_the_squared_gap_of_means_plus_of_deviations():
    # N(1, 2^2) and N(-1, 5^2): (1 - -1)^2 + (2 - 5)^2 = 13.
    assert frechet_distance_gaussians([1.0], [[4.0]], [-1.0], [[25.0]]) == pytest.approx(13.0)


def test_distance_of_a_set_to_itself_is_zero():
    x = np.random.default_rng(0).normal(size=(500, 84)) @ np.random.default_rng(1).normal(size=(84, 84))
    assert abs(frechet_distance(x, x)) < 1e-8 * np.trace(np.cov(x, rowvar=False))


def test_distance_is_symmetric_and_matches_the_formula_with_a_general_matrix_square_root():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)) + 1.0
    b = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6))  # covariances that do not commute
    d = frechet_distance(a, b)
    assert d == pytest.approx(frechet_distance(b, a), rel=1e-10)
    (mu_a, s_a), (mu_b, s_b) = gaussian_statistics(a), gaussian_statistics(b)
    root = scipy.linalg.sqrtm(s_a @ s_b).real  # Heusel et al. 2017's formula as written
    expected = np.sum((mu_a - mu_b) ** 2) + np.trace(s_a + s_b - 2.0 * root)
    assert d == pytest.approx(expected, rel=1e-8)
    assert d > 0


def test_distance_ignores_a_shift_of_both_sets_and_grows_with_a_shift_of_one():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(400, 3)), rng.normal(size=(400, 3))
    shift = np.array([5.0, -1.0, 2.0])
    assert frechet_distance(a + shift, b + shift) == pytest.approx(frechet_distance(a, b), rel=1e-9)
    # Only the means' term changes: ||m + shift||^2 in place of ||m||^2.
    m = a.mean(0) - b.mean(0)
    expected = frechet_distance(a, b) - m @ m + (m + shift) @ (m + shift)
    assert frechet_distance(a + shift, b) == pytest.approx(expected, rel=1e-9)


def test_features_of_different_shapes_are_refused():
    with pytest.raises(ValueError, match="same D"):
        frechet_distance(np.zeros((10, 3)), np.zeros((10, 4)))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        frechet_distance(np.zeros(10), np.zeros(10))
    with pytest.raises(ValueError, match="N >= 2"):
        frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))


@pytest.fixture(scope="module")
def lenet5():
    model = create_model("lenet5", num_classes=10)
    variables = model.init(jax.random.key(0), np.zeros((1, 28, 28, 1), np.float32))
    return model, variables


def test_lenet_features_are_the_84_outputs_of_f6_for_every_image(lenet5):
    model, variables = lenet5
    x = np.random.default_rng(4).normal(size=(7, 28, 28, 1)).astype(np.float32)
    features = lenet_features(model, variables, x, batch_size=3)  # batches of 3, 3 and 1
    assert features.shape == (7, 84) and features.dtype == np.float64
    expected = np.asarray(intermediates(model, variables, x, ["act_f6"])["act_f6"])
    np.testing.assert_allclose(features, expected, rtol=1e-6, atol=1e-6)
    assert np.all(np.abs(features) <= 1.0)  # after F6's tanh
    assert np.ptp(features, axis=0).max() > 0  # the images differ, so do their features


def test_lenet_features_name_the_fix_for_an_unknown_layer_or_a_bad_batch(lenet5):
    model, variables = lenet5
    with pytest.raises(KeyError, match="no layer 'f9'"):
        lenet_features(model, variables, np.zeros((2, 28, 28, 1), np.float32), layer="f9")
    with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
        lenet_features(model, variables, np.zeros((28, 28, 1), np.float32))
