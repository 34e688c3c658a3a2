"""Helpers and fixtures for the data tests: small slices of the real data in ../shared/data.

Not a conftest.py: a second module named `conftest` would shadow tests/conftest.py for the
`from conftest import ...` in other test folders; each test module declares its fixtures with
these helpers.
"""

import gzip
import struct
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> None:
    """Writes `array` (uint8) as an IDX file, the MNIST distribution format."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


def write_mnist_idx_folder(folder: Path, arrays: dict, compress: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    write_idx(folder / f"train-images-idx3-ubyte{suffix}", arrays["x_train"], compress)
    write_idx(folder / f"train-labels-idx1-ubyte{suffix}", arrays["y_train"], compress)
    write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", arrays["x_test"], compress)
    write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", arrays["y_test"], compress)
    return folder


def npz_slice(path: Path, n_train: int, n_test: int) -> dict:
    """The first n_train / n_test examples of a shared x_train,y_train,x_test,y_test .npz."""
    with np.load(path) as z:
        return {"x_train": z["x_train"][:n_train], "y_train": z["y_train"][:n_train],
                "x_test": z["x_test"][:n_test], "y_test": z["y_test"][:n_test]}


def jpeg_npz_slice(path: Path, n_train: int, n_test: int) -> dict:
    """The first images of cifar10_jpeg.npz, with the JPEG bytes cut and offsets kept consistent."""
    out = {}
    with np.load(path) as z:
        for split, n in (("train", n_train), ("test", n_test)):
            offsets = z[f"{split}_offsets"][:n + 1]
            out[f"{split}_jpeg"] = z[f"{split}_jpeg"][:offsets[-1]]
            out[f"{split}_offsets"] = offsets
            out[f"y_{split}"] = z[f"y_{split}"][:n]
    return out


def mnist_small_arrays(shared_data: Path) -> dict:
    """600 train / 200 test MNIST examples from the real file."""
    return npz_slice(shared_data / "mnist.npz", 600, 200)


def import_mnist_small(tmp_path_factory, arrays: dict) -> Path:
    """A fresh tfds data_dir holding `arrays` imported as MNIST."""
    from cnn_jax.data import import_local

    src = tmp_path_factory.mktemp("src") / "mnist_small.npz"
    np.savez(src, **arrays)
    data_dir = tmp_path_factory.mktemp("tfds")
    import_local("mnist", src, data_dir)
    return data_dir


FULLSIZE = "imagenet_fullsize_sample/val"
IMAGENETTE = "imagenette_sample"


def fullsize_photo(shared_data: Path, wnid: str) -> Path:
    """The one full-size ImageNet photo of class `wnid` in imagenet_fullsize_sample."""
    (path,) = sorted((shared_data / FULLSIZE / wnid).glob("*.JPEG"))
    return path


def photo_tree(root: Path, layout: dict) -> Path:
    """Copies real photos into an ImageFolder tree: layout = {split: {class: [source paths]}}.

    Files keep their names, so sorted order inside a class folder is the sources' name order.
    """
    import shutil

    for split, classes in layout.items():
        for cls, sources in classes.items():
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for src in sources:
                shutil.copyfile(src, folder / Path(src).name)
    return root


def imagenette_files(shared_data: Path, split: str, wnid: str, n: int) -> list[Path]:
    """The first n photos (sorted names) of class `wnid` in imagenette_sample/<split>."""
    return sorted((shared_data / IMAGENETTE / split / wnid).glob("*.JPEG"))[:n]


def data_config(data_dir, name: str, **overrides):
    """`config.data` for a dataset in `data_dir`: offline, no validation part, cached, no
    augmentation, unless `overrides` say otherwise."""
    import ml_collections

    config = ml_collections.ConfigDict({
        "name": name, "data_dir": str(data_dir), "download": False, "val_size": 0,
        "split_seed": 0, "train_subset": 0, "cache": True, "num_workers": 0, "augment": {}})
    config.update(overrides)
    return config


def eval_examples(pipe, split: str = "test") -> dict:
    """Every real example of an evaluation split (padding left out), concatenated per key."""
    batches = list(pipe.eval_batches(split))
    keys = [k for k in batches[0] if k != "mask"]
    return {k: np.concatenate([b[k][b["mask"]] for b in batches]) for k in keys}


def assert_processes_split_batches(config, step: int, batch_size: int = 16,
                                   eval_batch_size: int = 20, seed: int = 3) -> None:
    """Two processes' parts of training batch `step` and of every evaluation batch, joined, are
    what one process gets, key by key (the batches do not depend on the process count)."""
    from cnn_jax.data.pipeline import create_input_pipeline

    sizes = dict(seed=seed, batch_size=batch_size, eval_batch_size=eval_batch_size)
    whole = create_input_pipeline(config, **sizes)
    parts = [create_input_pipeline(config, **sizes, process_index=i, process_count=2)
             for i in range(2)]
    batch = whole.train_batch(0, step)
    sliced = [p.train_batch(0, step) for p in parts]
    for key in batch:
        assert np.array_equal(np.concatenate([s[key] for s in sliced]), batch[key]), key
    evals = [list(p.eval_batches("test")) for p in parts]
    joined = {k: np.concatenate([np.concatenate([e[i][k][e[i]["mask"]] for e in evals])
                                 for i in range(len(evals[0]))]) for k in batch}
    single = eval_examples(whole)
    for key in batch:
        assert np.array_equal(joined[key], single[key]), key
