"""Sequential and permuted sequential MNIST with a TCN (Bai, Kolter & Koltun 2018): each digit read
pixel by pixel, 784 steps, classified from the last.

    python experiments/seq_mnist_tcn.py [--epochs 20] [--variants seq permuted] [--workdir DIR] [--out FILE]
    python experiments/seq_mnist_tcn.py --smoke      # a few hundred digits, one epoch per run

configs/seq_mnist_tcn.py's two variants (`:seq`, pixels in raster order; `:permuted`, in one fixed
random order) are trained with the authors' recipe: Adam at 2e-3, batch 64, the rate divided by 10
after epoch 10, 20 epochs. `--epochs N` shortens the schedule (the decay after epoch 10 happens only
when N > 10); the table says how many epochs each number had, its wall time and the machine, next
to the paper's Table 1 (99.0% sequential, 97.2% permuted, the full schedule on all 60,000 training
digits; here 5,000 are held out for validation and the checkpoint with the best validation accuracy
is tested on the 10,000 test digits). Each run is one `cnn-jax train` command, printed.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402  (the script's own folder first, then the shared helpers)
    Run,
    ensure_dataset,
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

TITLE = "Sequential and permuted sequential MNIST with a TCN: test accuracy and wall time"
CONFIG = "configs/seq_mnist_tcn.py"
FULL_EPOCHS = 20  # the config's, the authors' schedule
# Bai, Kolter & Koltun 2018, Table 1: TCN test accuracy (%).
PAPER = {"seq": 99.0, "permuted": 97.2}
LABELS = {"seq": "sequential MNIST", "permuted": "permuted sequential MNIST"}
SMOKE = ("data.train_subset=256", "data.val_size=64", "batch_size=32", "eval_batch_size=250")


def main(argv=None) -> dict:
    parser = experiment_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=FULL_EPOCHS,
                        help=f"epochs per run ({FULL_EPOCHS}: the paper's schedule)")
    parser.add_argument("--variants", nargs="+", choices=tuple(PAPER), default=list(PAPER))
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")

    env = print_header(TITLE, argv, __file__)
    note = ensure_dataset("mnist", args.data_dir, args.shared_data)
    root = run_root(args.workdir, "seq_mnist_tcn")
    print(f"data:     {note}\nruns in:  {root}", flush=True)
    epochs = 1 if args.smoke else args.epochs
    start = time.perf_counter()
    runs = {}
    for variant in args.variants:
        overrides = (*(SMOKE if args.smoke else ()), *((f"num_epochs={epochs}",)
                                                      if epochs != FULL_EPOCHS else ()))
        runs[variant] = train_run(Run(variant, f"{CONFIG}:{variant}", overrides), root,
                                  args.data_dir)
    total = time.perf_counter() - start

    headers = ["task", "config", "epochs", "test accuracy (%)", "paper (%)", "wall time"]
    rows = []
    accuracies = {}
    for variant, summary in runs.items():
        test = summary["results"]["test"]
        accuracies[variant] = test["accuracy"]
        rows.append([LABELS[variant], f"`{CONFIG}:{variant}`",
                     f"{epochs} of {FULL_EPOCHS}" if epochs != FULL_EPOCHS else str(epochs),
                     f"{100 * test['accuracy']:.2f}", f"{PAPER[variant]:.1f}",
                     format_seconds(summary["wall_seconds"])])
    print("\n" + markdown_table(headers, rows))
    cores = os.cpu_count()
    held_out = Run("", f"{CONFIG}:{args.variants[0]}").load().data.val_size
    notes = [f"Test = {next(iter(runs.values()))['results']['test']['count']:,} MNIST test digits, the "
             f"checkpoint with the best validation accuracy ({held_out:,} training digits held out). "
             f"Wall time: training and evaluation on this machine ({cores} cores)."]
    if epochs < FULL_EPOCHS:
        notes.append(f"Shortened schedule: {epochs} of the paper's {FULL_EPOCHS} epochs"
                     + (" (no rate decay: it comes after epoch 10)." if epochs <= 10 else "."))
    print("\n".join(["", *notes, f"total wall time {format_seconds(total)}"]))
    record = results_record("seq_mnist_tcn", TITLE, env, [make_table(headers, rows, notes=notes)],
                            experiment="seq_mnist_tcn", smoke=args.smoke, epochs=epochs,
                            data=note, accuracies=accuracies, paper=PAPER, runs=runs,
                            total_wall_seconds=round(total, 1))
    save_results(record, args.out)
    return record


def readme_rows(record: dict | None) -> list[dict]:
    """The README's results rows: each variant's test accuracy and epochs, beside Table 1."""
    rows = []
    for variant in PAPER:
        ours = None
        if record and not record.get("smoke") and variant in record.get("accuracies", {}):
            epochs = record["epochs"]
            schedule = f"{epochs} of {FULL_EPOCHS} epochs" if epochs != FULL_EPOCHS else "full schedule"
            ours = f"{100 * record['accuracies'][variant]:.2f}% ({schedule})"
        rows.append({"what": f"TCN, {LABELS[variant]}, test accuracy",
                     "how": f"`experiments/seq_mnist_tcn.py` (`{CONFIG}:{variant}`)", "ours": ours,
                     "paper": f"{PAPER[variant]}% (Bai et al. 2018, Table 1)"})
    return rows


if __name__ == "__main__":
    main()
