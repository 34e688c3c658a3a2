"""ConvNets can be fooled: adversarial examples that a small, bounded change of the pixels makes
misclassified, and images of noise the network is sure are a digit.

Attacks work in pixel units (:class:`~cnn_jax.analysis.classifier.Classifier` normalises inside)
and stay valid images: every result is clipped to ``[0, pixel_max]``. A budget ``epsilon`` is a
fraction of the pixel range, as the papers quote it (``epsilon = 0.1`` on MNIST moves each pixel
by at most 25.5 of 255; ``8/255`` on CIFAR-10):

* :func:`fgsm`: one step ``x + epsilon * sign(grad_x loss)`` on the cross-entropy of the true label
  (Goodfellow et al. 2015, "Explaining and Harnessing Adversarial Examples", Eq. 3);
* :func:`pgd`: `steps` signed-gradient steps of `step_size`, each projected back onto the L-inf
  ball of radius `epsilon` around the image and onto the valid range, optionally from a uniform
  random start in the ball (Madry et al. 2018, "Towards Deep Learning Models Resistant to
  Adversarial Attacks", Eq. 2 and §3; their step ``2.5 epsilon / steps`` is the default);
* :func:`accuracy_under_attack`: accuracy on the attacked images, one value per epsilon (the
  accuracy-vs-epsilon curve);
* :func:`fooling_images`: gradient ascent on the log-probability of a chosen class from uniform
  noise until the classifier gives it at least `confidence` — Nguyen et al. 2015 ("Deep Neural
  Networks are Easily Fooled: High Confidence Predictions for Unrecognizable Images", §3.3), who
  reach 99.99% confidence for every MNIST class with images unrecognisable to humans.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cnn_jax.analysis.classifier import Classifier, compiled, predict_logits

ATTACKS = ("fgsm", "pgd")


def _loss_gradient(classifier: Classifier):
    """(variables, images, labels) -> gradient of the summed cross-entropy w.r.t. the pixels."""

    def loss(variables, images, labels):
        logits = classifier.apply(variables, images).astype(jnp.float32)
        return jnp.sum(optax.softmax_cross_entropy_with_integer_labels(logits, labels))

    return jax.grad(loss, argnums=1)


def _fgsm_program(classifier: Classifier):
    grad, top = _loss_gradient(classifier), classifier.pixel_max

    def run(variables, images, labels, epsilon):
        step = epsilon * top * jnp.sign(grad(variables, images, labels))
        return jnp.clip(images + step, 0.0, top)

    return run


def _pgd_program(classifier: Classifier, steps: int):
    grad, top = _loss_gradient(classifier), classifier.pixel_max

    def run(variables, images, labels, start, epsilon, step_size):
        radius, step = epsilon * top, step_size * top

        def project(x):
            return jnp.clip(jnp.clip(x, images - radius, images + radius), 0.0, top)

        def one(_, x):
            return project(x + step * jnp.sign(grad(variables, x, labels)))

        return jax.lax.fori_loop(0, steps, one, project(images + start))

    return run


def fgsm(classifier: Classifier, images, labels, epsilon: float) -> jax.Array:
    """Fast gradient sign method (Goodfellow et al. 2015): float images in ``[0, pixel_max]``."""
    run = compiled(_fgsm_program, classifier)
    return run(classifier.variables, jnp.asarray(images, jnp.float32),
               jnp.asarray(labels, jnp.int32), jnp.float32(epsilon))


def pgd(classifier: Classifier, images, labels, epsilon: float, steps: int = 10,
        step_size: float | None = None, key: jax.Array | None = None) -> jax.Array:
    """Projected gradient descent on the negative loss within the L-inf ball of radius `epsilon`
    (Madry et al. 2018); `step_size` in the same units (default ``2.5 * epsilon / steps``); a
    `key` starts from a uniform random point of the ball, None from the image itself."""
    images = jnp.asarray(images, jnp.float32)
    step_size = 2.5 * epsilon / steps if step_size is None else step_size
    radius = epsilon * classifier.pixel_max
    start = (jnp.zeros_like(images) if key is None
             else jax.random.uniform(key, images.shape, minval=-radius, maxval=radius))
    run = compiled(_pgd_program, classifier, steps)
    return run(classifier.variables, images, jnp.asarray(labels, jnp.int32), start,
               jnp.float32(epsilon), jnp.float32(step_size))


def accuracy_under_attack(classifier: Classifier, images, labels, epsilons: Sequence[float],
                          attack: str = "fgsm", batch_size: int = 500,
                          **attack_kwargs) -> np.ndarray:
    """Top-1 accuracy on the `attack`ed images (``'fgsm'`` or ``'pgd'``), one value per epsilon;
    ``epsilon = 0`` is the clean accuracy. `attack_kwargs` go to :func:`pgd`."""
    if attack not in ATTACKS:
        raise ValueError(f"attack must be one of {', '.join(ATTACKS)}, got {attack!r}")
    images, labels = np.asarray(images), np.asarray(labels)
    accuracies = []
    for epsilon in epsilons:
        correct = 0
        for i in range(0, len(images), batch_size):
            x, y = images[i:i + batch_size], labels[i:i + batch_size]
            adversarial = (fgsm(classifier, x, y, epsilon) if attack == "fgsm"
                           else pgd(classifier, x, y, epsilon, **attack_kwargs))
            correct += int(np.sum(np.argmax(predict_logits(classifier, adversarial), -1) == y))
        accuracies.append(correct / len(images))
    return np.asarray(accuracies)


def fooling_images(classifier: Classifier, classes: Sequence[int], image_shape: Sequence[int],
                   key: jax.Array, confidence: float = 0.99, steps: int = 500,
                   step_size: float = 0.01) -> tuple[jax.Array, jax.Array]:
    """One image per entry of `classes`, grown from uniform noise by signed gradient ascent on
    ``log p(class | image)`` (steps of ``step_size * pixel_max``, clipped to the valid range)
    until ``p >= confidence`` or `steps` run out (Nguyen et al. 2015). Returns the images and
    the probability each reached."""
    targets = jnp.asarray(classes, jnp.int32)
    top = classifier.pixel_max
    shape = (targets.shape[0], *image_shape)

    def log_probability(variables, x):
        logits = classifier.apply(variables, x).astype(jnp.float32)
        return jnp.take_along_axis(jax.nn.log_softmax(logits), targets[:, None], -1)[:, 0]

    grad = jax.grad(lambda v, x: jnp.sum(log_probability(v, x)), argnums=1)

    @jax.jit
    def run(variables, noise):
        def reached(x):
            return jnp.exp(log_probability(variables, x)) >= confidence

        def cond(carry):
            i, x = carry
            return (i < steps) & ~jnp.all(reached(x))

        def body(carry):
            i, x = carry
            # Images already past the threshold stay as they are.
            step = jnp.where(reached(x).reshape(-1, *[1] * len(image_shape)), 0.0, step_size * top)
            return i + 1, jnp.clip(x + step * jnp.sign(grad(variables, x)), 0.0, top)

        _, x = jax.lax.while_loop(cond, body, (0, noise))
        return x, jnp.exp(log_probability(variables, x))

    return run(classifier.variables, jax.random.uniform(key, shape, maxval=top))
