"""Sources: where the examples of a split come from, read and decoded on demand.

Fixed-size datasets (MNIST, CIFAR, digit scenes, nuclei tiles) are read through
`tfds.data_source` over the array_record files (no TensorFlow): a `RecordSource` decodes the
records it is asked for, an `ArraySource` holds a split already decoded in memory
(cnn_jax.data.cache). Either maps positions 0..len-1 to record ids (`rows`), so the train / val /
test parts of one split are sources over the same records; `gather(positions)` returns the
examples as a dict of arrays, the input ('image' uint8 (N, H, W, C), or 'clip' (N, T, H, W, C))
and the dataset's targets (`DatasetSpec.targets`, shapes and dtypes in cnn_jax.data.targets;
stored boxes and their per-box flags are padded to max_boxes rows here).

Photographs of varying size (ImageNet-style datasets, 'folder:' trees, VOC) are records that a
per-photo transform turns into fixed-size arrays: `FileRecords` (image files), `TfdsRecords`
(encoded bytes of a tfds split) or `MemoryRecords` (decoded once, data.cache); `read(row)` gives
the example's raw fields ('image' and 'label' or its targets). A `PhotoSource` is the positions
-> record ids map over them.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from cnn_jax.data import folder, prepare
from cnn_jax.data.catalog import DatasetSpec, resolve_data_dir
from cnn_jax.data.targets import BOX_FLAGS, DENSE_TARGETS, pad_box_targets

# --------------------------------------------------------------------------------------------
# Fixed-size images: positions -> examples
# --------------------------------------------------------------------------------------------


def _decode_image(value: Any, shape: tuple[int, int, int]) -> np.ndarray:
    """Encoded bytes (tfds SkipDecoding) or an already decoded array -> uint8 (H, W, C)."""
    if isinstance(value, bytes | np.bytes_):
        with Image.open(io.BytesIO(value)) as im:
            value = np.asarray(im)
    return np.asarray(value, dtype=np.uint8).reshape(shape)


def read_records(source, indices: np.ndarray, spec: DatasetSpec,
                 batched: bool) -> dict[str, np.ndarray]:
    """The examples (a dict of arrays, module docstring) of records `indices` of a tfds source."""
    out = {k: np.empty((len(indices), *shape), dtype)
           for k, (shape, dtype) in spec.example_arrays().items()}
    h, w, _ = spec.image_shape[-3:]
    keys = [int(i) for i in indices]
    # A batched array_record read costs less per record than single reads; tfds' mock sources
    # only implement single reads.
    records = source.__getitems__(keys) if batched else [source[k] for k in keys]
    for j, record in enumerate(records):
        out[spec.input_key][j] = _decode_image(record[spec.image_key], spec.image_shape)
        if "label" in out:
            out["label"][j] = int(record[spec.label_key])
        for key in DENSE_TARGETS:
            if key in out:
                out[key][j] = _decode_image(record[key], (h, w, 1))[..., 0]
        if "saliency" in out:
            out["saliency"][j] = record["saliency"]
        if "boxes" in out:
            for key, value in pad_box_targets(record, spec.max_boxes).items():
                out[key][j] = value
    return out


@dataclasses.dataclass
class ArraySource:
    """Decoded examples in memory; position p is row `rows[p]` of every array of `arrays`."""

    arrays: dict[str, np.ndarray]  # 'image' (N, H, W, C) uint8 and the targets, batch-major
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def gather(self, positions: np.ndarray) -> dict[str, np.ndarray]:
        r = self.rows[positions]
        return {k: v[r] for k, v in self.arrays.items()}


@dataclasses.dataclass
class RecordSource:
    """Examples read and decoded per record from a tfds data source; position p is record rows[p]."""

    source: Any  # tfds ArrayRecordDataSource (picklable, so Grain workers can hold it)
    rows: np.ndarray
    spec: DatasetSpec
    batched: bool = True  # False for tfds.testing.mock_data sources

    def __len__(self) -> int:
        return len(self.rows)

    def gather(self, positions: np.ndarray) -> dict[str, np.ndarray]:
        return read_records(self.source, self.rows[positions], self.spec, self.batched)


# --------------------------------------------------------------------------------------------
# Photographs: records decoded one by one
# --------------------------------------------------------------------------------------------


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

    def read(self, row: int) -> dict[str, Any]:
        return {"image": self.describe(row), "label": int(self.labels[row])}


@dataclasses.dataclass(frozen=True)
class TfdsRecords:
    """Records of one tfds split (JPEG bytes with SkipDecoding; arrays from tfds' mock data):
    `fields` pairs each example key with the record's feature ('label' is read as an int)."""

    source: Any  # tfds ArrayRecordDataSource (picklable)
    fields: tuple[tuple[str, str], ...]
    name: str

    def __len__(self) -> int:
        return len(self.source)

    def describe(self, row: int) -> str:
        return f"record {row} of {self.name}"

    def read(self, row: int) -> dict[str, Any]:
        record = self.source[int(row)]
        return {k: int(record[f]) if k == "label" else record[f] for k, f in self.fields}


@dataclasses.dataclass(frozen=True)
class MemoryRecords:
    """Photos decoded once (data.cache=True): record ids `ids` (sorted) -> decoded examples."""

    ids: np.ndarray
    examples: tuple[dict[str, Any], ...]
    name: str

    def __len__(self) -> int:
        return len(self.ids)

    def describe(self, row: int) -> str:
        return f"cached record {row} of {self.name}"

    def read(self, row: int) -> dict[str, Any]:
        return self.examples[int(np.searchsorted(self.ids, row))]


Records = FileRecords | TfdsRecords | MemoryRecords


@dataclasses.dataclass
class PhotoSource:
    """Photos of varying size, decoded per record: position p is record `rows[p]` of `records`."""

    records: Records
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)


Source = ArraySource | RecordSource | PhotoSource


def decode_record(records: Records, row: int, fn: Callable, *args) -> dict[str, Any]:
    """fn(example, *args) of record `row`; an unreadable image raises one line naming it."""
    example = records.read(row)
    try:
        return fn(example, *args)
    except (OSError, ValueError, SyntaxError) as e:  # PIL's errors for unreadable files
        raise ValueError(f"cannot decode image {records.describe(row)}: {e}") from None


# --------------------------------------------------------------------------------------------
# Opening a dataset
# --------------------------------------------------------------------------------------------


def _open(builder, spec: DatasetSpec, encoded: bool) -> dict[str, Any]:
    # With SkipDecoding we get the PNG bytes and decode them ourselves (faster than tfds' path,
    # and threads can run it in parallel); tfds' mock data cannot encode without TensorFlow, so
    # mocked sources are read decoded.
    images = [k for k in (spec.image_key, *DENSE_TARGETS) if k in builder.info.features]
    decoders = {k: tfds.decode.SkipDecoding() for k in images} if encoded else None
    return {s: builder.as_data_source(split=s, decoders=decoders)
            for s in (spec.train_split, spec.test_split)}


def open_sources(spec: DatasetSpec, data_dir: str, download: bool):
    """(builder, {split: tfds data source}, is_real) for `spec`, preparing it if needed
    (generated datasets are generated before, by cnn_jax.data.generate)."""
    if spec.origin != "tfds":  # not a tfds builder: the files are all there is
        builder = prepare.ensure_prepared(spec.name, data_dir, download)
        return builder, _open(builder, spec, encoded=True), True
    builder = prepare.tfds_builder(spec.name, data_dir)
    if prepare.is_prepared(builder):
        prepare.check_readable(builder, spec.name, resolve_data_dir(data_dir))
        return builder, _open(builder, spec, encoded=True), True
    try:
        # Under tfds.testing.mock_data the reader is faked and opens without any files; for a
        # real dataset that is missing tfds raises here (no splits), and we prepare it.
        return builder, _open(builder, spec, encoded=False), False
    except (KeyError, ValueError, AssertionError):
        pass
    builder = prepare.ensure_prepared(spec.name, data_dir, download)
    return builder, _open(builder, spec, encoded=True), True


def photo_records(spec: DatasetSpec, data_dir: str, download: bool) -> tuple[Records, Records]:
    """(train records, test records) of an ImageNet-style dataset: files or tfds records."""
    if spec.folder:
        root = Path(spec.folder)
        train = folder.scan_split(root, spec.train_split, spec.label_names)
        test = folder.scan_split(root, spec.test_split, spec.label_names)
        return FileRecords.from_split(root, train), FileRecords.from_split(root, test)
    _, sources, _ = open_sources(spec, data_dir, download)
    fields = (("image", spec.image_key),
              *((k, spec.label_key if k == "label" else k) for k in spec.targets if k in
                ("label", *DENSE_TARGETS, "boxes", "classes", *BOX_FLAGS)))
    return tuple(TfdsRecords(sources[s], fields, f"{spec.name}/{s}")
                 for s in (spec.train_split, spec.test_split))
