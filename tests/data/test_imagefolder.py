"""Specification of ImageNet-style input from ImageFolder trees ('folder:ROOT') of real photos:
classes sorted as torchvision's ImageFolder sorts them, fixed-size uint8 batches, evaluation =
resize 256 + center crop 224 exactly, random resized crops that are a function of
(seed, epoch, step), RGB out of grayscale photos, one-line errors naming the layout, and a
train+eval run of the trainer."""

import os
import shutil
from pathlib import Path

import ml_collections
import numpy as np
import pytest
from data_helpers import fullsize_photo, imagenette_files, photo_tree
from PIL import Image

from cnn_jax.data.catalog import get_dataset_spec
from cnn_jax.data.folder import ImageFolderError
from cnn_jax.data.pipeline import create_input_pipeline, dataset_spec_from_config

NETTE = ("n01440764", "n02102040", "n03000684")  # tench, English springer, chain saw
GRAY = ("n02096051", "n02676566", "n02692877", "n02749479")  # grayscale (mode L) full-size photos


def data_config(root, **overrides):
    c = ml_collections.ConfigDict({
        "name": f"folder:{root}", "data_dir": "", "download": False, "val_size": 0,
        "split_seed": 0, "train_subset": 0, "cache": False, "num_workers": 0,
        "image_size": 64, "eval_resize": 73,
        "augment": {"random_crop_padding": 0, "horizontal_flip": False, "random_resized_crop": True},
    })
    c.update(overrides)
    return c


def make(root, seed=0, batch_size=6, eval_batch_size=4, **overrides):
    return create_input_pipeline(data_config(root, **overrides), seed=seed, batch_size=batch_size,
                                 eval_batch_size=eval_batch_size)


@pytest.fixture(scope="module")
def nette_root(shared_data, tmp_path_factory):
    """3 Imagenette classes: 6 train and 3 val photos each (224x224 JPEGs, a few grayscale)."""
    root = tmp_path_factory.mktemp("nette")
    return photo_tree(root, {
        "train": {w: imagenette_files(shared_data, "train", w, 6) for w in NETTE},
        "val": {w: imagenette_files(shared_data, "val", w, 3) for w in NETTE},
    })


@pytest.fixture(scope="module")
def fullsize_root(shared_data, tmp_path_factory):
    """Full-size photos: train = tench and the 4 grayscale ones, val = tench (500x375) and the
    grayscale airship (350x156)."""
    root = tmp_path_factory.mktemp("fullsize")
    return photo_tree(root, {
        "train": {w: [fullsize_photo(shared_data, w)] for w in ("n01440764", *GRAY)},
        "val": {"n01440764": [fullsize_photo(shared_data, "n01440764")],
                "n02692877": [fullsize_photo(shared_data, "n02692877")]},
    })


def all_batches(pipe, epoch):
    return list(pipe.train_batches(epoch))


def same(a, b):
    return len(a) == len(b) and all(np.array_equal(x["image"], y["image"]) and np.array_equal(x["label"], y["label"])
                                    for x, y in zip(a, b, strict=True))


# --------------------------------------------------------------------------------------------
# Layout and classes
# --------------------------------------------------------------------------------------------


def test_classes_are_sorted_like_imagefolder_and_files_follow_in_sorted_walk_order(shared_data, tmp_path):
    photos = imagenette_files(shared_data, "val", "n01440764", 4)
    # Python string order, as ImageFolder: upper case before lower case, '10' before '9'.
    root = photo_tree(tmp_path, {"train": {"b": photos[:1], "a": photos[1:2], "C": photos[2:3], "10": photos[3:]},
                                 "val": {"a": photos[:1], "C": photos[1:2], "10": photos[2:3]}})
    (root / "train/b/nested").mkdir()
    shutil.copyfile(photos[3], root / "train/b/nested/z.JPEG")  # sub-folders count, as in ImageFolder
    (root / "train/b/README.txt").write_text("not an image")
    spec = get_dataset_spec(f"folder:{root}", 64)
    assert spec.label_names == ("10", "C", "a", "b")
    assert spec.num_classes == 4 and spec.test_split == "val"
    pipe = make(root, batch_size=5)
    assert (pipe.num_train, pipe.num_test) == (5, 3)
    labels = np.concatenate([b["label"][b["mask"]] for b in pipe.eval_batches("test")])
    assert labels.tolist() == [0, 1, 2]  # val/10, val/C, val/a in class order
    assert sorted(next(pipe.train_batches(0))["label"].tolist()) == [0, 1, 2, 3, 3]


def test_val_is_the_test_split_unless_there_is_a_test_folder(nette_root, tmp_path):
    assert make(nette_root).spec.test_split == "val"
    root = tmp_path / "tree"
    shutil.copytree(nette_root, root)
    shutil.copytree(root / "val" / NETTE[0], root / "test" / NETTE[0])
    pipe = make(root)
    assert pipe.spec.test_split == "test" and pipe.num_test == 3


def test_specs_of_imagenet_style_datasets_use_the_crop_size_and_imagenet_statistics(nette_root):
    spec = get_dataset_spec(f"folder:{nette_root}")
    assert spec.image_shape == (224, 224, 3) and spec.variable_size
    assert spec.mean == (0.485, 0.456, 0.406) and spec.std == (0.229, 0.224, 0.225)
    assert get_dataset_spec(f"folder:{nette_root}", 160).image_shape == (160, 160, 3)
    assert get_dataset_spec("imagenet2012").image_shape == (224, 224, 3)
    assert get_dataset_spec("imagenet2012", 128).num_classes == 1000


@pytest.mark.parametrize("overrides, message", [
    ({"eval_resize": 60}, "data.eval_resize=60 is smaller than the 64x64 crop"),
    ({"image_size": -1}, "must not be negative"),
    ({"name": "mnist"}, "data.image_size=64 applies to ImageNet-style datasets only"),
    ({"name": "mnist", "image_size": 0}, "random_resized_crop is for ImageNet-style photos"),
    ({"augment": {"random_resized_crops": True}}, "unknown augmentation option"),
])
def test_data_options_that_cannot_work_are_rejected_before_reading_data(nette_root, overrides, message):
    with pytest.raises(ValueError, match=message):
        dataset_spec_from_config(data_config(nette_root, **overrides))


@pytest.mark.parametrize("layout, message", [
    ({}, "has no train/ folder"),
    ({"train/a/x.JPEG": 1}, "has no val/ folder"),
    ({"train/x.JPEG": 1, "val/a/x.JPEG": 1}, "train/ holds no class folders"),
    ({"train/a/x.JPEG": 1, "train/b/notes.txt": 0, "val/a/x.JPEG": 1}, "train/b/ holds no images"),
    ({"train/a/x.JPEG": 1, "val/z/x.JPEG": 1}, "val/ has class folder(s) z that train/ lacks"),
    ({"train/a/x.JPEG": 1, "val/x.JPEG": 1}, "val/ holds no class folders"),
])
def test_empty_or_malformed_folders_fail_with_one_line_naming_the_layout(shared_data, tmp_path, layout, message):
    photo = fullsize_photo(shared_data, "n01440764")
    root = tmp_path / "root"
    root.mkdir()
    for rel, is_photo in layout.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        if is_photo:
            shutil.copyfile(photo, root / rel)
        else:
            (root / rel).write_text("x")
    with pytest.raises(ImageFolderError) as e:
        make(root)
    text = str(e.value)
    assert "\n" not in text and message in text
    assert "ROOT/train/<class>/<image> and ROOT/val/<class>/<image>" in text


def test_a_missing_folder_or_an_empty_name_is_reported(tmp_path):
    with pytest.raises(ImageFolderError, match="does not exist: expected ROOT/train/<class>/<image>"):
        get_dataset_spec(f"folder:{tmp_path / 'nowhere'}")
    with pytest.raises(ImageFolderError, match="names no folder"):
        get_dataset_spec("folder:")


def test_an_unreadable_image_is_named_in_the_error(nette_root, tmp_path):
    root = tmp_path / "tree"
    shutil.copytree(nette_root, root)
    bad = sorted((root / "val" / NETTE[0]).glob("*"))[0]
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=f"cannot decode image {bad}"):
        list(make(root).eval_batches("test"))


# --------------------------------------------------------------------------------------------
# Batches
# --------------------------------------------------------------------------------------------


def test_train_batches_are_uint8_crops_of_the_training_size(nette_root):
    pipe = make(nette_root, val_size=6, augment={"random_resized_crop": True, "horizontal_flip": True})
    assert (pipe.num_train, pipe.num_val, pipe.num_test, pipe.steps_per_epoch) == (12, 6, 9, 2)
    batches = all_batches(pipe, 0)
    assert len(batches) == 2
    for b in batches:
        assert b["image"].shape == (6, 64, 64, 3) and b["image"].dtype == np.uint8
        assert b["label"].shape == (6,) and b["label"].dtype == np.int32
        assert 0 <= b["label"].min() and b["label"].max() <= 2
    val = list(pipe.eval_batches("val"))
    assert [int(b["mask"].sum()) for b in val] == [4, 2] and val[1]["image"][2:].max() == 0


def test_eval_batches_are_resize_256_then_center_crop_224_exactly(fullsize_root, shared_data):
    pipe = make(fullsize_root, image_size=224, eval_resize=256, eval_batch_size=2)
    (batch,) = list(pipe.eval_batches("test"))
    assert batch["image"].shape == (2, 224, 224, 3) and batch["label"].tolist() == [0, 3]
    # Tench, 500x375: shorter side to 256 -> 341x256 (341.33 truncated), crop offsets
    # (round(117/2), round(32/2)) = (58, 16).
    with Image.open(fullsize_photo(shared_data, "n01440764")) as im:
        expected = np.asarray(im.convert("RGB").resize((341, 256), Image.BILINEAR).crop((58, 16, 282, 240)))
    assert np.array_equal(batch["image"][0], expected)
    # Airship, 350x156 grayscale: upscaled to 574x256, crop from x = round(350/2) = 175.
    with Image.open(fullsize_photo(shared_data, "n02692877")) as im:
        assert im.mode == "L"
        expected = np.asarray(im.convert("RGB").resize((574, 256), Image.BILINEAR).crop((175, 16, 399, 240)))
    assert np.array_equal(batch["image"][1], expected)


def test_random_resized_crops_are_a_function_of_seed_epoch_and_step(nette_root):
    a, b = make(nette_root, seed=1), make(nette_root, seed=1)
    epoch2 = all_batches(a, 2)
    assert len(epoch2) == 3
    assert same(epoch2, all_batches(b, 2))
    assert same(epoch2[1:], list(b.train_batches(2, start_step=1)))  # resumed mid-epoch
    assert same([a.train_batch(2, 2)], epoch2[2:])
    assert not same(epoch2, all_batches(make(nette_root, seed=2), 2))


def test_every_photo_is_cropped_differently_in_each_epoch(nette_root):
    # One batch holds the whole training set, so each epoch shows every photo once.
    def crops(pipe, epoch):
        (batch,) = all_batches(pipe, epoch)
        return {x.tobytes() for x in batch["image"]}

    fixed = make(nette_root, batch_size=18, augment={"random_resized_crop": False})
    assert crops(fixed, 0) == crops(fixed, 1)  # same photos, center crops: the same set
    rrc = make(nette_root, batch_size=18)
    first, second = crops(rrc, 0), crops(rrc, 1)
    assert len(first) == 18 and not first & second


def test_flip_is_applied_to_the_crop_as_a_batch_op(nette_root):
    plain = make(nette_root, augment={"random_resized_crop": False}).train_batch(0, 0)
    flipped = make(nette_root, augment={"random_resized_crop": False, "horizontal_flip": True}).train_batch(0, 0)
    assert np.array_equal(plain["label"], flipped["label"])
    mirrored = [np.array_equal(f, p[:, ::-1]) and not np.array_equal(f, p)
                for f, p in zip(flipped["image"], plain["image"], strict=True)]
    kept = [np.array_equal(f, p) for f, p in zip(flipped["image"], plain["image"], strict=True)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True)) and 0 < sum(mirrored) < 6


def test_grayscale_photos_come_out_rgb_with_equal_channels(shared_data, tmp_path):
    gray = {w: [fullsize_photo(shared_data, w)] for w in GRAY}
    pipe = make(photo_tree(tmp_path, {"train": gray, "val": gray}), batch_size=4)
    (batch,) = all_batches(pipe, 0)
    (evaluated,) = list(pipe.eval_batches("test"))
    for x in (batch["image"], evaluated["image"]):
        assert x.shape == (4, 64, 64, 3)
        assert np.array_equal(x[..., 0], x[..., 1]) and np.array_equal(x[..., 1], x[..., 2])
        assert x.std() > 10  # real content, not a blank image


def test_cached_photos_give_the_same_eval_batches_and_valid_train_batches(nette_root):
    cached, files = make(nette_root, cache=True, val_size=3), make(nette_root, cache=False, val_size=3)
    for split in ("val", "test"):
        for x, y in zip(cached.eval_batches(split), files.eval_batches(split), strict=True):
            assert np.array_equal(x["image"], y["image"]) and np.array_equal(x["mask"], y["mask"])
    batch = cached.train_batch(0, 0)
    assert batch["image"].shape == (6, 64, 64, 3)
    assert np.array_equal(batch["label"], files.train_batch(0, 0)["label"])  # same order


def test_processes_each_get_their_slice_of_every_global_batch(nette_root):
    cfg = data_config(nette_root)
    whole = create_input_pipeline(cfg, seed=3, batch_size=6, eval_batch_size=4)
    parts = [create_input_pipeline(cfg, seed=3, batch_size=6, eval_batch_size=4, process_index=i,
                                   process_count=2) for i in range(2)]
    for step in range(3):
        joined = np.concatenate([p.train_batch(1, step)["image"] for p in parts])
        assert np.array_equal(joined, whole.train_batch(1, step)["image"])  # crops too
    evals = [list(p.eval_batches("test")) for p in parts]
    assert len(evals[0]) == len(evals[1]) == 3
    assert sum(int(b["mask"].sum()) for e in evals for b in e) == 9


def test_grain_worker_processes_give_the_batches_threads_give(nette_root):
    options = {"augment": {"random_resized_crop": True, "horizontal_flip": True}}
    it = make(nette_root, num_workers=2, **options).train_batches(1, start_step=1)
    try:
        with_workers = list(it)
    finally:
        it.close()
    assert same(with_workers, all_batches(make(nette_root, **options), 1)[1:])


# --------------------------------------------------------------------------------------------
# The trainer on a folder dataset
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_trainer_trains_and_evaluates_a_resnet18_on_a_folder_dataset(nette_root, tmp_path):
    from cnn_jax.config import load_config
    from cnn_jax.training.loop import train_and_evaluate

    config = load_config(Path(__file__).resolve().parents[2] / "configs/mnist_lenet5.py", [
        f"data.name=folder:{nette_root}", "data.image_size=64", "data.eval_resize=73", "data.val_size=6",
        "data.cache=False", "data.augment.random_resized_crop=true", "data.augment.horizontal_flip=true",
        "model.name=resnet18", "num_epochs=1", "batch_size=6", "eval_batch_size=6",
        "optimizer.schedule=constant", "optimizer.lr=0.01", "progress_bar=false", "log_every_steps=1",
    ])
    results = train_and_evaluate(config, tmp_path / "run")
    assert results["status"] == "finished" and results["steps"] == 2
    assert results["dataset"] == f"folder:{nette_root}"
    assert results["test"]["count"] == 9  # every val photo evaluated once, padding masked
    assert 0.0 <= results["test"]["accuracy"] <= 1.0 and np.isfinite(results["test"]["loss"])
    assert os.path.exists(tmp_path / "run" / "results.json")
