"""Attribution: gradients in pixel units, SmoothGrad, integrated gradients' completeness within
the midpoint rule's error bound, Grad-CAM (Eq. 1-2, region and class selectivity) and occlusion."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from analysis_helpers import load_digits, mnist_preprocess

from cnn_jax.analysis import (
    Classifier,
    grad_cam,
    integrated_gradients,
    occlusion,
    path_third_derivative,
    saliency_map,
    smoothgrad,
    vanilla_gradient,
)
from cnn_jax.analysis.attribution import occlusion_positions
from cnn_jax.models import create_model


@pytest.fixture(scope="module")
def mnist_digits(shared_data):
    return load_digits(shared_data)


class Linear(nn.Module):
    """logits = W . flatten(x): every gradient is a row of W."""

    @nn.compact
    def __call__(self, x, train=False):
        return nn.Dense(3, name="dense")(x.reshape((x.shape[0], -1)))


@pytest.fixture(scope="module")
def linear():
    model = Linear()
    variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 4, 4, 2)))
    kernel = np.asarray(variables["params"]["dense"]["kernel"])
    classifier = Classifier(model, variables, mnist_preprocess)  # x -> (x/255 - m) / s
    images = jax.random.uniform(jax.random.PRNGKey(1), (2, 4, 4, 2), maxval=255.0)
    return classifier, kernel, images


def test_the_gradient_is_with_respect_to_pixels_through_the_normalisation(linear):
    classifier, kernel, images = linear
    grad = vanilla_gradient(classifier, images, jnp.array([0, 2]))
    expected = kernel / (255.0 * 0.3081)
    np.testing.assert_allclose(grad[0], expected[:, 0].reshape(4, 4, 2), rtol=1e-5)
    np.testing.assert_allclose(grad[1], expected[:, 2].reshape(4, 4, 2), rtol=1e-5)
    np.testing.assert_allclose(saliency_map(grad)[1],
                               np.abs(expected[:, 2].reshape(4, 4, 2)).max(-1), rtol=1e-5)


def test_smoothgrad_of_a_linear_model_is_its_gradient_whatever_the_noise(linear):
    classifier, _, images = linear
    plain = vanilla_gradient(classifier, images, 1)
    smooth = smoothgrad(classifier, images, 1, jax.random.PRNGKey(2), samples=8, noise_level=0.3)
    np.testing.assert_allclose(smooth, plain, rtol=1e-5)


def test_integrated_gradients_of_a_linear_model_are_input_times_gradient(linear):
    classifier, _, images = linear
    attributions = integrated_gradients(classifier, images, 1, baseline=10.0, steps=3)
    expected = (images - 10.0) * vanilla_gradient(classifier, images, 1)
    np.testing.assert_allclose(attributions, expected, rtol=1e-4, atol=1e-6)


@pytest.fixture(scope="module")
def lenet_on_a_digit(mnist_digits):
    """A LeNet-5 (tanh: smooth, so the midpoint rule's bound holds) at its initialisation and one
    real test digit."""
    model = create_model("lenet5", num_classes=10)
    variables = model.init(jax.random.PRNGKey(3), jnp.zeros((1, 28, 28, 1)))
    return Classifier(model, variables, mnist_preprocess), mnist_digits[2][:1].astype(np.float32)


def _completeness_error(classifier, digit, target, steps):
    attributions = integrated_gradients(classifier, digit, target, steps=steps)
    scores = classifier.logits(jnp.concatenate([digit, jnp.zeros_like(digit)]))[:, target]
    difference = float(scores[0] - scores[1])
    return abs(float(attributions.sum()) - difference), difference


@pytest.mark.parametrize("steps", [16, 64])
def test_integrated_gradients_sum_to_the_score_difference_within_the_midpoint_bound(
        lenet_on_a_digit, steps):
    classifier, digit = lenet_on_a_digit
    error, difference = _completeness_error(classifier, digit, 7, steps)
    # Composite midpoint rule on phi'(a) over [0, 1]: |error| <= max|phi'''| / (24 m^2). The max
    # is taken on a grid of 65 points, so the bound is doubled; float32 sums add ~1e-5 relative.
    bound = 2 * path_third_derivative(classifier, digit[0], 7) / (24 * steps**2)
    assert error <= bound + 1e-5 * abs(difference), (error, bound, difference)
    assert abs(difference) > 20 * bound  # the check is not vacuous


def test_the_completeness_error_falls_as_one_over_the_steps_squared(lenet_on_a_digit):
    classifier, digit = lenet_on_a_digit
    coarse, _ = _completeness_error(classifier, digit, 7, 8)
    fine, _ = _completeness_error(classifier, digit, 7, 32)
    assert 8 < coarse / fine < 32  # 16 for the midpoint rule's O(1/m^2)


class Looker(nn.Module):
    """Sees only rows and columns 8..15 of a 24x24 image: masked input, conv, ReLU, mean, dense."""

    @nn.compact
    def __call__(self, x, train=False):
        mask = jnp.zeros((24, 24, 1)).at[8:16, 8:16].set(1.0)
        x = nn.relu(nn.Conv(4, (3, 3), name="conv")(x * mask))
        return nn.Dense(2, name="dense")(x.mean((1, 2)))


@pytest.fixture(scope="module")
def looker():
    model = Looker()
    variables = model.init(jax.random.PRNGKey(4), jnp.zeros((1, 24, 24, 1)))
    images = jax.random.uniform(jax.random.PRNGKey(5), (3, 24, 24, 1), maxval=255.0)
    return Classifier(model, variables, lambda x: x / 255.0), images


def test_grad_cam_of_a_model_that_sees_one_region_lies_in_that_region(looker):
    classifier, images = looker
    logits = classifier.logits(images)
    cam = np.asarray(grad_cam(classifier, images, jnp.argmax(logits, -1), "conv"))
    assert cam.shape == (3, 24, 24)
    # The 3x3 convolution of the masked input reaches one pixel past the region.
    outside = np.ones((24, 24), bool)
    outside[7:17, 7:17] = False
    assert np.all(cam[:, outside] == 0)
    for k in range(3):
        row, col = np.unravel_index(np.argmax(cam[k]), cam[k].shape)
        assert 7 <= row <= 16 and 7 <= col <= 16 and cam[k].max() > 0


def test_grad_cam_is_relu_of_the_maps_weighted_by_their_mean_gradients():
    """Eq. 1-2 computed by hand with the network cut at the layer: body, then head."""
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x, train=False):
            maps = nn.Conv(5, (3, 3), name="body")(x)
            return nn.Dense(4, name="head")(nn.relu(maps).mean((1, 2)))

    model = Net()
    x = jax.random.normal(jax.random.PRNGKey(6), (2, 8, 8, 3))
    variables = model.init(jax.random.PRNGKey(7), x)
    p = variables["params"]
    maps = nn.Conv(5, (3, 3)).apply({"params": p["body"]}, x)

    def head(a):
        return nn.Dense(4).apply({"params": p["head"]}, nn.relu(a).mean((1, 2)))

    grads = jax.grad(lambda a: head(a)[jnp.arange(2), jnp.array([1, 3])].sum())(maps)
    expected = jax.nn.relu(jnp.sum(grads.mean((1, 2), keepdims=True) * maps, -1))
    cam = grad_cam(Classifier(model, variables), x, [1, 3], "body")
    np.testing.assert_allclose(cam, expected, rtol=1e-5, atol=1e-6)
    assert float(expected.max()) > 0


class TwoDetectors(nn.Module):
    """Class c's logit is the mean of channel c after a 1x1 identity convolution and ReLU."""

    @nn.compact
    def __call__(self, x, train=False):
        eye = jnp.eye(2)[None, None]
        x = nn.relu(nn.Conv(2, (1, 1), kernel_init=lambda *_: eye, name="detect")(x))
        return x.mean((1, 2))


def test_grad_cam_is_class_discriminative():
    """Selvaraju et al.'s cat-and-dog property: each class's map lies on its own evidence."""
    image = np.zeros((1, 12, 12, 2), np.float32)
    image[0, 1:4, 1:4, 0] = 1.0  # evidence for class 0 at the top left
    image[0, 8:11, 7:11, 1] = 1.0  # for class 1 at the bottom right
    model = TwoDetectors()
    classifier = Classifier(model, model.init(jax.random.PRNGKey(0), image))
    cams = np.asarray(grad_cam(classifier, np.repeat(image, 2, 0), [0, 1], "detect"))
    np.testing.assert_array_equal(cams[0] > 0, image[0, :, :, 0] > 0)
    np.testing.assert_array_equal(cams[1] > 0, image[0, :, :, 1] > 0)


def test_grad_cam_can_be_resized_to_the_image():
    model = TwoDetectors()
    image = jnp.ones((1, 12, 12, 2))
    classifier = Classifier(model, model.init(jax.random.PRNGKey(0), image))
    assert grad_cam(classifier, image, 0, "detect", size=(24, 24)).shape == (1, 24, 24)
    with pytest.raises(ValueError, match="spatial maps"):
        linear = Classifier(Linear(), Linear().init(jax.random.PRNGKey(0), image))
        grad_cam(linear, image, 0, "dense")


def test_occlusion_positions_tile_the_image_row_major():
    np.testing.assert_array_equal(occlusion_positions(6, 5, 2, 2),
                                  [[0, 0], [0, 2], [2, 0], [2, 2], [4, 0], [4, 2]])


def test_occluding_the_region_a_model_sees_lowers_its_score_most(looker):
    classifier, images = looker
    probabilities = jax.nn.softmax(classifier.logits(images))
    targets = jnp.argmax(probabilities, -1)
    maps = np.asarray(occlusion(classifier, images, targets, patch=8, stride=4, chunk=7))
    assert maps.shape == (3, 5, 5)
    corners = occlusion_positions(24, 24, 8, 4).reshape(5, 5, 2)
    # Squares that miss rows/columns 8..15 change nothing; the lowest score covers part of them.
    misses = (corners[..., 0] + 8 <= 8) | (corners[..., 0] >= 16) | (corners[..., 1] + 8 <= 8) | (
        corners[..., 1] >= 16)
    for k in range(3):
        p = float(probabilities[k, targets[k]])
        np.testing.assert_allclose(maps[k][misses], p, rtol=1e-5)
        lowest = np.unravel_index(np.argmin(maps[k]), (5, 5))
        assert not misses[lowest] and maps[k][lowest] < p - 1e-3
