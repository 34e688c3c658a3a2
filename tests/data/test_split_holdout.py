"""Specification of data.test_size: N > 0 holds N examples of the train split out as the test set
(instead of the dataset's test split), disjoint from validation and training, fixed by split_seed
alone, so that a 60/20/20 split of one split is expressible."""

import ml_collections
import numpy as np
import pytest
from data_helpers import import_mnist_small, mnist_small_arrays

from cnn_jax.data.pipeline import create_input_pipeline
from cnn_jax.data.splits import split_holdout, split_train_val


@pytest.fixture(scope="module")
def mnist_small(shared_data):
    return mnist_small_arrays(shared_data)


@pytest.fixture(scope="module")
def mnist_small_dir(tmp_path_factory, mnist_small):
    return import_mnist_small(tmp_path_factory, mnist_small)


def make(data_dir, seed=0, **overrides):
    c = ml_collections.ConfigDict({
        "name": "mnist", "data_dir": str(data_dir), "download": False, "val_size": 100,
        "test_size": 0, "split_seed": 0, "train_subset": 0, "cache": True, "num_workers": 0,
        "augment": {"random_crop_padding": 0, "horizontal_flip": False},
    })
    c.update(overrides)
    return create_input_pipeline(c, seed=seed, batch_size=50, eval_batch_size=64)


def eval_images(pipe, split):
    return np.concatenate([b["image"][b["mask"]] for b in pipe.eval_batches(split)])[..., 0]


def test_holdout_parts_are_disjoint_cover_the_split_and_have_the_asked_sizes():
    train, val, test = split_holdout(60_000, 12_000, 12_000, split_seed=0)  # 60/20/20
    assert (len(train), len(val), len(test)) == (36_000, 12_000, 12_000)
    assert len(np.union1d(np.union1d(train, val), test)) == 60_000
    assert all(np.all(np.diff(p) > 0) for p in (train, val, test))  # sorted, no repeats


def test_holdout_validation_part_does_not_depend_on_test_size():
    _, val_alone = split_train_val(600, 100, 3)
    _, val, test = split_holdout(600, 100, 150, 3)
    assert np.array_equal(val, val_alone) and len(np.intersect1d(val, test)) == 0
    assert np.array_equal(split_holdout(600, 100, 150, 3)[2], test)
    assert not np.array_equal(split_holdout(600, 100, 150, 4)[2], test)


def test_test_size_takes_the_test_set_out_of_the_train_split(mnist_small_dir, mnist_small):
    pipe = make(mnist_small_dir, val_size=100, test_size=150)
    assert (pipe.num_train, pipe.num_val, pipe.num_test) == (350, 100, 150)
    train_idx, val_idx, test_idx = split_holdout(600, 100, 150, 0)
    assert np.array_equal(eval_images(pipe, "test"), mnist_small["x_train"][test_idx])
    assert np.array_equal(eval_images(pipe, "val"), mnist_small["x_train"][val_idx])
    labels = np.concatenate([b["label"][b["mask"]] for b in pipe.eval_batches("test")])
    assert np.array_equal(labels, mnist_small["y_train"][test_idx])
    seen = {x.tobytes() for e in range(2) for b in pipe.train_batches(e) for x in b["image"][..., 0]}
    assert seen <= {x.tobytes() for x in mnist_small["x_train"][train_idx]}
    assert not seen & {x.tobytes() for x in mnist_small["x_train"][test_idx]}


def test_held_out_test_set_is_fixed_by_split_seed_not_by_the_training_seed(mnist_small_dir):
    a = eval_images(make(mnist_small_dir, seed=0, test_size=100), "test")
    assert np.array_equal(a, eval_images(make(mnist_small_dir, seed=7, test_size=100), "test"))
    assert not np.array_equal(a, eval_images(make(mnist_small_dir, split_seed=1, test_size=100), "test"))


def test_test_size_works_without_a_validation_split_and_without_the_cache(mnist_small_dir, mnist_small):
    pipe = make(mnist_small_dir, val_size=0, test_size=120, cache=False)
    assert (pipe.num_train, pipe.num_val, pipe.num_test) == (480, 0, 120)
    _, _, test_idx = split_holdout(600, 0, 120, 0)
    assert np.array_equal(eval_images(pipe, "test"), mnist_small["x_train"][test_idx])
    assert np.array_equal(eval_images(make(mnist_small_dir, val_size=0, test_size=120), "test"),
                          eval_images(pipe, "test"))


def test_test_size_zero_keeps_the_dataset_test_split(mnist_small_dir, mnist_small):
    assert np.array_equal(eval_images(make(mnist_small_dir), "test"), mnist_small["x_test"])


def test_holdout_that_leaves_no_training_examples_is_an_error(mnist_small_dir):
    with pytest.raises(ValueError, match=r"data.val_size=300 \+ data.test_size=300 leave no training "
                                         r"examples out of 600: lower them"):
        make(mnist_small_dir, val_size=300, test_size=300)
    with pytest.raises(ValueError, match="data.test_size must not be negative"):
        make(mnist_small_dir, test_size=-1)
