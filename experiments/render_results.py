"""Renders the results files of experiments/results/ into README.md and docs/*.md.

    python experiments/render_results.py            # rewrite every generated section in place
    python experiments/render_results.py --check    # exit 1 if a section differs from its file

Every script of experiments/ writes its measurements to experiments/results/<name>.json (the
command line, UTC date, machine, library versions and its tables; `_common.results_record`). A
document shows them between markers, and nothing between the markers is written by hand:

    <!-- results:bench_train_step -->
    ... rendered from experiments/results/bench_train_step.json ...
    <!-- /results -->

Each section is the file's command, date, machine and versions line, then its tables and their
notes. A section whose file does not exist says which command writes it. `results:readme` is the
README's results table: a row per result of each script of README_SOURCES (each one's
`readme_rows`), ours beside the paper's number. Rendering is a pure function of the results files
(and those scripts' constants), so tests/test_experiments.py checks that the committed documents
are what the committed files render.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO_ROOT, RESULTS_DIR, markdown_table  # noqa: E402

SECTION = re.compile(r"(<!-- results:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.S)

# results file -> the command that writes it, shown where the file does not exist yet
# (`python` is the interpreter of .venv; `.venv-bench` holds torch 2.13.0 for the PyTorch sides).
COMMANDS = {
    "lenet_table": "python experiments/lenet_table.py",
    "activations": "python experiments/activations.py --tune-lr",
    "transfer": "python experiments/transfer.py",
    "bench_train_step": ".venv-bench/bin/python experiments/bench_train_step.py",
    "bench_time_to_accuracy": ".venv-bench/bin/python experiments/bench_time_to_accuracy.py",
    "bench_input_pipeline": "python experiments/bench_input_pipeline.py",
    "bench_conv_layer": ".venv-bench/bin/python experiments/bench_conv_layer.py",
    "bench_conv_layer_covering": "python experiments/bench_conv_layer.py --covering --steps 10",
    "bench_conv_layer_upsampling": "python experiments/bench_conv_layer.py --upsampling",
    "profile_train_step_resnet20_auto": "python experiments/profile_train_step.py --model resnet20",
    "profile_train_step_resnet20_xla":
        "python experiments/profile_train_step.py --model resnet20 --conv xla",
    "bench_gpu": "python experiments/bench_gpu.py   # on a machine with a GPU",
    "fcn_skips": "python experiments/fcn_skips.py",
    "digits_segmenters": "python experiments/digits_segmenters.py",
    "nuclei_unet": "python experiments/nuclei_unet.py",
    "detection_runs": "python experiments/detection_runs.py",
    "focal_ablation": "python experiments/focal_ablation.py",
    "bench_detection": "python experiments/bench_detection.py",  # torchvision: the main venv
    "bench_train_step_beyond_labels":
        ".venv-bench/bin/python experiments/bench_train_step.py --models beyond_labels",
    "saliency_losses": "python experiments/saliency_losses.py",
    "motion_needs_3d": "python experiments/motion_needs_3d.py",
    "seq_mnist_tcn": "python experiments/seq_mnist_tcn.py",
    "generative": "python experiments/generative.py",
}
# The README's results table: rows from these results files, in this order (each script has
# `readme_rows(record or None)`).
README_SOURCES = ("lenet_table", "activations", "transfer", "fcn_skips", "nuclei_unet",
                  "detection_runs", "focal_ablation", "seq_mnist_tcn")
DOCUMENTS = ("README.md", "docs/*.md")


def load(name: str, results_dir: Path) -> dict | None:
    path = results_dir / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def missing(name: str) -> str:
    return (f"Not yet measured on this code: run `{COMMANDS[name]}` on a quiet machine (it writes "
            f"`experiments/results/{name}.json`), then `python experiments/render_results.py`.")


def provenance(record: dict) -> str:
    """The command, date, machine and versions line of a results file."""
    m = record["machine"]
    cores = m.get("cores_used") or m.get("cpu_count")
    machine = f"{m['cpu']}, {cores} cores"
    if m.get("devices") and "cpu" not in m["devices"].lower():
        machine += f", {m['devices']}"
    load = (f"load average {m['load_average_before'][0]:.2f} before, "
            f"{m['load_average_after'][0]:.2f} after")
    versions = ", ".join(f"{k} {v}" for k, v in record["versions"].items())
    env = "".join(f"; `{k}={v}`" for k, v in record.get("environment", {}).items())
    date = record["date"].replace("T", " ").replace("Z", " UTC")
    line = (f"`{record['command']}` · {date} · {machine}, {load} · {versions}{env} · cnn_jax "
            f"{record['cnn_jax_commit']}")
    if record.get("smoke"):
        line += " · **smoke run: toy sizes, the numbers mean nothing**"
    return line


def relative(path: str, document: Path) -> str:
    """`path` (relative to the repository) as a link from `document`."""
    return os.path.relpath(REPO_ROOT / path, (REPO_ROOT / document).parent)


def render_record(record: dict, document: Path = Path("docs/performance.md")) -> str:
    """A results file as markdown: its provenance line, tables with their notes, its figure."""
    parts = [provenance(record)]
    for t in record["tables"]:
        if t.get("title"):
            parts.append(f"*{t['title']}*")
        parts.append(markdown_table(t["headers"], t["rows"]))
        parts.extend(t.get("notes", []))
    if record.get("figure"):
        parts.append(f"![{record['title']}]({relative(record['figure'], document)})")
    return "\n\n".join(parts)


def readme_table(results_dir: Path) -> str:
    rows, sources = [], []
    for name in README_SOURCES:
        record = load(name, results_dir)
        for row in importlib.import_module(name).readme_rows(record):
            ours = f"**{row['ours']}**" if row["ours"] else f"run `{COMMANDS[name]}`"
            rows.append([row["what"], row["how"], ours, row["paper"]])
        sources.append(f"- `{name}`: " + (provenance(record) if record else missing(name)))
    return "\n\n".join([markdown_table(["result", "config or script", "ours", "paper"], rows),
                        "\n".join(sources)])


def render_section(name: str, results_dir: Path, document: Path) -> str:
    if name == "readme":
        return readme_table(results_dir)
    record = load(name, results_dir)
    if record is None:
        if name not in COMMANDS:
            raise SystemExit(f"error: {document}: section results:{name} has no results file "
                             f"and no command in render_results.COMMANDS")
        return missing(name)
    return render_record(record, document)


def render_text(text: str, results_dir: Path, document: Path) -> str:
    """`text` with every generated section rendered anew."""
    return SECTION.sub(lambda m: m.group(1) + render_section(m.group("name"), results_dir, document)
                       + "\n" + m.group(4), text)


def documents(root: Path = REPO_ROOT) -> list[Path]:
    return sorted({p.relative_to(root) for pattern in DOCUMENTS for p in root.glob(pattern)})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 naming the documents whose sections differ")
    parser.add_argument("--results-dir", default=str(RESULTS_DIR))
    args = parser.parse_args(argv)
    results_dir = Path(args.results_dir)
    stale, shown = [], set()
    for document in documents():
        text = (REPO_ROOT / document).read_text()
        shown |= {m.group("name") for m in SECTION.finditer(text)}
        rendered = render_text(text, results_dir, document)
        if rendered != text:
            stale.append(str(document))
            if not args.check:
                (REPO_ROOT / document).write_text(rendered)
    unshown = sorted(p.stem for p in results_dir.glob("*.json")
                     if p.stem not in shown and not (p.stem in README_SOURCES and "readme" in shown))
    if unshown:
        print("results files shown in no document: " + ", ".join(unshown))
    if args.check:
        if stale:
            print("out of date (run python experiments/render_results.py): " + ", ".join(stale))
        return 1 if stale else 0
    print("rendered: " + (", ".join(stale) if stale else "nothing changed"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
