"""Shared pieces of the reproduction scripts in experiments/ (lenet_table, activations, transfer).

Each script is a list of runs — a shipped `configs/*.py` file (or `FILE:ARG`, one variant of a
file's family) plus `key=value` overrides — trained by the one trainer,
`cnn_jax.training.loop.train_and_evaluate`, then a table. This module holds what they have in
common:

  * `experiment_parser` / `print_header`: the common flags (--data-dir, --shared-data, --workdir,
    --out, --smoke) and the header every script prints (command line, versions, machine);
  * `ensure_dataset`: imports a dataset from the offline copies in ../shared/data into the tfds
    data_dir when it is not prepared there yet (what `cnn-jax data import` does);
  * `Run` / `train_run`: one config trained in its own workdir, timed, with the equivalent
    `cnn-jax train` command line so that any row of a table can be rerun by hand;
  * `read_metrics`, `markdown_table`, `write_json`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED_DATA = Path(os.environ.get("CNN_JAX_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

# catalogue name -> file of ../shared/data it is imported from (see shared/data/README.md)
SHARED_FILES = {
    "mnist": "mnist.npz",
    "fashion_mnist": "fashion_mnist.npz",
    "cifar10": "cifar10_jpeg.npz",  # JPEG-degraded (quality 75) copy: say so next to any number
}


# --------------------------------------------------------------------------------------------
# Command line and header
# --------------------------------------------------------------------------------------------
def experiment_parser(description: str) -> argparse.ArgumentParser:
    """An argparse parser with the flags every experiment script takes."""
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="",
                   help="tfds data_dir (default $TFDS_DATA_DIR or ~/tensorflow_datasets); datasets "
                        "missing there are imported from --shared-data first")
    p.add_argument("--shared-data", default=str(DEFAULT_SHARED_DATA),
                   help="the offline dataset copies (default ../shared/data or $CNN_JAX_SHARED_DATA)")
    p.add_argument("--workdir", default="",
                   help="parent folder of the runs' workdirs (default: a new temporary folder); "
                        "a finished run found there is reused, not retrained")
    p.add_argument("--out", default="", help="also write the results as JSON to this file")
    p.add_argument("--smoke", action="store_true",
                   help="tiny runs (a few hundred examples, 1 epoch, no pass/fail) to check the "
                        "script end to end")
    return p


def environment() -> dict:
    """Command line, library versions and machine, for the header of every result."""
    import flax
    import jax
    import numpy as np
    import optax

    try:
        commit = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        commit = (commit + ("+uncommitted changes" if dirty else "")) or "unknown"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    devices = jax.devices()
    return {
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "cnn_jax_commit": commit,
        "versions": {"python": platform.python_version(), "jax": jax.__version__,
                     "flax": flax.__version__, "optax": optax.__version__,
                     "numpy": np.__version__},
        "machine": {"platform": platform.platform(), "cpu": _cpu_model(),
                    "cpu_count": os.cpu_count(),
                    "load_average": [round(x, 2) for x in os.getloadavg()],
                    "devices": f"{len(devices)} x {devices[0].device_kind}"},
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def print_header(title: str) -> dict:
    """Prints the title, the command line, versions and machine; returns them for the JSON."""
    env = environment()
    m, v = env["machine"], env["versions"]
    print(f"# {title}\n")
    print(f"command:  {env['command']}")
    print(f"date:     {env['date']}   cnn_jax {env['cnn_jax_commit']}")
    print("versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    print(f"machine:  {m['cpu']}, {m['cpu_count']} cores, {m['devices']}, "
          f"load average {m['load_average'][0]:.2f} at start ({m['platform']})\n", flush=True)
    return env


def run_root(workdir: str, prefix: str) -> Path:
    """The folder holding the runs: --workdir if given, else a new temporary one (kept)."""
    if workdir:
        root = Path(workdir)
        root.mkdir(parents=True, exist_ok=True)
        return root
    return Path(tempfile.mkdtemp(prefix=f"{prefix}_"))


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
def ensure_dataset(name: str, data_dir: str, shared_data: str | Path) -> str:
    """Makes `name` readable from `data_dir` (tfds layout), importing the ../shared/data copy if
    it is not prepared there; returns a one-line note on where the data comes from."""
    from cnn_jax.data import catalog, prepare
    from cnn_jax.data.importer import data_main_import

    builder = prepare.tfds_builder(name, data_dir or None)
    if not prepare.is_prepared(builder):
        source = Path(shared_data) / SHARED_FILES[name]
        if not source.exists():
            sys.exit(f"error: {name} is not prepared in {data_dir or catalog.default_data_dir()} "
                     f"and {source} does not exist: pass --shared-data or run "
                     f"`cnn-jax data import {name} --from PATH`")
        print(data_main_import(name, str(source), data_dir or None), flush=True)
        builder = prepare.tfds_builder(name, data_dir or None)
    record = prepare.import_record(builder) or {}
    origin = f"imported from {record['source']}" if record.get("source") else "prepared by tfds"
    lossy = ", JPEG-degraded pixels (quality 75): accuracies are not comparable with published " \
            "ones" if record.get("lossy") else ""
    counts = ", ".join(f"{s} {i.num_examples:,}" for s, i in builder.info.splits.items())
    return f"{name}: {counts}; {origin}{lossy}"


# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Run:
    """One training run: a config file (relative to the repository) and its overrides."""

    name: str  # the run's workdir name under the experiment's folder
    config: str  # e.g. 'configs/mnist_mlp.py', or 'configs/mnist_mlp.py:distorted' for a variant
    overrides: tuple[str, ...] = ()

    def with_overrides(self, *items: str) -> Run:
        return dataclasses.replace(self, overrides=(*self.overrides, *items))

    def load(self, *extra: str):
        """The run's config (an ml_collections ConfigDict), with `extra` overrides last."""
        from cnn_jax.config import load_config

        return load_config(REPO_ROOT / self.config, [*self.overrides, *extra])

    def command(self, workdir: Path) -> str:
        """The `cnn-jax train` command line that trains exactly this run."""
        return shlex.join(["cnn-jax", "train", "--config", self.config, "--workdir", str(workdir),
                           *(f"--config.{item}" for item in self.overrides)])


def train_run(run: Run, root: Path, data_dir: str) -> dict:
    """Trains `run` in `root/run.name` with the real trainer; returns its summary.

    The summary holds the trainer's results (`results["test"]` is the checkpoint the trainer
    reports: best by validation accuracy when there is a validation split, else the final one),
    the wall time of this call, the command line, and whether the run had finished before (a
    finished workdir is evaluated again, not retrained, so its wall time is not a training time).
    """
    from cnn_jax.training.loop import train_and_evaluate

    if data_dir:
        run = run.with_overrides(f"data.data_dir={data_dir}")
    workdir = root / run.name
    finished_before = (workdir / "results.json").exists()
    config = run.load("progress_bar=false")
    print(f"\n## {run.name}\n{run.command(workdir)}", flush=True)
    start = time.perf_counter()
    results = train_and_evaluate(config, workdir)
    wall = time.perf_counter() - start
    if results.get("status") != "finished":
        sys.exit(f"error: run {run.name} stopped before the end ({results}); rerun the same "
                 "command with the same --workdir to resume it")
    return {"name": run.name, "command": run.command(workdir), "workdir": str(workdir),
            "results": results, "wall_seconds": round(wall, 1), "reused": finished_before}


def error_percent(summary: dict) -> float:
    """Test error (%) of the checkpoint the trainer reports."""
    return 100.0 * (1.0 - summary["results"]["test"]["accuracy"])


def read_metrics(workdir: str | Path, split: str | None = None) -> list[dict]:
    """The records of `workdir/metrics.jsonl` (of one split if given), in the order written."""
    records = []
    with open(Path(workdir) / "metrics.jsonl") as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                if split is None or record["split"] == split:
                    records.append(record)
    return records


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------
def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table, columns padded to their widest cell."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    return "\n".join([line(cells[0]), "| " + " | ".join("-" * w for w in widths) + " |",
                      *(line(r) for r in cells[1:])])


def format_seconds(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def write_json(path: str | Path, payload: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nwrote {path}")
