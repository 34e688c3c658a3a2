"""How close generated images are to real ones: the Fréchet distance between two sets of features
(Heusel, Ramsauer, Unterthiner, Nessler & Hochreiter 2017, "GANs trained by a two time-scale update
rule converge to a local Nash equilibrium", who define the Fréchet Inception Distance with it), on
the features of a trained classifier.

Each set of features is summarised by a Gaussian with its mean ``mu`` and covariance ``S`` (the
unbiased estimate, over ``N - 1``); the distance is the Fréchet (2-Wasserstein) distance between
the two Gaussians:

    d^2 = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)).

Heusel et al.'s FID takes the features of the pool3 layer of an ImageNet Inception-v3. Here the
features are those of a LeNet-5 that cnn_jax trained on the same dataset (:func:`lenet_features`:
the 84 units of its F6 layer, the penultimate one), so that the distance can be computed without
downloading anything. **It is not the Inception FID**: its values are not comparable with
published FIDs, only with each other (the same LeNet, the same reference set, the same number of
images; the estimate is biased upwards at small sample sizes).

The trace of the matrix square root is computed without forming it: ``S_a S_b = A A S_b`` with
``A = S_a^(1/2)`` (symmetric, from ``S_a``'s eigendecomposition) has the eigenvalues of the
symmetric positive semi-definite ``A S_b A``, so ``Tr (S_a S_b)^(1/2)`` is the sum of the square
roots of ``A S_b A``'s eigenvalues (negative rounding errors clipped to 0). Everything is float64.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import numpy as np

# The F6 layer of cnn_jax's LeNet-5 after its activation (cnn_jax.models.lenet): 84 features.
LENET_FEATURE_LAYER = "act_f6"


def gaussian_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """The mean (D,) and the unbiased covariance (D, D), float64, of features (N, D), N >= 2."""
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"features must be (N, D) with N >= 2, got shape {x.shape}")
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance_gaussians(mu_a, cov_a, mu_b, cov_b) -> float:
    """The squared Fréchet distance between N(mu_a, cov_a) and N(mu_b, cov_b) (module docstring)."""
    mu_a, mu_b = np.asarray(mu_a, np.float64), np.asarray(mu_b, np.float64)
    cov_a, cov_b = np.asarray(cov_a, np.float64), np.asarray(cov_b, np.float64)
    if mu_a.shape != mu_b.shape or cov_a.shape != cov_b.shape or cov_a.shape != mu_a.shape * 2:
        raise ValueError(f"the two Gaussians must have the same dimension, got means {mu_a.shape} "
                         f"and {mu_b.shape}, covariances {cov_a.shape} and {cov_b.shape}")
    root_a = _psd_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2.0), 0.0, None)).sum()
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_sqrt)


def frechet_distance(features_a, features_b) -> float:
    """The squared Fréchet distance between the Gaussians fitted to two sets of features (N, D)
    and (M, D) (module docstring; Heusel et al. 2017). 0 for identical sets, symmetric."""
    a, b = np.asarray(features_a), np.asarray(features_b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be (N, D) and (M, D) with the same D, got shapes {a.shape} "
                         f"and {b.shape}")
    return frechet_distance_gaussians(*gaussian_statistics(a), *gaussian_statistics(b))


def lenet_features(model: nn.Module, variables: dict, inputs, *,
                   layer: str = LENET_FEATURE_LAYER, batch_size: int = 1000) -> np.ndarray:
    """The output of `layer` of a trained classifier for model inputs (N, H, W, C), as float64
    (N, D): for cnn_jax's LeNet-5, its F6 layer's 84 features, the penultimate layer.

    `model` and `variables` are a trained run's (``cnn_jax.training.load_run``: ``run.model``,
    ``run.variables``); `inputs` are what the model takes (images go through ``run.task.inputs``
    first, as the run normalised them in training; generated images are quantised to uint8 like
    the dataset's). The layer's output is read with Flax's ``capture_intermediates`` in
    evaluation mode, `batch_size` inputs at a time. Not the Inception features of the FID (module
    docstring).
    """
    inputs = np.asarray(inputs)
    if inputs.ndim != 4 or inputs.shape[0] == 0:
        raise ValueError(f"inputs must be a non-empty batch (N, H, W, C), got shape {inputs.shape}")

    def wanted(module: nn.Module, method: str) -> bool:
        return method == "__call__" and "/".join(module.path) == layer

    @jax.jit
    def features(batch: jax.Array) -> jax.Array:
        _, state = model.apply(variables, batch, train=False, capture_intermediates=wanted,
                               mutable=["intermediates"])
        found = jax.tree.leaves(state.get("intermediates", {}))
        if not found:
            raise KeyError(f"no layer {layer!r} in {type(model).__name__}: pass `layer`, the "
                           "module path of one of its layers (LeNet-5's F6: 'act_f6')")
        return found[0].reshape(batch.shape[0], -1)

    out = [np.asarray(features(inputs[i:i + batch_size]), np.float64)
           for i in range(0, inputs.shape[0], batch_size)]
    return np.concatenate(out)
