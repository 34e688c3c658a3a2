"""FCN-32s, FCN-16s and FCN-8s on generated digit scenes, over seeds: do skips sharpen the masks?

    python experiments/fcn_skips.py [--seeds 0 1 2] [--workdir DIR] [--out fcn_skips.json]
    python experiments/fcn_skips.py --smoke          # a few hundred canvases, seconds per run

Long, Shelhamer & Darrell 2015 (Table 2, VOC2011 val mean IU): FCN-32s 59.4, FCN-16s 62.4,
FCN-8s 62.7 — each skip from a finer layer (pool4, then pool3) adds detail the 32-pixel-stride
prediction cannot draw. Here the three nets of configs/digits_fcn.py (the same VGG16 FCN at an
eighth of its width, trained from scratch with one recipe) are trained on digit scenes with each seed
(initialisation and batch order); each run is scored by its best checkpoint by validation mean IoU
on the 2,000 test canvases (made of MNIST test digits). The table gives the mean over seeds and each
seed's value; the verdict checks the paper's order on the means, FCN-32s < FCN-16s <= FCN-8s, and
the issue's bar for FCN-8s (mean IoU >= 0.80). Each run is one `cnn-jax train` command, printed.
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
    wall_note,
)

from cnn_jax.recipes import DIGIT_SCENES_SEGMENTATION  # noqa: E402

TITLE = "FCN skips on digit scenes: test mean IoU of FCN-32s, FCN-16s, FCN-8s"
CONFIG = "configs/digits_fcn.py"
VARIANTS = ("32s", "16s", "8s")
PAPER_MEAN_IU = {"32s": 59.4, "16s": 62.4, "8s": 62.7}  # Long et al. 2015, Table 2 (VOC2011 val)
FCN8S_BAR = 0.80
SMOKE = (f"data.name={DIGIT_SCENES_SEGMENTATION},train_size=256,test_size=64", "data.val_size=64",
         "num_epochs=1", "eval_batch_size=64", "model.kwargs.width=0.0625")
STRIDES = (32, 16, 8)  # of FCN-32s, FCN-16s and FCN-8s's finest prediction


def mean(values) -> float:
    return sum(values) / len(values)


def coarse_ceilings(run: Run, data_dir: str) -> dict[int, float]:
    """The test mean IoU of the ground truth itself, averaged over s x s blocks (each class's share
    of a block) and upsampled bilinearly back, for each FCN stride s: what a prediction made every
    s pixels and interpolated can reach on these canvases without a learned upsampling."""
    import jax
    import numpy as np

    from cnn_jax.data import create_input_pipeline
    from cnn_jax.metrics import segmentation_scores

    config = (run.with_overrides(f"data.data_dir={data_dir}") if data_dir else run).load()
    data = create_input_pipeline(config.data, seed=0, batch_size=config.batch_size,
                                 eval_batch_size=config.eval_batch_size)
    k = data.spec.num_classes
    confusion = {s: np.zeros((k, k), np.int64) for s in STRIDES}
    for batch in data.eval_batches("test"):
        truth = batch["segmentation"][batch["mask"] > 0].astype(np.int64)
        n, h, w = truth.shape
        valid = truth != data.spec.ignore_index
        shares = np.eye(k)[np.where(valid, truth, 0)]
        for s in STRIDES:
            coarse = shares.reshape(n, h // s, s, w // s, s, k).mean(axis=(2, 4))
            drawn = np.asarray(jax.image.resize(coarse, (n, h, w, k), "bilinear")).argmax(-1)
            np.add.at(confusion[s], (truth[valid], drawn[valid]), 1)
    return {s: segmentation_scores(confusion[s])["mean_iou"] for s in STRIDES}


def verdict(means: dict[str, float]) -> list[str]:
    """Whether the paper's order holds on the means, and the issue's bar for FCN-8s."""
    order = means["32s"] < means["16s"] <= means["8s"]
    lines = [f"Order FCN-32s < FCN-16s <= FCN-8s on the mean test IoU: "
             f"{'holds' if order else 'does NOT hold'} ({means['32s']:.4f}, {means['16s']:.4f}, "
             f"{means['8s']:.4f})."]
    bar = means["8s"] >= FCN8S_BAR
    lines.append(f"FCN-8s mean IoU {means['8s']:.4f} {'>=' if bar else '<'} {FCN8S_BAR} "
                 f"(the bar is {'met' if bar else 'NOT met'}).")
    return lines


def main(argv=None) -> dict:
    parser = experiment_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    args = parser.parse_args(argv)

    env = print_header(TITLE, argv, __file__)
    note = ensure_dataset("mnist", args.data_dir, args.shared_data)
    root = run_root(args.workdir, "fcn_skips")
    print(f"data:     {note} (digit scenes are generated from it on first use)\nruns in:  {root}",
          flush=True)
    start = time.perf_counter()
    ceilings = coarse_ceilings(Run("ceiling", f"{CONFIG}:8s", SMOKE if args.smoke else ()), args.data_dir)
    print("ground truth pooled to stride s and upsampled, test mean IoU: "
          + ", ".join(f"s={s} {v:.4f}" for s, v in ceilings.items()), flush=True)
    runs = {v: [] for v in args.variants}
    for seed in args.seeds:
        for variant in args.variants:
            overrides = (f"seed={seed}", *(SMOKE if args.smoke else ()))
            runs[variant].append(train_run(Run(f"fcn{variant}_seed{seed}", f"{CONFIG}:{variant}",
                                               overrides), root, args.data_dir))
    total = time.perf_counter() - start

    def iou(summary) -> float:
        return summary["results"]["test"]["mean_iou"]

    means = {v: mean([iou(s) for s in runs[v]]) for v in args.variants}
    rows = [[f"FCN-{v}", f"{means[v]:.4f}", " / ".join(f"{iou(s):.4f}" for s in runs[v]),
             f"{mean([s['results']['test']['pixel_accuracy'] for s in runs[v]]):.4f}",
             f"{ceilings[int(v[:-1])]:.4f}", format_seconds(mean([s["wall_seconds"] for s in runs[v]])),
             f"{PAPER_MEAN_IU[v]}"]
            for v in args.variants]
    headers = ["model", "test mean IoU (mean)", "per seed", "pixel accuracy (mean)",
               "ground truth at its stride, upsampled", "wall per run", "paper: VOC2011 val mean IU %"]
    print("\n" + markdown_table(headers, rows))
    lines = verdict(means) if set(args.variants) == set(VARIANTS) and not args.smoke else []
    print("\n".join(["", *lines, f"total wall time {format_seconds(total)}; load average at the end "
                                 f"{os.getloadavg()[0]:.2f}"]))
    notes = [f"Seeds {' '.join(map(str, args.seeds))}; test = 2,000 canvases of MNIST test digits, best "
             "checkpoint by validation mean IoU; configs/digits_fcn.py (width 0.125, Adam, from scratch). "
             "'Ground truth at its stride': the test masks averaged over s x s blocks and upsampled "
             "bilinearly, s = the model's output stride (a bound for predictions interpolated from "
             "that stride, which learned upsampling can beat).",
             *lines, wall_note(total, runs)]
    record = results_record("fcn_skips", TITLE, env, [make_table(headers, rows, notes=notes)],
                            experiment="fcn_skips", smoke=args.smoke, seeds=args.seeds, data=note,
                            means=means, ceilings=ceilings, runs=runs, verdict=lines, total_wall_seconds=round(total, 1))
    save_results(record, args.out)
    return record


def readme_rows(record: dict | None) -> list[dict]:
    """The README's results row: FCN-8s's mean IoU and the order of the three."""
    ours = None
    if record and record.get("means") and len(record["means"]) == len(VARIANTS):
        m = record["means"]
        ours = f"{m['32s']:.3f} / {m['16s']:.3f} / {m['8s']:.3f}"
    return [{"what": "FCN-32s / 16s / 8s, digit scenes, test mean IoU (3 seeds)",
             "how": "`experiments/fcn_skips.py`", "ours": ours,
             "paper": "59.4 / 62.4 / 62.7 mean IU % (VOC2011 val, Long et al. 2015 Table 2)"}]


if __name__ == "__main__":
    main()
