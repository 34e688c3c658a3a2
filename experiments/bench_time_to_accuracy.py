"""Time to accuracy on the CPU: MNIST LeNet-5 from a cold start to >= 99.0% test accuracy,
cnn_jax's CLI against an idiomatic PyTorch script with the same recipe, A/B.

    .venv-bench/bin/python experiments/bench_time_to_accuracy.py                 # docs/performance.md
    .venv-bench/bin/python experiments/bench_time_to_accuracy.py --repeats 5 --out out.json
    python experiments/bench_time_to_accuracy.py --smoke   # 512 digits, 1 epoch (what the test runs)

(`.venv-bench` holds torch==2.13.0, the CPU build: docs/performance.md.) The results go to
experiments/results/bench_time_to_accuracy.json (or --out; --smoke writes none unless --out is
given).

cnn_jax side: `cnn-jax train --config configs/mnist_lenet5_fast.py --workdir W
--config.data.data_dir=D` in a fresh process: the real trainer and input pipeline (Grain over the
tfds files that `cnn-jax data import mnist --from ../shared/data/mnist.npz --data_dir D` wrote,
done once before the races and timed apart). Its time is the process's wall time, from launch
(Python start, imports) to exit (test accuracy of the final state on the 10,000 test digits in
results.json); results.json's `compile_seconds` (the first step, compilation included) and
`wall_seconds` (inside train_and_evaluate) are reported beside it.

PyTorch side: this file run as `--torch-worker` in a fresh process, the way a PyTorch user would
write it: the same npz loaded into a `TensorDataset`, a `DataLoader` (shuffle, the same batch,
drop_last), the twin LeNet-5 of experiments/_torch_models.py, `torch.optim.SGD` with the
config's momentum, Nesterov flag and kernel-only weight decay, the same schedule (OneCycleLR
for `onecycle`) stepped every iteration, the same epochs, then test accuracy on the 10,000 test
digits. Its threads are the cores XLA uses.

The two alternate (A, B, B, A, ...) for `--repeats` rounds; the table has the median wall time
of each and the test accuracy of every run (>= 99.0% is the bar for both).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _common import make_table, results_header, results_record, save_results  # noqa: E402

DEFAULT_SHARED = Path(os.environ.get("CNN_JAX_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
CONFIG = "configs/mnist_lenet5_fast.py"
TARGET_ACCURACY = 0.99


def _cli() -> list[str]:
    """`cnn-jax` of this interpreter's environment (the console script, else `-m cnn_jax.cli`)."""
    script = Path(sys.executable).with_name("cnn-jax")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cnn_jax.cli"]


def import_mnist(shared: Path, data_dir: Path, subset: int = 0) -> float:
    """`cnn-jax data import mnist` into data_dir (a slice of `subset` digits for --smoke); seconds."""
    source = shared / "mnist.npz"
    if subset:
        with np.load(source) as z:
            small = {"x_train": z["x_train"][:subset], "y_train": z["y_train"][:subset],
                     "x_test": z["x_test"][:subset], "y_test": z["y_test"][:subset]}
        source = data_dir / "mnist_slice.npz"
        np.savez(source, **small)
    start = time.perf_counter()
    subprocess.run([*_cli(), "data", "import", "mnist", "--from", str(source), "--data_dir", str(data_dir)],
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def run_cnn_jax(workdir: Path, data_dir: Path, overrides: list[str]) -> dict:
    if workdir.exists():
        shutil.rmtree(workdir)
    cmd = [*_cli(), "train", "--config", str(REPO_ROOT / CONFIG), "--workdir", str(workdir),
           f"--config.data.data_dir={data_dir}", "--config.progress_bar=false", *overrides]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"cnn-jax train failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    results = json.loads((workdir / "results.json").read_text())
    return {"wall_s": round(wall, 2), "accuracy": results["test"]["accuracy"],
            "compile_s": results.get("compile_seconds"), "trainer_wall_s": results.get("wall_seconds"),
            "epochs": results["epochs"], "steps": results["steps"]}


def run_torch(python: str, shared: Path, threads: int, overrides: list[str], subset: int) -> dict:
    cmd = [python, str(Path(__file__).resolve()), "--torch-worker", "--shared-data", str(shared),
           "--threads", str(threads), "--subset", str(subset), *(f"--set={o}" for o in overrides)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"torch worker failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"wall_s": round(wall, 2), **out}


# --------------------------------------------------------------------------------------------
# The PyTorch script (run in its own process)
# --------------------------------------------------------------------------------------------
def torch_worker(shared: Path, threads: int, overrides: list[str], subset: int) -> dict:
    """Train the config's recipe in idiomatic PyTorch; returns test accuracy and timings."""
    import torch
    import torch.nn.functional as F
    from _torch_models import create_torch_model, torch_optimizer
    from torch.utils.data import DataLoader, TensorDataset

    from cnn_jax.config import load_config

    start = time.perf_counter()
    torch.set_num_threads(threads)
    config = load_config(REPO_ROOT / CONFIG, overrides)
    torch.manual_seed(config.seed)
    with np.load(shared / "mnist.npz") as z:
        x_train, y_train, x_test, y_test = z["x_train"], z["y_train"], z["x_test"], z["y_test"]
    if subset:
        x_train, y_train, x_test, y_test = x_train[:subset], y_train[:subset], x_test[:subset], y_test[:subset]
    if config.data.val_size:  # the same number of training digits as the trainer sees
        x_train, y_train = x_train[config.data.val_size:], y_train[config.data.val_size:]

    def tensors(x, y):
        x = (torch.from_numpy(x).float().unsqueeze(1) / 255.0 - 0.1307) / 0.3081
        return TensorDataset(x, torch.from_numpy(y.astype(np.int64)))

    train = DataLoader(tensors(x_train, y_train), batch_size=config.batch_size, shuffle=True, drop_last=True)
    test = DataLoader(tensors(x_test, y_test), batch_size=config.eval_batch_size)
    model = create_torch_model(config.model.name)
    opt, sched = torch_optimizer(model, config.optimizer, len(train), config.num_epochs)
    first_step_s = None
    for _ in range(config.num_epochs):
        model.train()
        for x, y in train:
            t0 = time.perf_counter()
            loss = F.cross_entropy(model(x), y, label_smoothing=config.loss.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if first_step_s is None:
                first_step_s = time.perf_counter() - t0
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in test:
            correct += int((model(x).argmax(1) == y).sum())
    return {"accuracy": correct / len(x_test), "first_step_s": round(first_step_s or 0.0, 3),
            "in_process_s": round(time.perf_counter() - start, 2), "epochs": config.num_epochs,
            "torch": torch.__version__, "threads": torch.get_num_threads()}


# --------------------------------------------------------------------------------------------
def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared-data", default=str(DEFAULT_SHARED))
    parser.add_argument("--data-dir", default="", help="tfds data_dir (default: a new temporary folder)")
    parser.add_argument("--workdir", default="", help="where the cnn_jax runs go (default: temporary)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--torch-python", default=sys.executable,
                        help="the interpreter with torch for the PyTorch side (default: this one)")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for both sides, e.g. --set num_epochs=3")
    parser.add_argument("--smoke", action="store_true", help="512 digits, one epoch: checks that it runs")
    parser.add_argument("--out", "--json", dest="out",
                        help="the results file (default experiments/results/bench_time_to_accuracy.json)")
    # the PyTorch side, in its own process
    parser.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help=argparse.SUPPRESS)
    parser.add_argument("--subset", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    shared = Path(args.shared_data)
    if args.torch_worker:
        out = torch_worker(shared, args.threads, args.set, args.subset)
        print(json.dumps(out))
        return out

    from bench_train_step import machine_info

    header = results_header(__file__, sys.argv[1:] if argv is None else argv)
    overrides = list(args.set)
    subset = 0
    if args.smoke:
        subset, args.repeats = 512, 1
        overrides += ["num_epochs=1", "batch_size=64", "data.val_size=0", "eval_batch_size=256"]
    tmp = Path(tempfile.mkdtemp(prefix="tta_"))
    data_dir = Path(args.data_dir) if args.data_dir else tmp / "tfds"
    workroot = Path(args.workdir) if args.workdir else tmp / "runs"
    info = machine_info() | {"threads": args.threads, "config": CONFIG, "overrides": overrides}
    if not args.no_torch:
        probe = subprocess.run([args.torch_python, "-c", "import torch; print(torch.__version__)"],
                               capture_output=True, text=True, check=True)
        info["torch"] = probe.stdout.strip()
    import_s = None
    if not (data_dir / "mnist").exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        import_s = round(import_mnist(shared, data_dir, subset), 2)
    # cnn_jax's oneDNN convolutions compile once per installation (cnn_jax/backends/onednn), like
    # the data import: done here and timed apart, so every race starts from an installed package.
    start = time.perf_counter()
    built = subprocess.run([sys.executable, "-c", "from cnn_jax.backends import onednn; "
                            "print(onednn.available() or onednn.unavailable_reason())"],
                           capture_output=True, text=True, check=True).stdout.strip()
    info["onednn_build"] = {"s": round(time.perf_counter() - start, 2), "available": built}
    runs = {"cnn_jax": [], "torch": []}
    jax_overrides = [f"--config.{o}" for o in overrides]
    for r in range(args.repeats):
        order = ["cnn_jax", "torch"] if r % 2 == 0 else ["torch", "cnn_jax"]
        for side in order:
            if side == "torch" and args.no_torch:
                continue
            if side == "cnn_jax":
                res = run_cnn_jax(workroot / f"run{r}", data_dir, jax_overrides)
            else:
                res = run_torch(args.torch_python, shared, args.threads, overrides, subset)
            res["load"] = round(os.getloadavg()[0], 2)
            runs[side].append(res)
            print(json.dumps({side: res}), flush=True)
    summary = {}
    for side, rs in runs.items():
        if rs:
            summary[side] = {"median_wall_s": statistics.median(r["wall_s"] for r in rs),
                             "accuracies": [r["accuracy"] for r in rs],
                             "all_reach_target": all(r["accuracy"] >= TARGET_ACCURACY for r in rs)}
    if runs["cnn_jax"]:
        summary["cnn_jax"]["median_compile_s"] = statistics.median(r["compile_s"] or 0 for r in runs["cnn_jax"])
    if runs["torch"] and runs["cnn_jax"]:
        summary["speedup_vs_torch"] = round(summary["torch"]["median_wall_s"] / summary["cnn_jax"]["median_wall_s"], 2)
    out = results_record("bench_time_to_accuracy", TITLE, header, [results_table(runs, summary, args)],
                         smoke=args.smoke, settings=info, import_s=import_s, runs=runs,
                         summary=summary)
    if info.get("torch"):  # the PyTorch side's interpreter may not be this one
        out["versions"]["torch"] = info["torch"]
    print(f"\nMNIST LeNet-5 to >= {TARGET_ACCURACY:.1%} test accuracy, cold start, median of {args.repeats} "
          f"(A/B alternated); {info['cpu']}, {info['cores']} cores; jax {info['jax']}, torch {info['torch']}; "
          f"{info['date']}; data import {import_s} s, oneDNN build {info['onednn_build']} (not in the times)\n")
    print("| side | wall s (median) | compile s | test accuracy (each run) | load |")
    print("| --- | --- | --- | --- | --- |")
    for side, rs in runs.items():
        if rs:
            compile_s = f"{summary['cnn_jax']['median_compile_s']:.1f}" if side == "cnn_jax" else \
                f"{statistics.median(r['first_step_s'] for r in rs):.2f} (1st step)"
            accuracies = ", ".join(f"{r['accuracy']:.2%}" for r in rs)
            loads = ", ".join(f"{r['load']:.1f}" for r in rs)
            print(f"| {side} | {summary[side]['median_wall_s']:.1f} | {compile_s} | {accuracies} | {loads} |")
    print(json.dumps(out, indent=2))
    save_results(out, args.out)
    if not args.workdir:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


# --------------------------------------------------------------------------------------------
# The results file
# --------------------------------------------------------------------------------------------
TITLE = "Time to 99% on MNIST, CPU: `cnn-jax train` against a PyTorch script, cold start, A/B"


def results_table(runs: dict, summary: dict, args) -> dict:
    rows = []
    for side, rs in runs.items():
        if not rs:
            continue
        if side == "cnn_jax":
            label = "cnn_jax (`cnn-jax train`)"
            compile_s = f"{summary['cnn_jax']['median_compile_s']:.1f} (first step)"
        else:
            label = "PyTorch, DataLoader"
            compile_s = f"{statistics.median(r['first_step_s'] for r in rs):.2f} (first step)"
        rows.append([label, f"**{summary[side]['median_wall_s']:.1f}**",
                     ", ".join(f"{r['wall_s']:.1f}" for r in rs), compile_s,
                     ", ".join(f"{r['accuracy']:.2%}" for r in rs),
                     ", ".join(f"{r['load']:.1f}" for r in rs)])
    notes = [f"`{CONFIG}`, wall time of each run from process launch to its test accuracy, "
             f"median of {args.repeats}, sides alternated; the data import and the oneDNN build "
             "run once before, untimed."]
    if "speedup_vs_torch" in summary:
        notes.append(f"PyTorch's median / cnn_jax's median: **{summary['speedup_vs_torch']:.2f}x**; "
                     f"every run >= {TARGET_ACCURACY:.0%}: cnn_jax "
                     f"{'yes' if summary['cnn_jax']['all_reach_target'] else 'no'}, PyTorch "
                     f"{'yes' if summary['torch']['all_reach_target'] else 'no'}.")
    return make_table(["side", "wall s, median", "each run, s", "compile s", "test accuracy (each run)",
                       "load (each run)"], rows, notes=notes)


if __name__ == "__main__":
    main()
