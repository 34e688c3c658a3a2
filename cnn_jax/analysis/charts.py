"""Charts of the analysis as matplotlib Figures: training curves, the learning rate, a confusion
matrix, a reliability diagram (Guo et al. 2017, Fig. 1) and accuracy against an attack's budget
(the accuracy-vs-epsilon curve on which Madry et al. 2018 compare attacks).

Figures are built with ``matplotlib.figure.Figure`` (no pyplot state): a notebook shows the
returned Figure, a report saves it with ``fig.savefig``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def curves_figure(curves, title: str | None = None) -> Figure:
    """Loss and accuracy per epoch, training and validation (a
    :class:`~cnn_jax.analysis.curves.Curves`); the space between the two lines is the
    generalisation gap."""
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for split, values, style in (("train", curves.train, "o-"), ("val", curves.val, "s-")):
            if np.any(np.isfinite(values[metric])):
                ax.plot(curves.epochs, values[metric], style, label=split, markersize=4)
        if metric in curves.test:
            ax.axhline(curves.test[metric], color="gray", linestyle=":", label="test")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return fig


def learning_rate_figure(steps: np.ndarray, lr: np.ndarray, title: str | None = None) -> Figure:
    """The learning rate against the optimizer step."""
    fig = Figure(figsize=(5, 3), layout="constrained")
    ax = fig.subplots()
    ax.plot(steps, lr)
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    return fig


def confusion_matrix_figure(matrix: np.ndarray, class_names: Sequence[str] | None = None,
                            title: str | None = None, normalize: bool = True) -> Figure:
    """Rows: true class, columns: predicted class; colour is the fraction of the row
    (`normalize`) or the count, and every non-zero count is written in its cell."""
    matrix = np.asarray(matrix)
    k = matrix.shape[0]
    names = list(class_names) if class_names else [str(i) for i in range(k)]
    shown = matrix / np.maximum(matrix.sum(1, keepdims=True), 1) if normalize else matrix
    size = max(4.0, 0.45 * k + 1.5)
    fig = Figure(figsize=(size + 1, size), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(shown, cmap="Blues", vmin=0)
    fig.colorbar(image, ax=ax, label="fraction of the true class" if normalize else "count")
    if k <= 30:
        ax.set_xticks(range(k), names, rotation=90 if max(map(len, names)) > 2 else 0)
        ax.set_yticks(range(k), names)
        top = shown.max() or 1
        for t, p in zip(*np.nonzero(matrix), strict=True):
            ax.text(p, t, str(matrix[t, p]), ha="center", va="center", fontsize=7,
                    color="white" if shown[t, p] > 0.6 * top else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if title:
        ax.set_title(title)
    return fig


def reliability_figure(bins, title: str | None = None) -> Figure:
    """Accuracy per confidence bin as bars against the diagonal of perfect calibration, the gap
    to it shaded, the ECE in the legend (Guo et al. 2017, Fig. 1); `bins` is a
    :class:`~cnn_jax.analysis.calibration.ReliabilityBins`."""
    fig = Figure(figsize=(4, 4), layout="constrained")
    ax = fig.subplots()
    width = np.diff(bins.edges)
    used = bins.counts > 0
    ax.bar(bins.edges[:-1][used], bins.accuracy[used], width=width[used], align="edge",
           edgecolor="black", label="accuracy")
    ax.bar(bins.edges[:-1][used], (bins.confidence - bins.accuracy)[used], width=width[used],
           bottom=bins.accuracy[used], align="edge", color="red", alpha=0.3, edgecolor="red",
           label=f"gap (ECE {bins.expected_calibration_error:.3f})")
    ax.plot([0, 1], [0, 1], "k--", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper left")
    if title:
        ax.set_title(title)
    return fig


def epsilon_figure(epsilons: Sequence[float], accuracies: Mapping[str, Sequence[float]],
                   title: str | None = None, pixel_max: float = 255.0) -> Figure:
    """Accuracy against the attack budget, one line per attack; epsilon as a fraction of the pixel
    range, with the budget in pixel levels on the top axis."""
    fig = Figure(figsize=(5, 3.4), layout="constrained")
    ax = fig.subplots()
    for name, values in accuracies.items():
        ax.plot(epsilons, values, "o-", label=name, markersize=4)
    ax.set_xlabel("epsilon (fraction of the pixel range)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    top = ax.secondary_xaxis("top", functions=(lambda e: e * pixel_max, lambda p: p / pixel_max))
    top.set_xlabel("pixel levels")
    if title:
        ax.set_title(title)
    return fig
