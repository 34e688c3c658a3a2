"""Specification of generated datasets (cnn_jax.data.generate) read by the pipeline: digit scenes
are made from the imported MNIST on first use, train scenes from training digits only, the same
for the same seed, and their batches keep the batch contract through splits, padding,
augmentation and processes."""

import json

import numpy as np
import pytest
from data_helpers import (
    assert_processes_split_batches,
    eval_examples,
    import_mnist_small,
    npz_slice,
)
from data_helpers import data_config as base_config

from cnn_jax.data import data_main_generate, generate_dataset, list_prepared, prepare
from cnn_jax.data.catalog import get_dataset_spec
from cnn_jax.data.pipeline import create_input_pipeline
from cnn_jax.data.targets import IGNORE
from cnn_jax.errors import ConfigError, DataNotPreparedError

SMALL = "digit_scenes/train_size=64,test_size=40"
DIM = 200  # test digits are dimmed to at most this, so a scene shows which digits it holds


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory, shared_data):
    arrays = npz_slice(shared_data / "mnist.npz", 300, 100)
    arrays["x_test"] = (arrays["x_test"].astype(np.int64) * DIM // 255).astype(np.uint8)
    return import_mnist_small(tmp_path_factory, arrays)


def data_config(data_dir, name=SMALL, **overrides):
    return base_config(data_dir, name, **{"val_size": 16, **overrides})


def make(data_dir, name=SMALL, batch_size=16, eval_batch_size=20, **overrides):
    return create_input_pipeline(data_config(data_dir, name, **overrides), seed=0,
                                 batch_size=batch_size, eval_batch_size=eval_batch_size)


def test_a_run_generates_digit_scenes_from_the_imported_mnist_on_first_use(mnist_dir):
    spec = get_dataset_spec(SMALL)
    assert not (prepare.dataset_path(spec, mnist_dir) / "dataset_info.json").exists()
    pipe = make(mnist_dir)
    assert (pipe.num_train, pipe.num_val, pipe.num_test) == (48, 16, 40)
    record = json.loads((prepare.dataset_path(spec, mnist_dir) / prepare.IMPORT_RECORD).read_text())
    assert record["generated"] and record["counts"] == {"train": 64, "test": 40}
    assert record["params"]["seed"] == 0 and record["params"]["train_size"] == 64
    assert "train 300, test 100 digits" in record["source"]
    assert any(line.startswith("digit_scenes/canvas64_digits1-4") and "generated from mnist" in line
               for line in list_prepared(mnist_dir))


def test_train_scenes_hold_training_digits_only_and_test_scenes_test_digits_only(mnist_dir):
    pipe = make(mnist_dir, val_size=0)
    train = np.concatenate([b["image"] for b in pipe.train_batches(0)])
    test = eval_examples(pipe)["image"]
    assert len(train) == 64 and len(test) == 40
    assert test.max() <= DIM  # every test scene is made of the dimmed test digits
    assert (train.max(axis=(1, 2, 3)) > DIM).all()  # every training scene shows a full-bright digit


def test_batches_follow_the_contract_and_eval_padding_is_empty(mnist_dir):
    pipe = make(mnist_dir, eval_batch_size=24)
    batch = pipe.train_batch(0, 1)
    spec = pipe.spec
    assert spec.targets == ("segmentation", "boxes", "classes", "box_mask", "instances")
    assert (spec.num_classes, spec.object_classes, spec.max_boxes) == (11, 10, 4)
    expected = {"image": ((16, 64, 64, 1), np.uint8), "segmentation": ((16, 64, 64), np.uint8),
                "boxes": ((16, 4, 4), np.float32), "classes": ((16, 4), np.int32),
                "box_mask": ((16, 4), np.bool_), "instances": ((16, 64, 64), np.uint8)}
    assert {k: (v.shape, v.dtype) for k, v in batch.items()} == expected
    assert batch["box_mask"].any(axis=1).all()
    padding = ~batch["box_mask"]
    assert not batch["boxes"][padding].any() and not batch["classes"][padding].any()
    evals = list(pipe.eval_batches("test"))
    assert [int(b["mask"].sum()) for b in evals] == [24, 16]
    last = evals[-1]
    assert set(last) == {*expected, "mask"} and last["image"].shape == (24, 64, 64, 1)
    for key in expected:
        assert not last[key][16:].any(), key  # padding: zeros, box_mask False
    seg = eval_examples(pipe)["segmentation"]
    assert set(np.unique(seg)) <= {*range(11), IGNORE} and (seg == IGNORE).any()


def test_the_same_seed_generates_the_same_scenes_in_another_data_dir(mnist_dir, tmp_path_factory,
                                                                      shared_data):
    arrays = npz_slice(shared_data / "mnist.npz", 300, 100)
    arrays["x_test"] = (arrays["x_test"].astype(np.int64) * DIM // 255).astype(np.uint8)
    other = import_mnist_small(tmp_path_factory, arrays)
    a, b = eval_examples(make(mnist_dir)), eval_examples(make(other))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    seeded = eval_examples(make(other, name=f"{SMALL},seed=1"))
    assert not np.array_equal(a["image"], seeded["image"])


def test_augmented_target_batches_are_a_pure_function_of_seed_epoch_and_step(mnist_dir):
    augment = {"random_crop_padding": 4, "rotation": 10.0, "elastic_alpha": 8.0,
               "horizontal_flip": True, "brightness": 0.2}
    pipe = make(mnist_dir, augment=augment)
    full = list(pipe.train_batches(1))
    resumed = list(make(mnist_dir, augment=augment).train_batches(1, start_step=1))
    for a, b in zip(full[1:], resumed, strict=True):
        assert all(np.array_equal(a[k], b[k]) for k in a)
    uncached = make(mnist_dir, augment=augment, cache=False).train_batch(1, 2)
    assert all(np.array_equal(full[2][k], uncached[k]) for k in uncached)
    plain = make(mnist_dir).train_batch(1, 2)
    assert not np.array_equal(full[2]["segmentation"], plain["segmentation"])


def test_processes_each_get_their_slice_of_every_target_batch(mnist_dir):
    cfg = data_config(mnist_dir, augment={"random_crop_padding": 4, "elastic_alpha": 8.0,
                                          "horizontal_flip": True})
    assert_processes_split_batches(cfg, step=2)


def test_the_single_digit_variant_carries_the_label_and_its_one_box(mnist_dir):
    pipe = make(mnist_dir, name="digit_scenes_single/train_size=32,test_size=8", val_size=0,
                batch_size=8, eval_batch_size=8)
    batch = pipe.train_batch(0, 0)
    assert pipe.spec.targets == ("label", "boxes", "classes", "box_mask", "instances")
    assert pipe.spec.num_classes == 10 and pipe.spec.max_boxes == 1
    assert batch["label"].dtype == np.int32 and batch["boxes"].shape == (8, 1, 4)
    assert batch["box_mask"].all() and np.array_equal(batch["label"], batch["classes"][:, 0])


def test_generating_explicitly_replaces_the_copy_and_says_so(mnist_dir):
    name = "digit_scenes/train_size=8,test_size=4,seed=5"
    first = generate_dataset(name, mnist_dir)
    assert first.counts == {"train": 8, "test": 4} and not first.replaced
    line = data_main_generate(name, str(mnist_dir))
    assert line.startswith(f"generated {name} from MNIST into ") and "train 8, test 4" in line
    assert line.endswith("replaced the copy that was there")


def test_generation_without_mnist_fails_with_the_mnist_import_command(tmp_path):
    with pytest.raises(DataNotPreparedError, match=r"digit_scenes is generated from MNIST: .*"
                                                   r"cnn-jax data import mnist --from PATH"):
        make(tmp_path, name="digit_scenes")


def test_names_that_are_not_generated_datasets_are_refused_in_one_line(mnist_dir):
    with pytest.raises(ConfigError, match="not a generated dataset"):
        generate_dataset("mnist", mnist_dir)
    with pytest.raises(ConfigError, match="is not key=value"):
        generate_dataset("digit_scenes/size=3", mnist_dir)
    with pytest.raises(ValueError, match="mixes class labels and cannot mix segmentation"):
        make(mnist_dir, augment={"mixup_alpha": 0.2})


def test_generating_on_first_use_keeps_a_copy_another_process_put_in_place(mnist_dir):
    name = "digit_scenes/train_size=8,test_size=4,seed=6"
    first = generate_dataset(name, mnist_dir)
    marker = prepare.dataset_path(get_dataset_spec(name), mnist_dir) / "marker"
    marker.write_text("the copy a reader holds")
    again = generate_dataset(name, mnist_dir, replace=False)
    assert again.target == first.target and not again.replaced and marker.is_file()


@pytest.mark.slow
def test_grain_worker_processes_give_the_same_target_batches(mnist_dir):
    augment = {"random_crop_padding": 4, "elastic_alpha": 8.0, "horizontal_flip": True}
    it = make(mnist_dir, augment=augment, cache=False, num_workers=2).train_batches(0, start_step=1)
    try:
        with_workers = [next(it) for _ in range(2)]
    finally:
        it.close()
    in_process = list(make(mnist_dir, augment=augment).train_batches(0))[1:3]
    for a, b in zip(with_workers, in_process, strict=True):
        assert all(np.array_equal(a[k], b[k]) for k in b)
