"""Input pipeline: a dataset's sources -> Grain -> shuffled, augmented batches for one process.

    pipe = create_input_pipeline(config.data, seed=config.seed, batch_size=128, eval_batch_size=500)
    for batch in pipe.train_batches(epoch, start_step=0): ...   # {'image': uint8, 'label': int32}
                                                      # + 'targets' float32 (B, K) with mixup/cutmix
    for batch in pipe.eval_batches('val'): ...                   # + 'mask' (False on padding)

Batches hold 'image' (or 'clip' for clip datasets: `DatasetSpec.input_key`) and the targets the
dataset carries (`DatasetSpec.targets`: 'label', or 'segmentation', 'boxes', 'classes',
'box_mask', 'difficult', 'crowd', 'instances', 'saliency', 'fixations'; dtypes and shapes in
cnn_jax.data.targets); every key travels through the cache, the splits, the padding, the
multi-host slicing and the augmentation as the images do (clips take no augmentation).

Design:
  * Reading (cnn_jax.data.sources): `tfds.data_source` over the array_record files (no
    TensorFlow); with `data.cache=True` a split is decoded once into uint8 arrays and kept on disk
    beside the tfds files (cnn_jax.data.cache). Photographs of varying size (ImageNet-style:
    imagenet2012, imagenette, 'folder:ROOT' trees; `DatasetSpec.variable_size`) are decoded per
    record by `transforms.PhotoTransform` (PIL decode to RGB, then the random resized crop for
    training, resize-256-center-crop-224 for evaluation); photos with masks (VOC) by
    `photo_targets.DensePhotoTransform` (random scale and crop for training, the whole photo
    padded to `DatasetSpec.eval_size` for evaluation). Generated datasets (digit scenes) are
    generated into the data_dir the first time a run needs them (cnn_jax.data.generate).
  * Splits (cnn_jax.data.splits): validation and an optional test set are held out of the train
    split by a permutation fixed by `data.split_seed` alone.
  * Grain (cnn_jax.data.batches): one `grain.MapDataset` element is one batch, built and
    augmented as a pure function of (seed, epoch, step) (cnn_jax.data.streams). So a run resumed
    at `start_step` sees exactly the batches an uninterrupted run would, whatever the number of
    Grain workers; batch-level elements also keep the per-example Python cost out of the hot
    loop. Photos are mapped record by record through the transform, then batched and given the
    batch ops. Grain runs the maps in `data.num_workers` worker processes, or with 0 in a pool of
    threads (PIL releases the GIL while it decodes and resizes; threads start at once where worker
    processes take seconds to start, a cost paid by every epoch and every evaluation; see
    experiments/bench_input_pipeline.py). Threads and workers compute whole batches, so the
    batches are the same whichever is used.
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
  * Normalisation is not done here: images stay uint8; the train/eval step normalises on device.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

import grain
import numpy as np
from absl import flags as absl_flags

from cnn_jax.data import cache, generate, prepare
from cnn_jax.data.augment import Compose, build_augment, check_for_targets
from cnn_jax.data.batches import (
    AugmentBatch,
    EvalBatches,
    PhotoEvalRecord,
    PhotoTrainRecord,
    TrainBatches,
)
from cnn_jax.data.catalog import DatasetSpec, get_dataset_spec
from cnn_jax.data.photo_targets import AnyPhotoTransform, DensePhotoTransform
from cnn_jax.data.sources import PhotoSource, RecordSource, Source, open_sources, photo_records
from cnn_jax.data.splits import train_val_test_rows
from cnn_jax.data.streams import shuffle_rng
from cnn_jax.data.transforms import PhotoTransform

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """The `config.data` section (keys as in `cnn_jax.config.base_config`), with its defaults."""

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

    Raises ValueError (one line; ConfigError when the augmentation cannot move the dataset's
    targets, `augment.check_for_targets`). `config.validate_config` calls it before any run.
    """
    return _resolve_spec(DataConfig.from_config(data_config))


def _resolve_spec(cfg: DataConfig) -> DatasetSpec:
    spec = get_dataset_spec(cfg.name, cfg.image_size)
    check_for_targets(cfg.augment, spec.targets, spec.input_key)
    _build_augment(cfg, spec)  # bad augmentation options fail here, before any data is read
    if spec.variable_size and spec.eval_size:  # photos with masks: evaluated whole, padded
        if spec.eval_size < spec.image_shape[0]:
            raise ValueError(f"data.image_size={spec.image_shape[0]} is larger than the "
                             f"{spec.eval_size}x{spec.eval_size} evaluation images of {spec.name}: "
                             f"use at most {spec.eval_size}")
    elif spec.variable_size:
        size = spec.image_shape[0]
        if cfg.eval_resize and cfg.eval_resize < size:
            raise ValueError(f"data.eval_resize={cfg.eval_resize} is smaller than the {size}x{size} "
                             f"crop: use at least {size} (256 for 224, the papers' ratio), or 0")
    elif cfg.random_resized_crop:
        raise ValueError(f"data.augment.random_resized_crop is for ImageNet-style photos, not "
                         f"{cfg.name}: use data.augment.random_crop_padding")
    return spec


def _build_augment(cfg: DataConfig, spec: DatasetSpec) -> Compose:
    """`data.augment` for this dataset (checked against its image shape (a clip's frames) and
    classes)."""
    return build_augment(cfg.augment, image_shape=spec.image_shape[-3:],
                         num_classes=spec.num_classes)


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
                 transform: AnyPhotoTransform | None = None):
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
            # Each thread builds whole batches of photos, each photo far slower than a cached
            # batch: keep every thread busy with a batch and one more batch ready for each.
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

    def _augment_batch(self, epoch: int) -> AugmentBatch | None:
        """The batch ops of `epoch` for this process's rows, or None without augmentation."""
        if not self.augment:
            return None
        rows = (self.process_index * self.local_batch_size, self.batch_size)
        return AugmentBatch(self.augment, self.seed, epoch, rows)

    def _epoch_order(self, epoch: int) -> np.ndarray:
        return shuffle_rng(self.seed, epoch).permutation(self.num_train)

    def _photo_train_dataset(self, epoch: int) -> grain.MapDataset:
        """Element `step`: this process's part of global batch `step`, decoded record by record."""
        steps, g, b = self.steps_per_epoch, self.batch_size, self.local_batch_size
        positions = self._epoch_order(epoch)[:steps * g].reshape(steps, g)
        mine = positions[:, self.process_index * b:(self.process_index + 1) * b].reshape(-1)
        ds = grain.MapDataset.source(self._train.rows[mine])
        ds = ds.map(PhotoTrainRecord(self._train.records, self.transform, self.seed, epoch))
        ds = ds.batch(b, drop_remainder=True)
        augment = self._augment_batch(epoch)
        return ds.map_with_index(augment) if augment is not None else ds

    def _train_dataset(self, epoch: int) -> grain.MapDataset:
        if self._photos:
            return self._photo_train_dataset(epoch)
        return grain.MapDataset.source(TrainBatches(
            self._train, self._epoch_order(epoch), self.batch_size, self.local_batch_size,
            self.process_index, self._augment_batch(epoch)))

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
        """All of 'val', 'test' or 'train' once, in order, as evaluation sees them (no augmentation):
        {'image', 'label', 'mask'}; padding has mask False. 'train' is the training examples left
        after the validation split, in their stored order (a model scored on them and on 'val'
        shows whether it under- or over-fits)."""
        if split == "val":
            if self._val is None:
                raise ValueError("this pipeline has no validation split (data.val_size=0)")
            source = self._val
        elif split == "test":
            source = self._test
        elif split == "train":
            source = self._train
        else:
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        if isinstance(source, PhotoSource):
            return self._iterate(self._photo_eval_dataset(source))
        batches = EvalBatches(source, self.eval_batch_size, self.local_eval_batch_size,
                              self.process_index, self.spec)
        return self._iterate(grain.MapDataset.source(batches))

    def _photo_eval_dataset(self, source: PhotoSource) -> grain.MapDataset:
        """Eval batch k holds positions k*G + i*B ... (process i), padded with record id -1."""
        n, g, b = len(source), self.eval_batch_size, self.local_eval_batch_size
        num_batches = -(-n // g)
        grid = (np.arange(num_batches)[:, None] * g + self.process_index * b + np.arange(b)).reshape(-1)
        rows = np.where(grid < n, source.rows[np.minimum(grid, n - 1)], -1)
        ds = grain.MapDataset.source(rows)
        ds = ds.map(PhotoEvalRecord(source.records, self.transform, self.spec))
        return ds.batch(b, drop_remainder=True)


def create_input_pipeline(data_config: Mapping[str, Any] | Any, *, seed: int, batch_size: int,
                          eval_batch_size: int, process_index: int = 0,
                          process_count: int = 1) -> InputPipeline:
    """Builds the train / val / test pipeline described by `config.data` for this process.

    Prepares the dataset if needed (`prepare.ensure_prepared`); raises DataNotPreparedError with
    the fix when it cannot.
    """
    cfg = DataConfig.from_config(data_config)
    spec = _resolve_spec(cfg)
    options = dict(seed=seed, batch_size=batch_size, eval_batch_size=eval_batch_size,
                   process_index=process_index, process_count=process_count,
                   augment=_build_augment(cfg, spec), cached=cfg.cache,
                   num_workers=cfg.num_workers)
    if spec.variable_size:
        transform = _photo_transform(cfg, spec)
        train, val, test = _photo_sources(cfg, spec, transform)
        return InputPipeline(spec, train, val, test, transform=transform, **options)
    train, val, test = _array_sources(cfg, spec)
    return InputPipeline(spec, train, val, test, **options)


def _photo_transform(cfg: DataConfig, spec: DatasetSpec) -> AnyPhotoTransform:
    """The per-photo transform: with masks or boxes the one that moves them with the photo."""
    if spec.targets == ("label",):
        return PhotoTransform(spec.image_shape[0], cfg.eval_resize, cfg.random_resized_crop)
    return DensePhotoTransform(spec.image_shape[0], spec.eval_size, cfg.random_resized_crop,
                               spec.max_boxes)


def _rows(cfg: DataConfig, num_examples: int):
    """(train, val or None, test or None) record ids of a train split of `num_examples`."""
    return train_val_test_rows(num_examples, cfg.val_size, cfg.test_size, cfg.split_seed,
                               cfg.train_subset)


def _array_sources(cfg: DataConfig, spec: DatasetSpec) -> tuple[Source, Source | None, Source]:
    """Train, val (None without) and test sources of a fixed-size dataset, decoded once into
    memory with data.cache, else read record by record; a generated dataset is generated first
    if the data_dir lacks it."""
    if spec.origin == "generated":
        generate.ensure_generated(spec.name, cfg.data_dir, cfg.download)
    builder, sources, real = open_sources(spec, cfg.data_dir, cfg.download)
    if real:
        record = prepare.import_record(builder)
        if record and record.get("lossy"):
            log.warning("%s was imported from %s: its pixels are JPEG-degraded, not the originals",
                        spec.name, record.get("source"))
    train_split = sources[spec.train_split]
    train_idx, val_idx, held_test_idx = _rows(cfg, len(train_split))
    # Parts of the train split: train, val (data.val_size) and test (data.test_size).
    parts = {k: v for k, v in (("train", train_idx), ("val", val_idx), ("test", held_test_idx))
             if v is not None}
    if cfg.cache:
        out = dict(zip(parts, cache.cached_sources(builder, train_split, spec.train_split, spec,
                                                   list(parts.values()), real), strict=True))
    else:
        out = {k: RecordSource(train_split, v, spec, real) for k, v in parts.items()}
    if "test" not in out:  # the dataset's own test split
        test_split = sources[spec.test_split]
        test_idx = np.arange(len(test_split))
        out["test"] = (cache.cached_sources(builder, test_split, spec.test_split, spec, [test_idx],
                                            real)[0]
                       if cfg.cache else RecordSource(test_split, test_idx, spec, real))
    return out["train"], out.get("val"), out["test"]


def _photo_sources(cfg: DataConfig, spec: DatasetSpec, transform: AnyPhotoTransform
                   ) -> tuple[PhotoSource, PhotoSource | None, PhotoSource]:
    """Train, val (None without) and test sources of an ImageNet-style dataset; with data.cache
    every photo they hold is decoded once (cache.cache_photos)."""
    train_records, test_records = photo_records(spec, cfg.data_dir, cfg.download)
    train_idx, val_idx, held_test_idx = _rows(cfg, len(train_records))
    held_out = held_test_idx is not None  # data.test_size: the test set is part of train
    test_idx = held_test_idx if held_out else np.arange(len(test_records))
    if cfg.cache:
        parts = [p for p in (train_idx, val_idx, held_test_idx) if p is not None]
        train_records = cache.cache_photos(train_records, np.concatenate(parts), transform,
                                           f"{spec.name}/{spec.train_split}")
        if not held_out:
            test_records = cache.cache_photos(test_records, test_idx, transform,
                                              f"{spec.name}/{spec.test_split}")
    train = PhotoSource(train_records, train_idx)
    val = PhotoSource(train_records, val_idx) if val_idx is not None else None
    return train, val, PhotoSource(train_records if held_out else test_records, test_idx)
