"""Writing a dataset into the data_dir as tfds array_record files, atomically, with a record of
where it came from (`prepare.IMPORT_RECORD` beside dataset_info.json).

`write_dataset` is shared by the offline import (cnn_jax.data.importer: tfds' own builders' info,
so the files are what tfds would write) and by the datasets tfds has no builder for (the dense
imports and the generated scenes: `dataset_info` describes their features from the catalogue
spec). Either way `tfds.data_source` and, for TensorFlow users, `tfds.load` /
`tfds.builder_from_directory` read them. Examples are dicts of features; images and uint8
per-pixel maps given as arrays are encoded as PNG (`encode_png`), bytes (a photo's JPEG) are
kept as they are. A clip (T, H, W, C) is one PNG of its frames stacked vertically (T * H, W, C),
which a reader reshapes; a saliency map is stored as float32, zlib-compressed. A split's examples
may be any iterable (a generator streams a large import through in chunks: `encode_stream`).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image
from tensorflow_datasets.core import dataset_info as tfds_info

from cnn_jax.data import formats
from cnn_jax.data.catalog import DatasetSpec, resolve_data_dir
from cnn_jax.data.prepare import IMPORT_RECORD
from cnn_jax.data.targets import BOX_FLAGS, DENSE_TARGETS

Examples = Mapping[str, Iterable[dict]]  # split -> examples, in the order they are written
ENCODED = ("image", "clip", *DENSE_TARGETS)  # the features stored as PNG


@dataclasses.dataclass
class Written:
    """Where `write_dataset` put a dataset and how many examples each split holds."""

    target: str
    counts: dict[str, int]
    replaced: bool


def encode_png(image: np.ndarray, compress_level: int = 6) -> bytes:
    """A uint8 (H, W), (H, W, 1) or (H, W, 3) array as PNG bytes (lossless; zlib level
    `compress_level`, PIL's default 6)."""
    buf = io.BytesIO()
    Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image).save(
        buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def _encode(example: dict) -> dict:
    """One example with its image-like arrays (ENCODED) as PNG bytes; zlib's fastest level:
    generated data is written anew with every generation, and the decode cache reads it once."""
    out = dict(example)
    for key in ENCODED:
        value = example.get(key)
        if isinstance(value, np.ndarray):
            frames = value.reshape(-1, *value.shape[2:]) if key == "clip" else value
            out[key] = encode_png(frames, compress_level=1)
    return out


def _chunks(examples: Iterable[dict], size: int) -> Iterator[list[dict]]:
    """Lists of `size` consecutive examples (the last one shorter)."""
    chunk: list[dict] = []
    for example in examples:
        chunk.append(example)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def encode_examples(examples: list[dict]) -> list[dict]:
    """Examples with every image-like array ('image', 'clip', uint8 per-pixel maps) encoded as
    PNG, on a thread pool (zlib releases the GIL)."""
    return formats.parallel_map(_encode, examples, chunk=256)


def encode_stream(examples: Iterable[dict], chunk: int = 512) -> Iterator[dict]:
    """`encode_examples` of an iterable, `chunk` examples at a time: a large import never holds
    more than a chunk of decoded arrays."""
    for part in _chunks(examples, chunk):
        yield from encode_examples(part)


def dataset_features(spec: DatasetSpec) -> tfds.features.FeaturesDict:
    """The stored features of a dataset tfds has no builder for, from its catalogue spec: the
    input and the targets ('box_mask' is not stored: it is which rows exist)."""
    *t, h, w, c = spec.image_shape
    if spec.variable_size:
        h, w = None, None
    encoding = "jpeg" if spec.variable_size else "png"  # photos keep their JPEG bytes
    stored = (h * t[0] if t else h, w, c)  # a clip's frames stacked vertically
    features = {spec.image_key: tfds.features.Image(shape=stored, encoding_format=encoding)}
    if "label" in spec.targets:
        features["label"] = tfds.features.ClassLabel(names=list(spec.label_names))
    for key in DENSE_TARGETS:
        if key in spec.targets:
            features[key] = tfds.features.Image(shape=(h, w, 1), encoding_format="png")
    if "saliency" in spec.targets:
        features["saliency"] = tfds.features.Tensor(shape=(h, w), dtype=np.float32,
                                                    encoding=tfds.features.Encoding.ZLIB)
    if "boxes" in spec.targets:
        features["boxes"] = tfds.features.Tensor(shape=(None, 4), dtype=np.float32)
        features["classes"] = tfds.features.Tensor(shape=(None,), dtype=np.int64)
    for key in BOX_FLAGS:
        if key in spec.targets:
            features[key] = tfds.features.Tensor(shape=(None,), dtype=np.bool_)
    return tfds.features.FeaturesDict(features)


def dataset_info(spec: DatasetSpec, data_dir: str) -> tfds_info.DatasetInfo:
    """tfds' description of `spec`'s files under `data_dir` (name[/config]/version)."""
    name, _, config = spec.tfds_name.partition("/")
    identity = tfds_info.DatasetIdentity(
        name=name, version=tfds.core.Version(spec.tfds_version),
        data_dir=os.path.join(data_dir, spec.tfds_name, spec.tfds_version),
        module_name=__name__, config_name=config or None)
    return tfds_info.DatasetInfo(builder=identity, features=dataset_features(spec),
                                 description=spec.description, homepage=spec.source_url or None)


def write_dataset(spec: DatasetSpec, data_dir: str | os.PathLike | None,
                  info_for: Callable[[str], tfds_info.DatasetInfo],
                  examples_for: Callable[[tfds_info.DatasetInfo], Examples],
                  record: dict, replace: bool = True) -> Written:
    """Writes the splits `examples_for(info)` gives with the DatasetInfo `info_for(staging
    folder)` gives, then moves them to <data_dir>/<tfds name>/<version> with `record` (+ counts)
    as the import record. A copy already there is replaced, or with `replace=False` kept (another
    process generated the same data meanwhile: readers of it are not disturbed)."""
    root = Path(resolve_data_dir(data_dir))
    root.mkdir(parents=True, exist_ok=True)
    target = root / spec.tfds_name / spec.tfds_version
    # Write into a temporary folder of the same file system and rename it into place at the end:
    # tfds treats any folder with a dataset_info.json as prepared, so a failed or interrupted
    # write must never leave one at `target`.
    prefix = f".import-{spec.tfds_name.partition('/')[0]}-"
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    try:
        info = info_for(os.fspath(staging))
        os.makedirs(info.data_dir)
        writer = tfds.core.SequentialWriter(info, max_examples_per_shard=100_000, overwrite=True,
                                            file_format="array_record")
        splits = examples_for(info)
        writer.initialize_splits(list(splits))
        counts = dict.fromkeys(splits, 0)
        for split, examples in splits.items():
            for chunk in _chunks(examples, 1000):  # the writer rewrites its metadata per call
                writer.add_examples({split: chunk})
                counts[split] += len(chunk)
        writer.close_all()
        Path(info.data_dir, IMPORT_RECORD).write_text(json.dumps({**record, "counts": counts},
                                                                 indent=2))
        target.parent.mkdir(parents=True, exist_ok=True)
        replaced = target.exists()
        if replaced and not replace:
            return Written(os.fspath(target), counts, False)
        if replaced:  # move the old copy aside first; it is deleted with the staging folder
            os.rename(target, staging / "replaced")
        try:
            os.rename(info.data_dir, target)
        except OSError:  # a non-empty folder appeared at `target`: another process's copy
            if replace or not (target / "dataset_info.json").is_file():
                raise
            replaced = False
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Written(os.fspath(target), counts, replaced)
