"""Throughput of the ImageNet-style input pipeline: JPEG decode + augment, images/s per CPU core.

    python experiments/bench_input_pipeline.py [--images 200] [--batch 32] [--workers 2] [--json out.json]

Two real photo folders from ../shared/data:
  * imagenet_fullsize_sample: 220 full-size ImageNet photos (86..1280 px wide, 23 grayscale);
  * imagenette_sample: 224x224 re-encoded Imagenette photos (the val/ half is used).

Stage 1 (one thread, in-process, files already in the page cache) times each per-image step of
cnn_jax.data.transforms: decode only, the evaluation transform (decode, resize the shorter side
to 256, center crop 224) and the training transform (decode, random resized crop to 224, then the
batch flip). Stage 2 runs the real Grain pipeline (create_input_pipeline on a 'folder:' tree)
with threads (data.num_workers=0) and with worker processes (data.num_workers=N) and reports
wall-clock images/s and images per CPU-second (user+sys of this process and its workers), the
number that does not depend on how many cores happen to be free. Prints a table, then JSON.
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

from cnn_jax.data import transforms
from cnn_jax.data.augment import random_flip_lr
from cnn_jax.data.folder import is_image_file
from cnn_jax.data.pipeline import create_input_pipeline

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


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200, help="photos per folder for stage 1")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=30, help="batches timed per pipeline run")
    parser.add_argument("--copies", type=int, default=6, help="links per photo in the timed tree")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    results = {"cpu_count": os.cpu_count(), "load_average": os.getloadavg(), "per_image": {},
               "pipeline": {}}
    for name, folder in FOLDERS.items():
        results["per_image"][name] = bench_transforms(_files(folder, args.images))
    with tempfile.TemporaryDirectory() as tmp:
        for name, folder in FOLDERS.items():
            root = _tree(folder, Path(tmp) / name, args.copies)
            results["pipeline"][name] = {
                "threads": bench_pipeline(root, args.batch, 0, args.batches),
                f"{args.workers}_worker_processes": bench_pipeline(root, args.batch, args.workers,
                                                                   args.batches),
            }

    print(f"\nper image, one thread (images per CPU-second; {os.cpu_count()} cores, "
          f"load average {results['load_average'][0]:.1f})")
    stages = list(next(iter(results["per_image"].values())))
    print(f"{'folder':28s}" + "".join(f"{s:>20s}" for s in stages))
    for name, rates in results["per_image"].items():
        print(f"{name:28s}" + "".join(f"{rates[s]:20,.0f}" for s in stages))
    print("\nGrain train pipeline (decode + random resized crop 224 + flip, batches of "
          f"{args.batch})")
    print(f"{'folder':28s}{'mode':>24s}{'images/s (wall)':>18s}{'images/CPU-s':>16s}"
          f"{'cores used':>12s}{'1st batch s':>13s}")
    for name, modes in results["pipeline"].items():
        for mode, r in modes.items():
            print(f"{name:28s}{mode:>24s}{r['images_per_s']:18,.0f}{r['images_per_cpu_s']:16,.0f}"
                  f"{r['cores_used']:12.2f}{r['first_batch_s']:13.2f}")
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
