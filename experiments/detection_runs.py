"""Localisation and detection on digit scenes: the localiser, YOLOv1, Faster R-CNN and Mask R-CNN,
each trained once by its shipped config, their test metrics beside the bars they are meant to reach.

    python experiments/detection_runs.py [--runs localizer yolov1] [--workdir DIR] [--out FILE]
    python experiments/detection_runs.py --runs yolov1 --keep-from experiments/results/detection_runs.json
    python experiments/detection_runs.py --smoke     # a few hundred canvases, one epoch per run

Each run is one `cnn-jax train` command (printed) and is tested with its best checkpoint by
validation `localization_accuracy` (the localiser) or AP50 (the detectors) on the 2,000 test
canvases, made of MNIST test digits:

  * configs/digits_localizer.py (ResNet-18 with a box head, one digit per canvas; Sermanet et
    al. 2014): class accuracy >= 0.98 and mean IoU of the box >= 0.80;
  * configs/digits_yolov1.py (Redmon et al. 2016, reduced): AP50 >= 0.90, with COCO's AP;
  * configs/digits_fasterrcnn.py (Ren et al. 2015 with an FPN): AP50 >= 0.90, with COCO's AP;
  * configs/digits_maskrcnn.py (He et al. 2017): COCO's box AP and mask AP (segm IoU).

The table has one row per reported metric: the measured value, the bar (none where the issue sets
none) and whether it is met; --smoke trains toy runs and judges nothing. A second table splits
each detector's misses at IoU 0.5 into localisation and class (`error_breakdown`), and a note
gives the mask AP that Mask R-CNN's 28x28 masks allow at best on these digits (`mask_ceiling`).

--keep-from FILE takes the runs left out of --runs from an earlier results file of this script
instead of training them: the table then holds all four, and a note names the runs taken, with
the date and commit of the record they come from.
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

TITLE = "Localisation and detection on digit scenes: test metrics against the bars"
# name: (label, config, ((metric key in results['test'], what it is, bar or None), ...))
RUNS = {
    "localizer": ("Localiser (ResNet-18)", "configs/digits_localizer.py",
                  (("accuracy", "class accuracy", 0.98), ("mean_iou", "box mean IoU", 0.80))),
    "yolov1": ("YOLOv1-small", "configs/digits_yolov1.py",
               (("AP50", "AP50", 0.90), ("AP", "COCO AP", None))),
    "fasterrcnn": ("Faster R-CNN (ResNet-18-FPN)", "configs/digits_fasterrcnn.py",
                   (("AP50", "AP50", 0.90), ("AP", "COCO AP", None))),
    "maskrcnn": ("Mask R-CNN (ResNet-18-FPN)", "configs/digits_maskrcnn.py",
                 (("AP", "box AP", None), ("AP50", "box AP50", None), ("mask_AP", "mask AP", None),
                  ("mask_AP50", "mask AP50", None))),
}
# name: the run whose workdir initialises it (init.checkpoint), trained first
PRETRAIN = {"yolov1": "configs/digits_yolov1.py:pretrain"}
SMOKE_DATA = "train_size=256,test_size=64"  # options of the generated scenes in --smoke runs
SMOKE = ("data.val_size=64", "num_epochs=1", "batch_size=16", "eval_batch_size=64")


def smoke_overrides(config: str) -> tuple[str, ...]:
    """--smoke: the run's own scenes, a few hundred of them, one epoch."""
    base, _, own = Run("probe", config).load().data.name.partition("/")
    options = dict(o.split("=", 1) for o in own.split(",") if o)  # the smoke sizes replace its own
    options.update(o.split("=", 1) for o in SMOKE_DATA.split(","))
    return (f"data.name={base}/{','.join(f'{k}={v}' for k, v in options.items())}", *SMOKE)


def mask_ceiling(run: Run, data_dir: str) -> dict[str, float]:
    """COCO's mask AP and AP50 on the test canvases of a detector whose boxes and classes are the
    ground truth's and whose masks are its own training targets: each instance's ink cut to the
    mask head's 28 x 28 grid in its box (`project_masks`, as the loss does), pasted back into the
    image (`paste_masks`, as detection does) and thresholded at 0.5, each scored by its own mask
    IoU (the best ranking). What Mask R-CNN's mask resolution allows on the thin strokes of
    digits."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from cnn_jax.data import create_input_pipeline
    from cnn_jax.metrics import coco_evaluate
    from cnn_jax.models import create_model
    from cnn_jax.models.rcnn import paste_masks, project_masks
    from cnn_jax.ops import instance_masks

    config = (run.with_overrides(f"data.data_dir={data_dir}") if data_dir else run).load()
    data = create_input_pipeline(config.data, seed=0, batch_size=config.batch_size,
                                 eval_batch_size=config.eval_batch_size)
    model = create_model(config.model.name, num_classes=data.spec.num_classes,
                         **config.model.kwargs.to_dict())
    size = 2 * model.mask_output_size

    @jax.jit
    def round_trip(masks, boxes):
        targets = project_masks(masks, jnp.arange(len(boxes)), boxes, size,
                                model.mask_target_max_sampling_ratio)
        return paste_masks(targets, boxes, masks.shape[1:]) >= 0.5

    truth, found = [], []
    for batch in data.eval_batches("test"):
        for i in np.flatnonzero(batch["mask"]):
            rows = np.flatnonzero(batch["box_mask"][i])
            masks = instance_masks(batch["instances"][i], rows)
            boxes, labels = batch["boxes"][i][rows].astype(np.float32), batch["classes"][i][rows]
            pasted = np.asarray(round_trip(jnp.asarray(masks), jnp.asarray(boxes)))
            iou = (pasted & masks).sum((1, 2)) / np.maximum((pasted | masks).sum((1, 2)), 1)
            truth.append({"boxes": boxes, "labels": labels, "masks": masks})
            found.append({"boxes": boxes, "labels": labels, "scores": iou, "masks": pasted})
    stats = coco_evaluate(truth, found, iou_type="segm")
    return {"mask_AP": stats["AP"], "mask_AP50": stats["AP50"]}


def train_with_pretraining(name: str, config: str, root, args) -> dict:
    """Trains run `name` of `config`, after its pretraining run (PRETRAIN) when it has one, which
    then initialises it; the summary's wall time is the two runs' together and `pretrain` holds
    the first one's summary."""
    pretrain = None
    overrides = smoke_overrides(config) if args.smoke else ()
    if name in PRETRAIN:
        first = PRETRAIN[name]
        pretrain = train_run(Run(f"{name}_pretrain", first,
                                 smoke_overrides(first) if args.smoke else ()),
                             root, args.data_dir)
        overrides = (*overrides, f"init.checkpoint={pretrain['workdir']}")
    summary = train_run(Run(name, config, overrides), root, args.data_dir)
    if pretrain is not None:
        summary = {**summary, "wall_seconds": round(pretrain["wall_seconds"]
                                                    + summary["wall_seconds"], 1),
                   "pretrain": pretrain}
    return summary


def kept_runs(path: str, names) -> tuple[dict, dict | None, str]:
    """The summaries of the runs `names` (and Mask R-CNN's mask ceiling when it is one of them)
    from an earlier results file of this script, and the note that says where they come from."""
    import json

    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        sys.exit(f"error: --keep-from {path}: cannot read it ({e}); give a results file written "
                 "by experiments/detection_runs.py")
    if record.get("experiment") != "detection_runs" or record.get("smoke"):
        sys.exit(f"error: --keep-from {path} is not the results file of a full (not --smoke) "
                 "run of experiments/detection_runs.py")
    missing = [n for n in names if n not in record.get("runs", {})]
    if missing:
        sys.exit(f"error: --keep-from {path} has no run {', '.join(missing)}; add "
                 f"{' '.join(missing)} to --runs to train them")
    origin = {"file": str(path), "date": record["date"], "cnn_jax_commit": record["cnn_jax_commit"]}
    # a run the earlier record had itself kept keeps the record it was trained in
    runs = {n: {"kept_from": origin, **record["runs"][n]} for n in names}
    ceiling = record.get("mask_ceiling") if "maskrcnn" in names else None
    sources: dict[tuple, list[str]] = {}
    for n, summary in runs.items():
        source = summary["kept_from"]
        sources.setdefault((source["file"], source["date"], source["cnn_jax_commit"]), []).append(n)
    note = "Not trained in this sitting: " + "; ".join(
        f"{', '.join(ns)}, whose rows and wall times are those of {f} of {d} at cnn_jax {c}"
        for (f, d, c), ns in sources.items()) + "."
    return runs, ceiling, note


def breakdown_table(runs: dict) -> dict:
    """Each detector's test digits at IoU 0.5 (`cnn_jax.metrics.error_breakdown`): found by a box
    of any class, by one of their class, and whether the best-scoring box on them names their
    class; beside AP50."""
    headers = ["model", "AP50", "digits found (any class)", "found with their class",
               "best-scoring box names their class"]
    rows = []
    for name, summary in runs.items():
        test = summary["results"]["test"]
        if "found50" in test:
            rows.append([RUNS[name][0], f"{test['AP50']:.4f}", f"{test['found50']:.4f}",
                         f"{test['found_class50']:.4f}", f"{test['top_class50']:.4f}"])
    return make_table(headers, rows, title="Where the misses at IoU 0.5 are", notes=[
        "Over the test digits, whatever the scores: a predicted box at IoU >= 0.5 of any class, "
        "one of the digit's class, and the class of the highest-scoring box at IoU >= 0.5 "
        "(Hoiem et al. 2012's localisation / classification split; "
        "cnn_jax.metrics.error_breakdown)."])


def metric_rows(label: str, config: str, summary: dict, metrics, smoke: bool) -> list[list[str]]:
    """One table row per metric of a run: value, bar and verdict (none in --smoke runs)."""
    test = summary["results"]["test"]
    rows = []
    for key, what, bar in metrics:
        value = test.get(key)
        shown = f"{value:.4f}" if value is not None else "not reported"
        if bar is None or smoke:
            met = "-"
        else:
            met = "yes" if value is not None and value >= bar else "**no**"
        rows.append([label, f"`{config}`", what, shown, f">= {bar}" if bar is not None else "-",
                     met, format_seconds(summary["wall_seconds"])])
    return rows


def main(argv=None) -> dict:
    parser = experiment_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--keep-from", default="",
                        help="an earlier results file of this script: the runs not in --runs are "
                             "taken from it, not trained")
    args = parser.parse_args(argv)
    if args.keep_from and args.smoke:
        parser.error("--keep-from takes full runs; --smoke trains every run at toy size")
    kept, kept_ceiling, kept_note = {}, None, None
    if args.keep_from:
        kept, kept_ceiling, kept_note = kept_runs(
            args.keep_from, [n for n in RUNS if n not in args.runs])

    env = print_header(TITLE, argv, __file__)
    note = ensure_dataset("mnist", args.data_dir, args.shared_data)
    root = run_root(args.workdir, "detection_runs")
    print(f"data:     {note} (digit scenes are generated from it on first use)\nruns in:  {root}",
          flush=True)
    start = time.perf_counter()
    rows, runs, trained = [], {}, {}
    for name in [n for n in RUNS if n in args.runs or n in kept]:
        label, config, metrics = RUNS[name]
        if name in kept:
            runs[name] = kept[name]
        else:
            runs[name] = trained[name] = train_with_pretraining(name, config, root, args)
        rows += metric_rows(label, config, runs[name], metrics, args.smoke)
    ceiling = kept_ceiling
    if "maskrcnn" in trained:
        ceiling = mask_ceiling(Run("ceiling", RUNS["maskrcnn"][1], smoke_overrides(
            RUNS["maskrcnn"][1]) if args.smoke else ()), args.data_dir)
        print(f"mask AP of the ground truth's own 28x28 mask targets pasted back: "
              f"{ceiling['mask_AP']:.4f} (AP50 {ceiling['mask_AP50']:.4f})", flush=True)
    total = time.perf_counter() - start
    headers = ["model", "config", "metric", "test", "bar", "met", "wall"]
    print("\n" + markdown_table(headers, rows))
    print(f"\ntotal wall time {format_seconds(total)}; load average at the end "
          f"{os.getloadavg()[0]:.2f}")
    notes = ["Test = 2,000 canvases of MNIST test digits; the best checkpoint by validation "
             "localization_accuracy (localiser) or AP50 (detectors). AP is COCO's (IoU "
             "0.50:0.95), AP50 at IoU 0.5; mask AP from COCO's segm IoU.",
             wall_note(total, trained)]
    if kept_note:
        notes.append(kept_note)
    if ceiling is not None:
        notes.insert(1, f"Mask AP's ceiling at Mask R-CNN's 28x28 mask resolution: the ground "
                        f"truth's boxes and classes with its own mask targets pasted back score "
                        f"mask AP {ceiling['mask_AP']:.4f}, mask AP50 {ceiling['mask_AP50']:.4f}.")
    tables = [make_table(headers, rows, notes=notes)]
    misses = breakdown_table(runs)
    if misses["rows"]:
        print("\n" + markdown_table(misses["headers"], misses["rows"]))
        tables.append(misses)
    record = results_record("detection_runs", TITLE, env, tables,
                            experiment="detection_runs", smoke=args.smoke, data=note, runs=runs,
                            mask_ceiling=ceiling,
                            total_wall_seconds=round(total, 1))
    save_results(record, args.out)
    return record


def readme_rows(record: dict | None) -> list[dict]:
    """The README's results rows: each run's metrics, the bar beside them."""
    rows = []
    for name, (label, config, metrics) in RUNS.items():
        test = ((record or {}).get("runs", {}).get(name) or {}).get("results", {}).get("test")
        ours = None
        if test and not record.get("smoke"):
            ours = " / ".join(f"{test[key]:.3f}" if key in test else "-" for key, _, _ in metrics)
        bars = " / ".join(f">= {bar}" if bar is not None else "-" for _, _, bar in metrics)
        rows.append({"what": f"{label}, digit scenes, test "
                             + " / ".join(what for _, what, _ in metrics),
                     "how": f"`{config}`", "ours": ours, "paper": f"bar: {bars}"})
    return rows


if __name__ == "__main__":
    main()
