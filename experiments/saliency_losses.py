"""The lecture's five dense losses on one saliency model, measured by the MIT benchmark's six
metrics: does every loss teach the model where people look, beyond a centre bias?

    python experiments/saliency_losses.py [--seeds 0] [--workdir DIR] [--out saliency_losses.json]
    python experiments/saliency_losses.py --smoke      # a few dozen scenes, seconds per run

The same ML-Net (Cornia et al. 2016, width 0.25) is trained on generated visual-search scenes
(configs/search_saliency.py: one recipe, only the loss changes) with each of the pixel losses MSE,
EAD and ML-Net's weighted MSE, and the distribution losses KL divergence and Bhattacharyya distance.
Each run's best checkpoint by validation CC is scored on the test scenes by CC, KL, NSS, SIM,
AUC-Judd and AUC-Borji (Bylinskii et al. 2019; cnn_jax.metrics.saliency), as is a centre-bias
baseline: the same map for every scene, an isotropic Gaussian at the canvas centre with the
standard deviation of the scenes' own centre component. The verdict checks, metric by metric,
that every trained model beats the baseline (higher is better but for KL). Each run is one
`cnn-jax train` command, printed.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402  (the script's own folder first, then the shared helpers)
    Run,
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

TITLE = "Saliency losses on visual-search scenes: six metrics per loss, against a centre bias"
CONFIG = "configs/search_saliency.py"
LOSSES = {"mse": "MSE", "ead": "EAD", "mlnet": "ML-Net (weighted MSE)",
          "kl_divergence": "KL divergence", "bhattacharyya": "Bhattacharyya"}
# (result key, column) of the six metrics; KL is the one where lower is better.
METRICS = (("cc", "CC"), ("kl", "KL"), ("nss", "NSS"), ("sim", "SIM"), ("auc_judd", "AUC-Judd"),
           ("auc_borji", "AUC-Borji"))
LOWER_IS_BETTER = ("kl",)
SMOKE = ("data.name=search_scenes/train_size=96,test_size=32", "data.val_size=32", "num_epochs=1",
         "batch_size=16", "eval_batch_size=32", "model.kwargs.width=0.125")


def mean(values) -> float:
    return sum(values) / len(values)


def centre_bias_scores(run: Run, data_dir: str) -> dict[str, float]:
    """The six metrics (and the count) of one centred Gaussian map, the same for every test scene,
    of standard deviation the scenes' `centre_sigma`."""
    from cnn_jax.data import create_input_pipeline
    from cnn_jax.data.catalog import generated_params
    from cnn_jax.metrics import saliency_scores
    from cnn_jax.tasks.saliency import AUC_SPLITS

    config = (run.with_overrides(f"data.data_dir={data_dir}") if data_dir else run).load()
    data = create_input_pipeline(config.data, seed=0, batch_size=config.batch_size,
                                 eval_batch_size=config.eval_batch_size)
    densities, fixations = [], []
    for batch in data.eval_batches("test"):
        real = batch["mask"] > 0
        densities.extend(batch["saliency"][real])
        fixations.extend(batch["fixations"][real])
    params = generated_params(config.data.name)
    x = np.arange(params.canvas) + 0.5
    g = np.exp(-((x - params.canvas / 2) ** 2) / (2.0 * params.centre_sigma ** 2))
    centre = np.outer(g, g)
    return saliency_scores([centre] * len(densities), densities, fixations, splits=AUC_SPLITS)


def beats(metric: str, model: float, baseline: float) -> bool:
    return model < baseline if metric in LOWER_IS_BETTER else model > baseline


def verdict(means: dict[str, dict[str, float]], baseline: dict[str, float]) -> list[str]:
    """For each metric, whether every trained model beats the centre bias, and which do not."""
    lines = []
    for key, label in METRICS:
        losing = [LOSSES[loss] for loss, m in means.items() if not beats(key, m[key], baseline[key])]
        lines.append(f"{label}: {'every model beats' if not losing else 'NOT every model beats'} the "
                     f"centre bias ({baseline[key]:.4f})" + (f"; not: {', '.join(losing)}" if losing else "")
                     + ".")
    return lines


def main(argv=None) -> dict:
    parser = experiment_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), choices=list(LOSSES))
    args = parser.parse_args(argv)

    env = print_header(TITLE, argv, __file__)
    root = run_root(args.workdir, "saliency_losses")
    smoke = SMOKE if args.smoke else ()
    print(f"data:     search_scenes, generated on first use\nruns in:  {root}", flush=True)
    start = time.perf_counter()
    baseline = centre_bias_scores(Run("centre", f"{CONFIG}:{args.losses[0]}", smoke), args.data_dir)
    runs = {loss: [train_run(Run(f"{loss}_seed{seed}", f"{CONFIG}:{loss}", (f"seed={seed}", *smoke)),
                             root, args.data_dir) for seed in args.seeds]
            for loss in args.losses}
    total = time.perf_counter() - start

    means = {loss: {key: mean([s["results"]["test"][key] for s in summaries]) for key, _ in METRICS}
             for loss, summaries in runs.items()}
    headers = ["trained with", *(label + (" (lower)" if key in LOWER_IS_BETTER else "")
                                 for key, label in METRICS), "wall per run"]
    rows = [[LOSSES[loss], *(f"{means[loss][key]:.4f}" for key, _ in METRICS),
             format_seconds(mean([s["wall_seconds"] for s in runs[loss]]))] for loss in args.losses]
    rows.append(["centre bias (no training)", *(f"{baseline[key]:.4f}" for key, _ in METRICS), "-"])
    print("\n" + markdown_table(headers, rows))
    lines = verdict(means, baseline) if not args.smoke else []
    print("\n".join(["", *lines, f"total wall time {format_seconds(total)}; load average at the end "
                                 f"{os.getloadavg()[0]:.2f}"]))
    notes = [f"Seeds {' '.join(map(str, args.seeds))} (mean); configs/search_saliency.py (ML-Net at width "
             f"0.25, Adam, from scratch); test = {baseline['count']} generated scenes, best checkpoint by "
             "validation CC. Centre bias: one Gaussian map at the canvas centre, the scenes' own centre "
             "sigma. AUC-Borji: 20 random splits per image.", *lines,
             wall_note(total, runs)]
    record = results_record("saliency_losses", TITLE, env, [make_table(headers, rows, notes=notes)],
                            experiment="saliency_losses", smoke=args.smoke, seeds=args.seeds,
                            means=means, centre_bias=baseline, runs=runs, verdict=lines,
                            total_wall_seconds=round(total, 1))
    save_results(record, args.out)
    return record


if __name__ == "__main__":
    main()
