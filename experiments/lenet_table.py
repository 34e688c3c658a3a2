"""The MNIST table of the lectures (LeCun et al. 1998, Fig. 9), reproduced on real MNIST.

    python experiments/lenet_table.py [--data-dir DIR] [--rows linear lenet5 ...] [--out table.json]

Each row is one shipped config trained by the real trainer (`train_and_evaluate`); the script
prints, before each run, the `cnn-jax train` command that reproduces that row alone. The test
error is that of the checkpoint the trainer reports (best by validation accuracy on 5,000 digits
held out of the 60,000; `results.json` also holds the final checkpoint's).

    row                              paper (test error %)   config
    FC 10 only (linear)              12.0                   configs/mnist_mlp.py, model mlp_linear
    FC 300-10                        4.7                    configs/mnist_mlp.py, model mlp_300
    FC 300-100-10                    3.05                   configs/mnist_mlp.py
    LeNet-1                          1.7                    configs/mnist_lenet1.py
    LeNet-5                          0.95                   configs/mnist_lenet5.py
    FC 300-10, distortions           3.6                    configs/mnist_mlp.py:distorted, mlp_300
    FC 300-100-10, distortions       2.45                   configs/mnist_mlp.py:distorted

A row passes when ours is at most the paper's number + 0.3 points. Ours are expected to be
lower (better), and by most for the fully connected nets, because the training recipe is today's,
not the paper's: softmax cross-entropy on a linear output layer (LeNet-5 in the paper has
Euclidean RBF output units and a squared-error-type criterion, §II.B-C), SGD with momentum and a
cosine schedule (the paper trains LeNet-5 with stochastic diagonal Levenberg-Marquardt and a
fixed step schedule), and many epochs for the small nets. The linear row differs most: the
paper's 12.0% is a plain linear classifier of the pixel values (§III.C.1); a softmax regression
trained as here reaches about 7.3%. The distorted rows draw new distortions every epoch instead
of the paper's fixed set of distorted copies (see configs/mnist_mlp.py for the ranges
and their sources).

The whole table is meant to run in under 45 minutes on a 2-core CPU (the wall time of every row
and the total are printed; the total is checked when every row runs). `--smoke` runs each row on
512 digits for one epoch and checks nothing but that every row produces a number.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402  (the script's own folder first, then the shared helpers)
    Run,
    ensure_dataset,
    error_percent,
    experiment_parser,
    format_seconds,
    make_table,
    markdown_table,
    print_header,
    results_record,
    run_root,
    save_results,
    train_run,
)

TITLE = "LeCun et al. 1998 Fig. 9 on real MNIST: paper vs ours (test error %)"
TOLERANCE = 0.3  # points of test error above the paper's number that still pass (issue 4)
BUDGET_MINUTES = 45.0  # the whole table on this 2-core CPU


@dataclasses.dataclass(frozen=True)
class Row:
    key: str
    label: str
    paper_error: float  # test error %, LeCun et al. 1998 Fig. 9
    run: Run


ROWS = (
    Row("linear", "FC 10 only (linear)", 12.0,
        Run("linear", "configs/mnist_mlp.py", ("model.name=mlp_linear",))),
    Row("fc300", "FC 300-10", 4.7, Run("fc300", "configs/mnist_mlp.py", ("model.name=mlp_300",))),
    Row("fc300_100", "FC 300-100-10", 3.05, Run("fc300_100", "configs/mnist_mlp.py")),
    Row("lenet1", "LeNet-1", 1.7, Run("lenet1", "configs/mnist_lenet1.py")),
    Row("lenet5", "LeNet-5", 0.95, Run("lenet5", "configs/mnist_lenet5.py")),
    Row("fc300_dist", "FC 300-10, distortions", 3.6,
        Run("fc300_dist", "configs/mnist_mlp.py:distorted", ("model.name=mlp_300",))),
    Row("fc300_100_dist", "FC 300-100-10, distortions", 2.45,
        Run("fc300_100_dist", "configs/mnist_mlp.py:distorted")),
)
ROW_KEYS = tuple(r.key for r in ROWS)

# --smoke: 1,024 training digits are enough (512 trained on, 512 held out for validation).
SMOKE_OVERRIDES = ("data.val_size=512", "data.train_subset=512", "num_epochs=1",
                   "eval_batch_size=500", "log_every_steps=2")


def main(argv=None) -> dict:
    parser = experiment_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--rows", nargs="+", choices=ROW_KEYS, default=list(ROW_KEYS),
                        metavar="ROW", help=f"rows to run, of {', '.join(ROW_KEYS)} (default all)")
    args = parser.parse_args(argv)
    rows = [r for r in ROWS if r.key in args.rows]

    env = print_header(TITLE, argv, __file__)
    data_note = ensure_dataset("mnist", args.data_dir, args.shared_data)
    root = run_root(args.workdir, "lenet_table")
    print(f"data:     {data_note}\nruns in:  {root}", flush=True)

    start = time.perf_counter()
    results = []
    for row in rows:
        run = row.run.with_overrides(*SMOKE_OVERRIDES) if args.smoke else row.run
        summary = train_run(run, root, args.data_dir)
        ours = error_percent(summary)
        passed = None if args.smoke else ours <= row.paper_error + TOLERANCE
        results.append({"row": row.key, "label": row.label, "paper_error": row.paper_error,
                        "error": round(ours, 2), "pass": passed, **summary})
        print(f"{row.label}: {ours:.2f}% test error (paper {row.paper_error}%), "
              f"{format_seconds(summary['wall_seconds'])}", flush=True)
    total = time.perf_counter() - start

    table = markdown_table(
        ["row", "paper %", "ours %", "ours - paper", f"<= paper + {TOLERANCE}", "epochs",
         "wall"],
        [[r["label"], f"{r['paper_error']:g}", f"{r['error']:.2f}",
          f"{r['error'] - r['paper_error']:+.2f}",
          "smoke" if r["pass"] is None else ("PASS" if r["pass"] else "FAIL"),
          r["results"]["epochs"],
          format_seconds(r["wall_seconds"]) + (" (reused)" if r["reused"] else "")]
         for r in results])
    print("\n" + table)
    within_budget = None  # checked only for a full table trained here from the start
    if not args.smoke and len(rows) == len(ROWS) and not any(r["reused"] for r in results):
        within_budget = total <= BUDGET_MINUTES * 60
    budget = {None: "", True: f" (budget {BUDGET_MINUTES:g} min: PASS)",
              False: f" (budget {BUDGET_MINUTES:g} min: FAIL)"}[within_budget]
    print(f"\ntotal wall time {format_seconds(total)}{budget}; load average at the end "
          f"{os.getloadavg()[0]:.2f}")
    print("test error: checkpoint with the best validation accuracy (5,000 digits held out of "
          "the training set); paper: LeCun et al. 1998, Fig. 9")
    print("why ours are lower: today's recipe (softmax cross-entropy, SGD with momentum, cosine "
          "schedule), not the paper's (RBF outputs, stochastic diagonal Levenberg-Marquardt); "
          "distortions drawn anew every epoch (this script's docstring says more)")

    name = "lenet_table" if len(rows) == len(ROWS) else "lenet_table_" + "_".join(args.rows)
    record = results_record(
        name, TITLE, env, [results_table(results, total, within_budget)],
        experiment="lenet_table", smoke=args.smoke, data=data_note, tolerance_points=TOLERANCE,
        rows=results, total_wall_seconds=round(total, 1), within_budget=within_budget,
        all_pass=None if args.smoke else all(r["pass"] for r in results))
    save_results(record, args.out)
    return record


# --------------------------------------------------------------------------------------------
# The results file's table, and the rows of the README's results table
# --------------------------------------------------------------------------------------------
def config_cell(run: Run) -> str:
    """A row's config file and overrides, as a markdown code span."""
    return "`" + " ".join([run.config, *(f"--config.{o}" for o in run.overrides)]) + "`"


def results_table(results: list[dict], total: float, within_budget: bool | None) -> dict:
    by_key = {r.key: r for r in ROWS}
    budget = {None: "", True: f" (budget {BUDGET_MINUTES:g} min: PASS)",
              False: f" (budget {BUDGET_MINUTES:g} min: FAIL)"}[within_budget]
    return make_table(
        ["row", "config", "paper test error %", "ours %", "ours - paper",
         f"<= paper + {TOLERANCE}", "epochs", "wall"],
        [[r["label"], config_cell(by_key[r["row"]].run), f"{r['paper_error']:g}",
          f"**{r['error']:.2f}**", f"{r['error'] - r['paper_error']:+.2f}",
          "smoke" if r["pass"] is None else ("PASS" if r["pass"] else "FAIL"),
          r["results"]["epochs"],
          format_seconds(r["wall_seconds"]) + (" (reused)" if r["reused"] else "")]
         for r in results],
        notes=[f"Total wall time {format_seconds(total)}{budget}.",
               "Test error of the checkpoint with the best validation accuracy (5,000 digits "
               "held out of the training set); paper: LeCun et al. 1998, Fig. 9."])


def readme_rows(record: dict | None) -> list[dict]:
    """The rows of the README's results table: one per row of the paper's table, with ours
    from `record` (a lenet_table results file) or None where it has no such row."""
    measured = {r["row"]: r for r in (record or {}).get("rows", [])}
    return [{"what": f"{row.label}, MNIST test error", "how": config_cell(row.run),
             "ours": f"{measured[row.key]['error']:.2f}%" if row.key in measured else None,
             "paper": f"{row.paper_error:g}% (LeCun et al. 1998, Fig. 9)"}
            for row in ROWS]


if __name__ == "__main__":
    sys.exit(0 if main()["all_pass"] is not False else 1)
