"""Where a trained classifier goes wrong: its predictions on a split, the confusion matrix, the
most-confused pairs of classes and the misclassified examples with their top-3 classes.

A trained run comes into a notebook with ``from cnn_jax.training import load_run``;
:func:`collect_predictions` takes it (duck typing: ``run.data().eval_batches(split)`` and what
:meth:`Classifier.from_run <cnn_jax.analysis.classifier.Classifier.from_run>` reads).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from cnn_jax.analysis.classifier import Classifier, predict_logits
from cnn_jax.metrics import confusion_matrix


@dataclasses.dataclass(frozen=True)
class Predictions:
    """A classifier's logits for labelled images, in the split's order (padding removed)."""

    labels: np.ndarray
    """(N,) int."""
    logits: np.ndarray
    """(N, K) float32."""
    images: np.ndarray | None = None
    """(N, H, W, C) uint8, when kept."""

    @property
    def probabilities(self) -> np.ndarray:
        return np.asarray(jax.nn.softmax(self.logits, axis=-1))

    @property
    def predicted(self) -> np.ndarray:
        return np.argmax(self.logits, axis=-1)

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.predicted == self.labels))

    def confusion_matrix(self) -> np.ndarray:
        """Counts of (true class, predicted class), (K, K)."""
        return confusion_matrix(self.labels, self.predicted, self.logits.shape[-1])


def collect_predictions(run: Any, split: str = "test", limit: int | None = None,
                        keep_images: bool = True) -> Predictions:
    """The run's logits on `split` ('test' or 'val'), the first `limit` examples (all when None).

    Batches come from the run's own evaluation pipeline, so the images are exactly those
    ``cnn-jax eval`` scores; the rows its padding adds (``mask`` False) are dropped.
    """
    classifier = Classifier.from_run(run)
    labels, logits, images, seen = [], [], [], 0
    for batch in run.data().eval_batches(split):
        keep = np.asarray(batch["mask"], bool)
        out = np.asarray(predict_logits(classifier, batch["image"], len(keep)), np.float32)
        labels.append(np.asarray(batch["label"])[keep])
        logits.append(out[keep])
        if keep_images:
            images.append(np.asarray(batch["image"])[keep])
        seen += int(keep.sum())
        if limit is not None and seen >= limit:
            break
    end = slice(None) if limit is None else slice(limit)
    return Predictions(labels=np.concatenate(labels)[end], logits=np.concatenate(logits)[end],
                       images=np.concatenate(images)[end] if keep_images else None)


def images_at(run: Any, split: str, indices) -> np.ndarray:
    """The images of `split` at `indices` (positions in :func:`collect_predictions`' order), in
    the order given: a second pass over the batches that keeps only those, so that a large split
    never sits in memory."""
    wanted = {int(i): k for k, i in enumerate(indices)}
    found: dict[int, np.ndarray] = {}
    seen = 0
    for batch in run.data().eval_batches(split):
        for row in np.flatnonzero(np.asarray(batch["mask"], bool)):
            if seen in wanted:
                found[seen] = np.asarray(batch["image"][row])
            seen += 1
        if len(found) == len(wanted):
            break
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise IndexError(f"split {split!r} has {seen} examples; no example {missing[0]}")
    return np.stack([found[int(i)] for i in indices])


def most_confused_pairs(matrix: np.ndarray, k: int = 5) -> list[tuple[int, int, int]]:
    """The `k` largest off-diagonal counts as ``(true class, predicted class, count)``, largest
    first (ties: smaller true class, then smaller predicted class); zero counts are left out."""
    matrix = np.asarray(matrix)
    pairs = [(int(t), int(p), int(matrix[t, p])) for t in range(matrix.shape[0])
             for p in range(matrix.shape[1]) if t != p and matrix[t, p] > 0]
    return sorted(pairs, key=lambda c: (-c[2], c[0], c[1]))[:k]


@dataclasses.dataclass(frozen=True)
class Misclassified:
    """One wrongly classified example: its index in the split, its label, the classifier's
    `k` most probable classes (the first is the prediction) and their probabilities."""

    index: int
    label: int
    top_classes: tuple[int, ...]
    top_probabilities: tuple[float, ...]


def misclassified(predictions: Predictions, k: int = 3,
                  limit: int | None = None) -> list[Misclassified]:
    """The misclassified examples, most confidently wrong first (ties: split order)."""
    probabilities = predictions.probabilities
    wrong = np.flatnonzero(predictions.predicted != predictions.labels)
    order = wrong[np.argsort(-probabilities[wrong].max(-1), kind="stable")]
    out = []
    for i in order[:limit]:
        top = np.argsort(-probabilities[i], kind="stable")[:k]
        out.append(Misclassified(index=int(i), label=int(predictions.labels[i]),
                                 top_classes=tuple(int(c) for c in top),
                                 top_probabilities=tuple(float(probabilities[i, c]) for c in top)))
    return out
