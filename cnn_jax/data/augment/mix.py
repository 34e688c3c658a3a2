"""Mixing, the only batch op that sees labels: mixup and CutMix of image pairs and their targets.

`Mix(mixup_alpha, cutmix_alpha, num_classes)`: the images are paired with their neighbours, rows
2k and 2k+1 (`mix_partners`; the batch is in random order, so these are random pairs, as timm's
`flip` pairing of a shuffled batch), and lambda ~ Beta(a, a) is drawn once per batch. Mixup
(Zhang et al. 2018) blends the pixels (rounded to uint8) and the one-hot targets; CutMix (Yun et
al. 2019) pastes a box of area ratio 1 - lambda (centre uniform, clipped) from the partner and
then sets lambda to the fraction of pixels kept after clipping. With both alphas > 0 each batch
picks one of the two with probability 1/2 (as timm's Mixup with switch_prob 0.5). Lambda and
the CutMix box are one draw per batch and pairs never straddle an even row, so a process that
holds an even slice of a global batch mixes exactly the rows one process would.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from cnn_jax.data.augment.base import RngLike, as_generator, check_batch, to_uint8


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[np.asarray(labels)]


def mix_partners(n: int) -> np.ndarray:
    """The partner of each of n rows: 2k <-> 2k+1 (an odd last row is its own partner).

    The batch is in random order, so neighbours are a random pairing, and a pair never spans two
    processes' slices of a global batch when the slices have an even number of rows: mixing then
    gives the same rows for any process count (module doc). timm's Mixup pairs row i with row
    N-1-i of its (shuffled) batch for the same reason of cost; that pairing would span slices.
    """
    partners = np.arange(n) ^ 1
    partners[partners >= n] = n - 1
    return partners


def mixup(images: np.ndarray, targets: np.ndarray, alpha: float,
          rng: RngLike) -> tuple[np.ndarray, np.ndarray, float]:
    """Mixup (Zhang et al. 2018): x = lam * x + (1 - lam) * x[perm] (rounded to uint8), the same
    for the targets, with lam ~ Beta(alpha, alpha) drawn once for the batch and perm the
    neighbour pairing `mix_partners`. Returns (images, targets, lam)."""
    images = check_batch(images)
    rng = as_generator(rng)
    lam = float(rng.beta(alpha, alpha))
    perm = mix_partners(len(images))
    x = images.astype(np.float32)
    x *= lam
    x += (1 - lam) * images[perm].astype(np.float32)
    return to_uint8(x), (lam * targets + (1 - lam) * targets[perm]).astype(np.float32), lam


def cutmix(images: np.ndarray, targets: np.ndarray, alpha: float,
           rng: RngLike) -> tuple[np.ndarray, np.ndarray, float]:
    """CutMix (Yun et al. 2019, sec. 3.1): one box per batch, of side
    sqrt(1 - lam) * (H, W) with lam ~ Beta(alpha, alpha), centre a uniformly random pixel,
    clipped at the borders; every image gets its partner's (x[perm], `mix_partners`) pixels
    inside the box, and
    lam becomes 1 - (clipped box area) / (H W), the kept fraction, for the targets.
    Returns (images, targets, lam)."""
    images = check_batch(images)
    rng = as_generator(rng)
    n, h, w, _ = images.shape
    lam = float(rng.beta(alpha, alpha))
    perm = mix_partners(n)
    cut = math.sqrt(1.0 - lam)
    bh, bw = int(h * cut), int(w * cut)
    cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
    top, bottom = np.clip([cy - bh // 2, cy - bh // 2 + bh], 0, h)
    left, right = np.clip([cx - bw // 2, cx - bw // 2 + bw], 0, w)
    out = images.copy()
    out[:, top:bottom, left:right] = images[perm, top:bottom, left:right]
    lam = 1.0 - (bottom - top) * (right - left) / (h * w)
    return out, (lam * targets + (1 - lam) * targets[perm]).astype(np.float32), lam


@dataclasses.dataclass(frozen=True)
class Mix:
    """Mixup and/or CutMix of a batch with labels; with both alphas > 0, a fair coin per batch
    picks one (as timm's `Mixup(switch_prob=0.5)`)."""

    mixup_alpha: float
    cutmix_alpha: float
    num_classes: int

    def __call__(self, images: np.ndarray, labels: np.ndarray,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(images, int labels) -> (mixed images, float32 targets (N, num_classes))."""
        targets = one_hot(labels, self.num_classes)
        use_mixup = self.mixup_alpha > 0
        if use_mixup and self.cutmix_alpha > 0:
            use_mixup = bool(rng.random() < 0.5)
        if use_mixup:
            images, targets, _ = mixup(images, targets, self.mixup_alpha, rng)
        else:
            images, targets, _ = cutmix(images, targets, self.cutmix_alpha, rng)
        return images, targets
