"""Preparation: a catalogue dataset in the data_dir as tfds array_record files, or one line that
says how to get it there.

Every dataset is read through tfds' array_record format with `tfds.data_source` (no TensorFlow
needed). `ensure_prepared` uses the copy in the data_dir if there is one; else tfds'
`download_and_prepare` builds it (needs the network and TensorFlow: ``pip install
'cnn-jax[tf]'``; ImageNet from the tars a user downloads); else it raises DataNotPreparedError
naming the fix, usually `cnn-jax data import NAME --from PATH` (cnn_jax.data.importer).

Datasets tfds has no builder for (`DatasetSpec.origin` 'import' or 'generated': nuclei, VOC
segmentation, digit scenes) are written in the same format by cnn_jax.data.importer and
cnn_jax.data.generate and read back from their files (`tfds.builder_from_directory`).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import socket
import threading
import urllib.parse
from pathlib import Path

import tensorflow_datasets as tfds

from cnn_jax.data.catalog import DATASETS, DatasetSpec, get_dataset_spec, resolve_data_dir
from cnn_jax.errors import DataNotPreparedError, one_line

log = logging.getLogger(__name__)

IMPORT_RECORD = "cnn_jax_import.json"  # written beside dataset_info.json by importer.import_local


def tfds_builder(name: str, data_dir: str | os.PathLike | None):
    """The tfds builder of `name` at the catalogue's pinned version in `data_dir`.

    For prepared data it describes the files as they are (see `check_readable`); otherwise it is
    set up to prepare array_record files, the format tfds reads without TensorFlow.
    """
    spec = get_dataset_spec(name)
    where = resolve_data_dir(data_dir)
    if spec.origin != "tfds":
        path = dataset_path(spec, where)
        if not (path / "dataset_info.json").is_file():
            raise DataNotPreparedError(f"dataset {name!r} is not prepared in {where}: "
                                       f"{import_hint(name)}")
        return tfds.builder_from_directory(os.fspath(path))
    builder = tfds.builder(spec.tfds_full_name, data_dir=where)
    if is_prepared(builder):
        return builder
    return tfds.builder(spec.tfds_full_name, data_dir=where, file_format="array_record")


def dataset_path(spec: DatasetSpec, data_dir: str | os.PathLike | None) -> Path:
    """Where `spec`'s files are (or go): <data_dir>/<tfds name>[/<config>]/<version>."""
    return Path(resolve_data_dir(data_dir), spec.tfds_name, spec.tfds_version)


def import_hint(name: str) -> str:
    """How a user gets `name` into the data_dir without tfds' download (for error messages)."""
    spec = DATASETS.get(name.partition("/")[0])  # 'digit_scenes/k=v': a variant of digit_scenes
    if spec is not None and spec.origin == "generated":
        needs = "nothing" if spec.name == "search_scenes" else "only MNIST imported"
        return f"run `cnn-jax data generate {name}` (it needs {needs})"
    if spec is not None and spec.origin == "tfds" and spec.variable_size:
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
            f"(or {import_hint(spec.name)})")
    log.info("preparing %s from %s into %s (this takes hours)", spec.name, manual, where)
    _download_and_prepare(builder, tfds.download.DownloadConfig(manual_dir=os.fspath(manual)),
                          f"dataset {spec.name!r}: preparing it from {manual} failed",
                          f"check the tars, or {import_hint(spec.name)}")


def _download_and_prepare(builder, download_config, failed: str, fix: str) -> None:
    """tfds' download_and_prepare into array_record files; a failure (network, TensorFlow, a
    broken archive, the disk) becomes one line: `<failed> (<type>: <first line>): <fix>`."""
    try:
        builder.download_and_prepare(file_format="array_record", download_config=download_config)
    except Exception as e:
        raise DataNotPreparedError(f"{failed} ({type(e).__name__}: {one_line(e)[:200]}): "
                                   f"{fix}") from e


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
            f"TensorFlow: {import_hint(name)} (or prepare it with file_format='array_record')")


def ensure_prepared(name: str, data_dir: str | os.PathLike | None, download: bool = True):
    """Makes sure `name` is readable from `data_dir` and returns its tfds builder.

    Uses the prepared copy if there is one; else, if `download`, runs tfds'
    download_and_prepare (array_record). Raises DataNotPreparedError with one line naming the
    fix when the machine is offline, TensorFlow is missing, or the download fails.
    """
    spec = get_dataset_spec(name)
    if spec.folder:
        raise ValueError(f"{name} is an ImageFolder tree: it is read in place, not prepared")
    where = resolve_data_dir(data_dir)
    builder = tfds_builder(name, where)  # datasets without a tfds builder: there, or the hint
    if is_prepared(builder):
        check_readable(builder, name, where)
        return builder
    if spec.manual_files:
        _manual_prepare(spec, builder, where, download)
        return builder
    prefix = f"dataset {name!r} is not prepared in {where}"
    if not download:
        raise DataNotPreparedError(f"{prefix} and downloading is off (data.download=False): "
                                   f"{import_hint(name)}")
    if not network_reachable(spec.source_url):
        raise DataNotPreparedError(f"{prefix} and this machine is offline: {import_hint(name)}")
    if not tensorflow_installed():
        raise DataNotPreparedError(
            f"{prefix} and tfds needs TensorFlow to build it: run `pip install 'cnn-jax[tf]'` "
            f"(or `cnn-jax data import {name} --from PATH`)")
    log.info("downloading and preparing %s into %s", name, where)
    # tfds' GCS mirror holds tfrecord files; build array_record from the original source.
    _download_and_prepare(builder, tfds.download.DownloadConfig(try_download_gcs=False),
                          f"{prefix} and downloading it failed", import_hint(name))
    return builder


def list_prepared(data_dir: str | os.PathLike | None) -> list[str]:
    """One line per catalogue dataset prepared in `data_dir`: name, version, split sizes, origin
    (every variant of a generated dataset)."""
    root = resolve_data_dir(data_dir)
    lines = []
    for name, spec in DATASETS.items():
        variants = [Path(root, spec.tfds_name, spec.tfds_version)]
        if spec.origin == "generated":  # variants: <root>/<name>/<config>/<version>
            variants = sorted(Path(root, name).glob(f"*/{spec.tfds_version}"))
        for variant in variants:
            if not (variant / "dataset_info.json").is_file():
                continue
            builder = tfds.builder_from_directory(os.fspath(variant))
            splits = builder.info.splits.items()
            counts = ", ".join(f"{s} {info.num_examples}" for s, info in splits)
            origin = "prepared by tfds"
            record = _read_import_record(variant)
            if record is not None:
                verb = "generated" if record.get("generated") else "imported"
                origin = f"{verb} from {record.get('source')} ({record.get('format')})"
                if record.get("lossy"):
                    origin += ", JPEG-degraded pixels"
            label = f"{name}/{variant.parent.name}" if spec.origin == "generated" else name
            lines.append(f"{label:14s} {spec.tfds_version:6s} {counts:24s} {origin}")
    if not lines:
        lines.append(f"no dataset of the catalogue is prepared in {root} "
                     f"({import_hint('NAME')} to add one)")
    return lines


def import_record(builder) -> dict | None:
    """The cnn_jax_import.json written by `import_local` for this builder's data, if any."""
    return _read_import_record(Path(os.fspath(builder.data_dir)))


def _read_import_record(folder: Path) -> dict | None:
    try:
        return json.loads((folder / IMPORT_RECORD).read_text())
    except (OSError, ValueError):
        return None
