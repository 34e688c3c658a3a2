"""Specification of the generated saliency scenes and Moving MNIST clips read by the pipeline:
generated on first use (scenes from nothing, clips from the imported MNIST, train clips from
training digits only), stored exactly as rendered, batches that keep the contract through
padding, augmentation and processes, and classification batches as they were."""

import json

import numpy as np
import pytest
from data_helpers import (
    assert_processes_split_batches,
    data_config,
    eval_examples,
    import_mnist_small,
    npz_slice,
)

from cnn_jax.data import data_main_generate, prepare
from cnn_jax.data.catalog import generated_params, get_dataset_spec
from cnn_jax.data.moving_mnist import render_clips
from cnn_jax.data.pipeline import create_input_pipeline
from cnn_jax.data.scenes import split_rng
from cnn_jax.data.search_scenes import render_search_scenes
from cnn_jax.errors import ConfigError

SCENES = "search_scenes/train_size=48,test_size=40"
CLIPS = "moving_mnist/train_size=32,test_size=20"
DIM = 200  # test digits are dimmed to at most this, so a clip shows which digits it holds


def dimmed_mnist(shared_data):
    arrays = npz_slice(shared_data / "mnist.npz", 300, 100)
    arrays["x_test"] = (arrays["x_test"].astype(np.int64) * DIM // 255).astype(np.uint8)
    return arrays


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory, shared_data):
    return import_mnist_small(tmp_path_factory, dimmed_mnist(shared_data))


def make(data_dir, name, batch_size=16, eval_batch_size=24, **overrides):
    return create_input_pipeline(data_config(data_dir, name, **overrides), seed=0,
                                 batch_size=batch_size, eval_batch_size=eval_batch_size)


# --------------------------------------------------------------------------------------------
# search_scenes
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scenes_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tfds")  # nothing imported: scenes need no source


def test_search_scenes_are_generated_from_nothing_and_stored_exactly_as_rendered(scenes_dir):
    pipe = make(scenes_dir, SCENES)
    spec = get_dataset_spec(SCENES)
    folder = prepare.dataset_path(spec, scenes_dir)
    record = json.loads((folder / prepare.IMPORT_RECORD).read_text())
    assert record["generated"] and record["counts"] == {"train": 48, "test": 40}
    assert record["source"] == "the seed alone"
    params = generated_params(SCENES)
    for split, part in (("test", eval_examples(pipe)),
                        ("train", pipe._train.gather(np.arange(48)))):
        rendered = render_search_scenes(part["image"].shape[0], params, split_rng(0, split))
        for key in ("image", "saliency", "fixations"):
            assert part[key].dtype == rendered[key].dtype
            assert np.array_equal(part[key], rendered[key]), (split, key)  # float32 bit for bit


def test_scene_batches_follow_the_contract_and_eval_padding_is_empty(scenes_dir):
    pipe = make(scenes_dir, SCENES)
    assert pipe.spec.targets == ("saliency", "fixations") and pipe.spec.input_key == "image"
    batch = pipe.train_batch(0, 1)
    assert {k: (v.shape, v.dtype) for k, v in batch.items()} == {
        "image": ((16, 64, 64, 3), np.uint8), "saliency": ((16, 64, 64), np.float32),
        "fixations": ((16, 64, 64), np.uint8)}
    assert (batch["saliency"].max(axis=(1, 2)) == 1).all() and batch["saliency"].min() >= 0
    assert set(np.unique(batch["fixations"])) == {0, 1}
    evals = list(pipe.eval_batches("test"))
    assert [int(b["mask"].sum()) for b in evals] == [24, 16]
    for key in ("image", "saliency", "fixations"):
        assert not evals[-1][key][16:].any(), key
    uncached = make(scenes_dir, SCENES, cache=False).train_batch(0, 1)
    assert all(np.array_equal(batch[k], uncached[k]) for k in batch)


def _move(plain, flip, dy, dx, padding):
    """`plain` flipped left-right (if flip), zero-padded and cropped back at (dy, dx)."""
    h, w = plain.shape[:2]
    padded = np.zeros((h + 2 * padding, w + 2 * padding, *plain.shape[2:]), plain.dtype)
    padded[padding:padding + h, padding:padding + w] = plain[:, ::-1] if flip else plain
    return padded[dy:dy + h, dx:dx + w]


def test_crops_and_flips_move_the_saliency_map_and_the_fixations_with_the_image(scenes_dir):
    augment = {"random_crop_padding": 4, "horizontal_flip": True}
    moved = make(scenes_dir, SCENES, augment=augment).train_batch(0, 2)
    plain = make(scenes_dir, SCENES).train_batch(0, 2)
    assert (plain["image"] > 0).all()  # the grey background tells the padding from the scene
    moves = [(f, dy, dx) for f in (False, True) for dy in range(9) for dx in range(9)]
    found = []
    for i in range(16):
        (move,) = [m for m in moves if np.array_equal(_move(plain["image"][i], *m, 4),
                                                      moved["image"][i])]
        found.append(move)
        for key in ("saliency", "fixations"):
            assert np.array_equal(_move(plain[key][i], *move, 4), moved[key][i]), (i, key)
    assert 0 < sum(f for f, _, _ in found) < 16 and len(set(found)) > 4


def test_warps_keep_the_saliency_map_in_range_and_mixing_is_refused(scenes_dir):
    batch = make(scenes_dir, SCENES, augment={"rotation": 30.0, "zoom": 0.2}).train_batch(0, 0)
    assert batch["saliency"].dtype == np.float32
    assert 0 <= batch["saliency"].min() and batch["saliency"].max() <= 1
    with pytest.raises(ConfigError, match="cannot mix saliency and fixations"):
        make(scenes_dir, SCENES, augment={"mixup_alpha": 0.2})


def test_processes_each_get_their_slice_of_every_saliency_batch(scenes_dir):
    cfg = data_config(scenes_dir, SCENES, augment={"random_crop_padding": 4, "rotation": 10.0,
                                                    "horizontal_flip": True})
    assert_processes_split_batches(cfg, step=1, eval_batch_size=24)


# --------------------------------------------------------------------------------------------
# moving_mnist
# --------------------------------------------------------------------------------------------


def test_clips_are_made_from_training_digits_for_train_and_test_digits_for_test(mnist_dir,
                                                                                shared_data):
    pipe = make(mnist_dir, CLIPS, batch_size=8)
    train = np.concatenate([b["clip"] for b in pipe.train_batches(0)])
    test = eval_examples(pipe)
    assert len(train) == 32 and len(test["clip"]) == 20
    assert test["clip"].max() <= DIM  # every test clip is made of the dimmed test digits
    assert (train.max(axis=(1, 2, 3, 4)) > DIM).all()
    rendered = render_clips(dimmed_mnist(shared_data)["x_test"], 20, generated_params(CLIPS),
                            split_rng(0, "test"))
    assert np.array_equal(test["clip"], rendered["clip"])
    assert np.array_equal(test["label"], rendered["label"])


def test_clip_batches_follow_the_contract_and_take_no_augmentation(mnist_dir):
    pipe = make(mnist_dir, CLIPS, batch_size=8)
    spec = pipe.spec
    assert (spec.input_key, spec.image_shape, spec.targets) == ("clip", (20, 64, 64, 1), ("label",))
    assert spec.num_classes == 8 and spec.label_names[0] == "east"
    batch = pipe.train_batch(0, 0)
    assert {k: (v.shape, v.dtype) for k, v in batch.items()} == {
        "clip": ((8, 20, 64, 64, 1), np.uint8), "label": ((8,), np.int32)}
    evals = list(pipe.eval_batches("test"))
    assert [int(b["mask"].sum()) for b in evals] == [20]
    assert not evals[0]["clip"][20:].any() and set(evals[0]) == {"clip", "label", "mask"}
    uncached = make(mnist_dir, CLIPS, batch_size=8, cache=False).train_batch(0, 0)
    assert all(np.array_equal(batch[k], uncached[k]) for k in batch)
    with pytest.raises(ConfigError, match="horizontal_flip=True augments images, and this "
                                          "dataset's input is 'clip': set data.augment."
                                          "horizontal_flip=False"):
        make(mnist_dir, CLIPS, augment={"horizontal_flip": True})
    with pytest.raises(ConfigError, match="data.augment.rotation=0"):
        make(mnist_dir, CLIPS, augment={"elastic_sigma": 4.0, "rotation": 5.0})
    halves = [create_input_pipeline(data_config(mnist_dir, CLIPS), seed=0, batch_size=8,
                                    eval_batch_size=24, process_index=i, process_count=2)
              for i in range(2)]
    for key in batch:
        assert np.array_equal(np.concatenate([h.train_batch(0, 0)[key] for h in halves]),
                              batch[key])


def test_generating_explicitly_says_where_the_data_came_from(mnist_dir, scenes_dir):
    line = data_main_generate("search_scenes/train_size=8,test_size=4", str(scenes_dir))
    assert line.startswith("generated search_scenes/train_size=8,test_size=4 into ")
    line = data_main_generate("moving_mnist/train_size=8,test_size=4", str(mnist_dir))
    assert line.startswith("generated moving_mnist/train_size=8,test_size=4 from MNIST into ")
    assert "train 8, test 4" in line


def test_classification_batches_keep_their_image_and_label_only(mnist_dir):
    pipe = make(mnist_dir, "mnist", batch_size=8, val_size=0)
    assert pipe.spec.input_key == "image" and pipe.spec.targets == ("label",)
    batch = pipe.train_batch(0, 0)
    assert {k: (v.shape, v.dtype) for k, v in batch.items()} == {
        "image": ((8, 28, 28, 1), np.uint8), "label": ((8,), np.int32)}
    assert set(next(iter(pipe.eval_batches("test")))) == {"image", "label", "mask"}


@pytest.mark.slow
def test_the_normalisation_constants_are_the_default_training_splits_statistics(shared_data):
    scenes = get_dataset_spec("search_scenes")
    images = render_search_scenes(4000, generated_params("search_scenes"), split_rng(0, "train"))
    pixels = images["image"].reshape(-1, 3) / 255.0
    np.testing.assert_allclose(pixels.mean(0), scenes.mean, atol=1e-4)
    np.testing.assert_allclose(pixels.std(0), scenes.std, atol=1e-4)
    with np.load(shared_data / "mnist.npz") as z:
        digits = z["x_train"]
    clips = render_clips(digits, 3000, generated_params("moving_mnist"), split_rng(0, "train"))
    frames = clips["clip"] / 255.0
    spec = get_dataset_spec("moving_mnist")
    np.testing.assert_allclose((frames.mean(), frames.std()), (*spec.mean, *spec.std), atol=1e-4)
