"""Generated datasets written into the data_dir like an imported dataset, so the same pipeline
reads them: digit scenes (cnn_jax.data.scenes) and Moving MNIST clips (cnn_jax.data.moving_mnist)
from the MNIST imported there, visual-search scenes (cnn_jax.data.search_scenes) from nothing but
their seed.

`generate_dataset('digit_scenes[/k=v,...]', data_dir)` reads MNIST through the catalogue
(`cnn-jax data import mnist --from PATH` puts it there), renders the training examples from the
training digits and the test examples from the test digits (independent streams of the variant's
seed, `scenes.split_rng`), and writes them with an import record naming the source, the
parameters and the seed. Search scenes draw their train and test splits from those two streams
too, so no test scene is a training scene. `ensure_generated` does it once, when a run first
needs the dataset; `cnn-jax data generate` (`data_main_generate`) does it explicitly, replacing
what is there.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np

from cnn_jax.data import cache, prepare, writer
from cnn_jax.data.catalog import DatasetSpec, generated_params, get_dataset_spec, resolve_data_dir
from cnn_jax.data.moving_mnist import render_clips
from cnn_jax.data.scenes import render_scenes, split_rng
from cnn_jax.data.search_scenes import render_search_scenes
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


def _scene_examples(spec: DatasetSpec, scenes: dict[str, np.ndarray]) -> list[dict]:
    """One example per digit scene: image and maps as arrays (encoded by the writer), ragged
    boxes."""
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


# The renderer of each generated dataset (GENERATED in the catalogue).
RENDERERS = {"digit_scenes": render_scenes, "digit_scenes_single": render_scenes,
             "search_scenes": render_search_scenes, "moving_mnist": render_clips}


def _split_examples(spec: DatasetSpec, params, split: str, count: int,
                    mnist: dict[str, dict] | None) -> list[dict]:
    """The examples of one split of a generated dataset."""
    rng = split_rng(params.seed, split)
    base = spec.name.partition("/")[0]
    if base == "search_scenes":
        out = render_search_scenes(count, params, rng)
        keys = ("image", "saliency", "fixations")
        return writer.encode_examples([{k: out[k][i] for k in keys} for i in range(count)])
    digits = mnist[split]
    if base == "moving_mnist":
        out = render_clips(digits["image"][..., 0], count, params, rng)
        return writer.encode_examples([{"clip": out["clip"][i], "label": int(out["label"][i])}
                                       for i in range(count)])
    scenes = render_scenes(digits["image"][..., 0], digits["label"], count, params, rng)
    return _scene_examples(spec, scenes)


def generate_dataset(name: str, data_dir: str | os.PathLike | None, download: bool = False,
                     replace: bool = True) -> writer.Written:
    """Renders and writes the generated dataset `name` (a variant: 'digit_scenes/canvas=96').
    A copy in the data_dir is replaced (kept with `replace=False`). Raises ConfigError for a
    name that is not a generated dataset (or bad options) and DataNotPreparedError naming the
    MNIST import when the dataset is made from MNIST and MNIST is not in the data_dir."""
    try:
        spec = get_dataset_spec(name)
        params = generated_params(name)
    except ValueError as e:  # an unknown name, a bad option: the user's to fix
        raise ConfigError(str(e)) from None
    where = resolve_data_dir(data_dir)
    base = spec.name.partition("/")[0]
    if base == "search_scenes":
        mnist = None
        source = "the seed alone"
        notes = ["train and test scenes from independent streams of the seed"]
    else:
        mnist = _mnist(data_dir, download, name)
        source = (f"mnist in {where} (train {len(mnist['train']['label'])}, test "
                  f"{len(mnist['test']['label'])} digits)")
        notes = ["train examples from training digits only, test examples from test digits only"]
    splits = {split: _split_examples(spec, params, split, count, mnist)
              for split, count in (("train", params.train_size), ("test", params.test_size))}
    renderer = RENDERERS[base]
    record = {"source": source, "format": base.replace("_", " "), "generated": True,
              "generator": f"{renderer.__module__}.{renderer.__name__}", "lossy": False,
              "params": dataclasses.asdict(params), "notes": notes}
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
        log.info("%s is not in %s: generating it", name, resolve_data_dir(data_dir))
        generate_dataset(name, data_dir, download, replace=False)


def data_main_generate(name: str, data_dir: str | None = None) -> str:
    """`cnn-jax data generate NAME [--data_dir DIR]`: (re)generates NAME ('digit_scenes',
    'digit_scenes_single', 'search_scenes', 'moving_mnist', or a variant
    'digit_scenes/canvas=96,max_digits=6'); one summary line."""
    written = generate_dataset(name, data_dir)
    counts = ", ".join(f"{s} {n}" for s, n in written.counts.items())
    source = "" if name.startswith("search_scenes") else " from MNIST"
    text = f"generated {name}{source} into {written.target}: {counts}"
    return text + ("; replaced the copy that was there" if written.replaced else "")
