"""A label that no single frame shows: the direction of motion in Moving MNIST, learnt by a 3-D
convolutional network and not by its 2-D twins.

    python experiments/motion_needs_3d.py [--seeds 0 1 2] [--workdir DIR] [--out motion_needs_3d.json]
    python experiments/motion_needs_3d.py --smoke      # a few dozen clips, seconds per run

configs/moving_mnist_motion.py trains, with one recipe on 16-frame clips of two digits moving
together in one of 8 directions (cnn_jax.data.moving_mnist: on a torus, so every frame alone is
independent of the direction):
  * `c3d_small` (C3D, Tran et al. 2015, at an eighth of its width: 3x3x3 convolutions see
    neighbouring frames);
  * `frame2d_small` (Karpathy et al. 2014's single-frame model: the same layers with 1x3x3
    kernels, on the first frame of each clip);
  * `frames2d_small` (the same 2-D network on every frame, the frames' logits averaged over time:
    a late fusion, which can carry the axis of the motion though no frame carries it).
Each seed (initialisation and batch order) gives one run per model, scored by its best checkpoint
by validation accuracy on the 600 test clips. The table gives the mean test accuracy ± the
standard deviation over seeds and each seed's value, against chance, 1/8. The verdict checks that
the 3-D model beats both 2-D ones on every seed and that the single-frame model sits near chance:
within three binomial standard errors of 1/8 on the test clips; it says where the late fusion
sits. Each run is one `cnn-jax train` command, printed.
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
    make_table,
    markdown_table,
    print_header,
    results_record,
    run_root,
    save_results,
    train_run,
    wall_note,
)

TITLE = "Motion needs 3-D convolutions: Moving MNIST direction, C3D-small against its 2-D twins"
CONFIG = "configs/moving_mnist_motion.py"
MODELS = {"3d": "C3D-small (3x3x3 kernels)", "frame": "single-frame 2-D twin (first frame)",
          "2d": "per-frame 2-D twin (logits averaged over time)"}
CHANCE = 1 / 8  # eight directions, equally likely
SMOKE = ("data.name=moving_mnist/frames=16,train_size=64,test_size=32", "data.val_size=16",
         "num_epochs=1", "batch_size=16", "eval_batch_size=16")


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    m = sum(values) / len(values)
    var = sum((v - m) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
    return m, math.sqrt(var)


def near_chance_bound(test_clips: int) -> float:
    """Chance plus three binomial standard errors of an accuracy on `test_clips` clips."""
    return CHANCE + 3.0 * math.sqrt(CHANCE * (1.0 - CHANCE) / test_clips)


def verdict(accuracies: dict[str, list[float]], test_clips: int) -> list[str]:
    """Whether 3-D beats both 2-D models on every seed, whether the single-frame model's mean is
    near chance, and where the late fusion's mean sits."""
    every = all(a > max(b, c) for a, b, c in zip(accuracies["3d"], accuracies["frame"], accuracies["2d"],
                                                   strict=True))
    bound = near_chance_bound(test_clips)
    m3, m1, m2 = (mean_std(accuracies[v])[0] for v in ("3d", "frame", "2d"))
    return [f"3-D above both 2-D models on every seed: {'holds' if every else 'does NOT hold'} "
            f"(mean {m3:.4f} against {m1:.4f} and {m2:.4f}, chance {CHANCE:.4f}).",
            f"Single frame near chance (mean <= {bound:.4f}, chance + 3 binomial standard errors on "
            f"{test_clips} clips): {'holds' if m1 <= bound else 'does NOT hold'} ({m1:.4f}).",
            f"Logits averaged over the frames: mean {m2:.4f}, "
            f"{'above' if m2 > bound else 'within'} chance + 3 standard errors ({bound:.4f})."]


def main(argv=None) -> dict:
    parser = experiment_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args(argv)

    env = print_header(TITLE, argv, __file__)
    note = ensure_dataset("mnist", args.data_dir, args.shared_data)
    root = run_root(args.workdir, "motion_needs_3d")
    print(f"data:     {note} (Moving MNIST clips are generated from it on first use)\n"
          f"runs in:  {root}", flush=True)
    start = time.perf_counter()
    runs = {variant: [] for variant in MODELS}
    for seed in args.seeds:
        for variant in MODELS:
            overrides = (f"seed={seed}", *(SMOKE if args.smoke else ()))
            runs[variant].append(train_run(Run(f"{variant}_seed{seed}", f"{CONFIG}:{variant}", overrides),
                                           root, args.data_dir))
    total = time.perf_counter() - start

    accuracies = {v: [s["results"]["test"]["accuracy"] for s in runs[v]] for v in MODELS}
    test_clips = runs["3d"][0]["results"]["test"]["count"]
    headers = ["model", "config", "test accuracy (mean ± std)", "per seed", "chance", "wall per run"]
    rows = []
    for variant, label in MODELS.items():
        m, s = mean_std(accuracies[variant])
        rows.append([label, f"`{CONFIG}:{variant}`", f"{m:.4f} ± {s:.4f}",
                     " / ".join(f"{a:.4f}" for a in accuracies[variant]), f"{CHANCE:.4f}",
                     format_seconds(sum(r["wall_seconds"] for r in runs[variant]) / len(runs[variant]))])
    print("\n" + markdown_table(headers, rows))
    lines = verdict(accuracies, test_clips) if not args.smoke else []
    print("\n".join(["", *lines, f"total wall time {format_seconds(total)}; load average at the end "
                                 f"{os.getloadavg()[0]:.2f}"]))
    notes = [f"Seeds {' '.join(map(str, args.seeds))}; test = {test_clips} clips of MNIST test digits, best "
             "checkpoint by validation accuracy; ± is the standard deviation over seeds.", *lines,
             wall_note(total, runs)]
    record = results_record("motion_needs_3d", TITLE, env, [make_table(headers, rows, notes=notes)],
                            experiment="motion_needs_3d", smoke=args.smoke, seeds=args.seeds, data=note,
                            accuracies=accuracies, chance=CHANCE, runs=runs, verdict=lines,
                            total_wall_seconds=round(total, 1))
    save_results(record, args.out)
    return record


if __name__ == "__main__":
    main()
