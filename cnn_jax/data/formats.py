"""Readers for the files the classic image datasets are distributed in, for offline import.

Each reader turns one distribution format into plain uint8 arrays (`SplitArrays`) and knows
nothing about tfds; `importer.import_local` validates them and writes the tfds dataset.

Formats (the byte layouts are the ones documented by the dataset authors):
  * IDX (LeCun et al., MNIST page; also Fashion-MNIST): ``train-images-idx3-ubyte[.gz]`` ...
    magic ``00 00 08 ndim``, big-endian uint32 dims, raw uint8 bytes.
  * CIFAR python batches (Krizhevsky 2009, "Learning multiple layers of features from tiny
    images"): pickled dicts; ``data`` is (N, 3072) uint8, 1024 R then G then B values, row-major.
    Loaded with `_NumpyOnlyUnpickler`, which refuses every global except numpy's array
    reconstruction, so a pickle from an untrusted place cannot run code.
  * CIFAR binary batches (the files tfds itself downloads): records of 1 (CIFAR-100: 2) label
    bytes then 3072 pixel bytes.
  * ``.npz`` (numpy, loaded with allow_pickle=False): ``x_train, y_train, x_test, y_test``, or
    JPEG bytes + offsets (``train_jpeg, train_offsets, y_train, test_jpeg, test_offsets, y_test``,
    the layout of shared/data/cifar10_jpeg.npz), optionally with ``<stem>_test_order.npz``
    (``test_perm``) beside it restoring the original test order.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from cnn_jax.errors import DataImportError


@dataclasses.dataclass
class SplitArrays:
    """One split read from local files: images (N, H, W[, C]) uint8 and labels (N,) int64."""

    images: np.ndarray
    labels: np.ndarray
    coarse_labels: np.ndarray | None = None  # CIFAR-100 superclass labels
    ids: list[str] | None = None  # tfds' CIFAR 'id' feature: "<split>_<index:05d>"


@dataclasses.dataclass
class LocalData:
    """Everything read from a local copy of a dataset, before validation and writing."""

    splits: dict[str, SplitArrays]
    source_format: str
    lossy: bool = False  # pixels differ from the originals (JPEG copies)
    notes: list[str] = dataclasses.field(default_factory=list)
    label_names: dict[str, list[str]] = dataclasses.field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Facts used for checking (not for reading)
# --------------------------------------------------------------------------------------------

# MD5 of the canonical *uncompressed* IDX files, as published with the datasets (and listed in
# shared/data/README.md): a full import whose arrays re-serialise to these bytes is byte-exact.
CANONICAL_IDX_MD5 = {
    "mnist": {
        "train_images": "6bbc9ace898e44ae57da46a324031adb",
        "train_labels": "a25bea736e30d166cdddb491f175f624",
        "test_images": "2646ac647ad5339dbf082846283269ea",
        "test_labels": "27ae3e4e09519cfbb04c329615203637",
    },
    "fashion_mnist": {
        "train_images": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train_labels": "9018921c3c673c538a1fc5bad174d6f9",
        "test_images": "8181f5470baa50b63fa0f6fddb340f0a",
        "test_labels": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}

# CIFAR-100 superclass of each fine class (fine and coarse names in alphabetical order, as in the
# dataset's meta file; 20 superclasses of 5 classes each, listed on the CIFAR page). Used when a
# source gives fine labels only.
CIFAR100_FINE_TO_COARSE = np.array([
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
], dtype=np.int64)

_IDX_NAMES = {  # split -> (images stem, labels stem); '-' or '.' before idx both occur in the wild
    "train": ("train-images", "train-labels"),
    "test": ("t10k-images", "t10k-labels"),
}


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def read_local(name: str, path: str | os.PathLike, image_channels: int) -> LocalData:
    """Reads a local copy of dataset `name` ('mnist', 'fashion_mnist', 'cifar10', 'cifar100').

    `path` is a folder of distribution files (or the folder above it), an archive, or a .npz.
    `image_channels` (1 or 3) says how to decode JPEG bytes.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise DataImportError(f"cannot import {name!r}: {p} does not exist; {_expected(name)}")
    if p.is_file() and p.name.endswith(".npz"):
        return _read_npz(name, p, image_channels)
    if name in ("mnist", "fashion_mnist"):
        idx = _find_idx_files(p) if p.is_dir() else None
        if idx is not None:
            return _read_idx_folder(idx)
    elif name in ("cifar10", "cifar100"):
        files = _find_cifar_files(name, p)
        if files is not None:
            return _read_cifar(name, files)
    else:
        raise DataImportError(f"no local import for dataset {name!r}")
    npz = _find_npz(name, p) if p.is_dir() else None  # e.g. a folder holding mnist.npz
    if npz is not None:
        return _read_npz(name, npz, image_channels)
    raise DataImportError(f"cannot import {name!r} from {p}: {_expected(name)}")


def _expected(name: str) -> str:
    if name in ("mnist", "fashion_mnist"):
        return (f"pass a folder with train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                f"t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz (or uncompressed), "
                f"or a .npz with x_train, y_train, x_test, y_test (e.g. {name}.npz)")
    if name == "cifar10":
        return ("pass cifar-10-python.tar.gz, the cifar-10-batches-py folder (data_batch_1..5, "
                "test_batch), the binary version, or a .npz with x_train, y_train, x_test, y_test "
                "or JPEG bytes (cifar10_jpeg.npz)")
    return ("pass cifar-100-python.tar.gz, the cifar-100-python folder (train, test, meta), the "
            "binary version, or a .npz with x_train, y_train, x_test, y_test")


# --------------------------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST)
# --------------------------------------------------------------------------------------------


def _read_maybe_gzip(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":  # gzip magic: decide by content, not by file name
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DataImportError(f"{path} is a damaged gzip file ({e}): download it again") from None
    return raw


def parse_idx(raw: bytes, origin: str) -> np.ndarray:
    """Parses IDX bytes (magic 00 00 08 ndim, big-endian uint32 dims, uint8 data)."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataImportError(f"{origin} is not an IDX file (bad magic): pass the original "
                              "*-idx?-ubyte(.gz) files")
    if raw[2] != 0x08:
        raise DataImportError(f"{origin} holds IDX type 0x{raw[2]:02x}, not unsigned bytes (0x08)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataImportError(f"{origin} is truncated inside its IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    data = np.frombuffer(raw, dtype=np.uint8, offset=header)
    if data.size != int(np.prod(dims)):
        raise DataImportError(f"{origin} holds {data.size} bytes of data but its header says "
                              f"{'x'.join(map(str, dims))}: the file is truncated or damaged")
    return data.reshape(dims)


def idx_md5(array: np.ndarray) -> str:
    """MD5 of `array` serialised as an uncompressed IDX file (uint8): compares with published sums."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    h = hashlib.md5(header)
    h.update(np.ascontiguousarray(array, dtype=np.uint8).data)
    return h.hexdigest()


def _find_idx_files(folder: Path) -> dict[str, tuple[Path, Path]] | None:
    found = {}
    for split, stems in _IDX_NAMES.items():
        paths = []
        for stem, kind in zip(stems, ("idx3", "idx1"), strict=True):
            candidates = sorted(folder.glob(f"{stem}[-.]{kind}-ubyte*"))
            if not candidates:
                return None
            # Prefer the uncompressed file when both are there (no decompression needed).
            candidates.sort(key=lambda q: q.suffix == ".gz")
            paths.append(candidates[0])
        found[split] = (paths[0], paths[1])
    return found


def _read_idx_folder(files: dict[str, tuple[Path, Path]]) -> LocalData:
    splits = {}
    for split, (img_path, lbl_path) in files.items():
        images = parse_idx(_read_maybe_gzip(img_path), str(img_path))
        labels = parse_idx(_read_maybe_gzip(lbl_path), str(lbl_path))
        if images.ndim != 3 or labels.ndim != 1:
            raise DataImportError(f"{img_path} / {lbl_path}: expected 3-d images and 1-d labels, got "
                                  f"{images.ndim}-d and {labels.ndim}-d: are the files swapped?")
        splits[split] = SplitArrays(images=images, labels=labels.astype(np.int64))
    return LocalData(splits=splits, source_format="IDX files")


# --------------------------------------------------------------------------------------------
# CIFAR python / binary batches, in a folder or a tar archive
# --------------------------------------------------------------------------------------------


class _Files:
    """Files by base name, from a folder or a tar archive read in memory (never extracted)."""

    def __init__(self, origin: str, read: Callable[[str], bytes | None], names: Sequence[str]):
        self.origin = origin
        self._read = read
        self.names = set(names)

    def get(self, name: str) -> bytes | None:
        return self._read(name) if name in self.names else None

    @classmethod
    def from_dir(cls, folder: Path) -> _Files:
        names = [q.name for q in folder.iterdir() if q.is_file()]
        return cls(str(folder), lambda n: (folder / n).read_bytes(), names)

    @classmethod
    def from_tar(cls, archive: Path) -> _Files:
        # Read every member into memory (CIFAR archives are < 200 MB) instead of extracting, so
        # member paths inside the archive can never write outside it.
        try:
            with tarfile.open(archive, "r:*") as tar:
                contents = {}
                for m in tar.getmembers():
                    if m.isfile():
                        f = tar.extractfile(m)
                        assert f is not None  # regular files always have a reader
                        contents[os.path.basename(m.name)] = f.read()
        except (tarfile.TarError, OSError, EOFError) as e:
            raise DataImportError(f"{archive} is not a readable tar archive ({e}): download it again") from None
        return cls(str(archive), contents.get, list(contents))


_CIFAR_LAYOUT = {
    # name: (python folder, binary folder, archives, python train files, python test file,
    #        binary train files, binary test file)
    "cifar10": ("cifar-10-batches-py", "cifar-10-batches-bin",
                ("cifar-10-python.tar.gz", "cifar-10-binary.tar.gz"),
                [f"data_batch_{i}" for i in range(1, 6)], "test_batch",
                [f"data_batch_{i}.bin" for i in range(1, 6)], "test_batch.bin"),
    "cifar100": ("cifar-100-python", "cifar-100-binary",
                 ("cifar-100-python.tar.gz", "cifar-100-binary.tar.gz"),
                 ["train"], "test", ["train.bin"], "test.bin"),
}


def _find_cifar_files(name: str, p: Path) -> _Files | None:
    py_dir, bin_dir, archives, py_train, _, bin_train, _ = _CIFAR_LAYOUT[name]
    if p.is_file():
        return _Files.from_tar(p) if tarfile.is_tarfile(p) else None
    for folder in (p, p / py_dir, p / bin_dir):
        if (folder / py_train[0]).is_file() or (folder / bin_train[0]).is_file():
            return _Files.from_dir(folder)
    for archive in archives:
        if (p / archive).is_file():
            return _Files.from_tar(p / archive)
    return None


def _read_cifar(name: str, files: _Files) -> LocalData:
    _, _, _, py_train, py_test, bin_train, bin_test = _CIFAR_LAYOUT[name]
    if files.get(py_train[0]) is not None:
        return _read_cifar_python(name, files, py_train, py_test)
    if files.get(bin_train[0]) is not None:
        return _read_cifar_binary(name, files, bin_train, bin_test)
    raise DataImportError(f"cannot import {name!r} from {files.origin}: {_expected(name)}")


def _need(files: _Files, name: str) -> bytes:
    data = files.get(name)
    if data is None:
        raise DataImportError(f"{files.origin} has no file {name!r}: the copy is incomplete")
    return data


def _cifar_images(data: np.ndarray, origin: str) -> np.ndarray:
    data = np.asarray(data)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataImportError(f"{origin}: 'data' is {data.dtype} {data.shape}, expected uint8 (N, 3072)")
    # Rows hold the R plane, then G, then B, each 32x32 row-major (Krizhevsky 2009).
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def _read_cifar_python(name: str, files: _Files, train_files: list[str], test_file: str) -> LocalData:
    fine_key = "labels" if name == "cifar10" else "fine_labels"
    splits = {}
    for split, file_names in (("train", train_files), ("test", [test_file])):
        images, labels, coarse = [], [], []
        for fname in file_names:
            origin = f"{files.origin}/{fname}"
            batch = load_pickle_data(_need(files, fname), origin)
            if not isinstance(batch, dict) or "data" not in batch or fine_key not in batch:
                keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
                raise DataImportError(f"{origin} is not a {name} python batch (found {keys}, "
                                      f"expected 'data' and {fine_key!r})")
            images.append(_cifar_images(batch["data"], origin))
            labels.append(np.asarray(batch[fine_key], dtype=np.int64))
            if name == "cifar100":
                if "coarse_labels" not in batch:
                    raise DataImportError(f"{origin} has no 'coarse_labels': not a CIFAR-100 python batch")
                coarse.append(np.asarray(batch["coarse_labels"], dtype=np.int64))
        x, y = np.concatenate(images), np.concatenate(labels)
        splits[split] = SplitArrays(
            images=x, labels=y, coarse_labels=np.concatenate(coarse) if coarse else None,
            ids=[f"{split}_{i:05d}" for i in range(len(x))])
    label_names = {}
    meta_name, keys = (("batches.meta", {"label": "label_names"}) if name == "cifar10" else
                       ("meta", {"label": "fine_label_names", "coarse_label": "coarse_label_names"}))
    meta_bytes = files.get(meta_name)
    if meta_bytes is not None:
        meta = load_pickle_data(meta_bytes, f"{files.origin}/{meta_name}")
        for feature, key in keys.items():
            if isinstance(meta, dict) and key in meta:
                label_names[feature] = [_text(v) for v in meta[key]]
    return LocalData(splits=splits, source_format=f"{name} python batches", label_names=label_names)


def _read_cifar_binary(name: str, files: _Files, train_files: list[str], test_file: str) -> LocalData:
    n_labels = 1 if name == "cifar10" else 2  # CIFAR-100 records: coarse byte, then fine byte
    record = n_labels + 3072
    splits = {}
    for split, file_names in (("train", train_files), ("test", [test_file])):
        chunks = []
        for fname in file_names:
            raw = np.frombuffer(_need(files, fname), dtype=np.uint8)
            if raw.size % record:
                raise DataImportError(f"{files.origin}/{fname}: {raw.size} bytes is not a whole number "
                                      f"of {record}-byte records: the file is damaged")
            chunks.append(raw.reshape(-1, record))
        rows = np.concatenate(chunks)
        x = _cifar_images(rows[:, n_labels:], f"{files.origin}/{file_names[0]}")
        splits[split] = SplitArrays(
            images=x, labels=rows[:, n_labels - 1].astype(np.int64),
            coarse_labels=rows[:, 0].astype(np.int64) if n_labels == 2 else None,
            ids=[f"{split}_{i:05d}" for i in range(len(x))])
    label_names = {}
    meta = (("label", "batches.meta.txt"),) if name == "cifar10" else (
        ("label", "fine_label_names.txt"), ("coarse_label", "coarse_label_names.txt"))
    for feature, fname in meta:
        text = files.get(fname)
        if text is not None:
            label_names[feature] = [s for s in text.decode("utf-8").split("\n") if s.strip()]
    return LocalData(splits=splits, source_format=f"{name} binary batches", label_names=label_names)


def _text(v) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


# --------------------------------------------------------------------------------------------
# Restricted unpickling: data only
# --------------------------------------------------------------------------------------------


def _numpy_pickle_globals() -> dict[tuple[str, str], object]:
    core = np._core if hasattr(np, "_core") else np.core  # numpy 2 / numpy 1
    allowed = {}
    # Pickles name numpy 1's 'numpy.core' or numpy 2's 'numpy._core'; both map to this numpy.
    for module in ("numpy.core", "numpy._core"):
        allowed[(f"{module}.multiarray", "_reconstruct")] = core.multiarray._reconstruct
        allowed[(f"{module}.multiarray", "scalar")] = core.multiarray.scalar
        allowed[(f"{module}.numeric", "_frombuffer")] = core.numeric._frombuffer  # protocol 5
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    allowed[("_codecs", "encode")] = __import__("codecs").encode  # bytes in protocol <= 2 pickles
    return allowed


_ALLOWED_PICKLE_GLOBALS = _numpy_pickle_globals()


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds dicts, lists, strings and numpy arrays and nothing else.

    A pickle can name any importable callable (os.system, eval, ...) and have it called while
    loading; refusing every global but numpy's array reconstruction makes loading a CIFAR batch
    from an untrusted download safe.
    """

    def __init__(self, file, origin: str):
        super().__init__(file, encoding="bytes")  # CIFAR batches were pickled by Python 2
        self._origin = origin

    def find_class(self, module: str, name: str):
        obj = _ALLOWED_PICKLE_GLOBALS.get((module, name))
        if obj is None:
            raise DataImportError(
                f"refusing to unpickle {self._origin}: it references {module}.{name}, and CIFAR "
                f"batches hold only numpy arrays; pass the original CIFAR files")
        return obj


def load_pickle_data(raw: bytes, origin: str):
    """Unpickles `raw` allowing only plain data and numpy arrays; dict keys come back as str."""
    try:
        obj = _NumpyOnlyUnpickler(io.BytesIO(raw), origin).load()
    except DataImportError:
        raise
    except Exception as e:  # any other failure means the bytes are not a pickle of data
        raise DataImportError(f"{origin} is not a readable pickle ({type(e).__name__}: {e})") from None
    if isinstance(obj, dict):
        obj = {_text(k): v for k, v in obj.items()}
    return obj


# --------------------------------------------------------------------------------------------
# .npz (raw arrays or JPEG bytes)
# --------------------------------------------------------------------------------------------

_NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
_NPZ_JPEG = ("train_jpeg", "train_offsets", "y_train", "test_jpeg", "test_offsets", "y_test")


def _find_npz(name: str, folder: Path) -> Path | None:
    for candidate in (f"{name}.npz", f"{name}_jpeg.npz"):
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def _read_npz(name: str, path: Path, image_channels: int) -> LocalData:
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as e:  # not a zip / not numpy: say so in one line
        raise DataImportError(f"{path} is not a readable .npz ({type(e).__name__}: {e})") from None
    with z:
        keys = set(z.files)
        notes = []
        if set(_NPZ_ARRAYS) <= keys:
            splits = {s: SplitArrays(images=z[f"x_{s}"], labels=z[f"y_{s}"].astype(np.int64))
                      for s in ("train", "test")}
            fmt, lossy = ".npz arrays", False
        elif set(_NPZ_JPEG) <= keys:
            splits = {}
            for s in ("train", "test"):
                images = decode_jpeg_blob(z[f"{s}_jpeg"], z[f"{s}_offsets"], image_channels, f"{path}:{s}")
                splits[s] = SplitArrays(images=images, labels=z[f"y_{s}"].astype(np.int64))
            fmt, lossy = ".npz JPEG bytes", True
            notes.append("pixels are JPEG-degraded, not the original pixels: do not compare absolute "
                         "accuracies with published numbers without saying so")
        else:
            raise DataImportError(
                f"{path} holds {sorted(keys)}: expected {', '.join(_NPZ_ARRAYS)} "
                f"or {', '.join(_NPZ_JPEG)}")
        if name == "cifar100":
            for s in ("train", "test"):
                key = f"y_{s}_coarse"
                coarse = z[key].astype(np.int64) if key in keys else None
                splits[s].coarse_labels = coarse
            if splits["train"].coarse_labels is None:
                notes.append("coarse labels derived from the fine labels (CIFAR-100 superclass table)")
    order_file = path.with_name(path.stem + "_test_order.npz")
    if order_file.is_file():
        _apply_test_order(splits["test"], order_file)
        notes.append(f"test set put back in the original order with {order_file.name}")
    if name in ("cifar10", "cifar100"):
        for s, arrays in splits.items():
            arrays.ids = [f"{s}_{i:05d}" for i in range(len(arrays.labels))]
    return LocalData(splits=splits, source_format=fmt, lossy=lossy, notes=notes)


def _apply_test_order(test: SplitArrays, order_file: Path) -> None:
    with np.load(order_file, allow_pickle=False) as z:
        if "test_perm" not in z.files:
            raise DataImportError(f"{order_file} has no 'test_perm' array: remove it or pass the right file")
        perm = z["test_perm"]
        expected_labels = z["y_test_original"] if "y_test_original" in z.files else None
    n = len(test.labels)
    if perm.shape != (n,) or not np.array_equal(np.sort(perm), np.arange(n)):
        raise DataImportError(f"{order_file}: 'test_perm' is not a permutation of the {n} test "
                              "examples: it belongs to a different file")
    test.images, test.labels = test.images[perm], test.labels[perm]
    if test.coarse_labels is not None:
        test.coarse_labels = test.coarse_labels[perm]
    if expected_labels is not None and not np.array_equal(test.labels, expected_labels):
        raise DataImportError(f"{order_file}: the reordered test labels differ from its "
                              "'y_test_original': it belongs to a different file")


def decode_jpeg_blob(blob: np.ndarray, offsets: np.ndarray, channels: int, origin: str) -> np.ndarray:
    """Decodes concatenated JPEG files (file i = blob[offsets[i]:offsets[i+1]]) with PIL."""
    offsets = np.asarray(offsets, dtype=np.int64)
    if offsets.ndim != 1 or offsets[0] != 0 or offsets[-1] != blob.size or np.any(np.diff(offsets) <= 0):
        raise DataImportError(f"{origin}: offsets do not cut the JPEG bytes into files "
                              f"(first {offsets[:1]}, last {offsets[-1:]}, bytes {blob.size})")
    mode = "L" if channels == 1 else "RGB"
    data = blob.tobytes()

    def decode(i: int) -> np.ndarray:
        try:
            with Image.open(io.BytesIO(data[offsets[i]:offsets[i + 1]])) as im:
                return np.asarray(im.convert(mode))
        except Exception as e:  # PIL raises several types for bad bytes
            raise DataImportError(f"{origin}: image {i} is not a readable JPEG ({e})") from None

    images = parallel_map(decode, range(len(offsets) - 1))
    return np.stack(images)


def stream_map(fn: Callable, items, block: int = 1024) -> Iterator:
    """`parallel_map` over `items` a block at a time, yielding results as each block is done: a
    large import holds one block of decoded examples at a time."""
    items = list(items)
    for i in range(0, len(items), block):
        yield from parallel_map(fn, items[i:i + block], chunk=max(1, block // 8))


def parallel_map(fn: Callable, items, chunk: int = 512) -> list:
    """`[fn(x) for x in items]` on a thread pool; PIL's codecs release the GIL while they work."""
    items = list(items)
    chunks = [items[i:i + chunk] for i in range(0, len(items), chunk)]
    workers = min(len(chunks), os.cpu_count() or 1, 8)
    if workers <= 1:
        return [fn(x) for x in items]
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return [y for part in pool.map(lambda c: [fn(x) for x in c], chunks) for y in part]
