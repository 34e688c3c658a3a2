"""The random streams of the input pipeline, each a numpy generator seeded by a tuple of keys.

Every random number of a run's data comes from one of four independent streams, keyed by what
it must depend on and nothing else (numpy SeedSequence entropy = [stream, keys...]):

  * split:   (split_seed)                    which examples are held out for validation / test;
  * shuffle: (seed, epoch)                   the order of the training examples in an epoch;
  * augment: (seed, epoch, step, 0)          the batch ops of training batch `step`;
  * crop:    (seed, epoch, record id)        the per-photo random resized crop.

None of them involves the process index or count, so P processes produce, row for row, the
batches one process would, and every batch is a pure function of (seed, epoch, step).
"""

from __future__ import annotations

import numpy as np

_SPLIT, _SHUFFLE, _AUGMENT, _CROP = 1, 2, 3, 4


def _generator(*keys: int) -> np.random.Generator:
    return np.random.default_rng([int(k) % (1 << 64) for k in keys])


def split_rng(split_seed: int) -> np.random.Generator:
    """The generator of the train / validation / test split (independent of the training seed)."""
    return _generator(_SPLIT, split_seed)


def shuffle_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator of epoch `epoch`'s order of the training examples."""
    return _generator(_SHUFFLE, seed, epoch)


def augment_rng(seed: int, epoch: int, step: int) -> np.random.Generator:
    """The generator of the batch augmentation of training batch `step` of `epoch`, the same in
    every process (each process keeps the draws of its own rows, see cnn_jax.data.augment)."""
    return _generator(_AUGMENT, seed, epoch, step, 0)


def crop_rng(seed: int, epoch: int, record: int) -> np.random.Generator:
    """The generator of the per-photo training crop of record `record` in `epoch`."""
    return _generator(_CROP, seed, epoch, record)
