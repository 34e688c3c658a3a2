"""Throughput of the input pipeline: JPEG decode + augment, images/s per CPU core, and the batch
augmentation of MNIST/CIFAR-10 next to the model's training images/s.

    python experiments/bench_input_pipeline.py [--images 200] [--batch 32] [--workers 2] [--out out.json]
    python experiments/bench_input_pipeline.py --smoke     # tiny sizes, seconds (what the test runs)

The results go to experiments/results/bench_input_pipeline[_stages_<stages>].json (or --out;
--smoke writes none unless --out is given).

Two real photo folders from ../shared/data:
  * imagenet_fullsize_sample: 220 full-size ImageNet photos (86..1280 px wide, 23 grayscale);
  * imagenette_sample: 224x224 re-encoded Imagenette photos (the val/ half is used).

Stage 1 (one thread, in-process, files already in the page cache) times each per-image step of
cnn_jax.data.transforms: decode only, the evaluation transform (decode, resize the shorter side
to 256, center crop 224) and the training transform (decode, random resized crop to 224, then the
batch flip). Stage 2 runs the real Grain pipeline (create_input_pipeline on a 'folder:' tree)
with threads (data.num_workers=0) and with worker processes (data.num_workers=N) and reports
wall-clock images/s and images per CPU-second (user+sys of this process and its workers), the
number that does not depend on how many cores happen to be free.

Stage 3 ("the pipeline is not the bottleneck") runs the cached Grain train pipeline of
cnn_jax.data.pipeline on real MNIST and CIFAR-10 arrays with two augmentation recipes and sets
its images/s beside the images/s of the trainer's jitted train step (`StepRunner`) for the model
each recipe trains, at the same batch size (128):
  * MNIST, LeNet-5: the distortions of LeCun et al. 1998 (sec. III.C) and the elastic ones of
    Simard et al. 2003 (rotation 10, translate 0.1, zoom 0.1, shear 10, elastic alpha 34 sigma 4);
  * CIFAR-10, ResNet-20: pad-4 crop + flip (He et al. 2016), colour jitter, cutout 16 (DeVries &
    Taylor 2017), mixup alpha 1 (Zhang et al. 2018).
The ratio augmentation/model should be well above 1 (the issue asks for >= 2) for the input never
to hold the training back. Both run on the same CPU cores, one after the other.

Prints the tables, then JSON. `--smoke` shrinks everything (a few photos and batches, the
one-layer `mlp_linear` instead of LeNet-5/ResNet-20, no worker processes): it checks that the
script runs, its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import make_table, results_header, results_record, save_results  # noqa: E402

from cnn_jax.data import catalog, formats, transforms  # noqa: E402
from cnn_jax.data.augment import build_augment, random_flip_lr  # noqa: E402
from cnn_jax.data.folder import is_image_file  # noqa: E402
from cnn_jax.data.pipeline import InputPipeline, create_input_pipeline  # noqa: E402
from cnn_jax.data.sources import ArraySource  # noqa: E402

SHARED = Path(os.environ.get("CNN_JAX_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
FOLDERS = {
    "imagenet_fullsize_sample": SHARED / "imagenet_fullsize_sample" / "val",
    "imagenette_sample": SHARED / "imagenette_sample" / "val",
}


def _proc_cpu_seconds() -> float | None:
    """user+sys seconds of this process and its live descendants (Linux /proc), or None."""
    ticks = os.sysconf("SC_CLK_TCK")
    try:
        stats = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    text = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                fields = text[text.rindex(")") + 2:].split()
                stats[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    except OSError:
        return None
    family, total, grew = {os.getpid()}, 0, True
    while grew:  # add children of the family until nothing new joins
        grew = False
        for pid, (ppid, _) in stats.items():
            if ppid in family and pid not in family:
                family.add(pid)
                grew = True
    total = sum(stats[pid][1] for pid in family if pid in stats)
    return total / ticks


def _cpu_seconds() -> float:
    """CPU seconds used so far by this process and its worker processes (live ones via /proc,
    so the workers' start-up before the timed window is not counted)."""
    live = _proc_cpu_seconds()
    if live is not None:
        return live
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def _files(folder: Path, limit: int) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and is_image_file(p.name))
    if not files:
        sys.exit(f"no images under {folder}: set CNN_JAX_SHARED_DATA to the shared/data folder")
    # Spread the sample over all classes rather than taking the first few.
    step = max(1, len(files) // limit)
    return files[::step][:limit]


def bench_transforms(files: list[Path], repeats: int = 2) -> dict[str, float]:
    """Images per second of one thread for each per-image stage (best of `repeats`)."""
    blobs = [f.read_bytes() for f in files]
    t = transforms.PhotoTransform(224, 256, random_resized_crop=True)
    rng = np.random.default_rng(0)

    def train(blob):
        image = t.train(blob, rng)
        return random_flip_lr(image[None], rng)[0]

    stages = {"decode": transforms.decode_rgb, "decode+eval_crop": t.eval, "decode+rrc+flip": train}
    rates = {}
    for name, fn in stages.items():
        best = 0.0
        for _ in range(repeats):
            start = time.process_time()
            for blob in blobs:
                fn(blob)
            best = max(best, len(blobs) / max(time.process_time() - start, 1e-9))
        rates[name] = best
    return rates


def _tree(src: Path, tmp: Path, copies: int) -> Path:
    """A folder: tree whose train/ links to every image of `src` (<class>/<file>) `copies` times
    (a long enough epoch to time) and whose val/ links to each once."""
    root = tmp / src.parent.name
    for split, n in (("train", copies), ("val", 1)):
        for cls in sorted(p for p in src.iterdir() if p.is_dir()):
            d = root / split / cls.name
            d.mkdir(parents=True)
            for f in cls.iterdir():
                for k in range(n):
                    (d / f"{k}_{f.name}").symlink_to(f)
    return root


def bench_pipeline(root: Path, batch: int, workers: int, num_batches: int) -> dict[str, float]:
    config = {"name": f"folder:{root}", "val_size": 0, "cache": False, "num_workers": workers,
              "image_size": 224, "eval_resize": 256,
              "augment": {"random_resized_crop": True, "horizontal_flip": True}}
    pipe = create_input_pipeline(config, seed=0, batch_size=batch, eval_batch_size=batch)
    warmup = 4  # start-up (worker processes) and the batches prefetched meanwhile are not timed
    if pipe.steps_per_epoch < warmup + num_batches:
        raise ValueError(f"only {pipe.steps_per_epoch} batches per epoch: raise --copies")
    start = time.perf_counter()
    it = pipe.train_batches(0)
    next(it)
    first_batch_s = time.perf_counter() - start
    for _ in range(warmup - 1):
        next(it)
    cpu0, wall0 = _cpu_seconds(), time.perf_counter()
    n = 0
    for _ in range(num_batches):
        n += len(next(it)["label"])
    wall = time.perf_counter() - wall0
    cpu = _cpu_seconds() - cpu0  # workers still alive: their time is in /proc
    it.close()
    return {"images": n, "images_per_s": n / wall, "images_per_cpu_s": n / max(cpu, 1e-9),
            "cores_used": cpu / wall, "first_batch_s": first_batch_s}


# Stage 3: name -> (dataset, model, data.augment). The recipes of the module docstring.
AUGMENT_RECIPES = {
    "mnist_distortions": ("mnist", "lenet5", {
        "rotation": 10.0, "translate": 0.1, "zoom": 0.1, "shear": 10.0, "elastic_alpha": 34.0,
        "elastic_sigma": 4.0}),
    "cifar10_crop_flip_colour_cutout_mixup": ("cifar10", "resnet20", {
        "random_crop_padding": 4, "horizontal_flip": True, "brightness": 0.2, "contrast": 0.2,
        "saturation": 0.2, "channel_shift": 10.0, "cutout": 16, "mixup_alpha": 1.0}),
}


def load_arrays(dataset: str, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `limit` training images (N, H, W, C) uint8 and labels of MNIST / CIFAR-10."""
    if dataset == "mnist":
        with np.load(SHARED / "mnist.npz") as z:
            return z["x_train"][:limit, :, :, None], z["y_train"][:limit].astype(np.int32)
    with np.load(SHARED / "cifar10_jpeg.npz") as z:
        offsets = z["train_offsets"][:limit + 1]
        images = formats.decode_jpeg_blob(z["train_jpeg"][:offsets[-1]], offsets, 3, "cifar10_jpeg.npz")
        return images, z["y_train"][:limit].astype(np.int32)


def bench_augment_pipeline(dataset: str, augment: dict, images: np.ndarray, labels: np.ndarray,
                           batch: int, num_batches: int) -> dict[str, float]:
    """Images/s of the cached Grain train pipeline (gather + augmentation), as the trainer reads it."""
    spec = catalog.DATASETS[dataset]
    source = ArraySource({"image": images, "label": labels}, np.arange(len(labels)))
    aug = build_augment(augment, image_shape=spec.image_shape, num_classes=spec.num_classes)
    pipe = InputPipeline(spec, source, None, source, seed=0, batch_size=batch, eval_batch_size=batch,
                         process_index=0, process_count=1, augment=aug, cached=True, num_workers=0)
    if pipe.steps_per_epoch < num_batches + 1:
        raise ValueError(f"{len(labels)} images give {pipe.steps_per_epoch} batches: need "
                         f"{num_batches + 1}; raise --aug-images")
    it = pipe.train_batches(0)
    first = next(it)  # the iterator's start-up is not timed
    cpu0, wall0 = time.process_time(), time.perf_counter()  # one process: its threads only
    n = sum(len(next(it)["label"]) for _ in range(num_batches))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    it.close()
    return {"images": n, "images_per_s": n / wall, "images_per_cpu_s": n / max(cpu, 1e-9),
            "batch_keys": sorted(first)}


def bench_train_step(dataset: str, model_name: str, batch: dict, steps: int) -> dict[str, float]:
    """Images/s of the trainer's jitted train step (`StepRunner`, SGD as base_config) on `batch`,
    sent to the device every step as the loop sends its batches."""
    import jax

    from cnn_jax.config import base_config
    from cnn_jax.models import create_model
    from cnn_jax.optim import create_optimizer
    from cnn_jax.tasks import ClassificationTask
    from cnn_jax.training import sharding
    from cnn_jax.training.state import create_train_state, init_variables
    from cnn_jax.training.steps import StepRunner

    spec = catalog.DATASETS[dataset]
    mesh = sharding.create_mesh()
    replicated = sharding.replicated(mesh)
    model = create_model(model_name, num_classes=spec.num_classes)
    tx, _ = create_optimizer(base_config().optimizer, steps_per_epoch=100, num_epochs=1)
    state = jax.jit(lambda key: create_train_state(model, tx, init_variables(model, key, spec.image_shape)),
                    out_shardings=replicated)(jax.random.key(0))
    runner = StepRunner(mesh, jax.tree.map(lambda _: replicated, state),
                        task=ClassificationTask(mean=tuple(spec.mean), std=tuple(spec.std)),
                        dropout_key=jax.random.key(1))
    sums = runner.zero_sums()
    start = time.perf_counter()
    state, sums = runner(state, sums, [batch])  # compiles
    jax.block_until_ready(sums)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        state, sums = runner(state, sums, [batch])
    jax.block_until_ready(sums)
    wall = time.perf_counter() - start
    return {"images_per_s": steps * len(batch["label"]) / wall, "compile_s": compile_s}


def bench_augmentation_vs_model(args) -> dict[str, dict]:
    results = {}
    for name, (dataset, model_name, augment) in AUGMENT_RECIPES.items():
        model_name = args.model or model_name
        images, labels = load_arrays(dataset, args.aug_images)
        aug = bench_augment_pipeline(dataset, augment, images, labels, args.aug_batch, args.aug_batches)
        spec = catalog.DATASETS[dataset]
        one = build_augment(augment, image_shape=spec.image_shape, num_classes=spec.num_classes).apply(
            {"image": images[:args.aug_batch], "label": labels[:args.aug_batch]}, 0)
        model = bench_train_step(dataset, model_name, one, args.model_steps)
        results[name] = {"dataset": dataset, "model": model_name, "augment": augment,
                         "batch": args.aug_batch, "augment_pipeline": aug, "train_step": model,
                         "ratio": aug["images_per_s"] / model["images_per_s"]}
    return results


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200, help="photos per folder for stage 1")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=30, help="batches timed per pipeline run")
    parser.add_argument("--copies", type=int, default=6, help="links per photo in the timed tree")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="Grain worker processes for stage 2 (0: threads only)")
    parser.add_argument("--aug-images", type=int, default=20_000,
                        help="stage 3: training images loaded per dataset")
    parser.add_argument("--aug-batch", type=int, default=128, help="stage 3: batch size")
    parser.add_argument("--aug-batches", type=int, default=100, help="stage 3: batches timed")
    parser.add_argument("--model-steps", type=int, default=10, help="stage 3: train steps timed")
    parser.add_argument("--model", help="stage 3: this model for both recipes instead of theirs")
    parser.add_argument("--stages", default="1,2,3", help="which stages to run, e.g. 3")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes and mlp_linear: a check that the script runs")
    parser.add_argument("--out", "--json", dest="out",
                        help="the results file (default experiments/results/bench_input_pipeline*.json)")
    args = parser.parse_args(argv)
    header = results_header(__file__, sys.argv[1:] if argv is None else argv)
    if args.smoke:
        args.images, args.batch, args.batches, args.copies, args.workers = 3, 4, 2, 1, 0
        args.aug_images, args.aug_batch, args.aug_batches, args.model_steps = 96, 16, 3, 2
        args.model = args.model or "mlp_linear"
    stages = {int(s) for s in args.stages.split(",")}

    results = {"cpu_count": os.cpu_count(), "load_average": os.getloadavg(), "per_image": {},
               "pipeline": {}, "augmentation_vs_model": {}}
    if 1 in stages:
        for name, folder in FOLDERS.items():
            results["per_image"][name] = bench_transforms(_files(folder, args.images))
    if 2 in stages:
        with tempfile.TemporaryDirectory() as tmp:
            for name, folder in FOLDERS.items():
                root = _tree(folder, Path(tmp) / name, args.copies)
                modes = {"threads": bench_pipeline(root, args.batch, 0, args.batches)}
                if args.workers:
                    modes[f"{args.workers}_worker_processes"] = bench_pipeline(
                        root, args.batch, args.workers, args.batches)
                results["pipeline"][name] = modes
    if 3 in stages:
        results["augmentation_vs_model"] = bench_augmentation_vs_model(args)
    _print_tables(args, results)
    name = "bench_input_pipeline" + ("" if args.stages == parser.get_default("stages")
                                     else "_stages_" + args.stages.replace(",", "_"))
    record = results_record(name, TITLE, header, results_tables(args, results), smoke=args.smoke,
                            **results)
    print(json.dumps(record, indent=2))
    save_results(record, args.out)
    return record


# --------------------------------------------------------------------------------------------
# The results file
# --------------------------------------------------------------------------------------------
TITLE = "Input pipeline on the CPU: decode, augmentation and Grain, next to the model's train step"


def results_tables(args, results: dict) -> list[dict]:
    tables = []
    if results["per_image"]:
        stages = list(next(iter(results["per_image"].values())))
        tables.append(make_table(
            ["photo folder"] + [f"{s}, images per CPU-s" for s in stages],
            [[f"`{name}`"] + [f"{rates[s]:,.0f}" for s in stages]
             for name, rates in results["per_image"].items()],
            title="Per image, one thread (stage 1)",
            notes=[f"{args.images} photos per folder, best of 2 passes."]))
    if results["pipeline"]:
        tables.append(make_table(
            ["photo folder", "mode", "images/s (wall)", "images per CPU-s", "cores used",
             "first batch s"],
            [[f"`{name}`", mode, f"{r['images_per_s']:,.0f}", f"{r['images_per_cpu_s']:,.0f}",
              f"{r['cores_used']:.2f}", f"{r['first_batch_s']:.2f}"]
             for name, modes in results["pipeline"].items() for mode, r in modes.items()],
            title="Grain train pipeline: decode + random resized crop 224 + flip (stage 2)",
            notes=[f"Batches of {args.batch}, {args.batches} batches timed after 4 untimed."]))
    if results["augmentation_vs_model"]:
        tables.append(make_table(
            ["recipe", "model", "augmentation pipeline img/s (img per CPU-s)",
             "train step img/s", "augmentation / model"],
            [[f"`{name}`", r["model"],
              f"{r['augment_pipeline']['images_per_s']:,.0f} "
              f"({r['augment_pipeline']['images_per_cpu_s']:,.0f})",
              f"{r['train_step']['images_per_s']:,.0f}", f"**{r['ratio']:.1f}x**"]
             for name, r in results["augmentation_vs_model"].items()],
            title="Augmentation pipeline against the model's train step (stage 3)",
            notes=[f"Cached Grain pipeline, one thread, {args.aug_batches} batches of "
                   f"{args.aug_batch} from the first {args.aug_images:,} training images; the "
                   f"model's jitted step (base_config's SGD), {args.model_steps} steps, run "
                   "after the pipeline on the same cores."]))
    return tables


def _print_tables(args, results: dict) -> None:

    if results["per_image"]:
        print(f"\nper image, one thread (images per CPU-second; {os.cpu_count()} cores, "
              f"load average {results['load_average'][0]:.1f})")
        stages = list(next(iter(results["per_image"].values())))
        print(f"{'folder':28s}" + "".join(f"{s:>20s}" for s in stages))
        for name, rates in results["per_image"].items():
            print(f"{name:28s}" + "".join(f"{rates[s]:20,.0f}" for s in stages))
    if results["pipeline"]:
        print("\nGrain train pipeline (decode + random resized crop 224 + flip, batches of "
              f"{args.batch})")
        print(f"{'folder':28s}{'mode':>24s}{'images/s (wall)':>18s}{'images/CPU-s':>16s}"
              f"{'cores used':>12s}{'1st batch s':>13s}")
        for name, modes in results["pipeline"].items():
            for mode, r in modes.items():
                print(f"{name:28s}{mode:>24s}{r['images_per_s']:18,.0f}{r['images_per_cpu_s']:16,.0f}"
                      f"{r['cores_used']:12.2f}{r['first_batch_s']:13.2f}")
    if results["augmentation_vs_model"]:
        print(f"\naugmentation pipeline (cached, Grain, one thread) vs the model's jitted train "
              f"step, batches of {args.aug_batch} ({os.cpu_count()} cores, load average "
              f"{os.getloadavg()[0]:.1f})")
        print(f"{'recipe':40s}{'model':>12s}{'augment img/s':>15s}{'img/CPU-s':>11s}"
              f"{'model img/s':>13s}{'augment/model':>15s}")
        for name, r in results["augmentation_vs_model"].items():
            a, m = r["augment_pipeline"], r["train_step"]
            print(f"{name:40s}{r['model']:>12s}{a['images_per_s']:15,.0f}{a['images_per_cpu_s']:11,.0f}"
                  f"{m['images_per_s']:13,.0f}{r['ratio']:14.1f}x")


if __name__ == "__main__":
    main()
