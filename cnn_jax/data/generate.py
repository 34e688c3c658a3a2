"""Generated datasets: digit scenes (cnn_jax.data.scenes) written into the data_dir from the MNIST
imported there, like an imported dataset, so the same pipeline reads them.

`generate_dataset('digit_scenes[/k=v,...]', data_dir)` reads MNIST through the catalogue
(`cnn-jax data import mnist --from PATH` puts it there), renders the training scenes from the
training digits and the test scenes from the test digits (independent streams of the variant's
seed), and writes them with an import record naming MNIST, the parameters and the seed.
`ensure_generated` does it once, when a run first needs the dataset; `cnn-jax data generate`
(`data_main_generate`) does it explicitly, replacing what is there.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np

from cnn_jax.data import cache, prepare, writer
from cnn_jax.data.catalog import DatasetSpec, digit_scene_params, get_dataset_spec, resolve_data_dir
from cnn_jax.data.scenes import render_scenes, split_rng
from cnn_jax.data.sources import open_sources
from cnn_jax.errors import ConfigError, DataNotPreparedError

log = logging.getLogger(__name__)


def _mnist(data_dir: str | os.PathLike | None, download: bool, name: str) -> dict[str, dict]:
    """{'train' | 'test': {'image': (N, 28, 28, 1) uint8, 'label': (N,)}} of the imported MNIST."""
    spec = get_dataset_spec("mnist")
    try:
        builder, sources, real = open_sources(spec, resolve_data_dir(data_dir), download)
    except DataNotPreparedError as e:
        raise DataNotPreparedError(f"{name} is generated from MNIST: {e}") from None
    out = {}
    for split in (spec.train_split, spec.test_split):
        rows = np.arange(len(sources[split]))
        source = cache.cached_sources(builder, sources[split], split, spec, [rows], real)[0]
        out[split] = source.arrays
    return out


def _examples(spec: DatasetSpec, scenes: dict[str, np.ndarray]) -> list[dict]:
    """One example per scene: image and maps as arrays (encoded by the writer), ragged boxes."""
    examples = []
    for i, k in enumerate(scenes["num_boxes"]):
        example = {"image": scenes["image"][i]}
        if "label" in spec.targets:  # the single-digit variant: the class of its one digit
            example["label"] = int(scenes["classes"][i, 0])
        for key in ("segmentation", "instances"):
            if key in spec.targets:
                example[key] = scenes[key][i]
        example["boxes"] = scenes["boxes"][i, :k]
        example["classes"] = scenes["classes"][i, :k].astype(np.int64)
        examples.append(example)
    return writer.encode_examples(examples)


def generate_dataset(name: str, data_dir: str | os.PathLike | None, download: bool = False,
                     replace: bool = True) -> writer.Written:
    """Renders and writes the generated dataset `name` (a variant: 'digit_scenes/canvas=96').
    A copy in the data_dir is replaced (kept with `replace=False`). Raises ConfigError for a
    name that is not a generated dataset (or bad options) and DataNotPreparedError naming the
    MNIST import when MNIST is not in the data_dir."""
    try:
        spec = get_dataset_spec(name)
        params = digit_scene_params(name)
    except ValueError as e:  # an unknown name, a bad option: the user's to fix
        raise ConfigError(str(e)) from None
    mnist = _mnist(data_dir, download, name)
    splits = {}
    for split, count in (("train", params.train_size), ("test", params.test_size)):
        digits = mnist[split]
        scenes = render_scenes(digits["image"][..., 0], digits["label"], count, params,
                               split_rng(params.seed, split))
        splits[split] = _examples(spec, scenes)
    where = resolve_data_dir(data_dir)
    record = {"source": f"mnist in {where} (train {len(mnist['train']['label'])}, test "
                        f"{len(mnist['test']['label'])} digits)",
              "format": "digit scenes", "generated": True,
              "generator": "cnn_jax.data.scenes.render_scenes", "lossy": False,
              "params": dataclasses.asdict(params),
              "notes": ["train scenes from training digits only, test scenes from test "
                        "digits only"]}
    written = writer.write_dataset(spec, where, lambda staging: writer.dataset_info(spec, staging),
                                   lambda info: splits, record, replace=replace)
    log.info("generated %s into %s: %s", name, written.target, written.counts)
    return written


def ensure_generated(name: str, data_dir: str | os.PathLike | None, download: bool = False) -> None:
    """Generates `name` into `data_dir` unless it is there already (a run's first use). Every
    process of a multi-host run may do it at once: they write the same scenes, and the first
    copy in place stays."""
    spec = get_dataset_spec(name)
    if not (prepare.dataset_path(spec, data_dir) / "dataset_info.json").is_file():
        log.info("%s is not in %s: generating it from MNIST", name, resolve_data_dir(data_dir))
        generate_dataset(name, data_dir, download, replace=False)


def data_main_generate(name: str, data_dir: str | None = None) -> str:
    """`cnn-jax data generate NAME [--data_dir DIR]`: (re)generates NAME ('digit_scenes',
    'digit_scenes_single', or a variant 'digit_scenes/canvas=96,max_digits=6'); one summary line."""
    written = generate_dataset(name, data_dir)
    counts = ", ".join(f"{s} {n}" for s, n in written.counts.items())
    text = f"generated {name} from MNIST into {written.target}: {counts}"
    return text + ("; replaced the copy that was there" if written.replaced else "")
