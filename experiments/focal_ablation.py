"""RetinaNet on digit scenes with the focal loss against alpha-balanced cross-entropy, over seeds:
does focusing on the hard examples raise AP, as in Lin et al. 2017, Table 1a?

    python experiments/focal_ablation.py [--seeds 0 1 2] [--workdir DIR] [--out focal_ablation.json]
    python experiments/focal_ablation.py --smoke     # a few hundred canvases, one epoch per run

Lin, Goyal, Girshick, He & Dollár 2017 (Table 1a-b, COCO minival, ResNet-50-FPN at 600 px): the
best alpha-balanced cross-entropy (gamma = 0, alpha = 0.75) reaches 31.1 AP, the focal loss
(gamma = 2, alpha = 0.25) 34.0. Here configs/digits_retinanet.py's two variants (`:bce` and
`:focal`: the same ResNet-18-FPN RetinaNet, recipe and prior pi = 0.01, only gamma and alpha
differ) are trained with each seed (initialisation and batch order) and tested with their best
checkpoint by validation AP50 on the 2,000 test canvases of MNIST test digits. The table gives
COCO's AP (and AP50) averaged over the seeds and each seed's; the verdict checks the paper's
direction, AP(focal) > AP(bce), on the mean against two standard errors of the per-seed
differences, and counts the seeds where focal is ahead.
"""

from __future__ import annotations

import math
import os
import statistics
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
    wall_note,
)

TITLE = "Focal loss against alpha-balanced cross-entropy: RetinaNet on digit scenes, test AP"
CONFIG = "configs/digits_retinanet.py"
VARIANTS = ("bce", "focal")
# Lin et al. 2017: Table 1a (gamma 0, best alpha) and Table 1b (gamma 2, alpha 0.25), COCO AP
PAPER_AP = {"bce": 31.1, "focal": 34.0}
SMOKE = ("data.name=digit_scenes/train_size=256,test_size=64", "data.val_size=64", "num_epochs=1",
         "batch_size=16", "eval_batch_size=64")


def mean(values) -> float:
    return sum(values) / len(values)


def verdict(ap: dict[str, list[float]]) -> list[str]:
    """The paper's direction on the mean AP, against the seeds' noise: the per-seed differences
    focal - CE have a mean d and a standard error se (their sample standard deviation / sqrt(n));
    the direction holds when d > 2 se, is reversed when d < -2 se, and is undecided between (one
    seed has no se: its sign decides)."""
    means = {v: mean(ap[v]) for v in VARIANTS}
    diffs = [f - b for f, b in zip(ap["focal"], ap["bce"], strict=True)]
    d, n = mean(diffs), len(diffs)
    se = statistics.stdev(diffs) / math.sqrt(n) if n > 1 else 0.0
    if d > 2 * se:
        outcome = "holds"
    elif d < -2 * se:
        outcome = "does NOT hold (reversed)"
    else:
        outcome = "undecided (the difference is within two standard errors of zero)"
    wins = sum(x > 0 for x in diffs)
    noise = f", standard error {se:.4f} over {n} seeds" if n > 1 else ", one seed: no error estimate"
    return [f"Focal loss above alpha-balanced CE on the mean test AP: {outcome}: "
            f"{means['focal']:.4f} against {means['bce']:.4f}, difference {d:+.4f}{noise} "
            f"(the paper: {PAPER_AP['focal']} against {PAPER_AP['bce']}, +"
            f"{PAPER_AP['focal'] - PAPER_AP['bce']:.1f} AP); focal ahead on {wins} of {n} seeds."]


def main(argv=None) -> dict:
    parser = experiment_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args(argv)

    env = print_header(TITLE, argv, __file__)
    note = ensure_dataset("mnist", args.data_dir, args.shared_data)
    root = run_root(args.workdir, "focal_ablation")
    print(f"data:     {note} (digit scenes are generated from it on first use)\nruns in:  {root}",
          flush=True)
    start = time.perf_counter()
    runs = {v: [] for v in VARIANTS}
    for seed in args.seeds:
        for variant in VARIANTS:
            overrides = (f"seed={seed}", *(SMOKE if args.smoke else ()))
            runs[variant].append(train_run(Run(f"{variant}_seed{seed}", f"{CONFIG}:{variant}",
                                               overrides), root, args.data_dir))
    total = time.perf_counter() - start

    def test(variant: str, key: str) -> list[float]:
        return [s["results"]["test"][key] for s in runs[variant]]

    ap = {v: test(v, "AP") for v in VARIANTS}
    means = {v: mean(ap[v]) for v in VARIANTS}
    loss = {v: Run("probe", f"{CONFIG}:{v}").load().model.kwargs for v in VARIANTS}
    rows = [[v, f"{loss[v].focal_gamma:g}", f"{loss[v].focal_alpha:g}", f"{means[v]:.4f}",
             " / ".join(f"{x:.4f}" for x in ap[v]), f"{mean(test(v, 'AP50')):.4f}",
             format_seconds(mean([s["wall_seconds"] for s in runs[v]])), f"{PAPER_AP[v]}"]
            for v in VARIANTS]
    headers = ["loss", "gamma", "alpha", "test AP (mean)", "per seed", "AP50 (mean)",
               "wall per run", "paper: COCO AP"]
    print("\n" + markdown_table(headers, rows))
    lines = [] if args.smoke else verdict(ap)
    print("\n".join(["", *lines, f"total wall time {format_seconds(total)}; load average at the "
                                 f"end {os.getloadavg()[0]:.2f}"]))
    notes = [f"Seeds {' '.join(map(str, args.seeds))}; test = 2,000 canvases of MNIST test digits, "
             "best checkpoint by validation AP50; configs/digits_retinanet.py (ResNet-18-FPN, "
             "prior 0.01, Adam, from scratch). AP is COCO's (IoU 0.50:0.95). Paper: Lin et al. "
             "2017 Table 1a-b, COCO minival, ResNet-50-FPN.",
             *lines, wall_note(total, runs)]
    record = results_record("focal_ablation", TITLE, env, [make_table(headers, rows, notes=notes)],
                            experiment="focal_ablation", smoke=args.smoke, seeds=args.seeds,
                            data=note, means=means, ap=ap, runs=runs, verdict=lines,
                            total_wall_seconds=round(total, 1))
    save_results(record, args.out)
    return record


def readme_rows(record: dict | None) -> list[dict]:
    """The README's results row: the mean test AP of each loss."""
    ours = None
    if record and record.get("means") and not record.get("smoke"):
        m = record["means"]
        verdict_line = " ".join(record.get("verdict", []))
        outcome = next((said for word, said in (("undecided", "a tie within 2 standard errors"),
                                                ("reversed", "reversed"), ("holds", "holds"))
                        if word in verdict_line), None)
        ours = f"{m['bce']:.3f} -> {m['focal']:.3f}" + (f" ({outcome})" if outcome else "")
    return [{"what": "RetinaNet, digit scenes, test AP: alpha-balanced CE -> focal loss (3 seeds)",
             "how": "`experiments/focal_ablation.py`", "ours": ours,
             "paper": f"{PAPER_AP['bce']} -> {PAPER_AP['focal']} AP (COCO, Lin et al. 2017 "
                      "Table 1a-b)"}]


if __name__ == "__main__":
    main()
