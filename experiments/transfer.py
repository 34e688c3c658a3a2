"""Transfer learning: LeNet-5 trained on MNIST, fine-tuned on 100, 1,000 and 10,000 Fashion-MNIST labels.

    python experiments/transfer.py [--data-dir DIR] [--sizes 100 1000 10000] [--source-run DIR] [--out t.json]

For each number N of labelled Fashion-MNIST images (the first N of the training split), three
runs of the real trainer, all with the same data, batches and total number of steps:

  * from scratch — configs/fashion_mnist_lenet5_scratch.py;
  * transferred, stage 1 — configs/fashion_mnist_lenet5_transfer_head.py: every layer loaded
    from LeNet-5 trained on MNIST (`init.checkpoint`), a fresh classifier (`init.exclude_regex`
    '^output/'), and only that classifier trained (`optimizer.freeze_regex` '^(?!output/)'),
    for half the steps;
  * transferred, stage 2 — configs/fashion_mnist_lenet5_transfer_finetune.py: starts from stage
    1 (`init.checkpoint` = its workdir), every layer trained with a tenth of the learning rate,
    for the other half.

The MNIST source is configs/mnist_lenet5.py trained here for --source-epochs epochs (3 by default,
to fit the budget of about 5 minutes on a 2-core CPU), or an existing run given by --source-run
(e.g. runs/mnist_lenet5 from the README command). No validation split is held out of the N images,
so each run's test accuracy (the 10,000 Fashion-MNIST test images) is that of its final parameters.

Batch size and epochs per N (about 400 steps per run): N <= 200: batches of 20; N <= 2,000: 50;
larger: 100. `--smoke` trains the source on 512 digits and each run on at most 128 images for
one or two epochs, to check the script end to end.
"""

from __future__ import annotations

import math
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
    markdown_table,
    print_header,
    run_root,
    train_run,
    write_json,
)

SIZES = (100, 1_000, 10_000)
STEPS_PER_RUN = 400  # scratch = stage 1 + stage 2
SCRATCH = "configs/fashion_mnist_lenet5_scratch.py"
HEAD = "configs/fashion_mnist_lenet5_transfer_head.py"
FINETUNE = "configs/fashion_mnist_lenet5_transfer_finetune.py"
SOURCE = "configs/mnist_lenet5.py"

SMOKE_SOURCE = ("data.val_size=512", "data.train_subset=512", "num_epochs=1",
                "eval_batch_size=500")
SMOKE_MAX_EXAMPLES = 128


def schedule(n: int) -> tuple[int, int]:
    """(batch size, epochs) for N labelled images: about STEPS_PER_RUN steps, an even number of
    epochs so that the two transfer stages split them in halves."""
    batch = 20 if n <= 200 else 50 if n <= 2_000 else 100
    batch = min(batch, n)
    steps_per_epoch = n // batch
    epochs = max(2, math.ceil(STEPS_PER_RUN / steps_per_epoch))
    return batch, epochs + epochs % 2


def runs_for(n: int, source: Path, root: Path, smoke: bool,
             finetune_lr: float = 0.0) -> tuple[Run, Run, Run]:
    """The scratch, stage-1 and stage-2 runs for N labelled images."""
    used = min(n, SMOKE_MAX_EXAMPLES) if smoke else n
    batch, epochs = (32, 2) if smoke else schedule(used)
    data = (f"data.train_subset={used}", f"batch_size={batch}")
    head = Run(f"transfer_head_{n}", HEAD, (*data, f"num_epochs={epochs // 2}",
                                           f"init.checkpoint={source}"))
    finetune = Run(f"transfer_finetune_{n}", FINETUNE,
                   (*data, f"num_epochs={epochs // 2}", f"init.checkpoint={root / head.name}"))
    if finetune_lr:
        finetune = finetune.with_overrides(f"optimizer.lr={finetune_lr}")
    return Run(f"scratch_{n}", SCRATCH, (*data, f"num_epochs={epochs}")), head, finetune


def accuracy(summary: dict) -> float:
    return 100.0 * summary["results"]["test"]["accuracy"]


def main(argv=None) -> dict:
    parser = experiment_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=list(SIZES),
                        help="numbers of labelled Fashion-MNIST images (default 100 1000 10000)")
    parser.add_argument("--source-run", default="",
                        help="workdir of a finished LeNet-5 MNIST run to transfer from (default: "
                             "train one here)")
    parser.add_argument("--source-epochs", type=int, default=3,
                        help="epochs of the MNIST source run trained here (default 3)")
    parser.add_argument("--finetune-lr", type=float, default=0.0,
                        help="learning rate of stage 2 (default: the config's, a tenth of stage 1's)")
    args = parser.parse_args(argv)

    env = print_header("Transfer MNIST -> Fashion-MNIST with LeNet-5: from scratch vs "
                       "transferred (test accuracy %)")
    notes = [ensure_dataset(name, args.data_dir, args.shared_data)
             for name in ("mnist", "fashion_mnist")]
    root = run_root(args.workdir, "transfer")
    print("data:     " + "\n          ".join(notes) + f"\nruns in:  {root}", flush=True)

    start = time.perf_counter()
    if args.source_run:
        source = Path(args.source_run).resolve()
        if not (source / "results.json").exists():
            sys.exit(f"error: --source-run {source} holds no finished run (no results.json)")
        source_summary = {"workdir": str(source), "reused": True}
    else:
        source_run = Run("mnist_lenet5", SOURCE, SMOKE_SOURCE if args.smoke
                         else (f"num_epochs={args.source_epochs}",))
        source_summary = train_run(source_run, root, args.data_dir)
        source = Path(source_summary["workdir"])
        print(f"MNIST source: {accuracy(source_summary):.2f}% test accuracy", flush=True)

    rows = []
    for n in args.sizes:
        scratch, head, finetune = runs_for(n, source, root, args.smoke, args.finetune_lr)
        row = {"labelled": n}
        for key, run in (("scratch", scratch), ("head", head), ("finetune", finetune)):
            row[key] = train_run(run, root, args.data_dir)
        row["examples_used"] = min(n, SMOKE_MAX_EXAMPLES) if args.smoke else n
        row["wall_seconds"] = round(sum(row[k]["wall_seconds"] for k in
                                        ("scratch", "head", "finetune")), 1)
        rows.append(row)
        print(f"N={n}: scratch {accuracy(row['scratch']):.2f}%, transferred head only "
              f"{accuracy(row['head']):.2f}%, fine-tuned {accuracy(row['finetune']):.2f}%",
              flush=True)
    total = time.perf_counter() - start

    table = markdown_table(
        ["labelled images", "from scratch %", "transferred, head only %",
         "transferred + fine-tuned %", "gain (points)", "wall (3 runs)"],
        [[f"{r['labelled']:,}" + (f" (smoke: {r['examples_used']})" if args.smoke else ""),
          f"{accuracy(r['scratch']):.2f}", f"{accuracy(r['head']):.2f}",
          f"{accuracy(r['finetune']):.2f}",
          f"{accuracy(r['finetune']) - accuracy(r['scratch']):+.2f}",
          format_seconds(r["wall_seconds"])] for r in rows])
    print("\n" + table)
    print(f"\nsource: {source}" + (f" ({accuracy(source_summary):.2f}% MNIST test accuracy)"
                                   if "results" in source_summary else ""))
    print(f"total wall time {format_seconds(total)}; load average at the end "
          f"{os.getloadavg()[0]:.2f}")
    print("test accuracy on the 10,000 Fashion-MNIST test images, final parameters of each run; "
          "the three runs of a row see the same images for the same number of steps")
    if not args.smoke and any(accuracy(r["finetune"]) < accuracy(r["scratch"]) for r in rows):
        print("a negative gain means the digit features hurt more than they help at that size: "
              "features transfer worse the less alike the two tasks are (Yosinski et al. 2014)")

    payload = {"experiment": "transfer", "smoke": args.smoke, **env, "data": notes,
               "source": source_summary, "rows": rows, "total_wall_seconds": round(total, 1)}
    if args.out:
        write_json(args.out, payload)
    return payload


if __name__ == "__main__":
    main()
