"""The decode cache (data.cache=True): a split decoded once into memory, and kept on disk.

Fixed-size datasets: the records a run needs are decoded once into arrays (`ArraySource`: the
image and every target), so a batch is a numpy gather instead of a PNG decode per record. A
whole decoded split is also kept beside the tfds files (`cnn_jax_cache/<split>.npz`, one array
per batch key), checked against the files' sizes and modification times and the dataset info,
so the next run loads it instead of decoding; nothing is written when the folder is read-only.

Photographs: every photo is decoded once and kept in memory with its shorter side resized to the
evaluation size (`PhotoTransform.cache`; about 3 * eval_resize^2 * 4/3 bytes per photo: 260 KB
at 256, 2.5 GB for Imagenette's 9,469 training photos but 330 GB for ImageNet's 1.28 M, so only
for small trees). Evaluation batches are then identical to the uncached ones; training crops
are drawn from the resized photo (a second resampling) instead of the original. Photos with
masks (VOC) are kept decoded at their own size with their masks
(`DensePhotoTransform.cache_example`), so cached and uncached batches are the same.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from cnn_jax.data import formats
from cnn_jax.data.catalog import DatasetSpec
from cnn_jax.data.photo_targets import AnyPhotoTransform
from cnn_jax.data.sources import ArraySource, MemoryRecords, Records, decode_record, read_records

log = logging.getLogger(__name__)

_CACHE_FOLDER = "cnn_jax_cache"


def decode_all(source, indices: np.ndarray, spec: DatasetSpec,
               batched: bool) -> dict[str, np.ndarray]:
    """Records `indices` of a tfds source decoded (a dict of arrays), in chunks on a thread pool."""
    chunks = [indices[i:i + 1000] for i in range(0, len(indices), 1000)]
    parts = formats.parallel_map(lambda c: read_records(source, c, spec, batched), chunks, chunk=1)
    if not parts:
        return spec.zeros(0)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _fingerprint(builder, split: str) -> str:
    """Changes whenever the split's files or the dataset info change."""
    folder = Path(os.fspath(builder.data_dir))
    h = hashlib.sha256((folder / "dataset_info.json").read_bytes())
    for f in sorted(folder.glob(f"{builder.name}-{split}.*")):
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def _load_full_split(builder, source, split: str, spec: DatasetSpec) -> dict[str, np.ndarray]:
    """The whole split decoded, from the on-disk cache when it is current."""
    path = Path(os.fspath(builder.data_dir), _CACHE_FOLDER, f"{split}.npz")
    fingerprint = _fingerprint(builder, split)
    keys = spec.example_arrays()
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["fingerprint"]) == fingerprint:
                return {k: z[k] for k in keys}
    except (OSError, KeyError, ValueError):
        pass  # no cache, or a stale or damaged one (or one of other keys): decode again
    arrays = decode_all(source, np.arange(len(source)), spec, batched=True)
    tmp = path.with_name(f".{split}.{os.getpid()}.npz")
    try:
        path.parent.mkdir(exist_ok=True)
        np.savez(tmp, fingerprint=np.array(fingerprint), **arrays)
        os.replace(tmp, path)  # atomic: readers never see half a file
    except OSError as e:  # a read-only data_dir, a full disk: run from memory without the cache
        log.info("not caching decoded %s/%s (%s)", spec.name, split, e)
        tmp.unlink(missing_ok=True)
    return arrays


def cached_sources(builder, source, split: str, spec: DatasetSpec, parts: list[np.ndarray],
                   real: bool) -> list[ArraySource]:
    """ArraySources for index sets `parts` of one split, decoding each needed record once."""
    needed = np.unique(np.concatenate(parts)) if parts else np.empty((0,), np.int64)
    if real and len(needed) == len(source):
        arrays = _load_full_split(builder, source, split, spec)
        return [ArraySource(arrays, p) for p in parts]
    arrays = decode_all(source, needed, spec, batched=real)
    return [ArraySource(arrays, np.searchsorted(needed, p)) for p in parts]


def cache_photos(records: Records, ids: np.ndarray, transform: AnyPhotoTransform,
                 name: str) -> MemoryRecords:
    """Decodes records `ids` once with `transform.cache_example` (module doc)."""
    ids = np.unique(ids)
    examples = tuple(formats.parallel_map(
        lambda r: decode_record(records, int(r), transform.cache_example), ids, chunk=64))
    size = sum(v.nbytes for e in examples for v in e.values() if isinstance(v, np.ndarray))
    log.info("cached %d photos of %s in memory: %.2f GB", len(ids), name, size / 1e9)
    return MemoryRecords(ids, examples, name)
