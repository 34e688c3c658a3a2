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
