"""Specification of cnn_jax.data.pipeline: every batch is a pure function of (seed, epoch, step),
resuming mid-epoch reproduces the same batches, validation is a fixed held-out part of train, eval
batches are padded with a mask, processes split each global batch, and the cached path is fast."""

import time

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds
from data_helpers import import_mnist_small, mnist_small_arrays

from cnn_jax.data import cache, catalog, prepare
from cnn_jax.data.augment import Compose, build_augment
from cnn_jax.data.pipeline import InputPipeline, create_input_pipeline
from cnn_jax.data.sources import ArraySource
from cnn_jax.data.splits import split_train_val
from cnn_jax.errors import DataNotPreparedError


@pytest.fixture(scope="module")
def mnist_small(shared_data):
    return mnist_small_arrays(shared_data)


@pytest.fixture(scope="module")
def mnist_small_dir(tmp_path_factory, mnist_small):
    return import_mnist_small(tmp_path_factory, mnist_small)


def data_config(data_dir, **overrides):
    c = ml_collections.ConfigDict({
        "name": "mnist", "data_dir": str(data_dir), "download": False, "val_size": 100,
        "split_seed": 0, "train_subset": 0, "cache": True, "num_workers": 0,
        "augment": {"random_crop_padding": 0, "horizontal_flip": False},
    })
    c.update(overrides)
    return c


def make(data_dir, seed=0, batch_size=50, eval_batch_size=64, **overrides):
    return create_input_pipeline(data_config(data_dir, **overrides), seed=seed, batch_size=batch_size,
                                 eval_batch_size=eval_batch_size)


def epoch(pipe, e, start_step=0):
    return list(pipe.train_batches(e, start_step=start_step))


def same_batches(a, b):
    return len(a) == len(b) and all(
        np.array_equal(x["image"], y["image"]) and np.array_equal(x["label"], y["label"]) for x, y in zip(a, b, strict=True))


def test_sizes_follow_the_config(mnist_small_dir):
    pipe = make(mnist_small_dir)
    assert (pipe.num_train, pipe.num_val, pipe.num_test) == (500, 100, 200)
    assert pipe.steps_per_epoch == 10
    batch = next(pipe.train_batches(0))
    assert batch["image"].shape == (50, 28, 28, 1) and batch["image"].dtype == np.uint8
    assert batch["label"].shape == (50,) and batch["label"].dtype == np.int32
    assert pipe.spec.mean == (0.1307,)


def test_same_seed_gives_identical_batches_and_another_seed_does_not(mnist_small_dir):
    a, b = make(mnist_small_dir, seed=3), make(mnist_small_dir, seed=3)
    assert same_batches(epoch(a, 0), epoch(b, 0))
    assert not same_batches(epoch(a, 0), epoch(make(mnist_small_dir, seed=4), 0))


def test_each_epoch_is_a_new_order_of_the_same_examples(mnist_small_dir):
    pipe = make(mnist_small_dir)
    e0, e1 = epoch(pipe, 0), epoch(pipe, 1)
    assert not same_batches(e0, e1)

    def rows(batches):  # 500 = 10 x 50: every training example once per epoch
        return sorted(x.tobytes() for b in batches for x in b["image"])

    assert rows(e0) == rows(e1)
    assert len(set(rows(e0))) == 500


def test_resuming_at_start_step_gives_the_batches_an_uninterrupted_epoch_gives(mnist_small_dir):
    pipe = make(mnist_small_dir, seed=1, augment={"random_crop_padding": 2, "horizontal_flip": True})
    full = epoch(pipe, 2)
    resumed = epoch(make(mnist_small_dir, seed=1, augment={"random_crop_padding": 2, "horizontal_flip": True}), 2,
                    start_step=7)
    assert same_batches(full[7:], resumed)
    assert same_batches([pipe.train_batch(2, 4)], [full[4]])
    assert list(pipe.train_batches(2, start_step=pipe.steps_per_epoch)) == []


def test_classification_batches_are_the_permuted_examples_given_the_image_ops(mnist_small_dir,
                                                                             mnist_small):
    from cnn_jax.data.streams import augment_rng, shuffle_rng

    augment = {"random_crop_padding": 2, "rotation": 8.0, "elastic_alpha": 10.0,
               "horizontal_flip": True, "brightness": 0.2, "cutout": 6}
    pipe = make(mnist_small_dir, seed=4, augment=augment)
    train_idx, _ = split_train_val(600, 100, 0)
    order = shuffle_rng(4, 1).permutation(500)
    for step in (0, 7):
        rows = train_idx[order[step * 50:(step + 1) * 50]]
        batch = pipe.train_batch(1, step)
        assert set(batch) == {"image", "label"} and batch["label"].dtype == np.int32
        images = mnist_small["x_train"][rows][..., None]
        expected = build_augment(augment)(images, augment_rng(4, 1, step))
        assert np.array_equal(batch["image"], expected)
        assert np.array_equal(batch["label"], mnist_small["y_train"][rows])


def test_augmentation_changes_batches_reproducibly(mnist_small_dir):
    plain = make(mnist_small_dir).train_batch(0, 0)
    aug = make(mnist_small_dir, augment={"random_crop_padding": 4, "horizontal_flip": True})
    a, b = aug.train_batch(0, 0), aug.train_batch(0, 0)
    assert np.array_equal(a["image"], b["image"])
    assert np.array_equal(a["label"], plain["label"])  # same examples, same order
    changed = [not np.array_equal(x, y) for x, y in zip(a["image"], plain["image"], strict=True)]
    assert sum(changed) > 40
    assert not np.array_equal(aug.train_batch(0, 1)["image"], aug.train_batch(1, 1)["image"])


def test_validation_split_is_disjoint_from_train_and_fixed_by_split_seed_alone(mnist_small_dir, mnist_small):
    train, val = split_train_val(600, 100, split_seed=0)
    assert len(np.intersect1d(train, val)) == 0 and len(np.union1d(train, val)) == 600
    assert np.array_equal(split_train_val(600, 100, 0)[1], val)
    assert not np.array_equal(split_train_val(600, 100, 1)[1], val)

    for seed in (0, 5):  # the training seed does not move the validation examples
        pipe = make(mnist_small_dir, seed=seed)
        images = np.concatenate([b["image"][b["mask"]] for b in pipe.eval_batches("val")])
        assert np.array_equal(images[..., 0], mnist_small["x_train"][val])
    seen = {x.tobytes() for b in epoch(pipe, 0) for x in b["image"]}
    assert not seen & {x.tobytes() for x in mnist_small["x_train"][val][..., None]}


def test_train_split_evaluates_the_training_examples_once_in_order_unaugmented(mnist_small_dir,
                                                                                mnist_small):
    pipe = make(mnist_small_dir, augment={"random_crop_padding": 4, "horizontal_flip": True})
    train, _ = split_train_val(600, 100, split_seed=0)
    batches = list(pipe.eval_batches("train"))
    images = np.concatenate([b["image"][b["mask"]] for b in batches])
    assert np.array_equal(images[..., 0], mnist_small["x_train"][np.sort(train)])
    labels = np.concatenate([b["label"][b["mask"]] for b in batches])
    assert np.array_equal(labels, mnist_small["y_train"][np.sort(train)])
    with pytest.raises(ValueError, match="split must be 'train', 'val' or 'test'"):
        pipe.eval_batches("training")


def test_eval_batches_pad_the_last_batch_and_mask_the_padding(mnist_small_dir, mnist_small):
    batches = list(make(mnist_small_dir, eval_batch_size=64).eval_batches("test"))
    assert len(batches) == 4  # 200 = 3 x 64 + 8
    assert [int(b["mask"].sum()) for b in batches] == [64, 64, 64, 8]
    last = batches[-1]
    assert last["image"].shape == (64, 28, 28, 1) and not last["image"][8:].any()
    labels = np.concatenate([b["label"][b["mask"]] for b in batches])
    assert np.array_equal(labels, mnist_small["y_test"])  # test order is the dataset order


def test_no_validation_split_when_val_size_is_zero(mnist_small_dir):
    pipe = make(mnist_small_dir, val_size=0)
    assert (pipe.num_train, pipe.num_val) == (600, 0)
    with pytest.raises(ValueError, match="no validation split"):
        pipe.eval_batches("val")


def test_train_subset_keeps_the_first_examples_after_the_split(mnist_small_dir, mnist_small):
    pipe = make(mnist_small_dir, train_subset=120, batch_size=40)
    assert (pipe.num_train, pipe.steps_per_epoch) == (120, 3)
    train_idx, _ = split_train_val(600, 100, 0)
    seen = sorted(x.tobytes() for b in epoch(pipe, 0) for x in b["image"])
    assert seen == sorted(x.tobytes() for x in mnist_small["x_train"][train_idx[:120]][..., None])


def test_reading_records_without_the_cache_gives_the_same_batches(mnist_small_dir):
    cfg = {"augment": {"random_crop_padding": 2, "horizontal_flip": True}}
    assert same_batches(epoch(make(mnist_small_dir, cache=False, **cfg), 1)[:3],
                        epoch(make(mnist_small_dir, cache=True, **cfg), 1)[:3])
    a = list(make(mnist_small_dir, cache=False).eval_batches("test"))
    b = list(make(mnist_small_dir, cache=True).eval_batches("test"))
    assert all(np.array_equal(x["image"], y["image"]) for x, y in zip(a, b, strict=True))


def test_processes_each_get_their_slice_of_every_global_batch(mnist_small_dir):
    cfg = data_config(mnist_small_dir)
    whole = create_input_pipeline(cfg, seed=2, batch_size=50, eval_batch_size=60)
    parts = [create_input_pipeline(cfg, seed=2, batch_size=50, eval_batch_size=60, process_index=i,
                                   process_count=2) for i in range(2)]
    assert parts[0].local_batch_size == 25 and parts[0].steps_per_epoch == whole.steps_per_epoch
    for step in (0, 9):
        joined = np.concatenate([p.train_batch(1, step)["label"] for p in parts])
        assert np.array_equal(joined, whole.train_batch(1, step)["label"])
    # Eval: the same number of batches everywhere, the masks together cover each example once.
    evals = [list(p.eval_batches("test")) for p in parts]
    assert len(evals[0]) == len(evals[1]) == 4
    assert sum(int(b["mask"].sum()) for e in evals for b in e) == 200
    labels = np.concatenate([np.concatenate([e[k]["label"][e[k]["mask"]] for e in evals]) for k in range(4)])
    assert np.array_equal(labels, np.concatenate([b["label"][b["mask"]] for b in whole.eval_batches("test")]))


def test_batch_sizes_must_split_over_processes(mnist_small_dir):
    with pytest.raises(ValueError, match="multiple of the 4 processes"):
        create_input_pipeline(data_config(mnist_small_dir), seed=0, batch_size=50, eval_batch_size=64,
                              process_index=0, process_count=4)


def test_decoded_split_is_cached_on_disk_and_reused(tmp_path, mnist_small, monkeypatch):
    from cnn_jax.data import import_local

    np.savez(tmp_path / "m.npz", **{k: v[:120] for k, v in mnist_small.items()})
    import_local("mnist", tmp_path / "m.npz", tmp_path / "tfds")
    first = make(tmp_path / "tfds", val_size=20, batch_size=20)
    assert (tmp_path / "tfds/mnist/3.0.1/cnn_jax_cache/train.npz").is_file()

    def no_decoding(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(cache, "decode_all", no_decoding)
    second = make(tmp_path / "tfds", val_size=20, batch_size=20)
    assert same_batches(epoch(first, 0), epoch(second, 0))


def test_missing_dataset_offline_fails_with_the_import_command(tmp_path, monkeypatch):
    monkeypatch.setattr(prepare, "network_reachable", lambda url, timeout=3.0: False)
    with pytest.raises(DataNotPreparedError, match="cnn-jax data import cifar10 --from PATH"):
        make(tmp_path, name="cifar10", download=True)


def test_unknown_data_options_are_rejected(mnist_small_dir):
    with pytest.raises(ValueError, match="unknown data option"):
        make(mnist_small_dir, shuffle_buffer=10)


def test_pipeline_runs_on_tfds_mock_data(tmp_path):
    with tfds.testing.mock_data(num_examples=64):
        pipe = make(tmp_path, name="cifar10", val_size=16, batch_size=16, eval_batch_size=24,
                    augment={"random_crop_padding": 4, "horizontal_flip": True})
        assert (pipe.num_train, pipe.num_val, pipe.num_test, pipe.steps_per_epoch) == (48, 16, 64, 3)
        batches = epoch(pipe, 0)
        evals = list(pipe.eval_batches("test"))
    assert len(batches) == 3 and batches[0]["image"].shape == (16, 32, 32, 3)
    assert all(0 <= b["label"].min() and b["label"].max() < 10 for b in batches)
    assert [int(b["mask"].sum()) for b in evals] == [24, 24, 16]


def test_cached_train_iterator_is_fast(capsys):
    # A full MNIST-sized epoch from memory with crop + flip, through Grain, on one core.
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (60_000, 28, 28, 1), dtype=np.uint8)
    source = ArraySource({"image": images, "label": rng.integers(0, 10, 60_000).astype(np.int32)},
                         np.arange(60_000))
    aug = build_augment({"random_crop_padding": 2, "horizontal_flip": True})
    pipe = InputPipeline(catalog.DATASETS["mnist"], source, None, source, seed=0, batch_size=128,
                         eval_batch_size=1000, process_index=0, process_count=1, augment=aug,
                         cached=True, num_workers=0)
    for plain_or_aug in (Compose(), aug):
        pipe.augment = plain_or_aug
        start = time.perf_counter()
        n = sum(len(b["label"]) for b in pipe.train_batches(0))
        rate = n / (time.perf_counter() - start)
        with capsys.disabled():
            print(f"\ncached MNIST-size train iterator ({'crop+flip' if plain_or_aug else 'no augmentation'}): "
                  f"{rate:,.0f} images/s")
        assert rate > 50_000


MNIST_DISTORTIONS = {"rotation": 10.0, "translate": 0.1, "zoom": 0.1, "shear": 10.0,
                     "elastic_alpha": 34.0, "elastic_sigma": 4.0}


def test_mixing_puts_targets_in_every_train_batch_and_none_in_eval_batches(mnist_small_dir):
    pipe = make(mnist_small_dir, augment={"mixup_alpha": 0.4, "cutmix_alpha": 1.0})
    plain = make(mnist_small_dir)
    assert pipe.train_targets and not plain.train_targets
    batches = epoch(pipe, 0)
    for batch, unmixed in zip(batches, epoch(plain, 0), strict=True):
        t = batch["targets"]
        assert t.shape == (50, 10) and t.dtype == np.float32 and np.allclose(t.sum(1), 1)
        assert batch["label"].dtype == np.int32 and np.array_equal(batch["label"], t.argmax(1))
        # the own label keeps at least half the weight (lambda is the larger share or the other
        # image's label becomes 'label')
        own = t[np.arange(50), unmixed["label"]]
        assert np.all((own >= 0.5 - 1e-6) | (batch["label"] != unmixed["label"]))
    assert sum(not np.allclose(b["targets"].max(1), 1) for b in batches) >= 5  # real mixing
    assert all("targets" not in b for b in pipe.eval_batches("test"))
    assert "targets" not in next(plain.train_batches(0))


def test_distortions_and_mixing_are_a_pure_function_of_seed_epoch_and_step(mnist_small_dir):
    augment = {**MNIST_DISTORTIONS, "cutmix_alpha": 1.0}
    pipe = make(mnist_small_dir, seed=1, augment=augment)
    full = epoch(pipe, 2)
    resumed = epoch(make(mnist_small_dir, seed=1, augment=augment), 2, start_step=6)
    assert same_batches(full[6:], resumed)
    assert all(np.array_equal(a["targets"], b["targets"]) for a, b in zip(full[6:], resumed, strict=True))
    assert not same_batches(full, epoch(make(mnist_small_dir, seed=2, augment=augment), 2))
    plain = epoch(make(mnist_small_dir, seed=1), 2)
    assert all((a["image"] != b["image"]).mean() > 0.05 for a, b in zip(full, plain, strict=True))


@pytest.mark.slow
def test_grain_worker_processes_give_the_same_batches(mnist_small_dir):
    cfg = {"augment": {"random_crop_padding": 2, "horizontal_flip": True, **MNIST_DISTORTIONS,
                       "brightness": 0.3, "cutout": 8, "mixup_alpha": 0.4}}
    it = make(mnist_small_dir, cache=False, num_workers=2, **cfg).train_batches(1, start_step=2)
    try:
        with_workers = [next(it) for _ in range(4)]
    finally:
        it.close()
    assert same_batches(with_workers, epoch(make(mnist_small_dir, **cfg), 1)[2:6])


@pytest.mark.parametrize("name, num_classes", [("imagenette", 10), ("imagenet2012", 1000)])
def test_imagenet_style_tfds_datasets_give_fixed_size_crops_of_photos_of_any_size(tmp_path, name, num_classes):
    # tfds' mock photos have random sizes; the pipeline crops every one to data.image_size.
    with tfds.testing.mock_data(num_examples=40):
        pipe = make(tmp_path, name=name, cache=False, val_size=8, batch_size=8, eval_batch_size=16,
                    image_size=48, eval_resize=55,
                    augment={"random_resized_crop": True, "horizontal_flip": True})
        assert pipe.spec.image_shape == (48, 48, 3) and pipe.spec.num_classes == num_classes
        assert (pipe.num_train, pipe.num_val, pipe.num_test, pipe.steps_per_epoch) == (32, 8, 40, 4)
        batch = pipe.train_batch(1, 2)
        again = list(pipe.train_batches(1, start_step=2))[0]
        evals = list(pipe.eval_batches("test"))
    assert batch["image"].shape == (8, 48, 48, 3) and batch["image"].dtype == np.uint8
    assert np.array_equal(batch["image"], again["image"])
    assert all(0 <= b["label"].min() and b["label"].max() < num_classes for b in evals)
    assert [int(b["mask"].sum()) for b in evals] == [16, 16, 8]


def test_photo_batches_get_the_batch_ops_and_mixing_too(tmp_path):
    with tfds.testing.mock_data(num_examples=24):
        augment = {"random_resized_crop": True, "saturation": 0.4, "cutout": 16, "cutmix_alpha": 1.0}
        pipe = make(tmp_path, name="imagenette", cache=False, val_size=8, batch_size=8,
                    eval_batch_size=8, image_size=48, eval_resize=55, augment=augment)
        batch, again = pipe.train_batch(0, 1), list(pipe.train_batches(0, start_step=1))[0]
        plain = make(tmp_path, name="imagenette", cache=False, val_size=8, batch_size=8,
                     eval_batch_size=8, image_size=48, eval_resize=55,
                     augment={"random_resized_crop": True}).train_batch(0, 1)
    assert batch["targets"].shape == (8, 10) and np.allclose(batch["targets"].sum(1), 1)
    assert np.array_equal(batch["image"], again["image"]) and np.array_equal(batch["targets"], again["targets"])
    assert not np.array_equal(batch["image"], plain["image"])
