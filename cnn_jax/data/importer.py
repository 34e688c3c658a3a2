"""Offline import: a local copy of a dataset's distribution files written into the data_dir as
exactly what tfds' builder would write.

`cnn_jax.data.formats` reads the files (MNIST/Fashion-MNIST IDX, CIFAR batches, .npz arrays or
JPEG bytes) into uint8 arrays; `import_local` checks them against the catalogue and writes the
tfds dataset: same name, version, features, split names and label names, so the same pipeline
(and `tfds.load` for TensorFlow users) reads it. Datasets with targets that tfds has no builder
for are read by `dense_formats` (nuclei_dsb2018, voc2012_segmentation), `detection_formats`
(voc2007_detection, voc2012_detection, coco2017) and `saliency_formats` (salicon, mit1003), and
written, streamed in chunks, with the features of their catalogue spec (`writer.dataset_info`).
A record of where the data came from (`prepare.IMPORT_RECORD`) is written beside it
(cnn_jax.data.writer).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from cnn_jax.data import dense_formats, detection_formats, formats, saliency_formats, writer
from cnn_jax.data.catalog import (
    CIFAR10_LABELS,
    CIFAR100_COARSE_LABELS,
    CIFAR100_LABELS,
    DatasetSpec,
    get_dataset_spec,
)
from cnn_jax.data.prepare import import_hint
from cnn_jax.errors import DataImportError

log = logging.getLogger(__name__)


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


def _examples(spec: DatasetSpec, split: str, a: formats.SplitArrays, features) -> list[dict]:
    pngs = formats.parallel_map(writer.encode_png, a.images)
    features = set(features.keys())
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
    if spec.origin == "generated":
        raise DataImportError(f"{name} is generated, not imported: {import_hint(name)}")
    if spec.origin == "import":
        return _import_dense(spec, path, data_dir)
    if spec.variable_size:
        raise DataImportError(f"{name} photos are not imported: {import_hint(name)} "
                              f"(or let tfds prepare it)")
    source = os.fspath(Path(path).expanduser())
    data = formats.read_local(name, source, spec.image_shape[-1])
    data = _validated(spec, data, source)
    note = _verification_note(spec, data)
    if note:
        data.notes.insert(0, note)
    if data.lossy:
        log.warning("%s from %s: the pixels are JPEG-degraded, not the original pixels", name, source)

    def info_for(staging: str):
        builder = tfds.builder(spec.tfds_full_name, data_dir=staging, file_format="array_record")
        for feature, default in _NAMES_SET_AT_PREPARE.get(name, {}).items():
            builder.info.features[feature].names = data.label_names.get(feature) or list(default)
        return builder.info

    def examples_for(info) -> dict[str, list[dict]]:
        return {split: _examples(spec, split, data.splits[split], info.features)
                for split in (spec.train_split, spec.test_split)}

    record = {"source": source, "format": data.source_format, "lossy": data.lossy,
              "notes": data.notes}
    written = writer.write_dataset(spec, data_dir, info_for, examples_for, record)
    return ImportReport(name=name, counts=written.counts, target=written.target, source=source,
                        source_format=data.source_format, lossy=data.lossy, notes=data.notes,
                        replaced=written.replaced)


def read_dense(spec: DatasetSpec, path: Path) -> dense_formats.DenseData:
    """The local copy of `spec`'s dataset with targets at `path` (layouts in the readers'
    modules); DataImportError (one line) when it is missing or malformed."""
    if spec.name == "nuclei_dsb2018":
        return dense_formats.read_nuclei(path, spec.max_boxes)
    if spec.name == "voc2012_segmentation":
        return dense_formats.read_voc(path)
    if spec.name in ("voc2007_detection", "voc2012_detection"):
        return detection_formats.read_voc_detection(spec, path)
    if spec.name == "coco2017":
        return detection_formats.read_coco(spec, path)
    if spec.name == "salicon":
        return saliency_formats.read_salicon(path, spec.image_shape[:2])
    if spec.name == "mit1003":
        return saliency_formats.read_mit1003(path, spec.image_shape[:2])
    raise DataImportError(f"no reader for {spec.name!r}")


def _import_dense(spec: DatasetSpec, path: str | os.PathLike,
                  data_dir: str | os.PathLike | None) -> ImportReport:
    """Imports a dataset with targets under the features of its catalogue spec."""
    source = os.fspath(Path(path).expanduser())
    data = read_dense(spec, Path(source))
    record = {"source": source, "format": data.source_format, "lossy": False, "notes": data.notes}
    written = writer.write_dataset(
        spec, data_dir, lambda staging: writer.dataset_info(spec, staging),
        lambda info: {s: writer.encode_stream(examples) for s, examples in data.splits.items()},
        record)
    return ImportReport(name=spec.name, counts=written.counts, target=written.target,
                        source=source, source_format=data.source_format, lossy=False,
                        notes=data.notes, replaced=written.replaced)


def import_local(name: str, path: str | os.PathLike, data_dir: str | os.PathLike | None) -> dict[str, int]:
    """Imports a local copy of dataset `name` from `path` into `data_dir`; returns split sizes.

    `path`: a folder of the standard distribution files (MNIST/Fashion-MNIST IDX, .gz or not;
    CIFAR python or binary batches, or their .tar.gz), or a .npz (x_train, y_train, x_test,
    y_test; or JPEG bytes + offsets as shared/data/cifar10_jpeg.npz, with an optional
    `<stem>_test_order.npz` beside it); for nuclei_dsb2018 shared/data/nuclei_dsb2018.npz, for
    voc2012_segmentation a VOCdevkit folder (layouts in cnn_jax.data.dense_formats), for the
    detection datasets a VOCdevkit or COCO folder (cnn_jax.data.detection_formats), for salicon
    and mit1003 their folders (cnn_jax.data.saliency_formats). Examples keep the source order. An existing copy in
    `data_dir` is replaced atomically. Raises DataImportError (one line) on bad input.
    """
    return _import(name, path, data_dir).counts


def data_main_import(name: str, path: str, data_dir: str | None) -> str:
    """`cnn-jax data import NAME --from PATH [--data_dir DIR]`: imports and returns one summary line."""
    return _import(name, path, data_dir).summary()

