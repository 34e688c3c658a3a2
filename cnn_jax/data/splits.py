"""Splits: which records of a dataset's train split are for training, validation and test.

`val_size` examples are held out of the train split by a permutation fixed by `split_seed` alone
(independent of the training seed); with `test_size` > 0 the next `test_size` examples of that
permutation are the test set instead of the dataset's test split (a 60/20/20 split of one split:
MNIST's 60,000 with val_size=test_size=12,000 gives 36,000/12,000/12,000); `train_subset` keeps
the first N of the remaining ones (in dataset order).
"""

from __future__ import annotations

import numpy as np

from cnn_jax.data.streams import split_rng


def split_train_val(num_examples: int, val_size: int, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Record indices (sorted) of the train and validation parts of a train split.

    The validation part is the first `val_size` entries of a permutation seeded by `split_seed`
    only, so it is the same for every training seed and every run.
    """
    train, val, _ = split_holdout(num_examples, val_size, 0, split_seed)
    return train, val


def split_holdout(num_examples: int, val_size: int, test_size: int,
                  split_seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Record indices (sorted) of the train, validation and test parts of a train split.

    One permutation seeded by `split_seed` only: validation is its first `val_size` entries
    (the same as `split_train_val`'s, whatever `test_size`), test the next `test_size`, train
    the rest. So the three are disjoint and the same for every training seed and every run.
    """
    if val_size < 0 or test_size < 0:
        raise ValueError(f"data.val_size={val_size} and data.test_size={test_size} must not be negative")
    if val_size + test_size >= num_examples:
        if test_size:
            raise ValueError(f"data.val_size={val_size} + data.test_size={test_size} leave no "
                             f"training examples out of {num_examples}: lower them")
        raise ValueError(f"data.val_size={val_size} leaves no training examples out of "
                         f"{num_examples}: lower data.val_size")
    perm = split_rng(split_seed).permutation(num_examples)
    held = val_size + test_size
    return np.sort(perm[held:]), np.sort(perm[:val_size]), np.sort(perm[val_size:held])


def train_val_test_rows(num_examples: int, val_size: int, test_size: int, split_seed: int,
                        train_subset: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Record ids of the training, validation (None without) and test (None: the test set is the
    dataset's test split) parts of a train split of `num_examples`; see the module docstring."""
    if val_size or test_size:
        train_idx, val_idx, test_idx = split_holdout(num_examples, val_size, test_size, split_seed)
    else:
        train_idx, val_idx, test_idx = np.arange(num_examples), None, None
    val_idx = val_idx if val_size else None
    test_idx = test_idx if test_size else None
    if train_subset:
        if train_subset > len(train_idx):
            raise ValueError(f"data.train_subset={train_subset} is more than the "
                             f"{len(train_idx)} training examples: lower it (0 = all)")
        train_idx = train_idx[:train_subset]
    return train_idx, val_idx, test_idx
