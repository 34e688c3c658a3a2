"""Which pixels a classifier's decision depends on: gradient saliency, SmoothGrad, integrated
gradients, Grad-CAM and occlusion sensitivity.

Every function takes a :class:`~cnn_jax.analysis.classifier.Classifier`, images in pixel units
``(N, H, W, C)`` and the target class of each image, and explains the target's logit (the score
before the softmax, as the papers do):

* :func:`vanilla_gradient`: ``d score / d image`` (Simonyan et al. 2014, "Deep Inside
  Convolutional Networks: Visualising Image Classification Models and Saliency Maps", §3.1; the
  saliency map is its absolute value, maximised over channels: :func:`saliency_map`).
* :func:`smoothgrad`: the gradient averaged over copies of the image with Gaussian noise of
  standard deviation ``noise_level * (max - min)`` of the image (Smilkov et al. 2017, "SmoothGrad:
  removing noise by adding noise", §3: 10-20% noise and 50 samples work well).
* :func:`integrated_gradients`: ``(x - x') * mean_k grad(x' + a_k (x - x'))`` along the straight
  path from a baseline ``x'`` (black by default) (Sundararajan et al. 2017, "Axiomatic Attribution
  for Deep Networks", Eq. 3), with the midpoint rule ``a_k = (k - 1/2) / m``. Completeness: the
  attributions sum to ``F(x) - F(x')`` up to the rule's error, at most
  ``max |phi'''| / (24 m^2)`` for ``phi(a) = F(x' + a (x - x'))`` (:func:`path_third_derivative`
  measures that derivative, so a test can derive its tolerance from ``m``).
* :func:`grad_cam`: ``ReLU(sum_k alpha_k A^k)`` with ``alpha_k`` the spatial mean of
  ``d score / d A^k`` over a convolution layer's maps ``A`` (Selvaraju et al. 2017, "Grad-CAM",
  Eq. 1-2), for any layer by module path; the gradient comes from an offset added to that
  layer's output (:func:`cnn_jax.analysis.intermediates.apply_with_offset`).
* :func:`occlusion`: the softmax probability of the target while a grey square covers each
  position in turn (Zeiler & Fergus 2014, "Visualizing and Understanding Convolutional Networks",
  §4.2 and Fig. 7); all positions of one image run batched in one jitted program.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from cnn_jax.analysis.classifier import Classifier, class_scores, compiled, first_output
from cnn_jax.analysis.intermediates import apply_with_offset, layer_shape


def _targets(targets, n: int) -> jax.Array:
    targets = jnp.asarray(targets, jnp.int32)
    return jnp.broadcast_to(targets, (n,)) if targets.ndim == 0 else targets


def _input_gradient(classifier: Classifier):
    """(variables, images, targets) -> d score_i / d image_i for every image (scores are
    independent across the batch in evaluation mode, so the gradient of their sum is per image)."""

    def total(variables, images, targets):
        return jnp.sum(classifier.score(variables, images, targets))

    return jax.grad(total, argnums=1)


def _gradient_program(classifier: Classifier):
    return _input_gradient(classifier)


def vanilla_gradient(classifier: Classifier, images, targets) -> jax.Array:
    """Gradient of each target logit with respect to its image's pixels (Simonyan et al. 2014)."""
    images = jnp.asarray(images, jnp.float32)
    grad = compiled(_gradient_program, classifier)
    return grad(classifier.variables, images, _targets(targets, images.shape[0]))


def saliency_map(attribution: jax.Array) -> jax.Array:
    """``max_c |attribution|`` per pixel: Simonyan et al.'s (2014, §3.1) map, (N, H, W)."""
    return jnp.max(jnp.abs(attribution), axis=-1)


def _smoothgrad_program(classifier: Classifier, samples: int):
    grad = _input_gradient(classifier)

    def run(variables, images, targets, key, sigma):
        def one(total, k):
            noisy = images + sigma * jax.random.normal(k, images.shape)
            return total + grad(variables, noisy, targets), None

        total, _ = jax.lax.scan(one, jnp.zeros_like(images), jax.random.split(key, samples))
        return total / samples

    return run


def smoothgrad(classifier: Classifier, images, targets, key: jax.Array, samples: int = 50,
               noise_level: float = 0.15) -> jax.Array:
    """Mean gradient over `samples` noisy copies of each image (Smilkov et al. 2017)."""
    images = jnp.asarray(images, jnp.float32)
    axes = tuple(range(1, images.ndim))
    spread = jnp.max(images, axes, keepdims=True) - jnp.min(images, axes, keepdims=True)
    sigma = noise_level * spread
    run = compiled(_smoothgrad_program, classifier, samples)
    return run(classifier.variables, images, _targets(targets, images.shape[0]), key, sigma)


def _integrated_program(classifier: Classifier, steps: int):
    grad = _input_gradient(classifier)

    def run(variables, images, baseline, targets):
        def one(total, alpha):
            return total + grad(variables, baseline + alpha * (images - baseline), targets), None

        alphas = (jnp.arange(steps, dtype=jnp.float32) + 0.5) / steps
        total, _ = jax.lax.scan(one, jnp.zeros_like(images), alphas)
        return (images - baseline) * total / steps

    return run


def integrated_gradients(classifier: Classifier, images, targets, baseline=None,
                         steps: int = 50) -> jax.Array:
    """Integrated gradients from `baseline` (zeros: a black image) with `steps` midpoint steps
    (Sundararajan et al. 2017, Eq. 3); ``attributions.sum() ~ F(x) - F(baseline)`` per image."""
    images = jnp.asarray(images, jnp.float32)
    baseline = jnp.zeros_like(images) if baseline is None else jnp.broadcast_to(
        jnp.asarray(baseline, jnp.float32), images.shape)
    run = compiled(_integrated_program, classifier, steps)
    return run(classifier.variables, images, baseline, _targets(targets, images.shape[0]))


def path_third_derivative(classifier: Classifier, image, target, baseline=None,
                          points: int = 65) -> float:
    """``max |phi'''(a)|`` over `points` evenly spaced ``a`` in [0, 1], where
    ``phi(a) = F(x' + a (x - x'))`` is the target logit along integrated gradients' path: the
    constant of the midpoint rule's error bound ``max |phi'''| / (24 m^2)`` for one image."""
    image = jnp.asarray(image, jnp.float32)[None]
    baseline = (jnp.zeros_like(image) if baseline is None
                else jnp.asarray(baseline, jnp.float32)[None])
    direction = image - baseline
    target = jnp.asarray([target], jnp.int32)

    def phi(a):
        return classifier.score(classifier.variables, baseline + a * direction, target)[0]

    third = jax.jit(jax.vmap(jax.grad(jax.grad(jax.grad(phi)))))
    return float(jnp.max(jnp.abs(third(jnp.linspace(0.0, 1.0, points)))))


def _grad_cam_program(classifier: Classifier, layer: str, shape: tuple[int, ...]):
    model = classifier.model

    def run(variables, images, targets):
        def total(offset):
            outputs, maps = apply_with_offset(model, variables, classifier.inputs(images), layer,
                                              offset)
            return jnp.sum(class_scores(first_output(outputs), targets)), maps

        grads, maps = jax.grad(total, has_aux=True)(jnp.zeros(shape, jnp.float32))
        alpha = jnp.mean(grads, axis=(1, 2), keepdims=True)  # Eq. 1: spatially pooled gradients
        return jax.nn.relu(jnp.sum(alpha * maps, axis=-1))  # Eq. 2

    return run


def grad_cam(classifier: Classifier, images, targets, layer: str,
             size: tuple[int, int] | None = None) -> jax.Array:
    """Grad-CAM maps (N, h, w) of `layer` (a module path whose output is (N, h, w, C)), bilinearly
    resized to `size` when given (Selvaraju et al. 2017, Eq. 1-2)."""
    images = jnp.asarray(images, jnp.float32)
    shape = layer_shape(classifier.model, classifier.variables, classifier.inputs(images), layer)
    if len(shape) != 4:
        raise ValueError(f"Grad-CAM needs a layer with spatial maps (N, h, w, C); {layer!r} "
                         f"outputs {shape}")
    run = compiled(_grad_cam_program, classifier, layer, shape)
    cam = run(classifier.variables, images, _targets(targets, images.shape[0]))
    if size is not None:
        cam = jax.image.resize(cam, (cam.shape[0], *size), "bilinear")
    return cam


def occlusion_positions(height: int, width: int, patch: int, stride: int) -> np.ndarray:
    """Top-left corners ``(row, col)`` of the occluding square, row-major, (P, 2)."""
    rows = np.arange(0, height - patch + 1, stride)
    cols = np.arange(0, width - patch + 1, stride)
    return np.stack(np.meshgrid(rows, cols, indexing="ij"), -1).reshape(-1, 2)


def _occlusion_program(classifier: Classifier, patch: int, chunk: int):
    def run(variables, image, target, corners, fill):
        ys, xs = jnp.arange(image.shape[0])[:, None], jnp.arange(image.shape[1])[None, :]

        def probability(corner):
            inside = ((ys >= corner[0]) & (ys < corner[0] + patch)
                      & (xs >= corner[1]) & (xs < corner[1] + patch))
            occluded = jnp.where(inside[:, :, None], fill, image)
            logits = classifier.apply(variables, occluded[None]).astype(jnp.float32)
            return class_scores(jax.nn.softmax(logits), target[None])[0]

        return jax.lax.map(probability, corners, batch_size=chunk)

    return run


def occlusion(classifier: Classifier, images, targets, patch: int = 8, stride: int = 4,
              fill: float | None = None, chunk: int = 256) -> jax.Array:
    """Probability of each image's target class with a `patch` x `patch` square of value `fill`
    (mid-grey, ``pixel_max / 2``, by default) at every position `stride` apart:
    (N, rows, cols), where the square's top-left corner is ``(row * stride, col * stride)``
    (Zeiler & Fergus 2014, Fig. 7(b)). `chunk` occluded copies run at a time."""
    images = jnp.asarray(images, jnp.float32)
    targets = _targets(targets, images.shape[0])
    n, height, width = images.shape[:3]
    fill = classifier.pixel_max / 2 if fill is None else fill
    corners = jnp.asarray(occlusion_positions(height, width, patch, stride))
    rows = len(range(0, height - patch + 1, stride))
    run = compiled(_occlusion_program, classifier, patch, chunk)
    maps = [run(classifier.variables, images[i], targets[i], corners, jnp.float32(fill))
            for i in range(n)]
    return jnp.stack(maps).reshape(n, rows, -1)
