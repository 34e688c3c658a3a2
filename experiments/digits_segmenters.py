"""Three ways to draw fine masks, on the same digit scenes: FCN-8s's skips, U-Net's symmetric
decoder, and DeepLabV3's dilated backbone with atrous pyramid pooling.

    python experiments/digits_segmenters.py [--seeds 0] [--workdir DIR] [--out digits_segmenters.json]
    python experiments/digits_segmenters.py --smoke

configs/digits_fcn.py:8s, configs/digits_unet.py and configs/digits_deeplab.py share the data
(128x128 canvases of 1-2 MNIST digits, 11 pixel classes), the recipe (Adam, cosine, batch 32, 6
epochs, from scratch) and the test (2,000 canvases of MNIST test digits, best checkpoint by
validation mean IoU); the table gives each model's test mean IoU, pixel accuracy, parameters,
multiply-adds per image (`cnn-jax summary`) and wall time.
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

TITLE = "FCN-8s, U-Net and DeepLabV3 on digit scenes: test mean IoU"
MODELS = {"FCN-8s": "configs/digits_fcn.py:8s", "U-Net": "configs/digits_unet.py",
          "DeepLabV3 (dilated ResNet)": "configs/digits_deeplab.py"}
SMOKE = (f"data.name={DIGIT_SCENES_SEGMENTATION},train_size=256,test_size=64", "data.val_size=64",
         "num_epochs=1", "eval_batch_size=64")


def size(run: Run) -> tuple[int, int]:
    """(parameters, multiply-adds per image) of a run's model, traced as `cnn-jax summary` does."""
    from cnn_jax.analysis import summarize_model
    from cnn_jax.data import dataset_spec_from_config
    from cnn_jax.models import create_model

    config = run.load()
    spec = dataset_spec_from_config(config.data)
    model = create_model(config.model.name, num_classes=spec.num_classes, **config.model.kwargs.to_dict())
    summary = summarize_model(model, spec.image_shape)
    return summary.total_params, summary.total_macs


def main(argv=None) -> dict:
    parser = experiment_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    args = parser.parse_args(argv)

    env = print_header(TITLE, argv, __file__)
    note = ensure_dataset("mnist", args.data_dir, args.shared_data)
    root = run_root(args.workdir, "digits_segmenters")
    print(f"data:     {note} (digit scenes are generated from it on first use)\nruns in:  {root}", flush=True)
    start = time.perf_counter()
    rows, runs = [], {}
    for label, config in MODELS.items():
        name = Path(config.split(":")[0]).stem + config.partition(":")[2]
        runs[label] = [train_run(Run(f"{name}_seed{seed}", config,
                                     (f"seed={seed}", *(SMOKE if args.smoke else ()))), root, args.data_dir)
                       for seed in args.seeds]
        tests = [r["results"]["test"] for r in runs[label]]
        params, macs = size(Run("size", config))
        rows.append([label, f"`{config}`", f"{sum(t['mean_iou'] for t in tests) / len(tests):.4f}",
                     f"{sum(t['pixel_accuracy'] for t in tests) / len(tests):.4f}", f"{params:,}",
                     f"{macs / 1e6:,.0f} M", format_seconds(sum(r['wall_seconds'] for r in runs[label]) / len(tests))])
    total = time.perf_counter() - start
    headers = ["model", "config", "test mean IoU", "pixel accuracy", "parameters", "multiply-adds / image",
               "wall per run"]
    print("\n" + markdown_table(headers, rows))
    print(f"\ntotal wall time {format_seconds(total)}; load average at the end {os.getloadavg()[0]:.2f}")
    notes = [f"Seeds {' '.join(map(str, args.seeds))} (mean); test = 2,000 canvases of MNIST test digits; best "
             "checkpoint by validation mean IoU.", wall_note(total, runs)]
    record = results_record("digits_segmenters", TITLE, env, [make_table(headers, rows, notes=notes)],
                            experiment="digits_segmenters", smoke=args.smoke, seeds=args.seeds, data=note,
                            runs=runs, total_wall_seconds=round(total, 1))
    save_results(record, args.out)
    return record


if __name__ == "__main__":
    main()
