"""How far a classifier's confidence is from its accuracy: reliability bins and the expected
calibration error (Guo et al. 2017, "On Calibration of Modern Neural Networks", §2).

Predictions are grouped into M bins of equal width by their confidence (the largest softmax
probability): bin m holds the confidences in ``((m - 1) / M, m / M]``. Per bin, the accuracy
``acc(B_m)`` is the fraction predicted right and the confidence ``conf(B_m)`` the mean confidence;
a perfectly calibrated classifier has ``acc = conf`` in every bin (the diagonal of the
reliability diagram, Guo et al. Fig. 1). The expected calibration error (Guo et al. Eq. 3) is

    ECE = sum_m |B_m| / n * |acc(B_m) - conf(B_m)|

with 15 bins by default, as in Guo et al.'s Table 1.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

DEFAULT_BINS = 15


@dataclasses.dataclass(frozen=True)
class ReliabilityBins:
    """Per-bin statistics; empty bins have count 0 and NaN accuracy and confidence."""

    edges: np.ndarray
    """(M + 1,) from 0 to 1."""
    counts: np.ndarray
    accuracy: np.ndarray
    confidence: np.ndarray

    @property
    def expected_calibration_error(self) -> float:
        n = self.counts.sum()
        used = self.counts > 0
        gaps = np.abs(self.accuracy[used] - self.confidence[used])
        return float(np.sum(self.counts[used] / n * gaps)) if n else 0.0


def confidences_and_correct(logits: np.ndarray,
                            labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The largest softmax probability of each example and whether its argmax is the label."""
    probabilities = np.asarray(jax.nn.softmax(np.asarray(logits, np.float32), axis=-1))
    return probabilities.max(-1), probabilities.argmax(-1) == np.asarray(labels)


def reliability_bins(confidences: np.ndarray, correct: np.ndarray,
                     num_bins: int = DEFAULT_BINS) -> ReliabilityBins:
    """Counts, accuracy and mean confidence of `num_bins` equal-width bins ``((m-1)/M, m/M]``
    (a confidence of exactly 0 joins the first bin)."""
    confidences = np.asarray(confidences, np.float64)
    correct = np.asarray(correct, np.float64)
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    index = np.clip(np.searchsorted(edges, confidences, side="left") - 1, 0, num_bins - 1)
    counts = np.bincount(index, minlength=num_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.bincount(index, weights=correct, minlength=num_bins) / counts
        confidence = np.bincount(index, weights=confidences, minlength=num_bins) / counts
    return ReliabilityBins(edges=edges, counts=counts, accuracy=accuracy, confidence=confidence)


def expected_calibration_error(confidences: np.ndarray, correct: np.ndarray,
                               num_bins: int = DEFAULT_BINS) -> float:
    """Guo et al.'s (2017) Eq. 3 over `num_bins` equal-width confidence bins."""
    return reliability_bins(confidences, correct, num_bins).expected_calibration_error
