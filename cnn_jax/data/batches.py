"""The elements of the Grain datasets: one training or evaluation batch, a pure function of its
index and of the seeds.

Every element is a dict of arrays: 'image' and the dataset's targets (cnn_jax.data.targets),
which travel with their images through the gathers, the padding and the augmentation.

Fixed-size datasets: one element is one *batch*. Element `step` of epoch `epoch` gathers the
examples `order[step*B:(step+1)*B]` of the epoch's permutation (vectorised numpy on the cache,
per-record reads otherwise) and augments them with the generator of (seed, epoch, step)
(`streams.augment_rng`); evaluation element k is eval batch k, zero-padded, with a mask.

Photographs: one element is one record id, mapped through the per-photo transform (the crop's
generator is `streams.crop_rng(seed, epoch, record id)`; `transforms.PhotoTransform` for class
labels, `photo_targets.DensePhotoTransform` for masks and boxes), then batched and given the
batch ops of data.augment by `AugmentBatch`, seeded as on the fixed-size path.

Multi-host: process i holds rows [i*B/P, (i+1)*B/P) of every global batch of B rows; the batch
ops draw their random numbers for all B rows and keep those of its rows (`Compose.apply(rows=)`),
so the batches do not depend on the process count P.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from cnn_jax.data.augment import Compose
from cnn_jax.data.catalog import DatasetSpec
from cnn_jax.data.photo_targets import AnyPhotoTransform
from cnn_jax.data.sources import Records, Source, decode_record
from cnn_jax.data.streams import augment_rng, crop_rng


@dataclasses.dataclass(frozen=True)
class AugmentBatch:
    """Batch `step` -> the batch ops of data.augment (geometry, flips, colour, cutout, mixing)
    with the generator of (seed, epoch, step); `rows` = (first row of this process's slice,
    global batch size). A Grain `map_with_index` function."""

    augment: Compose
    seed: int
    epoch: int
    rows: tuple[int, int]

    def __call__(self, step: int, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.augment.apply(batch, augment_rng(self.seed, self.epoch, step), rows=self.rows)


@dataclasses.dataclass
class TrainBatches:
    """Random-access source whose element `step` is the local part of global batch `step`."""

    source: Source
    order: np.ndarray  # this epoch's permutation of positions
    global_batch: int
    local_batch: int
    process_index: int
    augment: AugmentBatch | None  # None: no batch ops

    def __len__(self) -> int:
        return len(self.order) // self.global_batch

    def __getitem__(self, step: int) -> dict[str, np.ndarray]:
        start = step * self.global_batch + self.process_index * self.local_batch
        batch = self.source.gather(self.order[start:start + self.local_batch])
        return self.augment(step, batch) if self.augment is not None else batch


@dataclasses.dataclass
class EvalBatches:
    """Element k: the local part of eval batch k, zero-padded to the local batch size, with mask."""

    source: Source
    global_batch: int
    local_batch: int
    process_index: int
    spec: DatasetSpec

    def __len__(self) -> int:
        return -(-len(self.source) // self.global_batch)

    def __getitem__(self, k: int) -> dict[str, np.ndarray]:
        start = k * self.global_batch + self.process_index * self.local_batch
        positions = np.arange(start, min(start + self.local_batch, len(self.source)))
        batch = self.spec.zeros(self.local_batch)
        mask = np.zeros((self.local_batch,), bool)
        if len(positions):
            for key, value in self.source.gather(positions).items():
                batch[key][:len(value)] = value
            mask[:len(positions)] = True
        return {**batch, "mask": mask}


@dataclasses.dataclass(frozen=True)
class PhotoTrainRecord:
    """Grain map: record id -> training example (crop drawn from (seed, epoch, record id))."""

    records: Records
    transform: AnyPhotoTransform
    seed: int
    epoch: int

    def __call__(self, row: int) -> dict[str, np.ndarray]:
        rng = crop_rng(self.seed, self.epoch, row)
        return decode_record(self.records, row, self.transform.train_example, rng)


@dataclasses.dataclass(frozen=True)
class PhotoEvalRecord:
    """Grain map: record id -> evaluation example; id -1 is padding (zeros, mask False)."""

    records: Records
    transform: AnyPhotoTransform
    spec: DatasetSpec

    def __call__(self, row: int) -> dict[str, np.ndarray]:
        if row < 0:
            padding = {k: v[0] for k, v in self.spec.zeros(1, self.spec.eval_image_shape).items()}
            return {**padding, "mask": np.bool_(False)}
        example = decode_record(self.records, row, self.transform.eval_example)
        return {**example, "mask": np.bool_(True)}
