"""Losses. Classification losses take integer labels and logits (N, K)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def cross_entropy(logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
    """Per-example softmax cross-entropy, computed in float32 whatever the compute dtype.

    With label smoothing eps the target puts 1-eps on the label and eps/K on every class
    (Szegedy et al. 2016, §7).
    """
    return soft_cross_entropy(logits, jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing)


def soft_cross_entropy(logits: jax.Array, targets: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
    """Per-example cross-entropy against target distributions (N, K) whose rows sum to one, as
    mixup and cutmix produce (Zhang et al. 2018; Yun et al. 2019); smoothing is applied on top."""
    logits = logits.astype(jnp.float32)
    targets = targets.astype(jnp.float32)
    if label_smoothing:
        targets = optax.smooth_labels(targets, label_smoothing)
    return optax.softmax_cross_entropy(logits, targets)
