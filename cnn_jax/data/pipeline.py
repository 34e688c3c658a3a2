"""Input pipeline: tfds data source -> (in-memory cache) -> Grain -> shuffled, augmented batches.

    pipe = create_input_pipeline(config.data, seed=config.seed, batch_size=128, eval_batch_size=500)
    for batch in pipe.train_batches(epoch, start_step=0): ...   # {'image': uint8, 'label': int32}
                                                      # + 'targets' float32 (B, K) with mixup/cutmix
    for batch in pipe.eval_batches('val'): ...                   # + 'mask' (False on padding)

Design:
  * Reading: `tfds.data_source` over the array_record files (no TensorFlow). With
    `data.cache=True` a split is decoded once into uint8 arrays (PNG decoding costs ~100 us per
    record; MNIST/CIFAR fit in memory easily). A full decoded split is also kept beside the tfds
    files (`cnn_jax_cache/<split>.npz`, checked against the files' sizes and times) so the next run
    loads it in a fraction of a second; nothing is written when the folder is read-only.
  * Grain: one `grain.MapDataset` element is one *batch*: element `step` of epoch `epoch` gathers
    the examples `perm(seed, epoch)[step*B:(step+1)*B]` (vectorised numpy on the cache, per-record
    reads otherwise) and augments them with a generator seeded by (seed, epoch, step). So every
    batch is a pure function of (seed, epoch, step): a run resumed at `start_step` sees exactly the
    batches an uninterrupted run would, whatever the number of Grain workers. Batch-level elements
    also keep the per-example Python cost out of the hot loop (see the throughput test).
  * Multi-host: every process computes the same global permutation and takes its contiguous
    slice `[i*B/P, (i+1)*B/P)` of each global batch; eval batches are padded the same way so all
    processes run the same number of eval steps. Augmentation does not depend on the process
    count P: each process draws the random numbers of the whole global batch from the same
    (seed, epoch, step) generator and applies those of its own rows (`Compose.apply(rows=...)`),
    and mixup/cutmix pair rows 2k and 2k+1, which a process always holds together when B/P is
    even (checked). So P processes produce, row for row, the batches one process would.
  * Augmentation: `augment.build_augment(config.data.augment)` gives one `Compose`;
    `Compose.apply(batch, rng)` runs its image ops (geometry, flips, colour, cutout) and then
    mixup/cutmix, which replace the one-hot labels by mixed targets: with either on, every
    training batch carries 'targets' float32 (B, num_classes), rows summing to 1, and 'label' is
    the class of the largest target (`InputPipeline.train_targets` says whether it does).
  * Validation and test: `val_size` examples held out of the train split by a permutation fixed
    by `split_seed` alone (independent of the training seed); with `test_size` > 0 the next
    `test_size` examples of that permutation are the test set instead of the dataset's test
    split (a 60/20/20 split of one split: MNIST's 60,000 with val_size=test_size=12,000 gives
    36,000/12,000/12,000); `train_subset` keeps the first N of the remaining ones (in dataset
    order).
  * Photographs of varying size (ImageNet-style: imagenet2012, imagenette, 'folder:ROOT' trees;
    `DatasetSpec.variable_size`) take a per-record path instead: a Grain `MapDataset` of record
    ids is mapped record by record through `transforms.PhotoTransform` (PIL decode to RGB, then
    the random resized crop for training, resize-256-center-crop-224 for evaluation), batched,
    then given the batch ops of `data.augment` (the flip). A record's crop is drawn from a
    generator seeded by (seed, epoch, record id), the batch ops by (seed, epoch, step), so these
    batches too are pure functions of (seed, epoch, step), whatever the process count. Grain runs
    the map in `data.num_workers` worker processes, or with 0 in a pool of threads (PIL releases the GIL
    while it decodes and resizes; on this project's 2-core machine threads were as fast as
    processes and gave the first batch in 0.1-0.3 s instead of 2.5-3 s, a start-up paid by every
    epoch and every evaluation; see experiments/bench_input_pipeline.py). Grain's threads and
    workers compute whole batches, so the batches are the same whichever is used.
    With `data.cache=True` every photo is decoded once and kept in memory with its shorter side
    resized to the evaluation size (about 3 * eval_resize^2 * 4/3 bytes per photo: 260 KB at
    256, i.e. 2.5 GB for Imagenette's 9,469 training photos but 330 GB for ImageNet's 1.28 M, so
    only for small trees). Evaluation batches are then identical to the uncached ones; training
    crops are drawn from the resized photo (a second resampling) instead of the original.
  * Normalisation is not done here: images stay uint8; the train/eval step normalises on device.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import grain
import numpy as np
import tensorflow_datasets as tfds
from absl import flags as absl_flags
from PIL import Image

from cnn_jax.data import catalog, folder, formats
from cnn_jax.data.augment import Compose, build_augment
from cnn_jax.data.catalog import DatasetSpec
from cnn_jax.data.transforms import PhotoTransform

log = logging.getLogger(__name__)

# Independent random streams derived from one seed (numpy SeedSequence entropy = [stream, ...]).
_STREAM_SPLIT, _STREAM_SHUFFLE, _STREAM_AUGMENT, _STREAM_CROP = 1, 2, 3, 4
# The augmentation stream of batch `step` is _rng(_STREAM_AUGMENT, seed, epoch, step, 0) in every
# process. (The last key was the process index before augmentation became independent of the
# process count; it stays 0 so that single-process runs keep the batches they had.)
_AUGMENT_KEY = 0
_CACHE_FOLDER = "cnn_jax_cache"


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng([int(k) % (1 << 64) for k in keys])


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """The `config.data` section (see INTERFACES.md), with its defaults."""

    name: str = "mnist"
    data_dir: str = ""
    download: bool = True
    val_size: int = 10_000
    test_size: int = 0
    split_seed: int = 0
    train_subset: int = 0
    cache: bool = True
    num_workers: int = 0
    image_size: int = 0  # training crop of ImageNet-style datasets (0: 224); 0 for MNIST/CIFAR
    eval_resize: int = 256  # evaluation: shorter side to this, center crop image_size (0: to image_size)
    augment: Mapping[str, Any] | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | Any) -> DataConfig:
        values = dict(config.items())
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown data option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        cfg = cls(**values)
        for key in ("val_size", "test_size", "train_subset", "num_workers", "image_size",
                    "eval_resize"):
            if getattr(cfg, key) < 0:
                raise ValueError(f"data.{key} must not be negative, got {getattr(cfg, key)}")
        return cfg

    @property
    def random_resized_crop(self) -> bool:
        return bool(dict(self.augment.items()).get("random_resized_crop", False)) if self.augment else False


def dataset_spec_from_config(data_config: Mapping[str, Any] | Any) -> DatasetSpec:
    """The DatasetSpec that `config.data` describes (image_shape = the training crop), after the
    checks that need no data: unknown or negative options, image sizes, augmentation that does
    not fit the dataset. For a 'folder:' dataset it lists the class folders, nothing more.

    Raises ValueError (one line). `config.validate_config` calls it before any run starts.
    """
    return _resolve_spec(DataConfig.from_config(data_config))


def _resolve_spec(cfg: DataConfig) -> DatasetSpec:
    spec = catalog.get_dataset_spec(cfg.name, cfg.image_size)
    _build_augment(cfg, spec)  # bad augmentation options fail here, before any data is read
    if spec.variable_size:
        size = spec.image_shape[0]
        if cfg.eval_resize and cfg.eval_resize < size:
            raise ValueError(f"data.eval_resize={cfg.eval_resize} is smaller than the {size}x{size} "
                             f"crop: use at least {size} (256 for 224, the papers' ratio), or 0")
    elif cfg.random_resized_crop:
        raise ValueError(f"data.augment.random_resized_crop is for ImageNet-style photos, not "
                         f"{cfg.name}: use data.augment.random_crop_padding")
    return spec


def _build_augment(cfg: DataConfig, spec: DatasetSpec) -> Compose:
    """`data.augment` for this dataset (checked against its image shape and classes)."""
    return build_augment(cfg.augment, image_shape=spec.image_shape, num_classes=spec.num_classes)


# --------------------------------------------------------------------------------------------
# Sources: positions -> (images, labels)
# --------------------------------------------------------------------------------------------


def _decode_image(value: Any, shape: tuple[int, int, int]) -> np.ndarray:
    """Encoded bytes (tfds SkipDecoding) or an already decoded array -> uint8 (H, W, C)."""
    if isinstance(value, bytes | np.bytes_):
        with Image.open(io.BytesIO(value)) as im:
            value = np.asarray(im)
    return np.asarray(value, dtype=np.uint8).reshape(shape)


def _read_records(source, indices: np.ndarray, spec: DatasetSpec,
                  batched: bool) -> tuple[np.ndarray, np.ndarray]:
    images = np.empty((len(indices), *spec.image_shape), np.uint8)
    labels = np.empty((len(indices),), np.int32)
    keys = [int(i) for i in indices]
    # One batched array_record read is ~4x cheaper per record than single reads; tfds' mock
    # sources only implement single reads.
    records = source.__getitems__(keys) if batched else [source[k] for k in keys]
    for j, record in enumerate(records):
        images[j] = _decode_image(record[spec.image_key], spec.image_shape)
        labels[j] = int(record[spec.label_key])
    return images, labels


@dataclasses.dataclass
class ArraySource:
    """Decoded examples in memory; position p is row `rows[p]` of `images` / `labels`."""

    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray  # (N,) int32
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def gather(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = self.rows[positions]
        return self.images[r], self.labels[r]


@dataclasses.dataclass
class RecordSource:
    """Examples read and decoded per record from a tfds data source; position p is record rows[p]."""

    source: Any  # tfds ArrayRecordDataSource (picklable, so Grain workers can hold it)
    rows: np.ndarray
    spec: DatasetSpec
    batched: bool = True  # False for tfds.testing.mock_data sources

    def __len__(self) -> int:
        return len(self.rows)

    def gather(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _read_records(self.source, self.rows[positions], self.spec, self.batched)


@dataclasses.dataclass(frozen=True)
class FileRecords:
    """The image files of one ImageFolder split: record r is file root/relpaths[r], class labels[r].

    Paths are one numpy bytes array (not a list of str) so that sending the records to Grain
    worker processes pickles one buffer, even for ImageNet's 1.28 M files.
    """

    root: str
    relpaths: np.ndarray  # (N,) bytes
    labels: np.ndarray  # (N,) int32

    @classmethod
    def from_split(cls, root: Path, split: folder.FolderSplit) -> FileRecords:
        prefix = len(os.fspath(root)) + 1
        rel = np.array([os.fsencode(p[prefix:]) for p in split.paths], dtype=bytes)
        return cls(os.fspath(root), rel, split.labels)

    def __len__(self) -> int:
        return len(self.labels)

    def describe(self, row: int) -> str:
        return os.path.join(self.root, os.fsdecode(self.relpaths[row]))

    def read(self, row: int) -> tuple[str, int]:
        return self.describe(row), int(self.labels[row])


@dataclasses.dataclass(frozen=True)
class TfdsRecords:
    """Records of one tfds split (JPEG bytes with SkipDecoding; arrays from tfds' mock data)."""

    source: Any  # tfds ArrayRecordDataSource (picklable)
    image_key: str
    label_key: str
    name: str

    def __len__(self) -> int:
        return len(self.source)

    def describe(self, row: int) -> str:
        return f"record {row} of {self.name}"

    def read(self, row: int) -> tuple[Any, int]:
        record = self.source[int(row)]
        return record[self.image_key], int(record[self.label_key])


@dataclasses.dataclass(frozen=True)
class MemoryRecords:
    """Photos decoded once (data.cache=True): record ids `ids` (sorted) -> uint8 arrays."""

    ids: np.ndarray
    images: tuple[np.ndarray, ...]
    labels: np.ndarray
    name: str

    def __len__(self) -> int:
        return len(self.ids)

    def describe(self, row: int) -> str:
        return f"cached record {row} of {self.name}"

    def read(self, row: int) -> tuple[np.ndarray, int]:
        k = int(np.searchsorted(self.ids, row))
        return self.images[k], int(self.labels[k])


Records = FileRecords | TfdsRecords | MemoryRecords


@dataclasses.dataclass
class PhotoSource:
    """Photos of varying size, decoded per record: position p is record `rows[p]` of `records`."""

    records: Records
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)


def _transformed(records: Records, row: int, fn, *args) -> tuple[np.ndarray, int]:
    data, label = records.read(row)
    try:
        return fn(data, *args), label
    except (OSError, ValueError, SyntaxError) as e:  # PIL's errors for unreadable files
        raise ValueError(f"cannot decode image {records.describe(row)}: {e}") from None


@dataclasses.dataclass(frozen=True)
class _PhotoTrainRecord:
    """Grain map: record id -> training image (crop drawn from (seed, epoch, record id))."""

    records: Records
    transform: PhotoTransform
    seed: int
    epoch: int

    def __call__(self, row: int) -> dict[str, np.ndarray]:
        rng = _rng(_STREAM_CROP, self.seed, self.epoch, row)
        image, label = _transformed(self.records, row, self.transform.train, rng)
        return {"image": image, "label": np.int32(label)}


@dataclasses.dataclass(frozen=True)
class _PhotoEvalRecord:
    """Grain map: record id -> evaluation image; id -1 is padding (zeros, mask False)."""

    records: Records
    transform: PhotoTransform
    image_shape: tuple[int, int, int]

    def __call__(self, row: int) -> dict[str, np.ndarray]:
        if row < 0:
            return {"image": np.zeros(self.image_shape, np.uint8), "label": np.int32(0),
                    "mask": np.bool_(False)}
        image, label = _transformed(self.records, row, self.transform.eval)
        return {"image": image, "label": np.int32(label), "mask": np.bool_(True)}


@dataclasses.dataclass(frozen=True)
class _AugmentBatch:
    """Grain map_with_index: batch `step` -> the batch ops of data.augment (flips, colour,
    cutout, mixing), seeded exactly as on the fixed-size path; `rows` = (first row of this
    process's slice, global batch size)."""

    augment: Compose
    seed: int
    epoch: int
    rows: tuple[int, int]

    def __call__(self, step: int, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rng = _rng(_STREAM_AUGMENT, self.seed, self.epoch, step, _AUGMENT_KEY)
        return self.augment.apply(batch, rng, rows=self.rows)


Source = ArraySource | RecordSource | PhotoSource


def split_train_val(num_examples: int, val_size: int, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Record indices (sorted) of the train and validation parts of a train split.

    The validation part is the first `val_size` entries of a permutation seeded by `split_seed`
    only, so it is the same for every training seed and every run.
    """
    train, val, _ = split_holdout(num_examples, val_size, 0, split_seed)
    return train, val


def split_holdout(num_examples: int, val_size: int, test_size: int,
                  split_seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Record indices (sorted) of the train, validation and test parts of a train split.

    One permutation seeded by `split_seed` only: validation is its first `val_size` entries
    (the same as `split_train_val`'s, whatever `test_size`), test the next `test_size`, train
    the rest. So the three are disjoint and the same for every training seed and every run.
    """
    if val_size < 0 or test_size < 0:
        raise ValueError(f"data.val_size={val_size} and data.test_size={test_size} must not be negative")
    if val_size + test_size >= num_examples:
        if test_size:
            raise ValueError(f"data.val_size={val_size} + data.test_size={test_size} leave no "
                             f"training examples out of {num_examples}: lower them")
        raise ValueError(f"data.val_size={val_size} leaves no training examples out of "
                         f"{num_examples}: lower data.val_size")
    perm = _rng(_STREAM_SPLIT, split_seed).permutation(num_examples)
    held = val_size + test_size
    return np.sort(perm[held:]), np.sort(perm[:val_size]), np.sort(perm[val_size:held])


# --------------------------------------------------------------------------------------------
# Opening and caching
# --------------------------------------------------------------------------------------------


def _open(builder, spec: DatasetSpec, encoded: bool) -> dict[str, Any]:
    # With SkipDecoding we get the PNG bytes and decode them ourselves (faster than tfds' path,
    # and threads can run it in parallel); tfds' mock data cannot encode without TensorFlow, so
    # mocked sources are read decoded.
    decoders = {spec.image_key: tfds.decode.SkipDecoding()} if encoded else None
    return {s: builder.as_data_source(split=s, decoders=decoders)
            for s in (spec.train_split, spec.test_split)}


def open_sources(spec: DatasetSpec, data_dir: str, download: bool):
    """(builder, {split: tfds data source}, is_real) for `spec`, preparing it if needed."""
    builder = catalog.tfds_builder(spec.name, data_dir)
    if catalog.is_prepared(builder):
        catalog.check_readable(builder, spec.name, data_dir or catalog.default_data_dir())
        return builder, _open(builder, spec, encoded=True), True
    try:
        # Under tfds.testing.mock_data the reader is faked and opens without any files; for a
        # real dataset that is missing tfds raises here (no splits), and we prepare it.
        return builder, _open(builder, spec, encoded=False), False
    except (KeyError, ValueError, AssertionError):
        pass
    builder = catalog.ensure_prepared(spec.name, data_dir, download)
    return builder, _open(builder, spec, encoded=True), True


def _decode_all(source, indices: np.ndarray, spec: DatasetSpec,
                batched: bool) -> tuple[np.ndarray, np.ndarray]:
    chunks = [indices[i:i + 1000] for i in range(0, len(indices), 1000)]
    parts = formats.parallel_map(lambda c: _read_records(source, c, spec, batched), chunks, chunk=1)
    if not parts:
        return np.empty((0, *spec.image_shape), np.uint8), np.empty((0,), np.int32)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _fingerprint(builder, split: str) -> str:
    """Changes whenever the split's files or the dataset info change."""
    folder = Path(os.fspath(builder.data_dir))
    h = hashlib.sha256((folder / "dataset_info.json").read_bytes())
    for f in sorted(folder.glob(f"{builder.name}-{split}.*")):
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def _load_full_split(builder, source, split: str, spec: DatasetSpec) -> tuple[np.ndarray, np.ndarray]:
    """The whole split decoded, from the on-disk cache when it is current."""
    path = Path(os.fspath(builder.data_dir), _CACHE_FOLDER, f"{split}.npz")
    fingerprint = _fingerprint(builder, split)
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["fingerprint"]) == fingerprint:
                return z["images"], z["labels"]
    except (OSError, KeyError, ValueError):
        pass  # no cache, or a stale or damaged one: decode again
    images, labels = _decode_all(source, np.arange(len(source)), spec, batched=True)
    tmp = path.with_name(f".{split}.{os.getpid()}.npz")
    try:
        path.parent.mkdir(exist_ok=True)
        np.savez(tmp, images=images, labels=labels, fingerprint=np.array(fingerprint))
        os.replace(tmp, path)  # atomic: readers never see half a file
    except OSError as e:  # a read-only data_dir, a full disk: run from memory without the cache
        log.info("not caching decoded %s/%s (%s)", spec.name, split, e)
        tmp.unlink(missing_ok=True)
    return images, labels


def _cached_sources(builder, source, split: str, spec: DatasetSpec, parts: list[np.ndarray],
                    real: bool) -> list[ArraySource]:
    """ArraySources for index sets `parts` of one split, decoding each needed record once."""
    needed = np.unique(np.concatenate(parts)) if parts else np.empty((0,), np.int64)
    if real and len(needed) == len(source):
        images, labels = _load_full_split(builder, source, split, spec)
        return [ArraySource(images, labels, p) for p in parts]
    images, labels = _decode_all(source, needed, spec, batched=real)
    return [ArraySource(images, labels, np.searchsorted(needed, p)) for p in parts]


# --------------------------------------------------------------------------------------------
# Grain sources of batches
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _TrainBatches:
    """Random-access source whose element `step` is the local part of global batch `step`."""

    source: Source
    order: np.ndarray  # this epoch's permutation of positions
    global_batch: int
    local_batch: int
    process_index: int
    augment: Compose
    seed: int
    epoch: int

    def __len__(self) -> int:
        return len(self.order) // self.global_batch

    def __getitem__(self, step: int) -> dict[str, np.ndarray]:
        start = step * self.global_batch + self.process_index * self.local_batch
        images, labels = self.source.gather(self.order[start:start + self.local_batch])
        batch = {"image": images, "label": labels.astype(np.int32)}
        if self.augment:
            rng = _rng(_STREAM_AUGMENT, self.seed, self.epoch, step, _AUGMENT_KEY)
            rows = (self.process_index * self.local_batch, self.global_batch)
            batch = self.augment.apply(batch, rng, rows=rows)
        return batch


@dataclasses.dataclass
class _EvalBatches:
    """Element k: the local part of eval batch k, zero-padded to the local batch size, with mask."""

    source: Source
    global_batch: int
    local_batch: int
    process_index: int
    image_shape: tuple[int, int, int]

    def __len__(self) -> int:
        return -(-len(self.source) // self.global_batch)

    def __getitem__(self, k: int) -> dict[str, np.ndarray]:
        start = k * self.global_batch + self.process_index * self.local_batch
        positions = np.arange(start, min(start + self.local_batch, len(self.source)))
        images = np.zeros((self.local_batch, *self.image_shape), np.uint8)
        labels = np.zeros((self.local_batch,), np.int32)
        mask = np.zeros((self.local_batch,), bool)
        if len(positions):
            x, y = self.source.gather(positions)
            images[:len(x)], labels[:len(y)], mask[:len(y)] = x, y, True
        return {"image": images, "label": labels, "mask": mask}


# --------------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------------


class InputPipeline:
    """Train / val / test batches of one dataset for one process (see the module docstring).

    Batch sizes are global; each process gets `local_batch_size = batch_size // process_count`
    examples of every batch (and of every eval batch). `train_targets` is True when every
    training batch carries 'targets' (mixup or cutmix on).
    """

    def __init__(self, spec: DatasetSpec, train: Source, val: Source | None, test: Source, *,
                 seed: int, batch_size: int, eval_batch_size: int, process_index: int,
                 process_count: int, augment: Compose, cached: bool, num_workers: int,
                 transform: PhotoTransform | None = None):
        for key, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value < 1 or value % process_count:
                raise ValueError(f"{key}={value} must be a positive multiple of the "
                                 f"{process_count} processes")
        if not 0 <= process_index < process_count:
            raise ValueError(f"process_index={process_index} is not in [0, {process_count})")
        if augment.mix is not None and process_count > 1 and (batch_size // process_count) % 2:
            raise ValueError(f"mixup/cutmix pair neighbouring examples, so each of the "
                             f"{process_count} processes needs an even share of the batch: make "
                             f"batch_size={batch_size} a multiple of {2 * process_count}")
        self.spec = spec
        self._train, self._val, self._test = train, val, test
        self.seed = int(seed)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.process_index, self.process_count = process_index, process_count
        self.local_batch_size = batch_size // process_count
        self.local_eval_batch_size = eval_batch_size // process_count
        self.augment = augment
        self.train_targets = augment.mix is not None
        self.num_train = len(train)
        self.num_val = len(val) if val is not None else 0
        self.num_test = len(test)
        self.steps_per_epoch = self.num_train // batch_size  # the remainder is dropped
        self._num_workers = num_workers
        self.transform = transform
        self._photos = isinstance(train, PhotoSource)
        if self._photos and transform is None:
            raise ValueError("photo sources need a PhotoTransform")
        threads = min(16, os.cpu_count() or 1)
        # Cached batches take microseconds: one prefetch thread is plenty. Record decoding is
        # slower; threads overlap it (PIL releases the GIL) unless worker processes do it.
        if self._photos and not num_workers:
            # Each thread builds whole batches of photos (tens of ms per photo): keep every
            # thread busy with a batch and one more batch ready for each.
            self._read_options = grain.ReadOptions(num_threads=threads,
                                                   prefetch_buffer_size=2 * threads)
        elif cached or num_workers:
            self._read_options = grain.ReadOptions(num_threads=1, prefetch_buffer_size=4)
        else:
            self._read_options = grain.ReadOptions(num_threads=min(8, threads),
                                                   prefetch_buffer_size=16)

    def _iterate(self, batches) -> Iterator[dict[str, np.ndarray]]:
        ds = batches.to_iter_dataset(self._read_options)
        if self._num_workers:
            if not absl_flags.FLAGS.is_parsed():
                # Grain's worker processes read absl flags, which only an absl app parses; their
                # defaults are what we want.
                absl_flags.FLAGS.mark_as_parsed()
            ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=self._num_workers,
                                                             per_worker_buffer_size=2))
        return iter(ds)

    def _train_source(self, epoch: int) -> _TrainBatches:
        order = self._epoch_order(epoch)
        return _TrainBatches(self._train, order, self.batch_size, self.local_batch_size,
                             self.process_index, self.augment, self.seed, epoch)

    def _epoch_order(self, epoch: int) -> np.ndarray:
        return _rng(_STREAM_SHUFFLE, self.seed, epoch).permutation(self.num_train)

    def _photo_train_dataset(self, epoch: int) -> grain.MapDataset:
        """Element `step`: this process's part of global batch `step`, decoded record by record."""
        steps, g, b = self.steps_per_epoch, self.batch_size, self.local_batch_size
        positions = self._epoch_order(epoch)[:steps * g].reshape(steps, g)
        mine = positions[:, self.process_index * b:(self.process_index + 1) * b].reshape(-1)
        ds = grain.MapDataset.source(self._train.rows[mine])
        ds = ds.map(_PhotoTrainRecord(self._train.records, self.transform, self.seed, epoch))
        ds = ds.batch(b, drop_remainder=True)
        if self.augment:
            ds = ds.map_with_index(_AugmentBatch(self.augment, self.seed, epoch,
                                                 (self.process_index * b, g)))
        return ds

    def _train_dataset(self, epoch: int) -> grain.MapDataset:
        if self._photos:
            return self._photo_train_dataset(epoch)
        return grain.MapDataset.source(self._train_source(epoch))

    def train_batch(self, epoch: int, step: int) -> dict[str, np.ndarray]:
        """Batch `step` of `epoch` directly (what `train_batches` yields at that step)."""
        if not 0 <= step < self.steps_per_epoch:
            raise IndexError(f"step {step} is outside epoch of {self.steps_per_epoch} steps")
        return self._train_dataset(epoch)[step]

    def train_batches(self, epoch: int, start_step: int = 0) -> Iterator[dict[str, np.ndarray]]:
        """The batches of `epoch` from `start_step` on: {'image': uint8 (B,H,W,C), 'label': int32 (B,)},
        plus 'targets' float32 (B, num_classes) when `train_targets` (mixup/cutmix).

        B is the local batch size; each batch is a pure function of (seed, epoch, step).
        """
        if not 0 <= start_step <= self.steps_per_epoch:
            raise ValueError(f"start_step={start_step} is outside [0, {self.steps_per_epoch}]")
        return self._iterate(self._train_dataset(epoch).slice(slice(start_step, None)))

    def eval_batches(self, split: str) -> Iterator[dict[str, np.ndarray]]:
        """All of 'val' or 'test' once, in order: {'image', 'label', 'mask'}; padding has mask False."""
        if split == "val":
            if self._val is None:
                raise ValueError("this pipeline has no validation split (data.val_size=0)")
            source = self._val
        elif split == "test":
            source = self._test
        else:
            raise ValueError(f"split must be 'val' or 'test', got {split!r}")
        if isinstance(source, PhotoSource):
            return self._iterate(self._photo_eval_dataset(source))
        batches = _EvalBatches(source, self.eval_batch_size, self.local_eval_batch_size,
                               self.process_index, self.spec.image_shape)
        return self._iterate(grain.MapDataset.source(batches))

    def _photo_eval_dataset(self, source: PhotoSource) -> grain.MapDataset:
        """Eval batch k holds positions k*G + i*B ... (process i), padded with record id -1."""
        n, g, b = len(source), self.eval_batch_size, self.local_eval_batch_size
        num_batches = -(-n // g)
        grid = (np.arange(num_batches)[:, None] * g + self.process_index * b + np.arange(b)).reshape(-1)
        rows = np.where(grid < n, source.rows[np.minimum(grid, n - 1)], -1)
        ds = grain.MapDataset.source(rows)
        ds = ds.map(_PhotoEvalRecord(source.records, self.transform, self.spec.image_shape))
        return ds.batch(b, drop_remainder=True)


def _train_val_test_rows(cfg: DataConfig, num_examples: int):
    """Record ids of the training, validation (None without) and test parts of the train split
    (None: the test set is the dataset's test split); see the module docstring."""
    if cfg.val_size or cfg.test_size:
        train_idx, val_idx, test_idx = split_holdout(num_examples, cfg.val_size, cfg.test_size,
                                                     cfg.split_seed)
    else:
        train_idx, val_idx, test_idx = np.arange(num_examples), None, None
    val_idx = val_idx if cfg.val_size else None
    test_idx = test_idx if cfg.test_size else None
    if cfg.train_subset:
        if cfg.train_subset > len(train_idx):
            raise ValueError(f"data.train_subset={cfg.train_subset} is more than the "
                             f"{len(train_idx)} training examples: lower it (0 = all)")
        train_idx = train_idx[:cfg.train_subset]
    return train_idx, val_idx, test_idx


def create_input_pipeline(data_config: Mapping[str, Any] | Any, *, seed: int, batch_size: int,
                          eval_batch_size: int, process_index: int = 0,
                          process_count: int = 1) -> InputPipeline:
    """Builds the train / val / test pipeline described by `config.data` for this process.

    Prepares the dataset if needed (`catalog.ensure_prepared`); raises DataNotPreparedError with
    the fix when it cannot.
    """
    cfg = DataConfig.from_config(data_config)
    spec = _resolve_spec(cfg)
    options = dict(seed=seed, batch_size=batch_size, eval_batch_size=eval_batch_size,
                   process_index=process_index, process_count=process_count,
                   augment=_build_augment(cfg, spec), cached=cfg.cache,
                   num_workers=cfg.num_workers)
    if spec.variable_size:
        train, val, test = _photo_sources(cfg, spec)
        transform = PhotoTransform(spec.image_shape[0], cfg.eval_resize, cfg.random_resized_crop)
        return InputPipeline(spec, train, val, test, transform=transform, **options)

    builder, sources, real = open_sources(spec, cfg.data_dir, cfg.download)
    if real:
        record = catalog.import_record(builder)
        if record and record.get("lossy"):
            log.warning("%s was imported from %s: its pixels are JPEG-degraded, not the originals",
                        spec.name, record.get("source"))
    train_split = sources[spec.train_split]
    train_idx, val_idx, held_test_idx = _train_val_test_rows(cfg, len(train_split))
    # Parts of the train split: train, val (data.val_size) and test (data.test_size).
    parts = {k: v for k, v in (("train", train_idx), ("val", val_idx), ("test", held_test_idx))
             if v is not None}
    if cfg.cache:
        out = dict(zip(parts, _cached_sources(builder, train_split, spec.train_split, spec,
                                              list(parts.values()), real), strict=True))
    else:
        out = {k: RecordSource(train_split, v, spec, real) for k, v in parts.items()}
    if "test" not in out:  # the dataset's own test split
        test_split = sources[spec.test_split]
        test_idx = np.arange(len(test_split))
        out["test"] = (_cached_sources(builder, test_split, spec.test_split, spec, [test_idx], real)[0]
                       if cfg.cache else RecordSource(test_split, test_idx, spec, real))
    return InputPipeline(spec, out["train"], out.get("val"), out["test"], **options)


def _photo_records(cfg: DataConfig, spec: DatasetSpec) -> tuple[Records, Records]:
    """(train records, test records) of an ImageNet-style dataset: files or tfds records."""
    if spec.folder:
        root = Path(spec.folder)
        train = folder.scan_split(root, spec.train_split, spec.label_names)
        test = folder.scan_split(root, spec.test_split, spec.label_names)
        return FileRecords.from_split(root, train), FileRecords.from_split(root, test)
    _, sources, _ = open_sources(spec, cfg.data_dir, cfg.download)
    return tuple(TfdsRecords(sources[s], spec.image_key, spec.label_key, f"{spec.name}/{s}")
                 for s in (spec.train_split, spec.test_split))


def _cache_photos(records: Records, ids: np.ndarray, transform: PhotoTransform,
                  name: str) -> MemoryRecords:
    """Decodes records `ids` once, shorter side resized to the evaluation size (data.cache)."""
    ids = np.unique(ids)
    decoded = formats.parallel_map(lambda r: _transformed(records, int(r), transform.cache), ids,
                                   chunk=64)
    images = tuple(d[0] for d in decoded)
    labels = np.array([d[1] for d in decoded], np.int32)
    log.info("cached %d photos of %s in memory: %.2f GB", len(ids), name,
             sum(x.nbytes for x in images) / 1e9)
    return MemoryRecords(ids, images, labels, name)


def _photo_sources(cfg: DataConfig, spec: DatasetSpec):
    train_records, test_records = _photo_records(cfg, spec)
    train_idx, val_idx, held_test_idx = _train_val_test_rows(cfg, len(train_records))
    held_out = held_test_idx is not None  # data.test_size: the test set is part of train
    test_idx = held_test_idx if held_out else np.arange(len(test_records))
    if cfg.cache:
        transform = PhotoTransform(spec.image_shape[0], cfg.eval_resize, False)
        parts = [p for p in (train_idx, val_idx, held_test_idx) if p is not None]
        train_records = _cache_photos(train_records, np.concatenate(parts), transform,
                                      f"{spec.name}/{spec.train_split}")
        if not held_out:
            test_records = _cache_photos(test_records, test_idx, transform,
                                         f"{spec.name}/{spec.test_split}")
    train = PhotoSource(train_records, train_idx)
    val = PhotoSource(train_records, val_idx) if val_idx is not None else None
    return train, val, PhotoSource(train_records if held_out else test_records, test_idx)
