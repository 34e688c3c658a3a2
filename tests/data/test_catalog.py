"""Specification of cnn_jax.data.catalog and cnn_jax.data.prepare: the catalogue agrees with tfds
and with the real data, and a dataset that is missing fails fast with one line naming the fix."""

import shutil
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds
from data_helpers import import_mnist_small, mnist_small_arrays

from cnn_jax.data import catalog, formats, importer, prepare
from cnn_jax.data.catalog import DATASETS
from cnn_jax.data.prepare import ensure_prepared
from cnn_jax.errors import DataImportError, DataNotPreparedError


@pytest.fixture(scope="module")
def mnist_small(shared_data):
    return mnist_small_arrays(shared_data)


@pytest.fixture(scope="module")
def mnist_small_dir(tmp_path_factory, mnist_small):
    return import_mnist_small(tmp_path_factory, mnist_small)


@pytest.mark.parametrize("name", sorted(n for n, s in DATASETS.items() if s.origin == "tfds"))
def test_catalogue_entries_match_the_tfds_builders(name):
    spec = DATASETS[name]
    builder = tfds.builder(spec.tfds_name)  # the version tfds would generate today
    features = builder.info.features
    assert str(builder.info.version) == spec.tfds_version
    if spec.variable_size:  # photos of any size; image_shape is the training crop
        assert features[spec.image_key].shape == (None, None, 3)
        assert spec.image_shape == (224, 224, 3)
    else:
        assert features[spec.image_key].shape == spec.image_shape
    assert features[spec.label_key].num_classes == spec.num_classes
    assert len(spec.mean) == len(spec.std) == spec.image_shape[-1]
    assert len(spec.label_names) == (0 if name == "imagenet2012" else spec.num_classes)
    if spec.variable_size and spec.label_names:  # the sorted wnids, ImageFolder's class order
        assert tuple(features[spec.label_key].names) == spec.label_names == tuple(sorted(spec.label_names))


@pytest.mark.parametrize("name, mean, std", [("mnist", 0.1307, 0.3081), ("fashion_mnist", 0.2860, 0.3530)])
def test_normalisation_constants_are_the_training_set_statistics(shared_data, name, mean, std):
    with np.load(shared_data / f"{name}.npz") as z:
        x = z["x_train"].astype(np.float64) / 255.0
    assert DATASETS[name].mean == (mean,) and DATASETS[name].std == (std,)
    assert x.mean() == pytest.approx(mean, abs=1e-4)
    assert x.std() == pytest.approx(std, abs=1e-4)


def test_cifar100_superclass_table_gives_five_fine_classes_to_each_of_20_superclasses():
    table = formats.CIFAR100_FINE_TO_COARSE
    assert np.bincount(table, minlength=20).tolist() == [5] * 20
    names = dict(zip(catalog.CIFAR100_LABELS, (catalog.CIFAR100_COARSE_LABELS[c] for c in table), strict=True))
    assert names["apple"] == "fruit_and_vegetables" and names["whale"] == "aquatic_mammals"
    assert names["tractor"] == "vehicles_2" and names["bicycle"] == "vehicles_1"


def test_unknown_dataset_name_suggests_the_close_one():
    with pytest.raises(ValueError, match="did you mean 'cifar10'"):
        catalog.get_dataset_spec("cifar-10")


def test_default_data_dir_follows_TFDS_DATA_DIR(monkeypatch, tmp_path):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    assert catalog.default_data_dir() == str(tmp_path)
    monkeypatch.delenv("TFDS_DATA_DIR")
    assert catalog.default_data_dir().endswith("tensorflow_datasets")


def _one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_missing_dataset_on_an_offline_machine_names_the_import_command(monkeypatch, tmp_path):
    monkeypatch.setattr(prepare, "network_reachable", lambda url, timeout=3.0: False)
    with pytest.raises(DataNotPreparedError) as e:
        ensure_prepared("mnist", tmp_path, download=True)
    message = _one_line_error(e)
    assert f"not prepared in {tmp_path}" in message
    assert "offline" in message
    assert "`cnn-jax data import mnist --from PATH`" in message


def test_missing_dataset_online_without_tensorflow_names_the_tf_extra(monkeypatch, tmp_path):
    monkeypatch.setattr(prepare, "network_reachable", lambda url, timeout=3.0: True)
    monkeypatch.setattr(prepare, "tensorflow_installed", lambda: False)
    with pytest.raises(DataNotPreparedError) as e:
        ensure_prepared("cifar10", tmp_path)
    message = _one_line_error(e)
    assert "pip install 'cnn-jax[tf]'" in message and "cnn-jax data import cifar10" in message


def test_missing_dataset_with_download_off_names_the_import_command(tmp_path):
    with pytest.raises(DataNotPreparedError) as e:
        ensure_prepared("fashion_mnist", tmp_path, download=False)
    assert "data.download=False" in _one_line_error(e)
    assert "cnn-jax data import fashion_mnist --from PATH" in str(e.value)


def test_failed_download_is_reported_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(prepare, "network_reachable", lambda url, timeout=3.0: True)
    monkeypatch.setattr(prepare, "tensorflow_installed", lambda: True)

    def fail(self, **kwargs):
        assert kwargs["file_format"] == "array_record"
        raise ConnectionError("connection reset\nby peer")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", fail)
    with pytest.raises(DataNotPreparedError) as e:
        ensure_prepared("mnist", tmp_path)
    assert "downloading it failed (ConnectionError: connection reset)" in _one_line_error(e)


def test_connectivity_probe_answers_false_within_its_timeout():
    start = time.monotonic()
    assert not prepare.network_reachable("https://cnn-jax-test.invalid/x", timeout=1.0)
    assert time.monotonic() - start < 2.0


def test_prepared_dataset_is_used_without_any_network(monkeypatch, mnist_small_dir):
    def no_network(url, timeout=3.0):
        raise AssertionError("a prepared dataset must not probe the network")

    monkeypatch.setattr(prepare, "network_reachable", no_network)
    builder = ensure_prepared("mnist", mnist_small_dir, download=True)
    assert builder.info.splits["train"].num_examples == 600


def test_list_prepared_shows_imported_datasets_with_their_sizes_and_origin(mnist_small_dir, tmp_path):
    (line,) = prepare.list_prepared(mnist_small_dir)
    assert line.startswith("mnist") and "train 600, test 200" in line and "imported from" in line
    (empty,) = prepare.list_prepared(tmp_path)
    assert "no dataset" in empty and "cnn-jax data import" in empty


def test_a_dataset_prepared_as_tfrecord_names_the_fix(mnist_small_dir, tmp_path):
    shutil.copytree(mnist_small_dir / "mnist", tmp_path / "mnist")
    info = tmp_path / "mnist/3.0.1/dataset_info.json"
    info.write_text(info.read_text().replace('"array_record"', '"tfrecord"'))
    with pytest.raises(DataNotPreparedError) as e:
        ensure_prepared("mnist", tmp_path)
    assert "stored as tfrecord" in _one_line_error(e) and "cnn-jax data import mnist" in str(e.value)


# --------------------------------------------------------------------------------------------
# ImageNet-style datasets
# --------------------------------------------------------------------------------------------


def _no_network(url, timeout=3.0):
    raise AssertionError("ImageNet is prepared from local tars: no network probe")


def test_imagenet_not_prepared_says_in_one_line_that_it_needs_the_tars_and_tensorflow(monkeypatch, tmp_path):
    monkeypatch.setattr(prepare, "network_reachable", _no_network)
    monkeypatch.setattr(prepare, "tensorflow_installed", lambda: False)
    with pytest.raises(DataNotPreparedError) as e:
        ensure_prepared("imagenet2012", tmp_path)
    message = _one_line_error(e)
    assert message.startswith(f"dataset 'imagenet2012' is not prepared in {tmp_path}: ")
    assert (f"ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar (https://image-net.org/download-images) "
            f"placed in {tmp_path}/downloads/manual") in message
    assert "TensorFlow installed (`pip install 'cnn-jax[tf]'`)" in message
    assert "missing: the tars, TensorFlow" in message
    assert "data.name=folder:ROOT" in message


def test_imagenet_with_one_tar_names_the_one_that_is_missing(monkeypatch, tmp_path):
    monkeypatch.setattr(prepare, "tensorflow_installed", lambda: True)
    manual = tmp_path / "downloads" / "manual"
    manual.mkdir(parents=True)
    (manual / "ILSVRC2012_img_train.tar").write_bytes(b"")
    with pytest.raises(DataNotPreparedError) as e:
        ensure_prepared("imagenet2012", tmp_path)
    assert "missing: ILSVRC2012_img_val.tar (or" in _one_line_error(e)


def test_imagenet_with_its_tars_and_tensorflow_is_prepared_from_the_manual_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(prepare, "network_reachable", _no_network)
    monkeypatch.setattr(prepare, "tensorflow_installed", lambda: True)
    manual = tmp_path / "downloads" / "manual"
    manual.mkdir(parents=True)
    for name in ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"):
        (manual / name).write_bytes(b"")
    calls = []
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare",
                        lambda self, **kwargs: calls.append((self.name, kwargs)))
    ensure_prepared("imagenet2012", tmp_path)
    ((name, kwargs),) = calls
    assert name == "imagenet2012" and kwargs["file_format"] == "array_record"
    assert str(kwargs["download_config"].manual_dir) == str(manual)
    with pytest.raises(DataNotPreparedError, match=r"missing: data.download=True \(it is False\)"):
        ensure_prepared("imagenet2012", tmp_path, download=False)


def test_imagenette_offline_names_the_folder_alternative(monkeypatch, tmp_path):
    monkeypatch.setattr(prepare, "network_reachable", lambda url, timeout=3.0: False)
    with pytest.raises(DataNotPreparedError) as e:
        ensure_prepared("imagenette", tmp_path)
    message = _one_line_error(e)
    assert "offline" in message and "ROOT/train/<class>/" in message and "data.name=folder:ROOT" in message


def test_photo_datasets_are_read_in_place_not_imported(tmp_path):
    with pytest.raises(DataImportError, match="data.name=folder:ROOT"):
        importer.import_local("imagenette", tmp_path, tmp_path)


def test_unknown_dataset_error_mentions_folder_trees():
    with pytest.raises(ValueError, match="folder:ROOT for an ImageFolder tree"):
        catalog.get_dataset_spec("imagenet")


@pytest.mark.parametrize("name", sorted(n for n, s in DATASETS.items() if s.origin != "tfds"))
def test_datasets_without_a_tfds_builder_store_the_features_their_spec_promises(name):
    from cnn_jax.data.writer import dataset_features

    spec = DATASETS[name]
    features = dataset_features(spec)
    stored = {"segmentation", "instances", "boxes", "label", "difficult", "crowd", "saliency",
              "fixations"} & set(spec.targets)
    boxes = ("classes",) if "boxes" in stored else ()
    assert set(features.keys()) == {spec.image_key, *stored, *boxes}
    *frames, h, w, c = spec.image_shape
    if spec.variable_size:
        h, w = None, None
    # a clip is stored as its frames stacked vertically
    assert features[spec.image_key].shape == (h * frames[0] if frames else h, w, c)
    for key in {"segmentation", "instances", "fixations"} & stored:
        assert features[key].shape == (h, w, 1)
    if "saliency" in stored:
        assert features["saliency"].shape == (h, w) and features["saliency"].np_dtype == np.float32
    assert len(spec.label_names) == spec.num_classes == len(spec.class_names)
    assert spec.ignore_index == 255 and len(spec.mean) == len(spec.std) == c
    assert ("boxes" in spec.targets) == (spec.max_boxes > 0) == (spec.object_classes > 0)


def test_dense_datasets_count_pixel_classes_with_the_background_and_objects_without():
    scenes, single = DATASETS["digit_scenes"], DATASETS["digit_scenes_single"]
    assert (scenes.num_classes, scenes.object_classes) == (11, 10)
    assert scenes.label_names[:2] == ("background", "0")
    assert (single.num_classes, single.object_classes, single.targets[0]) == (10, 10, "label")
    voc = DATASETS["voc2012_segmentation"]
    assert voc.num_classes == 21
    assert voc.label_names[0] == "background" and voc.label_names[-1] == "tvmonitor"
    assert voc.eval_image_shape == (512, 512, 3) and voc.test_split == "validation"
    assert catalog.get_dataset_spec("voc2012_segmentation", 256).image_shape == (256, 256, 3)
    mnist = DATASETS["mnist"]
    assert mnist.targets == ("label",) and mnist.eval_image_shape == (28, 28, 1)
    zeros = DATASETS["digit_scenes"].zeros(2)
    assert {k: (v.shape, v.dtype.name) for k, v in zeros.items()} == {
        "image": ((2, 64, 64, 1), "uint8"), "segmentation": ((2, 64, 64), "uint8"),
        "boxes": ((2, 4, 4), "float32"), "classes": ((2, 4), "int32"), "box_mask": ((2, 4), "bool"),
        "instances": ((2, 64, 64), "uint8")}


def test_digit_scene_variants_are_named_by_options_and_stored_apart():
    spec = catalog.get_dataset_spec("digit_scenes/max_digits=6, canvas=96")
    assert spec.name == "digit_scenes/canvas=96,max_digits=6"  # canonical order
    assert spec.image_shape == (96, 96, 1) and spec.max_boxes == 6
    assert spec.tfds_name == ("digit_scenes/canvas96_digits1-6_height16-40_overlap30_train12000_"
                              "test2000_seed0")
    assert catalog.get_dataset_spec("digit_scenes/seed=0") == DATASETS["digit_scenes"]
    with pytest.raises(ValueError, match="key=value"):
        catalog.get_dataset_spec("digit_scenes/colour=red")


def test_generated_datasets_are_not_imported_and_say_how_to_generate_them(tmp_path):
    with pytest.raises(DataImportError, match="cnn-jax data generate digit_scenes"):
        importer.import_local("digit_scenes", tmp_path, tmp_path)
    assert "cnn-jax data generate digit_scenes_single" in prepare.import_hint("digit_scenes_single")
    assert prepare.import_hint("voc2012_segmentation") == ("run `cnn-jax data import "
                                                           "voc2012_segmentation --from PATH`")


def test_saliency_scene_and_clip_variants_are_named_by_options_and_stored_apart(tmp_path):
    spec = catalog.get_dataset_spec("search_scenes/jitter=1, grid=8")
    assert spec.name == "search_scenes/grid=8,jitter=1"  # canonical order
    assert spec.tfds_name.startswith("search_scenes/canvas64_grid8_min_odd1")
    assert (spec.image_shape, spec.targets, spec.num_classes) == ((64, 64, 3),
                                                                   ("saliency", "fixations"), 0)
    clips = catalog.get_dataset_spec("moving_mnist/frames=16")
    assert (clips.image_shape, clips.input_key, clips.image_key) == ((16, 64, 64, 1), "clip", "clip")
    assert clips.example_arrays() == {"clip": ((16, 64, 64, 1), np.uint8), "label": ((), np.int32)}
    assert catalog.get_dataset_spec("moving_mnist/seed=0") == DATASETS["moving_mnist"]
    assert catalog.get_dataset_spec("moving_mnist", 64) == DATASETS["moving_mnist"]
    with pytest.raises(ValueError, match="moving_mnist images are 20x64x64x1: set data.image_size=0"):
        catalog.get_dataset_spec("moving_mnist", 32)
    with pytest.raises(DataImportError, match="cnn-jax data generate search_scenes"):
        importer.import_local("search_scenes", tmp_path, tmp_path)
    assert prepare.import_hint("salicon") == "run `cnn-jax data import salicon --from PATH`"
    assert DATASETS["mnist"].input_key == "image"
