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
  * `read_metrics`, `markdown_table`, `write_json`;
  * `Variant` / `alternate`: the benchmarks' sides, each built in its own process and timed in
    turn (bench_train_step, bench_detection);
  * the results file every script of experiments/ writes (`results_header`, `results_record`,
    `save_results`): experiments/results/<name>.json by default, or --out, never for --smoke
    unless --out is given. It holds the command line, the UTC date, the machine (CPU model, cores,
    load average before and after), the library versions, the script's own fields and its
    tables; experiments/render_results.py renders those tables into README.md and docs/.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "experiments" / "results"
DEFAULT_SHARED_DATA = Path(os.environ.get("CNN_JAX_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

# catalogue name -> file of ../shared/data it is imported from (see shared/data/README.md)
SHARED_FILES = {
    "mnist": "mnist.npz",
    "fashion_mnist": "fashion_mnist.npz",
    "cifar10": "cifar10_jpeg.npz",  # JPEG-degraded (quality 75) copy: say so next to any number
    "nuclei_dsb2018": "nuclei_dsb2018.npz",
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
    p.add_argument("--out", default="",
                   help="the results file to write (default experiments/results/<script>.json; "
                        "with --smoke, none unless given)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny runs (a few hundred examples, 1 epoch, no pass/fail) to check the "
                        "script end to end")
    return p


def environment(argv: Sequence[str] | None = None, script: str | Path | None = None) -> dict:
    """Command line, UTC date, commit, library versions, machine (load average before) and the
    environment variables that change what runs: the header of every results file."""
    import jax  # noqa: F401  (loaded first, so that the header names its devices)

    return results_header(script or sys.argv[0], sys.argv[1:] if argv is None else argv)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def print_header(title: str, argv: Sequence[str] | None = None,
                 script: str | Path | None = None) -> dict:
    """Prints the title, the command line, versions and machine; returns them for the results."""
    env = environment(argv, script)
    m, v = env["machine"], env["versions"]
    print(f"# {title}\n")
    print(f"command:  {env['command']}")
    print(f"date:     {env['date']}   cnn_jax {env['cnn_jax_commit']}")
    print("versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    print(f"machine:  {m['cpu']}, {m['cpu_count']} cores, {m.get('devices', '')}, "
          f"load average {m['load_average_before'][0]:.2f} at start ({m['platform']})\n",
          flush=True)
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
    from cnn_jax.errors import DataNotPreparedError

    try:
        builder = prepare.tfds_builder(name, data_dir or None)
    except DataNotPreparedError:  # an imported dataset (not tfds'), not imported there yet
        builder = None
    if builder is None or not prepare.is_prepared(builder):
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
    the trainer's wall time of its training, the command line, and whether the run had finished
    before. A finished workdir is evaluated again, not retrained, and keeps the wall time it
    finished with (so an experiment can gather its runs over several sittings); `reused` says so.
    """
    from cnn_jax.training.loop import train_and_evaluate

    if data_dir:
        run = run.with_overrides(f"data.data_dir={data_dir}")
    workdir = root / run.name
    finished_before = (workdir / "results.json").exists()
    config = run.load("progress_bar=false")
    print(f"\n## {run.name}\n{run.command(workdir)}", flush=True)
    results = train_and_evaluate(config, workdir)
    if results.get("status") != "finished":
        sys.exit(f"error: run {run.name} stopped before the end ({results}); rerun the same "
                 "command with the same --workdir to resume it")
    return {"name": run.name, "command": run.command(workdir), "workdir": str(workdir),
            "results": results, "wall_seconds": results["wall_seconds"], "reused": finished_before}


def wall_note(total: float, runs) -> str:
    """The results note on wall time: this sitting's total and, when some of `runs` (train_run
    summaries, possibly in lists or dicts) finished in an earlier sitting, which ones."""
    def summaries(x):
        if isinstance(x, dict) and "reused" in x:
            yield x
        elif isinstance(x, dict):
            for v in x.values():
                yield from summaries(v)
        elif isinstance(x, list | tuple):
            for v in x:
                yield from summaries(v)

    every = list(summaries(runs))
    reused = [s["name"] for s in every if s["reused"]]
    if not reused:
        return f"Total wall time {format_seconds(total)}."
    return (f"Wall time of this sitting {format_seconds(total)}; {len(reused)} of {len(every)} runs "
            f"had finished in an earlier one and were evaluated again ({', '.join(reused)}): their wall "
            "times are those recorded when they finished.")


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


# --------------------------------------------------------------------------------------------
# Results files (experiments/results/<name>.json, rendered by experiments/render_results.py)
# --------------------------------------------------------------------------------------------
# Distributions whose versions a results file records, when installed.
VERSIONED = ("jax", "jaxlib", "flax", "optax", "numpy", "torch", "onednn-cpu-gomp")
# Environment variables that change what a benchmark measures, recorded when set.
RECORDED_VARIABLES = ("XLA_FLAGS", "CNN_JAX_ONEDNN", "JAX_PLATFORMS", "OMP_NUM_THREADS", "OMP_WAIT_POLICY")


def command_line(script: str | Path, argv: Sequence[str]) -> str:
    """The command that reruns this script with `argv`, paths relative to the repository."""
    python = Path(sys.executable)
    try:
        python_text = str(python.relative_to(REPO_ROOT))
    except ValueError:
        python_text = python.name
    script = Path(script).resolve()
    try:
        script_text = str(script.relative_to(REPO_ROOT))
    except ValueError:
        script_text = str(script)
    return shlex.join([python_text, script_text, *map(str, argv)])


def _versions() -> dict:
    versions = {"python": platform.python_version()}
    for dist in VERSIONED:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def _commit() -> str:
    try:
        commit = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (commit + ("+uncommitted changes" if dirty else "")) or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def results_header(script: str | Path, argv: Sequence[str]) -> dict:
    """What every results file starts with, taken when the measurement starts: the command line,
    the UTC date, the commit, library versions, the machine (CPU model from /proc/cpuinfo, cores,
    load average before) and the environment variables of RECORDED_VARIABLES that are set."""
    machine = {"cpu": _cpu_model(), "cpu_count": os.cpu_count(),
               "cores_used": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else os.cpu_count(),
               "platform": platform.platform(), "load_average_before": _load()}
    if "jax" in sys.modules:  # the devices of a script that has JAX loaded (never imported here)
        devices = sys.modules["jax"].devices()
        machine["devices"] = f"{len(devices)} x {devices[0].device_kind}"
    return {
        "command": command_line(script, argv),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cnn_jax_commit": _commit(),
        "versions": _versions(),
        "machine": machine,
        "environment": {k: os.environ[k] for k in RECORDED_VARIABLES if k in os.environ},
    }


def make_table(headers: Sequence[str], rows: Sequence[Sequence[object]], title: str = "",
          notes: Sequence[str] = ()) -> dict:
    """One table of a results file: every cell a string, as it is rendered."""
    return {"title": title, "headers": [str(h) for h in headers],
            "rows": [[str(c) for c in row] for row in rows], "notes": [str(n) for n in notes]}


def results_record(name: str, title: str, header: dict, tables: Sequence[dict], **fields) -> dict:
    """The results file's content: `header`, the load average now (after), the script's own
    `fields` and its `tables` (of `make_table`)."""
    record = {"name": name, "title": title, **header, **fields, "tables": list(tables)}
    record["machine"] = {**header["machine"], "load_average_after": _load()}
    return record


def results_path(name: str, out: str | Path | None, smoke: bool) -> Path | None:
    """Where a results file goes: `out` if given, else experiments/results/<name>.json, except
    for smoke runs (toy sizes, numbers without meaning), which write nowhere unless asked."""
    if out:
        return Path(out)
    return None if smoke else RESULTS_DIR / f"{name}.json"


def save_results(record: dict, out: str | Path | None = None) -> Path | None:
    """Writes `record` to its results file (see `results_path`); returns the path, or None."""
    path = results_path(record["name"], out, bool(record.get("smoke")))
    if path is not None:
        write_json(path, record)
    return path


# --------------------------------------------------------------------------------------------
# Benchmarks: each side in its own process, timed in alternation
# --------------------------------------------------------------------------------------------
def _serve(conn, build, kwargs: dict) -> None:
    """A variant's process: builds `build(**kwargs)`, then answers ("run", steps) with the seconds
    and (method, *args) with the runner's method's result; ("stop",) ends it."""
    try:
        start = time.perf_counter()
        runner = build(**kwargs)
        conn.send(("ready", time.perf_counter() - start))
        while True:
            method, *args = conn.recv()
            if method == "stop":
                return
            conn.send(("done", getattr(runner, method)(*args)))
    except BaseException as e:  # reported by the parent, which stops the benchmark
        conn.send(("error", f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=-4)}"))


class Variant:
    """A runner built by the module-level function `build(**kwargs)` in a child process (so
    neither side's libraries, thread pools or allocator state touch the other's), timed one at
    a time by `alternate`: `run(steps)` returns its seconds, `call(method, *args)` any of its
    methods' results."""

    def __init__(self, build, **kwargs):
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, build, kwargs), daemon=True)
        self.process.start()
        self.setup_s = self._reply("ready")

    def _reply(self, expected: str):
        tag, value = self.conn.recv()
        if tag != expected:
            raise RuntimeError(f"benchmark worker failed: {value}")
        return value

    def run(self, steps: int) -> float:
        return self.call("run", steps)

    def call(self, method: str, *args):
        self.conn.send((method, *args))
        return self._reply("done")

    def close(self) -> None:
        if self.process.is_alive():
            self.conn.send(("stop",))
        self.process.join(timeout=60)


def alternate(runners: dict, steps: int, warmup: int, repeats: int) -> dict[str, list[float]]:
    """Warm each runner up, then time `repeats` rounds of `steps` steps, the order rotating each round."""
    for runner in runners.values():
        runner.run(warmup)
    times = {name: [] for name in runners}
    names = list(runners)
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            times[name].append(runners[name].run(steps))
    return times
