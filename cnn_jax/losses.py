"""The losses of the lectures, as per-example (or per-element, per-pixel) values: no hidden reduction.

Every loss is computed in float32 whatever the compute dtype of its inputs, in a numerically stable
form (log-sum-exp for softmax, `log1p(exp(-|x|))` for the sigmoid), and the caller reduces:

* regression: `squared_error`, `mse` (mean over an example's elements), `total_error` (the
  half-sum-of-squares "total error" of back-propagation, E = 1/2 sum (t - o)^2);
* probabilities in [0, 1]: `binary_cross_entropy`, `categorical_cross_entropy` (clipped to
  [epsilon, 1 - epsilon], as the decks' numpy definition does);
* logits: `sigmoid_binary_cross_entropy`, `cross_entropy` (integer labels, optional label
  smoothing, Szegedy et al. 2016 §7), `soft_cross_entropy` (target distributions: mixup, cutmix),
  `sigmoid_focal_loss` (Lin et al. 2017, RetinaNet: torchvision's semantics);
* dense prediction: `pixel_cross_entropy` (per-pixel softmax cross-entropy with an ignore label
  and class weights, PyTorch's `CrossEntropyLoss(weight, ignore_index)` semantics).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax


def _f32(*arrays):
    return tuple(jnp.asarray(a).astype(jnp.float32) for a in arrays)


def squared_error(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    """(t - o)^2, elementwise."""
    outputs, targets = _f32(outputs, targets)
    return jnp.square(targets - outputs)


def mse(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean squared error of each example: the mean of (t - o)^2 over all axes but the first."""
    error = squared_error(outputs, targets)
    return jnp.mean(error.reshape(error.shape[0], -1), axis=-1)


def total_error(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    """E = 1/2 sum (t - o)^2 over each example's elements (all axes but the first).

    The lectures' worked example: outputs (0.2, 0.4, 0.1, 0.3) against the target (0, 0, 1, 0) give
    E = 0.55.
    """
    error = squared_error(outputs, targets)
    return 0.5 * jnp.sum(error.reshape(error.shape[0], -1), axis=-1)


def binary_cross_entropy(probabilities: jax.Array, targets: jax.Array, epsilon: float = 1e-12) -> jax.Array:
    """-[y log p + (1 - y) log(1 - p)], elementwise, with p clipped to [epsilon, 1 - epsilon].

    y = 1, p = 1/4 gives 2 ln 2; y = 1, p = 1/8 gives 3 ln 2; y = 0, p = 1/4 gives -ln(3/4).
    """
    p, y = _f32(probabilities, targets)
    p = jnp.clip(p, epsilon, 1.0 - epsilon)
    return -(y * jnp.log(p) + (1.0 - y) * jnp.log1p(-p))


def sigmoid_binary_cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """`binary_cross_entropy(sigmoid(x), y)` without forming the sigmoid, elementwise:
    max(x, 0) - x y + log(1 + exp(-|x|)), finite for every logit."""
    x, y = _f32(logits, targets)
    return jnp.maximum(x, 0.0) - x * y + jnp.log1p(jnp.exp(-jnp.abs(x)))


def categorical_cross_entropy(probabilities: jax.Array, targets: jax.Array, epsilon: float = 1e-12) -> jax.Array:
    """-sum_k t_k log p_k of each example (the last axis holds the classes), with p clipped to
    [epsilon, 1 - epsilon] as in the decks' numpy definition.

    Targets (0, 0, 0, 1) twice against predictions (0.25, 0.25, 0.25, 0.25) and
    (0.01, 0.01, 0.01, 0.96) give 1.386... and 0.0408..., mean 0.71355817782.
    """
    p, t = _f32(probabilities, targets)
    return -jnp.sum(t * jnp.log(jnp.clip(p, epsilon, 1.0 - epsilon)), axis=-1)


def cross_entropy(logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
    """Softmax cross-entropy of each example against integer labels (the last axis of `logits`
    holds the classes).

    With label smoothing eps the target puts 1 - eps on the label and eps / K on every class
    (Szegedy et al. 2016, §7).
    """
    return soft_cross_entropy(logits, jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing)


def soft_cross_entropy(logits: jax.Array, targets: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
    """Softmax cross-entropy against target distributions whose rows sum to one, as mixup and
    cutmix produce (Zhang et al. 2018; Yun et al. 2019); smoothing is applied on top."""
    logits, targets = _f32(logits, targets)
    if label_smoothing:
        targets = optax.smooth_labels(targets, label_smoothing)
    return optax.softmax_cross_entropy(logits, targets)


def sigmoid_focal_loss(logits: jax.Array, targets: jax.Array, alpha: float = 0.25,
                       gamma: float = 2.0) -> jax.Array:
    """Focal loss (Lin et al. 2017, eq. 5), elementwise: alpha_t (1 - p_t)^gamma BCE(x, y), with
    p_t = p for y = 1 and 1 - p for y = 0; `alpha < 0` switches the alpha weighting off.

    gamma = 0 and alpha = 0.5 is half the plain binary cross-entropy; RetinaNet uses gamma = 2,
    alpha = 0.25 (its Table 1a). Equal to `torchvision.ops.sigmoid_focal_loss(reduction='none')`.
    With gamma = 0 there is no modulating factor at all: (1 - p_t)^0 is 1, but its derivative,
    0 * (1 - p_t)^-1, is NaN wherever a confident logit rounds p_t to 1 (torch's pow special-cases
    a zero exponent; JAX's does not).
    """
    if not (0.0 <= alpha <= 1.0 or alpha == -1):
        raise ValueError(f"alpha={alpha} must be in [0, 1], or -1 to switch the weighting off")
    x, y = _f32(logits, targets)
    loss = sigmoid_binary_cross_entropy(x, y)
    if gamma != 0:
        p = jax.nn.sigmoid(x)
        p_t = p * y + (1.0 - p) * (1.0 - y)
        loss = loss * (1.0 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * y + (1.0 - alpha) * (1.0 - y)) * loss
    return loss


def pixel_cross_entropy(logits: jax.Array, labels: jax.Array, *, ignore_index: int = 255,
                        class_weights: Sequence[float] | None = None) -> tuple[jax.Array, jax.Array]:
    """Per-pixel softmax cross-entropy of (N, ..., K) logits against (N, ...) integer labels.

    Returns (loss, weight), both shaped like `labels`: the loss of each pixel times its class's
    weight, and that weight (0 where the label is `ignore_index`, 1 per pixel without
    `class_weights`). The mean loss of a batch is sum(loss) / sum(weight), which is PyTorch's
    `CrossEntropyLoss(weight=class_weights, ignore_index=ignore_index, reduction='mean')`.
    """
    logits = logits.astype(jnp.float32)
    valid = labels != ignore_index
    safe = jnp.where(valid, labels, 0)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, safe)
    weight = valid.astype(jnp.float32)
    if class_weights is not None:
        weight = weight * jnp.asarray(class_weights, jnp.float32)[safe]
    return jnp.where(valid, nll, 0.0) * weight, weight


# ---- saliency (a density over the pixels of each image) ---------------------------------------
# The dense losses the lecture compares for saliency prediction, per image: pixel losses on maps
# in [0, 1] (the prediction S_hat against the ground truth S) and distribution losses on maps
# normalised to sum 1. Where a distribution is zero, 0 log 0 and sqrt(0) are taken as 0 with a zero
# gradient (the "double where": the masked branch never sees the zero), and the prediction inside a
# logarithm gets DISTRIBUTION_EPSILON so that KL stays finite where the prediction has no mass.
DISTRIBUTION_EPSILON = 1e-7
MLNET_ALPHA = 1.1  # Cornia et al. 2016, ML-Net's loss: alpha = 1.1


def _per_image(values: jax.Array) -> jax.Array:
    return values.reshape(values.shape[0], -1)


def ead(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """Exponential absolute difference of each image: mean(exp(|S - S_hat|) - 1)."""
    predictions, targets = _f32(predictions, targets)
    return jnp.mean(_per_image(jnp.expm1(jnp.abs(targets - predictions))), axis=-1)


def mlnet_loss(predictions: jax.Array, targets: jax.Array, alpha: float = MLNET_ALPHA) -> jax.Array:
    """ML-Net's weighted squared error of each image (Cornia et al. 2016):
    mean((S - S_hat)^2 / (alpha - S)), larger weights where the ground truth is salient."""
    predictions, targets = _f32(predictions, targets)
    return jnp.mean(_per_image(jnp.square(targets - predictions) / (alpha - targets)), axis=-1)


def to_distribution(maps: jax.Array) -> jax.Array:
    """Each map flattened (all axes but the first) and scaled to sum 1; an all-zero map stays zero."""
    maps = _per_image(jnp.asarray(maps).astype(jnp.float32))
    return maps / jnp.maximum(jnp.sum(maps, axis=-1, keepdims=True), jnp.finfo(jnp.float32).tiny)


def _where_positive(x: jax.Array, fn) -> jax.Array:
    positive = x > 0
    return jnp.where(positive, fn(jnp.where(positive, x, 1.0)), 0.0)


def kl_divergence(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """KL(S || S_hat) = sum S log(S / S_hat) of each image, both maps normalised to sum 1, with
    S_hat + DISTRIBUTION_EPSILON inside the logarithm and 0 log 0 = 0."""
    p, q = to_distribution(targets), to_distribution(predictions)
    return jnp.sum(_where_positive(p, jnp.log) * p - p * jnp.log(q + DISTRIBUTION_EPSILON), axis=-1)


def bhattacharyya(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """Bhattacharyya distance of each image: -ln sum sqrt(S S_hat), both maps normalised to sum 1
    (the sum floored at DISTRIBUTION_EPSILON: maps without common support give -ln(eps), not inf)."""
    p, q = to_distribution(targets), to_distribution(predictions)
    overlap = jnp.sum(_where_positive(p * q, jnp.sqrt), axis=-1)
    return -jnp.log(jnp.maximum(overlap, DISTRIBUTION_EPSILON))
