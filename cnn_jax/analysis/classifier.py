"""A trained classifier as the attribution and fooling functions see it: the model, its
variables, and the map from images in pixel units to the model's input.

Models take normalised inputs; gradients, perturbation budgets and valid ranges are about pixels.
:class:`Classifier` keeps both sides: its functions take images in pixel units (uint8 or float,
``[0, 255]`` for the datasets here) and normalise inside, so a gradient is a gradient with respect
to pixels and an adversarial image is an image.

A trained run comes into a notebook with ``from cnn_jax.training import load_run``;
``Classifier.from_run(run)`` reads its model, variables and the task's normalisation (duck typing:
anything with ``model``, ``variables`` and ``task.inputs``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


def _identity(x: jax.Array) -> jax.Array:
    return jnp.asarray(x, jnp.float32)


def first_output(outputs: Any) -> jax.Array:
    """The logits of a model that may return ``(logits, *auxiliary_logits)``."""
    return outputs[0] if isinstance(outputs, (tuple, list)) else outputs


@dataclasses.dataclass(frozen=True, eq=False)
class Classifier:
    """`model.apply(variables, preprocess(images), train=False)` is the classifier's output.

    Fields:
      model: a Linen module taking ``(x, train)``, returning logits ``(N, K)`` (or per-pixel logits
        ``(N, H, W, K)``: scores are then averaged over pixels).
      variables: ``{'params': ..., 'batch_stats': ...}``.
      preprocess: pixel images -> model input (a task's normalisation); identity when None.
      pixel_max: the largest valid pixel value (images lie in ``[0, pixel_max]``).
    """

    model: nn.Module
    variables: dict
    preprocess: Callable[[jax.Array], jax.Array] | None = None
    pixel_max: float = 255.0

    @classmethod
    def from_run(cls, run: Any) -> Classifier:
        """The classifier of a run (``cnn_jax.training.load_run``): its model and variables, its
        task's normalisation of uint8-range images."""
        task = run.task
        return cls(run.model, run.variables, lambda x: task.inputs({"image": x}))

    def inputs(self, images: jax.Array) -> jax.Array:
        """The model input of pixel images."""
        return (self.preprocess or _identity)(jnp.asarray(images, jnp.float32))

    def apply(self, variables: dict, images: jax.Array) -> jax.Array:
        """Logits of pixel images under `variables` (passed explicitly to differentiate or jit)."""
        return first_output(self.model.apply(variables, self.inputs(images), train=False))

    def logits(self, images: jax.Array) -> jax.Array:
        """Logits of pixel images, evaluation mode."""
        return self.apply(self.variables, images)

    def score(self, variables: dict, images: jax.Array, targets: jax.Array) -> jax.Array:
        """Per image, the logit of its target class (averaged over pixels for per-pixel outputs)."""
        return class_scores(self.apply(variables, images), targets)


def class_scores(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """`logits[i, targets[i]]`; per-pixel logits ``(N, H, W, K)`` are averaged over pixels first."""
    logits = jnp.asarray(logits, jnp.float32)
    if logits.ndim > 2:
        logits = jnp.mean(logits, axis=tuple(range(1, logits.ndim - 1)))
    return jnp.take_along_axis(logits, jnp.asarray(targets)[:, None], axis=-1)[:, 0]


@functools.lru_cache(maxsize=16)
def compiled(builder: Callable[..., Callable], classifier: Classifier, *static: Any) -> Callable:
    """``jax.jit(builder(classifier, *static))``, built once per classifier and static arguments
    (a classifier is hashed by identity), so repeated calls with new images reuse the program."""
    return jax.jit(builder(classifier, *static))


def predict_logits(classifier: Classifier, images, batch_size: int = 500) -> jax.Array:
    """Logits of many pixel images, `batch_size` at a time through one jitted program (the last
    chunk is padded to the same shape, so it compiles once)."""
    apply = compiled(_apply_program, classifier)
    images = jnp.asarray(images)
    n = images.shape[0]
    batch_size = min(batch_size, n)
    chunks = []
    for i in range(0, n, batch_size):
        chunk = images[i:i + batch_size]
        pad = batch_size - chunk.shape[0]
        if pad:
            chunk = jnp.concatenate([chunk, jnp.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
        chunks.append(apply(classifier.variables, chunk)[:batch_size - pad])
    return jnp.concatenate(chunks)


def _apply_program(classifier: Classifier) -> Callable:
    return classifier.apply
