"""Specification of the offline import (importer.import_local): every accepted format round-trips
pixels and labels exactly into a tfds dataset with tfds' own features, bad input fails in one line
without leaving anything tfds would take for a prepared dataset, and pickles cannot run code."""

import io
import json
import os
import pickle
import tarfile

import numpy as np
import pytest
import tensorflow_datasets as tfds
from data_helpers import jpeg_npz_slice, mnist_small_arrays, npz_slice, write_mnist_idx_folder
from PIL import Image

from cnn_jax.data import catalog, formats, prepare
from cnn_jax.data.importer import data_main_import, import_local
from cnn_jax.errors import DataImportError, DataNotPreparedError


@pytest.fixture(scope="module")
def mnist_small(shared_data):
    return mnist_small_arrays(shared_data)


def read_back(name, data_dir, split):
    """All examples of a split as tfds.data_source returns them, stacked."""
    source = tfds.data_source(name, split=split, data_dir=str(data_dir), download=False)
    records = [source[i] for i in range(len(source))]
    return {k: np.stack([np.asarray(r[k]) for r in records]) for k in records[0]}


def assert_nothing_prepared(name, data_dir):
    assert not prepare.tfds_builder(name, data_dir).is_prepared()
    leftovers = [p for p in os.listdir(data_dir) if p.startswith(".import-")] if data_dir.exists() else []
    assert not leftovers


# --------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False], ids=["gz", "raw"])
def test_mnist_idx_files_round_trip_exactly(tmp_path, mnist_small, compress):
    folder = write_mnist_idx_folder(tmp_path / "idx", mnist_small, compress)
    counts = import_local("mnist", folder, tmp_path / "tfds")
    assert counts == {"train": 600, "test": 200}
    for split in ("train", "test"):
        got = read_back("mnist", tmp_path / "tfds", split)
        assert got["image"].shape == (counts[split], 28, 28, 1)
        assert np.array_equal(got["image"][..., 0], mnist_small[f"x_{split}"])
        assert np.array_equal(got["label"], mnist_small[f"y_{split}"])


def test_mnist_import_writes_tfds_own_features_and_version(tmp_path, mnist_small):
    np.savez(tmp_path / "m.npz", **mnist_small)
    import_local("mnist", tmp_path / "m.npz", tmp_path / "tfds")
    builder = tfds.builder("mnist", data_dir=str(tmp_path / "tfds"))
    assert builder.is_prepared() and str(builder.info.version) == "3.0.1"
    assert builder.info.features.to_json() == tfds.builder("mnist").info.features.to_json()
    assert sorted(builder.info.splits) == ["test", "train"]


def test_shared_mnist_and_fashion_arrays_are_the_canonical_idx_bytes(shared_data):
    for name in ("mnist", "fashion_mnist"):
        with np.load(shared_data / f"{name}.npz") as z:
            assert formats.idx_md5(z["x_test"]) == formats.CANONICAL_IDX_MD5[name]["test_images"]
            assert formats.idx_md5(z["y_train"]) == formats.CANONICAL_IDX_MD5[name]["train_labels"]


def test_fashion_mnist_npz_slice_keeps_pixels_labels_and_class_names(tmp_path, shared_data):
    arrays = npz_slice(shared_data / "fashion_mnist.npz", 300, 100)
    np.savez(tmp_path / "fashion_mnist.npz", **arrays)
    # A folder holding <name>.npz is accepted too (e.g. --from shared/data).
    summary = data_main_import("fashion_mnist", str(tmp_path), str(tmp_path / "tfds"))
    assert "train 300, test 100" in summary and "not identical to the canonical" in summary
    got = read_back("fashion_mnist", tmp_path / "tfds", "test")
    assert np.array_equal(got["image"][..., 0], arrays["x_test"])
    assert np.bincount(got["label"], minlength=10).tolist() == np.bincount(arrays["y_test"], minlength=10).tolist()
    builder = tfds.builder("fashion_mnist", data_dir=str(tmp_path / "tfds"))
    assert builder.info.features["label"].names[0] == "T-shirt/top"


@pytest.mark.slow
def test_full_mnist_import_is_verified_against_the_canonical_files(tmp_path, shared_data):
    summary = data_main_import("mnist", str(shared_data / "mnist.npz"), str(tmp_path))
    assert "train 60000, test 10000" in summary
    assert "verified byte-identical to the canonical IDX files" in summary
    labels = read_back("mnist", tmp_path, "test")["label"]
    # Histogram from shared/data/README.md (the true MNIST test counts).
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# --------------------------------------------------------------------------------------------
# CIFAR-10 JPEG npz (shared/data/cifar10_jpeg.npz layout)
# --------------------------------------------------------------------------------------------


def _pil_decode(blob, offsets):
    return np.stack([np.asarray(Image.open(io.BytesIO(blob[offsets[i]:offsets[i + 1]].tobytes())).convert("RGB"))
                     for i in range(len(offsets) - 1)])


def test_cifar10_jpeg_npz_slice_round_trips_decoded_pixels_and_restores_test_order(tmp_path, shared_data):
    arrays = jpeg_npz_slice(shared_data / "cifar10_jpeg.npz", 40, 30)
    src = tmp_path / "src"
    src.mkdir()
    np.savez(src / "cifar10_jpeg.npz", **arrays)
    perm = np.random.default_rng(1).permutation(30)
    np.savez(src / "cifar10_jpeg_test_order.npz", test_perm=perm, y_test_original=arrays["y_test"][perm])

    summary = data_main_import("cifar10", str(src / "cifar10_jpeg.npz"), str(tmp_path / "tfds"))
    assert "JPEG-degraded" in summary and "original order" in summary

    train = read_back("cifar10", tmp_path / "tfds", "train")
    assert np.array_equal(train["image"], _pil_decode(arrays["train_jpeg"], arrays["train_offsets"]))
    assert np.array_equal(train["label"], arrays["y_train"])
    assert train["id"][3] == b"train_00003"
    test = read_back("cifar10", tmp_path / "tfds", "test")
    assert np.array_equal(test["image"], _pil_decode(arrays["test_jpeg"], arrays["test_offsets"])[perm])
    assert np.array_equal(test["label"], arrays["y_test"][perm])
    assert np.bincount(test["label"], minlength=10).tolist() == np.bincount(arrays["y_test"], minlength=10).tolist()

    builder = tfds.builder("cifar10", data_dir=str(tmp_path / "tfds"))
    assert builder.info.features["label"].names[:2] == ["airplane", "automobile"]
    assert json.loads((tmp_path / "tfds/cifar10/3.0.2/cnn_jax_import.json").read_text())["lossy"] is True


@pytest.mark.slow
def test_full_cifar10_jpeg_import_gives_the_documented_pixels_in_the_original_test_order(tmp_path, shared_data):
    import hashlib

    import_local("cifar10", shared_data / "cifar10_jpeg.npz", tmp_path)
    test = read_back("cifar10", tmp_path, "test")
    # sha256 values from shared/data/README.md (decoded with Pillow 13, test set reordered).
    assert hashlib.sha256(test["image"].tobytes()).hexdigest() == \
        "b7018a062865e9348a704e72416eb53c816b43cc8ac42ab43276a2b967508ab6"
    assert test["label"][:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    train = read_back("cifar10", tmp_path, "train")
    assert hashlib.sha256(train["image"].tobytes()).hexdigest() == \
        "5aaf8a2cf2e577ff4dbb15e4f368840fab5aca1812bcc69682005f8dc661d466"


def test_test_order_file_of_another_dataset_is_refused(tmp_path, shared_data):
    arrays = jpeg_npz_slice(shared_data / "cifar10_jpeg.npz", 10, 10)
    np.savez(tmp_path / "c.npz", **arrays)
    np.savez(tmp_path / "c_test_order.npz", test_perm=np.arange(12))
    with pytest.raises(DataImportError, match="not a permutation of the 10 test examples"):
        import_local("cifar10", tmp_path / "c.npz", tmp_path / "tfds")
    assert_nothing_prepared("cifar10", tmp_path / "tfds")


# --------------------------------------------------------------------------------------------
# CIFAR python / binary batches (made here with the documented layout)
# --------------------------------------------------------------------------------------------


def _cifar_arrays(n, classes, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, classes, n)


def _rows(images):
    return images.transpose(0, 3, 1, 2).reshape(len(images), 3072)  # R plane, G plane, B plane


def make_cifar10_python(folder, protocol=pickle.DEFAULT_PROTOCOL):
    folder.mkdir(parents=True)
    x, y = _cifar_arrays(5 * 4 + 6, 10, 0)
    for b in range(5):
        sl = slice(4 * b, 4 * b + 4)
        batch = {b"batch_label": b"training batch", b"labels": y[sl].tolist(), b"data": _rows(x[sl]),
                 b"filenames": [b"f.png"] * 4}
        (folder / f"data_batch_{b + 1}").write_bytes(pickle.dumps(batch, protocol=protocol))
    test = {b"labels": y[20:].tolist(), b"data": _rows(x[20:])}
    (folder / "test_batch").write_bytes(pickle.dumps(test, protocol=protocol))
    meta = {b"label_names": [n.encode() for n in catalog.CIFAR10_LABELS]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    return x, y


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar10_python_batches_round_trip(tmp_path, protocol):
    x, y = make_cifar10_python(tmp_path / "cifar-10-batches-py", protocol)
    # The folder above cifar-10-batches-py is accepted as well as the folder itself.
    assert import_local("cifar10", tmp_path, tmp_path / "tfds") == {"train": 20, "test": 6}
    train = read_back("cifar10", tmp_path / "tfds", "train")
    assert np.array_equal(train["image"], x[:20]) and np.array_equal(train["label"], y[:20])
    test = read_back("cifar10", tmp_path / "tfds", "test")
    assert np.array_equal(test["image"], x[20:]) and test["id"].tolist()[-1] == b"test_00005"


def test_cifar10_python_tar_gz_is_read_without_extracting(tmp_path):
    x, y = make_cifar10_python(tmp_path / "cifar-10-batches-py")
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    import_local("cifar10", tmp_path / "cifar-10-python.tar.gz", tmp_path / "tfds")
    assert np.array_equal(read_back("cifar10", tmp_path / "tfds", "test")["label"], y[20:])


def test_cifar10_binary_batches_round_trip(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    x, y = _cifar_arrays(5 * 3 + 4, 10, 1)
    records = np.concatenate([y[:, None].astype(np.uint8), _rows(x)], axis=1)
    for b in range(5):
        (folder / f"data_batch_{b + 1}.bin").write_bytes(records[3 * b:3 * b + 3].tobytes())
    (folder / "test_batch.bin").write_bytes(records[15:].tobytes())
    import_local("cifar10", folder, tmp_path / "tfds")
    train = read_back("cifar10", tmp_path / "tfds", "train")
    assert np.array_equal(train["image"], x[:15]) and np.array_equal(train["label"], y[:15])


def test_cifar100_python_fills_fine_and_coarse_labels_and_their_names(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    x, fine = _cifar_arrays(14, 100, 2)
    coarse = formats.CIFAR100_FINE_TO_COARSE[fine]
    for name, sl in (("train", slice(0, 10)), ("test", slice(10, 14))):
        batch = {b"data": _rows(x[sl]), b"fine_labels": fine[sl].tolist(), b"coarse_labels": coarse[sl].tolist()}
        (folder / name).write_bytes(pickle.dumps(batch))
    import_local("cifar100", folder, tmp_path / "tfds")
    test = read_back("cifar100", tmp_path / "tfds", "test")
    assert np.array_equal(test["image"], x[10:])
    assert np.array_equal(test["label"], fine[10:]) and np.array_equal(test["coarse_label"], coarse[10:])
    features = tfds.builder("cifar100", data_dir=str(tmp_path / "tfds")).info.features
    assert features["coarse_label"].names[0] == "aquatic_mammals" and features["label"].names[-1] == "worm"


def test_cifar100_npz_with_fine_labels_only_gets_coarse_labels_from_the_superclass_table(tmp_path):
    x, fine = _cifar_arrays(12, 100, 3)
    np.savez(tmp_path / "c100.npz", x_train=x[:8], y_train=fine[:8], x_test=x[8:], y_test=fine[8:])
    import_local("cifar100", tmp_path / "c100.npz", tmp_path / "tfds")
    train = read_back("cifar100", tmp_path / "tfds", "train")
    assert np.array_equal(train["coarse_label"], formats.CIFAR100_FINE_TO_COARSE[fine[:8]])


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused_and_does_not_run(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    make_cifar10_python(folder)
    marker = tmp_path / "pwned"
    (folder / "data_batch_3").write_bytes(pickle.dumps({"data": _RunsCode(marker), "labels": [0]}))
    with pytest.raises(DataImportError) as e:
        import_local("cifar10", folder, tmp_path / "tfds")
    assert "refusing to unpickle" in str(e.value) and ".system" in str(e.value)
    assert not marker.exists()
    assert_nothing_prepared("cifar10", tmp_path / "tfds")


def test_out_of_range_labels_fail_in_one_line_and_leave_no_dataset(tmp_path, mnist_small):
    bad = dict(mnist_small, y_test=mnist_small["y_test"] + 5)
    np.savez(tmp_path / "bad.npz", **bad)
    with pytest.raises(DataImportError) as e:
        import_local("mnist", tmp_path / "bad.npz", tmp_path / "tfds")
    assert "\n" not in str(e.value) and "classes 0..9" in str(e.value)
    assert_nothing_prepared("mnist", tmp_path / "tfds")


def test_a_failed_import_keeps_the_previous_copy(tmp_path, mnist_small):
    np.savez(tmp_path / "good.npz", **mnist_small)
    import_local("mnist", tmp_path / "good.npz", tmp_path / "tfds")
    np.savez(tmp_path / "bad.npz", **dict(mnist_small, x_train=mnist_small["x_train"][:, :20]))
    with pytest.raises(DataImportError, match=r"uint8 \(28, 28, 1\)"):
        import_local("mnist", tmp_path / "bad.npz", tmp_path / "tfds")
    assert read_back("mnist", tmp_path / "tfds", "train")["label"].shape == (600,)


def test_reimport_replaces_the_previous_copy(tmp_path, mnist_small):
    np.savez(tmp_path / "a.npz", **mnist_small)
    import_local("mnist", tmp_path / "a.npz", tmp_path / "tfds")
    np.savez(tmp_path / "b.npz", **{k: v[:50] for k, v in mnist_small.items()})
    assert "replaced the copy" in data_main_import("mnist", str(tmp_path / "b.npz"), str(tmp_path / "tfds"))
    assert len(read_back("mnist", tmp_path / "tfds", "train")["label"]) == 50


def _not_a_zip(folder):
    (folder / "x.npz").write_bytes(b"not a zip")
    return folder / "x.npz"


@pytest.mark.parametrize("make, match", [
    (lambda p: p / "nothing-here", "does not exist"),
    (lambda p: p, "train-images-idx3-ubyte.gz"),  # an empty folder: say which files to pass
    (_not_a_zip, "not a readable .npz"),
])
def test_bad_paths_give_one_line_errors_saying_what_to_pass(tmp_path, make, match):
    path = make(tmp_path)
    with pytest.raises(DataImportError, match=match) as e:
        import_local("mnist", path, tmp_path / "tfds")
    assert "\n" not in str(e.value)
    assert isinstance(e.value, DataNotPreparedError)  # the CLI prints both kinds the same way


def test_unknown_dataset_name_is_an_import_error(tmp_path):
    with pytest.raises(DataImportError, match="did you mean 'mnist'"):
        data_main_import("mnsit", str(tmp_path), str(tmp_path / "tfds"))


def test_truncated_idx_file_is_reported(tmp_path, mnist_small):
    folder = write_mnist_idx_folder(tmp_path / "idx", mnist_small, compress=False)
    raw = (folder / "t10k-images-idx3-ubyte").read_bytes()
    (folder / "t10k-images-idx3-ubyte").write_bytes(raw[:-100])
    with pytest.raises(DataImportError, match="truncated or damaged"):
        import_local("mnist", folder, tmp_path / "tfds")
