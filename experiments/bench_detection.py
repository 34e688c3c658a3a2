"""Detection speed on the CPU: jitted NMS against torchvision's, and the evaluation of 5,000 scenes.

    python experiments/bench_detection.py          # experiments/results/bench_detection.json
    python experiments/bench_detection.py --boxes 1000 10000 --repeats 7 --scenes 5000
    python experiments/bench_detection.py --smoke  # tiny sizes, seconds

1. NMS, A/B: `cnn_jax.ops.nms` under `jax.jit` (fixed shapes: the kept indices padded with -1 to
   N, and their count) against `torchvision.ops.nms`, on the same N random boxes and scores, IoU
   threshold 0.5. Each side runs in its own spawned process (bench_train_step's `Variant`), with
   the same number of threads; each is warmed up (compilation), then the two alternate, in a
   rotating order, for `--repeats` rounds of `--calls` calls. The table gives the median
   microseconds per call of each, their ratio (torch time / cnn_jax time: above 1 is cnn_jax
   faster) and whether both kept the same boxes in the same order. Random boxes: corners uniform
   in a 1000 x 1000 image, sides 10-100 px, scores uniform; both kernels cost one pass over the
   N boxes per kept box, so the table gives how many are kept.
2. Evaluation of `--scenes` synthetic scenes end to end, as the trainer evaluates a detector:
   the padded, gathered host outputs (`det_boxes (n, 100, 4)`, `det_scores`, `det_classes`,
   `det_count`, ground truth `boxes (n, 4, 4)`, `classes`, `box_mask`) through
   `DetectionTask.host_metrics` to COCO's twelve statistics (faster-coco-eval), VOC's mAP and the
   error breakdown.
   Scenes like the digit scenes (64x64, 1-4 objects of 10 classes) with 20-100 detections each:
   jittered copies of the objects (a random class sometimes) and random false positives. The time
   is the median of `--repeats` passes; where it goes comes from one more pass under cProfile
   (cumulative seconds of each stage; the profiler slows Python-heavy stages more, so the shares
   are approximate).

The YOLOv1-small train step against the same network in PyTorch eager is in
`experiments/bench_train_step.py --models beyond_labels`, not repeated here.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402  (the script's own folder first, then the shared helpers)
    Variant,
    alternate,
    make_table,
    markdown_table,
    results_header,
    results_record,
    save_results,
)

TITLE = "Detection on the CPU: jitted NMS against torchvision.ops.nms, and COCO evaluation"
IOU_THRESHOLD = 0.5
IMAGE_SIDE = 1000.0  # NMS boxes: corners in a 1000 x 1000 image, sides 10-100 px
SCENE_SIDE, MAX_OBJECTS, CLASSES, MAX_DETECTIONS = 64, 4, 10, 100
# Where evaluation time goes: (stage, file, function whose cumulative time it is)
STAGES = (
    ("COCO: per-image dicts to a COCO dataset", "cnn_jax/metrics/detection.py", "_coco_inputs"),
    ("COCO: load and index the detections (loadRes)", "faster_coco_eval/core/coco.py", "loadRes"),
    ("COCO: match and accumulate (evaluate)", "faster_coco_eval/core/faster_eval_api.py",
     "evaluate"),
    ("COCO: the twelve statistics", "cnn_jax/metrics/detection.py", "_summary"),
    ("VOC mAP (voc_evaluate)", "cnn_jax/metrics/detection.py", "voc_evaluate"),
    ("error breakdown (error_breakdown)", "cnn_jax/metrics/detection.py", "error_breakdown"),
)


# --------------------------------------------------------------------------------------------
# 1. NMS
# --------------------------------------------------------------------------------------------
def random_boxes(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` float32 xyxy boxes in a 1000 x 1000 image (sides 10-100 px) and their scores."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, IMAGE_SIDE - 100, (n, 2))
    wh = rng.uniform(10, 100, (n, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    return boxes, rng.uniform(0, 1, n).astype(np.float32)


class JaxNMS:
    """`cnn_jax.ops.nms` jitted, at most N kept; each call waits for its result."""

    def __init__(self, n: int):
        import jax

        from cnn_jax.ops import nms

        boxes, scores = random_boxes(n)
        self.boxes, self.scores = jax.device_put(boxes), jax.device_put(scores)
        self.fn = jax.jit(lambda b, s: nms(b, s, IOU_THRESHOLD, n))

    def run(self, calls: int) -> float:
        start = time.perf_counter()
        for _ in range(calls):
            indices, count = self.fn(self.boxes, self.scores)
            count.block_until_ready()
        return time.perf_counter() - start

    def kept(self) -> list[int]:
        indices, count = self.fn(self.boxes, self.scores)
        return np.asarray(indices)[: int(count)].tolist()


class TorchNMS:
    """`torchvision.ops.nms` on CPU tensors."""

    def __init__(self, n: int, threads: int):
        import torch
        import torchvision

        torch.set_num_threads(threads)
        boxes, scores = random_boxes(n)
        self.boxes, self.scores = torch.from_numpy(boxes), torch.from_numpy(scores)
        self.fn = torchvision.ops.nms

    def run(self, calls: int) -> float:
        start = time.perf_counter()
        for _ in range(calls):
            self.fn(self.boxes, self.scores, IOU_THRESHOLD)
        return time.perf_counter() - start

    def kept(self) -> list[int]:
        return self.fn(self.boxes, self.scores, IOU_THRESHOLD).tolist()


def build_nms(kind: str, n: int, threads: int):
    """One side of the NMS race, built inside its own process (`Variant`)."""
    return TorchNMS(n, threads) if kind == "torch" else JaxNMS(n)


def bench_nms(n: int, *, calls: int, warmup: int, repeats: int, threads: int) -> dict:
    runners = {}
    try:
        runners["cnn_jax"] = Variant(build_nms, kind="jax", n=n, threads=threads)
        runners["torch"] = Variant(build_nms, kind="torch", n=n, threads=threads)
        load_before = os.getloadavg()[0]
        times = alternate(runners, calls, warmup, repeats)
        kept = {name: runner.call("kept") for name, runner in runners.items()}
    finally:
        for runner in runners.values():
            runner.close()
    us = {name: round(1e6 * statistics.median(ts) / calls, 1) for name, ts in times.items()}
    return {"boxes": n, "calls_per_repeat": calls, "repeats": repeats, "warmup_calls": warmup,
            "microseconds_per_call": us,
            "ratio_torch_over_cnn_jax": round(us["torch"] / us["cnn_jax"], 3),
            "kept": len(kept["torch"]), "same_kept": kept["cnn_jax"] == kept["torch"],
            "seconds": {name: [round(t, 5) for t in ts] for name, ts in times.items()},
            "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2)}


# --------------------------------------------------------------------------------------------
# 2. Evaluation
# --------------------------------------------------------------------------------------------
def synthetic_outputs(scenes: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Gathered host outputs of `scenes` digit-scene-like images (module docstring, part 2)."""
    rng = np.random.default_rng(seed)
    n, m, d = scenes, MAX_OBJECTS, MAX_DETECTIONS
    count = rng.integers(1, m + 1, n)
    box_mask = np.arange(m)[None] < count[:, None]
    h = rng.uniform(16, 40, (n, m))
    w = h * rng.uniform(0.3, 0.9, (n, m))
    x0, y0 = rng.uniform(0, SCENE_SIDE - w), rng.uniform(0, SCENE_SIDE - h)
    boxes = np.stack([x0, y0, x0 + w, y0 + h], -1) * box_mask[..., None]
    classes = rng.integers(0, CLASSES, (n, m)) * box_mask
    # detections: each object found 1-3 times (jittered by up to 15% of its size), the rest random
    det_count = rng.integers(20, d + 1, n)
    source = rng.integers(0, m, (n, d)) % np.maximum(count[:, None], 1)
    true_box = np.take_along_axis(boxes, source[..., None], axis=1)
    size = np.concatenate([true_box[..., 2:] - true_box[..., :2]] * 2, axis=-1)
    jittered = true_box + rng.uniform(-0.15, 0.15, (n, d, 4)) * size
    corner = rng.uniform(0, SCENE_SIDE - 16, (n, d, 2))
    random_box = np.concatenate([corner, corner + rng.uniform(8, 40, (n, d, 2))], axis=-1)
    is_copy = np.arange(d)[None] < 3 * count[:, None]
    det_boxes = np.clip(np.where(is_copy[..., None], jittered, random_box), 0, SCENE_SIDE)
    true_class = np.take_along_axis(classes, source, axis=1)
    det_classes = np.where(is_copy & (rng.uniform(size=(n, d)) < 0.9), true_class,
                           rng.integers(0, CLASSES, (n, d)))
    scores = np.where(is_copy, rng.uniform(0.3, 1.0, (n, d)), rng.uniform(0.05, 0.6, (n, d)))
    order = np.argsort(-scores, axis=1)  # detections come sorted by score, as a detector's do
    valid = np.arange(d)[None] < det_count[:, None]

    def ranked(a):
        a = np.take_along_axis(a, order.reshape(*order.shape, *(1,) * (a.ndim - 2)), axis=1)
        return np.where(valid.reshape(*valid.shape, *(1,) * (a.ndim - 2)), a, 0).astype(a.dtype)

    return {"det_boxes": ranked(det_boxes).astype(np.float32),
            "det_scores": ranked(scores).astype(np.float32),
            "det_classes": ranked(det_classes).astype(np.int32),
            "det_count": det_count.astype(np.int32),
            "mask": np.ones(n, np.int32), "boxes": boxes.astype(np.float32),
            "classes": classes.astype(np.int32), "box_mask": box_mask}


def bench_evaluation(scenes: int, repeats: int) -> dict:
    """Seconds of `DetectionTask.host_metrics` on `scenes` synthetic scenes, and its stages."""
    from cnn_jax.tasks import DetectionTask

    task = DetectionTask(mean=(0.0,), std=(1.0,))
    gathered = synthetic_outputs(scenes)
    metrics = task.host_metrics(gathered)  # warm-up: imports, the engine's first use
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        task.host_metrics(gathered)
        times.append(time.perf_counter() - start)
    profile = cProfile.Profile()
    profile.runcall(task.host_metrics, gathered)
    stats = pstats.Stats(profile).stats

    def cumulative(file: str, function: str) -> float:
        return sum(entry[3] for (path, _, name), entry in stats.items()
                   if name == function and path.endswith(file))

    total = cumulative("cnn_jax/tasks/detection.py", "host_metrics")
    coco = cumulative("cnn_jax/metrics/detection.py", "coco_evaluate")
    stages = {label: cumulative(file, function) for label, file, function in STAGES}
    coco_parts = sum(v for k, v in stages.items() if k.startswith("COCO"))
    voc, breakdown = stages["VOC mAP (voc_evaluate)"], stages["error breakdown (error_breakdown)"]
    stages = {"padded outputs to per-image dicts (host_metrics)": total - coco - voc - breakdown,
              **{k: v for k, v in stages.items() if k.startswith("COCO")},
              "COCO: the rest (index the ground truth, set up the engine)": coco - coco_parts,
              "VOC mAP (voc_evaluate)": voc, "error breakdown (error_breakdown)": breakdown}
    stages = {k: round(v, 3) for k, v in stages.items()}
    return {"scenes": scenes, "objects": int(gathered["box_mask"].sum()),
            "detections": int(gathered["det_count"].sum()), "repeats": repeats,
            "seconds": [round(t, 3) for t in times],
            "median_seconds": round(statistics.median(times), 3),
            "profiled_seconds": round(total, 3), "stages_profiled_seconds": stages,
            "metrics": {k: round(float(v), 4) for k, v in metrics.items()}}


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------
def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boxes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--calls", type=int, default=20, help="NMS calls per timed repeat")
    parser.add_argument("--warmup", type=int, default=3, help="untimed NMS calls per side first")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--scenes", type=int, default=5000, help="scenes evaluated")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (default: the cores used)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes: a check that the script runs")
    parser.add_argument("--out",
                        help="the results file (default experiments/results/bench_detection.json)")
    args = parser.parse_args(argv)
    header = results_header(__file__, sys.argv[1:] if argv is None else argv)
    if args.smoke:
        args.boxes, args.calls, args.warmup, args.repeats, args.scenes = [200], 2, 1, 1, 50
    threads = args.threads or len(os.sched_getaffinity(0))

    nms_results = [bench_nms(n, calls=args.calls, warmup=args.warmup, repeats=args.repeats,
                             threads=threads) for n in args.boxes]
    nms_rows = [[f"{r['boxes']:,}", f"{r['kept']:,}",
                 f"{r['microseconds_per_call']['cnn_jax']:,.0f}",
                 f"{r['microseconds_per_call']['torch']:,.0f}",
                 f"**{r['ratio_torch_over_cnn_jax']:.2f}x**", "yes" if r["same_kept"] else "**no**",
                 f"{r['load_before']:.1f}-{r['load_after']:.1f}"]
                for r in nms_results]
    nms_headers = ["boxes", "kept", "cnn_jax us/call", "torchvision us/call",
                   "torchvision time / cnn_jax time", "same boxes kept", "load before-after"]
    print(f"## NMS, IoU {IOU_THRESHOLD}, median of {args.repeats} x {args.calls} calls, "
          f"{threads} threads\n")
    print(markdown_table(nms_headers, nms_rows), flush=True)

    evaluation = bench_evaluation(args.scenes, args.repeats)
    total = evaluation["profiled_seconds"]
    eval_rows = [[label, f"{s:.3f}", f"{100 * s / total:.0f}%"]
                 for label, s in evaluation["stages_profiled_seconds"].items()]
    eval_headers = ["stage", "seconds (profiled)", "share"]
    print(f"\n## Evaluation of {args.scenes:,} scenes ({evaluation['objects']:,} objects, "
          f"{evaluation['detections']:,} detections): {evaluation['median_seconds']:.2f} s "
          f"(median of {args.repeats})\n")
    print(markdown_table(eval_headers, eval_rows))
    nms_note = (f"Median of {args.repeats} repeats of {args.calls} calls after {args.warmup} "
                f"warm-up calls, the sides alternated, each in its own process, {threads} threads "
                f"each; random boxes in a 1000x1000 image (sides 10-100 px), IoU threshold "
                f"{IOU_THRESHOLD}; cnn_jax pads the kept indices to N. Ratio above 1: cnn_jax "
                "faster.")
    eval_note = (f"End to end {evaluation['median_seconds']:.2f} s (median of {args.repeats}, "
                 "DetectionTask.host_metrics, faster-coco-eval); stages from one pass under "
                 f"cProfile ({total:.2f} s in all).")
    tables = [make_table(nms_headers, nms_rows, notes=[nms_note],
                         title="NMS: jitted cnn_jax.ops.nms against torchvision.ops.nms"),
              make_table(eval_headers, eval_rows, notes=[eval_note],
                         title=f"Evaluation of {args.scenes:,} scenes: padded detections to "
                               "COCO's twelve statistics and VOC mAP")]
    out = results_record("bench_detection", TITLE, header, tables, smoke=args.smoke,
                         threads=threads, nms=nms_results, evaluation=evaluation)
    save_results(out, args.out)
    return out


if __name__ == "__main__":
    main()
