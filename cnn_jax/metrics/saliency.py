"""Saliency metrics, following the MIT saliency benchmark's definitions (Bylinskii, Judd, Oliva,
Torralba & Durand 2019, "What do different evaluation metrics tell us about saliency models?").

Each takes a predicted saliency map `prediction` (H, W) and either the ground-truth density `density`
(H, W, any scale) or the binary fixation map `fixations` (H, W, nonzero where a fixation landed):

* `cc`: Pearson's linear correlation coefficient of the two maps;
* `kl`: sum Q log(eps + Q / (P + eps)) of the maps normalised to sum 1 (Q the ground truth, P the
  prediction), eps = 2.2204e-16 as in the benchmark's code;
* `sim`: sum min(P, Q) of the normalised maps (1 for identical maps, 0 for disjoint ones);
* `nss`: the mean over fixations of the prediction standardised to mean 0 and standard deviation 1;
* `auc_judd`: the area under the ROC curve whose thresholds are the prediction's values at the
  fixations; true positives: fixations at or above the threshold, false positives: the other
  pixels at or above it (Judd et al. 2009);
* `auc_borji`: the ROC area of the fixations' values against the values at `splits` sets of pixels
  drawn uniformly (as many as there are fixations each), averaged over the splits, thresholds every
  `step` from 0 to the maximum of the map normalised to [0, 1] (Borji et al. 2013);
* `auc_shuffled`: the same with the negatives drawn (without replacement) from other images'
  fixations (`other_fixations`), which discounts the centre bias every saliency model and every
  data set share.

AUC-Judd here counts ties with the threshold as above it, where the benchmark's code first adds
noise of 1e-7 to break them; maps without ties score the same.

The metrics are not sums over batches: `saliency_scores` averages them over images on the host.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

EPS = 2.2204e-16


def _normalised(x) -> np.ndarray:
    x = np.asarray(x, np.float64)
    total = x.sum()
    return x / total if total > 0 else x


def cc(prediction, density) -> float:
    """Pearson's correlation coefficient of the two maps (0 when either is constant)."""
    a = np.asarray(prediction, np.float64).ravel()
    b = np.asarray(density, np.float64).ravel()
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else 0.0


def kl(prediction, density) -> float:
    """The benchmark's KL divergence of the ground truth from the prediction (lower is better)."""
    p, q = _normalised(prediction), _normalised(density)
    return float(np.sum(q * np.log(EPS + q / (p + EPS))))


def sim(prediction, density) -> float:
    """Histogram intersection of the two maps normalised to sum 1."""
    return float(np.minimum(_normalised(prediction), _normalised(density)).sum())


def nss(prediction, fixations) -> float:
    """Normalised scanpath saliency: the standardised prediction's mean at the fixations."""
    s = np.asarray(prediction, np.float64)
    std = s.std()
    s = (s - s.mean()) / std if std > 0 else s - s.mean()
    return float(s[np.asarray(fixations) > 0].mean())


def auc_judd(prediction, fixations) -> float:
    """ROC area with the fixated values as thresholds (see the module docstring)."""
    s = np.asarray(prediction, np.float64).ravel()
    fixated = np.asarray(fixations).ravel() > 0
    thresholds = np.sort(s[fixated])[::-1]
    n_fix, n_pix = len(thresholds), s.size
    tp = np.zeros(n_fix + 2)
    fp = np.zeros(n_fix + 2)
    tp[-1] = fp[-1] = 1.0
    above = np.sort(s)[::-1]
    for i, t in enumerate(thresholds, start=1):
        count = np.searchsorted(-above, -t, side="right")  # pixels with value >= t
        tp[i] = i / n_fix
        fp[i] = (count - i) / (n_pix - n_fix)
    return float(np.trapezoid(tp, fp))


def _roc_area(positives: np.ndarray, negatives: np.ndarray, step: float) -> float:
    thresholds = np.arange(0.0, max(positives.max(), negatives.max()) + step, step)[::-1]
    tp = np.concatenate([[0.0], [(positives >= t).mean() for t in thresholds], [1.0]])
    fp = np.concatenate([[0.0], [(negatives >= t).mean() for t in thresholds], [1.0]])
    return float(np.trapezoid(tp, fp))


def _scaled(prediction) -> np.ndarray:
    s = np.asarray(prediction, np.float64)
    span = s.max() - s.min()
    return (s - s.min()) / span if span > 0 else np.zeros_like(s)


def auc_borji(prediction, fixations, *, splits: int = 100, step: float = 0.1, seed: int = 0) -> float:
    """ROC area of the fixations against uniformly drawn pixels (see the module docstring)."""
    s = _scaled(prediction).ravel()
    fixated = np.asarray(fixations).ravel() > 0
    positives = s[fixated]
    rng = np.random.default_rng(seed)
    return float(np.mean([_roc_area(positives, s[rng.integers(0, s.size, positives.size)], step)
                          for _ in range(splits)]))


def auc_shuffled(prediction, fixations, other_fixations, *, splits: int = 100, step: float = 0.1,
                 seed: int = 0) -> float:
    """ROC area of the fixations against other images' fixation locations (the benchmark's sAUC)."""
    s = _scaled(prediction).ravel()
    positives = s[np.asarray(fixations).ravel() > 0]
    pool = np.flatnonzero(np.asarray(other_fixations).ravel() > 0)
    count = min(positives.size, pool.size)  # drawn without replacement, as the benchmark does
    rng = np.random.default_rng(seed)
    return float(np.mean([_roc_area(positives, s[rng.permutation(pool)[:count]], step)
                          for _ in range(splits)]))


METRICS = ("cc", "kl", "sim", "nss", "auc_judd", "auc_borji", "auc_shuffled")


def saliency_scores(predictions: Iterable, densities: Iterable, fixations: Iterable, *,
                    splits: int = 100, seed: int = 0) -> dict:
    """Every metric averaged over images; each image's shuffled AUC draws its negatives from the
    fixations of all the other images."""
    predictions, densities, fixations = list(predictions), list(densities), list(fixations)
    all_fixations = np.sum([np.asarray(f) > 0 for f in fixations], axis=0)
    rows = []
    for i, (p, d, f) in enumerate(zip(predictions, densities, fixations, strict=True)):
        others = all_fixations - (np.asarray(f) > 0)
        rows.append({"cc": cc(p, d), "kl": kl(p, d), "sim": sim(p, d), "nss": nss(p, f),
                     "auc_judd": auc_judd(p, f), "auc_borji": auc_borji(p, f, splits=splits, seed=seed + i),
                     "auc_shuffled": auc_shuffled(p, f, others, splits=splits, seed=seed + i)})
    return {k: float(np.mean([r[k] for r in rows])) for k in METRICS} | {"count": len(rows)}
