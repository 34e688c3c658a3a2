"""Adversarial and fooling images: FGSM and PGD stay valid images within their budget, change
nothing at epsilon 0 and break a trained LeNet-5; gradient ascent from noise reaches 99%."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from analysis_helpers import load_digits, train_lenet

from cnn_jax.analysis import (
    Classifier,
    accuracy_under_attack,
    fgsm,
    fooling_images,
    pgd,
    predict_logits,
)

# The budget notebooks/02_what_lenet5_learnt.ipynb attacks LeNet-5 with, and the accuracy it
# stays below there (the clean accuracy is above 90%).
NOTEBOOK_EPSILON, NOTEBOOK_ACCURACY_BELOW = 0.2, 0.35


@pytest.fixture(scope="module")
def mnist_digits(shared_data):
    return load_digits(shared_data)


@pytest.fixture(scope="module")
def trained_lenet(shared_data):
    return train_lenet(shared_data)


class Linear(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        return nn.Dense(2, name="dense")(x.reshape((x.shape[0], -1)) / 255.0)


@pytest.fixture(scope="module")
def linear():
    model = Linear()
    variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 3, 3, 1)))
    w = np.asarray(variables["params"]["dense"]["kernel"])
    images = np.array([[0, 10, 128], [200, 250, 255], [5, 100, 30]], np.float32)[None, :, :, None]
    return Classifier(model, variables), w, images


def test_fgsm_at_epsilon_zero_changes_nothing(linear, trained_lenet, mnist_digits):
    classifier, _, images = linear
    np.testing.assert_array_equal(fgsm(classifier, images, [0], 0.0), images)
    digits, labels = mnist_digits[2][:50], mnist_digits[3][:50]
    np.testing.assert_array_equal(fgsm(trained_lenet, digits, labels, 0.0),
                                  digits.astype(np.float32))


def test_fgsm_steps_every_pixel_by_epsilon_against_the_label_and_clips_to_the_pixel_range(linear):
    classifier, w, images = linear
    # Cross-entropy of label 0 rises along w[:, 1] - w[:, 0], pixel by pixel.
    direction = np.sign(w[:, 1] - w[:, 0]).reshape(1, 3, 3, 1)
    expected = np.clip(images + 0.1 * 255 * direction, 0, 255)
    np.testing.assert_allclose(fgsm(classifier, images, [0], 0.1), expected, rtol=1e-6)


def test_pgd_stays_in_the_epsilon_ball_and_the_pixel_range(trained_lenet, mnist_digits):
    digits, labels = mnist_digits[2][:64].astype(np.float32), mnist_digits[3][:64]
    for key in (None, jax.random.PRNGKey(0)):
        adversarial = np.asarray(pgd(trained_lenet, digits, labels, 0.1, steps=5, key=key))
        assert np.abs(adversarial - digits).max() <= 0.1 * 255 + 1e-3
        assert adversarial.min() >= 0 and adversarial.max() <= 255


def test_pgd_of_a_linear_model_ends_where_fgsm_does(linear):
    """The loss of a linear model rises fastest at the corner of the ball FGSM jumps to."""
    classifier, _, images = linear
    np.testing.assert_allclose(pgd(classifier, images, [0], 0.1, steps=20),
                               fgsm(classifier, images, [0], 0.1), atol=1e-3)


def test_fgsm_and_pgd_at_the_notebooks_epsilon_break_a_trained_lenet5(trained_lenet, mnist_digits):
    digits, labels = mnist_digits[2], mnist_digits[3]
    clean = float(np.mean(np.argmax(predict_logits(trained_lenet, digits), -1) == labels))
    assert clean > 0.9
    fgsm_accuracy = accuracy_under_attack(trained_lenet, digits, labels, [0.0, NOTEBOOK_EPSILON])
    assert fgsm_accuracy[0] == pytest.approx(clean)
    assert fgsm_accuracy[1] < NOTEBOOK_ACCURACY_BELOW
    pgd_accuracy = accuracy_under_attack(trained_lenet, digits, labels, [NOTEBOOK_EPSILON],
                                         attack="pgd", steps=10)
    assert pgd_accuracy[0] < fgsm_accuracy[1] / 2  # the iterated attack is much stronger


def test_unknown_attacks_are_refused(linear):
    classifier, _, images = linear
    with pytest.raises(ValueError, match="fgsm, pgd"):
        accuracy_under_attack(classifier, images, [0], [0.1], attack="cw")


def test_gradient_ascent_from_noise_fools_lenet5_at_99_percent_for_every_digit(trained_lenet):
    images, confidence = fooling_images(trained_lenet, range(10), (28, 28, 1),
                                        jax.random.PRNGKey(0))
    assert images.shape == (10, 28, 28, 1)
    assert float(images.min()) >= 0 and float(images.max()) <= 255
    assert np.all(np.asarray(confidence) >= 0.99)
    predicted = np.argmax(predict_logits(trained_lenet, images), -1)
    np.testing.assert_array_equal(predicted, np.arange(10))
