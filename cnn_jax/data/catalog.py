"""The dataset catalogue: names -> tfds builders, preparation, and offline import of local files.

Every dataset is read through tfds' array_record format with `tfds.data_source` (no TensorFlow
needed). A dataset gets into the data_dir in one of two ways:
  * `ensure_prepared`: tfds' own `download_and_prepare` (needs the network and TensorFlow:
    ``pip install 'cnn-jax[tf]'``);
  * `import_local`: reads local copies of the original distribution files (or .npz arrays) and
    writes exactly what tfds' builder would: same name, version, features, split names and
    label names, so the same pipeline (and `tfds.load` for TensorFlow users) reads it.

Normalisation constants are the per-channel training-set mean and std in [0,1] pixel units
(MNIST 0.1307/0.3081 and the CIFAR values are the ones used throughout the literature; the
shared/data README confirms MNIST 0.13066, Fashion-MNIST 0.2860 and CIFAR-10 0.4914/0.4822/0.4465).

ImageNet-style datasets hold photographs of varying size (`DatasetSpec.variable_size`): they are
decoded per record and cropped to one training size (`data.image_size`, default 224), which is
their `image_shape`; they use the ImageNet statistics (0.485, 0.456, 0.406)/(0.229, 0.224, 0.225).
  * imagenet2012 (ILSVRC 2012, Russakovsky et al. 2015): tfds prepares it from the two tars a
    user downloads from image-net.org into `<data_dir>/downloads/manual` (needs TensorFlow);
    its 50,000-image validation split is the test set, as in every paper's table.
  * imagenette (fast.ai's 10-class ImageNet subset, full-size v2): tfds downloads it.
  * any ImageFolder tree, named `folder:/path/to/root` (see cnn_jax.data.folder): read straight
    from the files, nothing to prepare.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import urllib.parse
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from cnn_jax.data import folder, formats
from cnn_jax.data.formats import DataImportError as _FormatError
from cnn_jax.data.transforms import IMAGENET_MEAN, IMAGENET_STD

log = logging.getLogger(__name__)

IMPORT_RECORD = "cnn_jax_import.json"  # written beside dataset_info.json by import_local


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What the rest of the code needs to know about one dataset of the catalogue."""

    name: str
    tfds_name: str
    image_shape: tuple[int, int, int]  # (H, W, C)
    num_classes: int
    mean: tuple[float, ...]  # per channel, [0,1] pixel units: x_norm = (x/255 - mean) / std
    std: tuple[float, ...]
    train_split: str = "train"
    test_split: str = "test"
    image_key: str = "image"
    label_key: str = "label"
    tfds_version: str = ""  # the builder version tfds 4.9 generates; import_local writes the same
    label_names: tuple[str, ...] = ()
    source_url: str = ""  # where tfds downloads from (also the host probed for connectivity)
    description: str = ""
    # Photos of varying size, decoded per record and resized/cropped to image_shape (the training
    # crop); image_shape is then data.image_size, not a property of the stored images.
    variable_size: bool = False
    manual_files: tuple[str, ...] = ()  # files tfds prepares from, put in <data_dir>/downloads/manual
    folder: str = ""  # root of an ImageFolder tree ('folder:' datasets); no tfds builder then

    @property
    def tfds_full_name(self) -> str:
        return f"{self.tfds_name}:{self.tfds_version}" if self.tfds_version else self.tfds_name


CIFAR10_LABELS = ("airplane", "automobile", "bird", "cat", "deer",
                  "dog", "frog", "horse", "ship", "truck")
CIFAR100_LABELS = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup",
    "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house",
    "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man",
    "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange", "orchid",
    "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy",
    "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal",
    "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar",
    "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)
CIFAR100_COARSE_LABELS = (
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates", "people",
    "reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2",
)

DEFAULT_IMAGE_SIZE = 224  # training crop of ImageNet-style datasets when data.image_size=0

DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist", tfds_name="mnist", tfds_version="3.0.1", image_shape=(28, 28, 1),
        num_classes=10, mean=(0.1307,), std=(0.3081,),
        label_names=tuple(str(i) for i in range(10)),
        source_url="https://storage.googleapis.com/cvdf-datasets/mnist/",
        description="MNIST handwritten digits (LeCun et al. 1998): 60k train / 10k test, 28x28 gray"),
    "fashion_mnist": DatasetSpec(
        name="fashion_mnist", tfds_name="fashion_mnist", tfds_version="3.0.1",
        image_shape=(28, 28, 1), num_classes=10, mean=(0.2860,), std=(0.3530,),
        label_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                     "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        source_url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        description="Fashion-MNIST (Xiao et al. 2017): 60k train / 10k test, 28x28 gray"),
    "cifar10": DatasetSpec(
        name="cifar10", tfds_name="cifar10", tfds_version="3.0.2", image_shape=(32, 32, 3),
        num_classes=10, mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
        label_names=CIFAR10_LABELS,
        source_url="https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
        description="CIFAR-10 (Krizhevsky 2009): 50k train / 10k test, 32x32 RGB"),
    "cifar100": DatasetSpec(
        name="cifar100", tfds_name="cifar100", tfds_version="3.0.2", image_shape=(32, 32, 3),
        num_classes=100, mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762),
        label_names=CIFAR100_LABELS,
        source_url="https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
        description="CIFAR-100 (Krizhevsky 2009): 50k train / 10k test, 32x32 RGB, 100 classes "
                    "in 20 superclasses"),
    "imagenet2012": DatasetSpec(
        name="imagenet2012", tfds_name="imagenet2012", tfds_version="5.1.0",
        image_shape=(DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE, 3), num_classes=1000,
        mean=IMAGENET_MEAN, std=IMAGENET_STD, test_split="validation", variable_size=True,
        manual_files=("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"),
        source_url="https://image-net.org/download-images",
        description="ImageNet ILSVRC 2012 (Russakovsky et al. 2015): 1,281,167 train / 50,000 "
                    "validation photos, 1000 classes (sorted WordNet ids)"),
    "imagenette": DatasetSpec(
        name="imagenette", tfds_name="imagenette/full-size-v2", tfds_version="1.0.0",
        image_shape=(DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE, 3), num_classes=10,
        mean=IMAGENET_MEAN, std=IMAGENET_STD, test_split="validation", variable_size=True,
        label_names=("n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
                     "n03394916", "n03417042", "n03425413", "n03445777", "n03888257"),
        source_url="https://s3.amazonaws.com/fast-ai-imageclas/imagenette2.tgz",
        description="Imagenette v2 (fast.ai): 9,469 train / 3,925 validation full-size photos "
                    "of 10 easy ImageNet classes"),
}


class DataNotPreparedError(RuntimeError):
    """The dataset is not in the data_dir and cannot be made here; the message names the fix."""


class DataImportError(DataNotPreparedError, _FormatError):
    """Local files given to `import_local` cannot be imported; the message names what to pass.

    A DataNotPreparedError too (the dataset stays unprepared), so one `except` covers both.
    """


def get_dataset_spec(name: str, image_size: int = 0) -> DatasetSpec:
    """The catalogue entry for `name`, or the spec of the ImageFolder tree 'folder:ROOT'.

    `image_size` (data.image_size) sets the training crop of ImageNet-style datasets (0: 224);
    fixed-size datasets (MNIST, CIFAR) accept only 0 or their own size. Unknown names raise
    ValueError listing the known ones; a malformed folder raises folder.ImageFolderError (a
    ValueError) naming the expected layout.
    """
    if image_size < 0:
        raise ValueError(f"data.image_size must not be negative, got {image_size}")
    if folder.is_folder_name(name):
        return _folder_spec(name, image_size or DEFAULT_IMAGE_SIZE)
    try:
        spec = DATASETS[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(str(name), DATASETS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown dataset {name!r}{hint}; known: {', '.join(DATASETS)}, "
                         f"or folder:ROOT for an ImageFolder tree") from None
    if spec.variable_size:
        if image_size and image_size != spec.image_shape[0]:
            spec = dataclasses.replace(spec, image_shape=(image_size, image_size, 3))
    elif image_size and (image_size, image_size) != spec.image_shape[:2]:
        shape = "x".join(map(str, spec.image_shape))
        raise ValueError(f"data.image_size={image_size} applies to ImageNet-style datasets only; "
                         f"{name} images are {shape}: set data.image_size=0")
    return spec


def _folder_spec(name: str, image_size: int) -> DatasetSpec:
    root = folder.folder_root(name)
    classes = folder.folder_classes(root)
    return DatasetSpec(
        name=name, tfds_name="", image_shape=(image_size, image_size, 3), num_classes=len(classes),
        mean=IMAGENET_MEAN, std=IMAGENET_STD, train_split="train",
        test_split=folder.split_used_as_test(root), label_names=classes, variable_size=True,
        folder=str(root), description=f"ImageFolder tree at {root}: {len(classes)} classes")


def default_data_dir() -> str:
    """$TFDS_DATA_DIR if set, else ~/tensorflow_datasets (tfds' own default)."""
    return os.path.expanduser(os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets")


def _resolve_data_dir(data_dir: str | os.PathLike | None) -> str:
    return os.path.expanduser(os.fspath(data_dir)) if data_dir else default_data_dir()


def tfds_builder(name: str, data_dir: str | os.PathLike | None):
    """The tfds builder of `name` at the catalogue's pinned version in `data_dir`.

    For prepared data it describes the files as they are (see `check_readable`); otherwise it is
    set up to prepare array_record files, the format tfds reads without TensorFlow.
    """
    spec = get_dataset_spec(name)
    where = _resolve_data_dir(data_dir)
    builder = tfds.builder(spec.tfds_full_name, data_dir=where)
    if is_prepared(builder):
        return builder
    return tfds.builder(spec.tfds_full_name, data_dir=where, file_format="array_record")


# --------------------------------------------------------------------------------------------
# Preparation: use what is there, else let tfds download, else say how to import
# --------------------------------------------------------------------------------------------


def _import_hint(name: str) -> str:
    if name in DATASETS and DATASETS[name].variable_size:
        # Photos are not imported: an extracted copy is read in place as an ImageFolder tree.
        return ("put its images in ROOT/train/<class>/ and ROOT/val/<class>/ and use "
                "data.name=folder:ROOT")
    return f"run `cnn-jax data import {name} --from PATH`"


def _manual_prepare(spec: DatasetSpec, builder, where: str, download: bool) -> None:
    """Prepares a dataset tfds builds from files the user downloads (ImageNet), or says what is
    missing in one line: the files in <data_dir>/downloads/manual, TensorFlow, data.download."""
    manual = Path(where, "downloads", "manual")
    missing = [f for f in spec.manual_files if not (manual / f).is_file()]
    blockers = []
    if missing:
        blockers.append("the tars" if len(missing) == len(spec.manual_files) else " and ".join(missing))
    if not tensorflow_installed():
        blockers.append("TensorFlow")
    if not download:
        blockers.append("data.download=True (it is False)")
    if blockers:
        raise DataNotPreparedError(
            f"dataset {spec.name!r} is not prepared in {where}: tfds prepares it from "
            f"{' and '.join(spec.manual_files)} ({spec.source_url}) placed in {manual}, with "
            f"TensorFlow installed (`pip install 'cnn-jax[tf]'`); missing: {', '.join(blockers)} "
            f"(or {_import_hint(spec.name)})")
    log.info("preparing %s from %s into %s (this takes hours)", spec.name, manual, where)
    try:
        builder.download_and_prepare(
            file_format="array_record",
            download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(manual)))
    except Exception as e:  # a broken tar, TF, the disk: one line, with the folder alternative
        first_line = (str(e).strip().splitlines() or [""])[0][:200]
        raise DataNotPreparedError(
            f"dataset {spec.name!r}: preparing it from {manual} failed ({type(e).__name__}: "
            f"{first_line}): check the tars, or {_import_hint(spec.name)}") from e


def network_reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to `url`'s host opens within `timeout` seconds (DNS included).

    Run in a daemon thread because a DNS lookup cannot be given a timeout: an offline machine
    must get its answer in seconds, not after tfds' download retries.
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or url
    port = parts.port or (80 if parts.scheme == "http" else 443)
    result = []

    def probe():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 0.5)
    return bool(result and result[0])


def tensorflow_installed() -> bool:
    """tfds needs TensorFlow to *build* datasets (encoding images), not to read array_record."""
    return importlib.util.find_spec("tensorflow") is not None


def is_prepared(builder) -> bool:
    """tfds' is_prepared, without its warning for the common case of a folder that is not there."""
    if not Path(os.fspath(builder.data_path), "dataset_info.json").is_file():
        return False
    return builder.is_prepared()


def check_readable(builder, name: str, where: str) -> None:
    """Raises DataNotPreparedError if the prepared files need TensorFlow to read (tfrecord)."""
    formats_ = builder.info.available_file_formats()
    random_access = tfds.core.FileFormat.with_random_access()
    if formats_ and not formats_ & set(random_access):
        stored = ", ".join(sorted(f.value for f in formats_))
        raise DataNotPreparedError(
            f"dataset {name!r} in {where} is stored as {stored}, which cannot be read without "
            f"TensorFlow: {_import_hint(name)} (or prepare it with file_format='array_record')")


def ensure_prepared(name: str, data_dir: str | os.PathLike | None, download: bool = True):
    """Makes sure `name` is readable from `data_dir` and returns its tfds builder.

    Uses the prepared copy if there is one; else, if `download`, runs tfds'
    download_and_prepare (array_record). Raises DataNotPreparedError with one line naming the
    fix when the machine is offline, TensorFlow is missing, or the download fails.
    """
    spec = get_dataset_spec(name)
    if spec.folder:
        raise ValueError(f"{name} is an ImageFolder tree: it is read in place, not prepared")
    where = _resolve_data_dir(data_dir)
    builder = tfds_builder(name, where)
    if is_prepared(builder):
        check_readable(builder, name, where)
        return builder
    if spec.manual_files:
        _manual_prepare(spec, builder, where, download)
        return builder
    prefix = f"dataset {name!r} is not prepared in {where}"
    if not download:
        raise DataNotPreparedError(f"{prefix} and downloading is off (data.download=False): "
                                   f"{_import_hint(name)}")
    if not network_reachable(spec.source_url):
        raise DataNotPreparedError(f"{prefix} and this machine is offline: {_import_hint(name)}")
    if not tensorflow_installed():
        raise DataNotPreparedError(
            f"{prefix} and tfds needs TensorFlow to build it: run `pip install 'cnn-jax[tf]'` "
            f"(or `cnn-jax data import {name} --from PATH`)")
    log.info("downloading and preparing %s into %s", name, where)
    try:
        builder.download_and_prepare(
            file_format="array_record",
            # tfds' GCS mirror holds tfrecord files; build array_record from the original source.
            download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    except Exception as e:  # network, TF or disk: report it in one line with the offline fix
        first_line = (str(e).strip().splitlines() or [""])[0][:200]
        raise DataNotPreparedError(f"{prefix} and downloading it failed ({type(e).__name__}: "
                                   f"{first_line}): {_import_hint(name)}") from e
    return builder


# --------------------------------------------------------------------------------------------
# Offline import of local files
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ImportReport:
    """What `import_local` wrote (for the CLI's one-line summary)."""

    name: str
    counts: dict[str, int]
    target: str
    source: str
    source_format: str
    lossy: bool
    notes: list[str]
    replaced: bool

    def summary(self) -> str:
        counts = ", ".join(f"{s} {n}" for s, n in self.counts.items())
        text = (f"imported {self.name} ({self.source_format}) from {self.source} into "
                f"{self.target}: {counts}")
        if self.replaced:
            text += "; replaced the copy that was there"
        for note in self.notes:
            text += f"; {note}"
        return text


# tfds' CIFAR builders read their label names from the archive's meta file while preparing; the
# other builders define names in code (MNIST: none, i.e. '0'..'9'), so only these are set here.
_NAMES_SET_AT_PREPARE = {
    "cifar10": {"label": CIFAR10_LABELS},
    "cifar100": {"label": CIFAR100_LABELS, "coarse_label": CIFAR100_COARSE_LABELS},
}


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buf, format="PNG")
    return buf.getvalue()


def _validated(spec: DatasetSpec, data: formats.LocalData, source: str) -> formats.LocalData:
    """Checks shapes, dtypes and label ranges against the catalogue; one-line errors otherwise."""
    for split in (spec.train_split, spec.test_split):
        if split not in data.splits:
            raise DataImportError(f"{source} has no {split!r} split: pass the complete dataset")
        a = data.splits[split]
        x = np.asarray(a.images)
        if x.ndim == 3 and spec.image_shape[-1] == 1:
            x = x[..., None]
        if x.dtype != np.uint8 or x.shape[1:] != spec.image_shape:
            raise DataImportError(
                f"{source}: {split} images are {x.dtype} {x.shape[1:]}, but {spec.name} images are "
                f"uint8 {spec.image_shape}: is this the right dataset?")
        y = np.asarray(a.labels)
        if y.shape != (len(x),):
            raise DataImportError(f"{source}: {len(x)} {split} images but labels of shape {y.shape}")
        if len(y) == 0:
            raise DataImportError(f"{source}: the {split} split is empty")
        if y.min() < 0 or y.max() >= spec.num_classes:
            raise DataImportError(f"{source}: {split} labels run from {y.min()} to {y.max()}, but "
                                  f"{spec.name} has classes 0..{spec.num_classes - 1}")
        if spec.name == "cifar100":
            if a.coarse_labels is None:
                a.coarse_labels = formats.CIFAR100_FINE_TO_COARSE[y]
            c = np.asarray(a.coarse_labels)
            if c.shape != y.shape or c.min() < 0 or c.max() >= 20:
                raise DataImportError(f"{source}: {split} coarse labels must be (N,) in 0..19")
        a.images, a.labels = x, y
    return data


def _verification_note(spec: DatasetSpec, data: formats.LocalData) -> str | None:
    """For MNIST / Fashion-MNIST: whether the arrays are byte-identical to the canonical files."""
    canonical = formats.CANONICAL_IDX_MD5.get(spec.name)
    if canonical is None:
        return None
    sums = {}
    for split in ("train", "test"):
        a = data.splits[split]
        sums[f"{split}_images"] = formats.idx_md5(a.images[..., 0])
        sums[f"{split}_labels"] = formats.idx_md5(a.labels.astype(np.uint8))
    if sums == canonical:
        return "verified byte-identical to the canonical IDX files (MD5)"
    return "not identical to the canonical IDX files (MD5 differs: a subset or a modified copy)"


def _examples(spec: DatasetSpec, split: str, a: formats.SplitArrays, builder) -> list[dict]:
    pngs = formats.parallel_map(_png, a.images)
    features = set(builder.info.features.keys())
    examples = []
    for i, png in enumerate(pngs):
        ex = {spec.image_key: png, spec.label_key: int(a.labels[i])}
        if "coarse_label" in features:
            ex["coarse_label"] = int(a.coarse_labels[i])
        if "id" in features:
            ex["id"] = a.ids[i] if a.ids is not None else f"{split}_{i:05d}"
        examples.append(ex)
    return examples


def _import(name: str, path: str | os.PathLike, data_dir: str | os.PathLike | None) -> ImportReport:
    try:
        spec = get_dataset_spec(name)
    except ValueError as e:
        raise DataImportError(str(e)) from None
    if spec.variable_size:
        raise DataImportError(f"{name} photos are not imported: {_import_hint(name)} "
                              f"(or let tfds prepare it)")
    source = os.fspath(Path(path).expanduser())
    try:
        data = formats.read_local(name, source, spec.image_shape[-1])
    except DataImportError:
        raise
    except _FormatError as e:  # re-raise as the catalogue's error type (a DataNotPreparedError)
        raise DataImportError(str(e)) from None
    data = _validated(spec, data, source)
    note = _verification_note(spec, data)
    if note:
        data.notes.insert(0, note)
    if data.lossy:
        log.warning("%s from %s: the pixels are JPEG-degraded, not the original pixels", name, source)

    root = Path(_resolve_data_dir(data_dir))
    root.mkdir(parents=True, exist_ok=True)
    target = root / spec.tfds_name / spec.tfds_version
    # Write into a temporary folder of the same file system and rename it into place at the end:
    # tfds treats any folder with a dataset_info.json as prepared, so a failed or interrupted
    # import must never leave one at `target`.
    staging = Path(tempfile.mkdtemp(prefix=f".import-{name}-", dir=root))
    try:
        builder = tfds.builder(spec.tfds_full_name, data_dir=os.fspath(staging),
                               file_format="array_record")
        for feature, default in _NAMES_SET_AT_PREPARE.get(name, {}).items():
            builder.info.features[feature].names = data.label_names.get(feature) or list(default)
        os.makedirs(builder.data_dir)
        writer = tfds.core.SequentialWriter(builder.info, max_examples_per_shard=100_000,
                                            overwrite=True, file_format="array_record")
        splits = (spec.train_split, spec.test_split)
        writer.initialize_splits(list(splits))
        counts = {}
        for split in splits:
            a = data.splits[split]
            writer.add_examples({split: _examples(spec, split, a, builder)})
            counts[split] = len(a.labels)
        writer.close_all()
        record = {"source": source, "format": data.source_format, "lossy": data.lossy,
                  "notes": data.notes, "counts": counts}
        Path(builder.data_dir, IMPORT_RECORD).write_text(json.dumps(record, indent=2))

        target.parent.mkdir(parents=True, exist_ok=True)
        replaced = target.exists()
        if replaced:  # move the old copy aside first; it is deleted with the staging folder
            os.rename(target, staging / "replaced")
        os.rename(builder.data_dir, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ImportReport(name=name, counts=counts, target=os.fspath(target), source=source,
                        source_format=data.source_format, lossy=data.lossy, notes=data.notes,
                        replaced=replaced)


def import_local(name: str, path: str | os.PathLike, data_dir: str | os.PathLike | None) -> dict[str, int]:
    """Imports a local copy of dataset `name` from `path` into `data_dir`; returns split sizes.

    `path`: a folder of the standard distribution files (MNIST/Fashion-MNIST IDX, .gz or not;
    CIFAR python or binary batches, or their .tar.gz), or a .npz (x_train, y_train, x_test,
    y_test; or JPEG bytes + offsets as shared/data/cifar10_jpeg.npz, with an optional
    `<stem>_test_order.npz` beside it). Examples keep the source order. An existing copy in
    `data_dir` is replaced atomically. Raises DataImportError (one line) on bad input.
    """
    return _import(name, path, data_dir).counts


def data_main_import(name: str, path: str, data_dir: str | None) -> str:
    """`cnn-jax data import NAME --from PATH [--data_dir DIR]`: imports and returns one summary line."""
    return _import(name, path, data_dir).summary()


def list_prepared(data_dir: str | os.PathLike | None) -> list[str]:
    """One line per catalogue dataset prepared in `data_dir`: name, version, split sizes, origin."""
    root = _resolve_data_dir(data_dir)
    lines = []
    for name, spec in DATASETS.items():
        variant = Path(root, spec.tfds_name, spec.tfds_version)
        if not (variant / "dataset_info.json").is_file():
            continue
        builder = tfds_builder(name, root)
        counts = ", ".join(f"{s} {info.num_examples}" for s, info in builder.info.splits.items())
        origin = "prepared by tfds"
        record = variant / IMPORT_RECORD
        if record.is_file():
            r = json.loads(record.read_text())
            origin = f"imported from {r.get('source')} ({r.get('format')})"
            if r.get("lossy"):
                origin += ", JPEG-degraded pixels"
        lines.append(f"{name:14s} {spec.tfds_version:6s} {counts:24s} {origin}")
    if not lines:
        lines.append(f"no dataset of the catalogue is prepared in {root} "
                     f"({_import_hint('NAME')} to add one)")
    return lines


def import_record(builder) -> dict | None:
    """The cnn_jax_import.json written by `import_local` for this builder's data, if any."""
    path = Path(os.fspath(builder.data_dir), IMPORT_RECORD)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
