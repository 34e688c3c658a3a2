"""Training-step throughput on the CPU: cnn_jax's real train step against PyTorch eager, A/B.

    .venv-bench/bin/python experiments/bench_train_step.py                       # docs/performance.md
    .venv-bench/bin/python experiments/bench_train_step.py --models beyond_labels --steps 10 --repeats 5
    .venv-bench/bin/python experiments/bench_train_step.py --models lenet5 --chunk 8 --out out.json
    .venv-bench/bin/python experiments/bench_train_step.py --depthwise-impl xla  # the lever, off
    XLA_FLAGS=--xla_cpu_use_thunk_runtime=false .venv-bench/bin/python experiments/bench_train_step.py
    python experiments/bench_train_step.py --smoke     # tiny sizes, seconds (what the test runs)

(`.venv-bench` holds torch==2.13.0, the CPU build: docs/performance.md.) The results go to
experiments/results/bench_train_step[_<models>][_conv_<impl>][_depthwise_<impl>].json (or --out;
--smoke writes none unless --out is given).

cnn_jax side: the step the trainer runs, `StepRunner` (jit, shardings, donated state and the
task's metric sums on device), with the task `create_task` and the optimizer `create_optimizer`
build from each model's recipe, fed a numpy uint8 batch each step through `shard_batch` as the
loop does, one step per jitted call; and the same step K at a time (`steps_per_call` K, by default
4; `--chunk K` picks K, `--chunk 1` leaves it out). PyTorch side: the twin network of
experiments/_torch_models.py (same layers and parameter count) in eager mode, channels first,
float32, `torch.optim` SGD (same momentum, Nesterov flag, kernel-only weight decay) or Adam, the LR
scheduler stepped every iteration, the same loss and metric sums kept on the tensor side (no
`.item()` per step); its batch is numpy uint8 converted with `torch.from_numpy` and normalised
inside the step.

Each variant runs in its own spawned process (`Variant`), so that neither side's libraries, thread
pools or allocator state touch the other's, with the same number of threads (`torch.set_num_threads`
= the cores XLA's CPU client uses); only the variant being timed runs. Each is warmed up (compile,
first steps), then the variants alternate in a rotating order for `--repeats` rounds of `--steps`
steps; the table reports the median images/s of each and their ratio, with the load average
before and after: compare ratios measured in the same run, not images/s across runs.

Models (`MODELS`, each with its batch; `--batch` overrides it): LeNet-5 (configs/mnist_lenet5.py),
ResNet-20 (configs/cifar10_resnet.py:20), MobileNet v1 alpha 0.5 (configs/cifar10_mobilenet_v1.py),
batch 128, random images and labels; `lenet5_fast` (configs/mnist_lenet5_fast.py, batch 256).
`--models beyond_labels` (issues 14-16), random targets of each task:
  * unet: configs/nuclei_unet.py (base width 32, 'same' padding, BatchNorm, Adam), batch 8 of
    128x128x1, per-pixel cross-entropy and confusion sums (SegmentationTask); the twin
    up-samples with `nn.ConvTranspose2d`;
  * yolov1_small: batch 64 of 64x64x1 with 1-4 random boxes each, the model's own loss (eq. 3,
    DetectionTask); the twin's is `_torch_models.yolo_loss`, the same formula;
  * c3d_small: batch 16 of 16x64x64x1 clips, 8 classes (ClassificationTask on 'clip'), NCDHW;
  * tcn_seq_mnist: batch 64 of 28x28x1 images read pixel by pixel (784 steps), Adam at 2e-3.
No config ships yet for the last three: their recipe is configs/mnist_lenet5.py's (SGD, Nesterov
momentum 0.9, weight decay 5e-4 on kernels, cosine) with the overrides of `MODELS`, which the
table prints as `--config.` flags. A clip or a pixel sequence counts as one image.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    Variant,
    alternate,
    make_table,
    results_header,
    results_record,
    save_results,
)


class BenchModel(NamedTuple):
    """A model the benchmark times: its recipe (a shipped config and overrides), the shape of one
    input example, the batch, and the smaller input of --smoke runs."""

    config: str
    shape: tuple[int, ...]
    overrides: tuple[str, ...] = ()
    batch: int = 128
    smoke_shape: tuple[int, ...] | None = None


# Recipes for models whose config has not shipped yet: configs/mnist_lenet5.py's SGD, re-aimed.
_SEQ_MNIST_ADAM = ("model.name=tcn_seq_mnist", "batch_size=64", "optimizer.name=adam",
                   "optimizer.lr=0.002", "optimizer.weight_decay=0.0")  # Bai et al. 2018's recipe
_MOVING_MNIST = ("data.name=moving_mnist/frames=16", "model.name=c3d_small", "batch_size=16")
_DIGIT_SCENES = ("task=detection", "data.name=digit_scenes", "model.name=yolov1_small", "batch_size=64")
MODELS = {
    "lenet5": BenchModel("configs/mnist_lenet5.py", (28, 28, 1)),
    "resnet20": BenchModel("configs/cifar10_resnet.py:20", (32, 32, 3)),
    "mobilenet_v1_050": BenchModel("configs/cifar10_mobilenet_v1.py", (32, 32, 3), ("model.name=mobilenet_v1_050",)),
    # the time-to-accuracy recipe (modern LeNet-5, batch 256): not in the default --models
    "lenet5_fast": BenchModel("configs/mnist_lenet5_fast.py", (28, 28, 1), batch=256),
    # issues 14-16: segmentation, detection, video, sequences (`--models beyond_labels`)
    "unet": BenchModel("configs/nuclei_unet.py", (128, 128, 1), batch=8, smoke_shape=(32, 32, 1)),
    "yolov1_small": BenchModel("configs/mnist_lenet5.py", (64, 64, 1), _DIGIT_SCENES, batch=64,
                               smoke_shape=(32, 32, 1)),
    "c3d_small": BenchModel("configs/mnist_lenet5.py", (16, 64, 64, 1), _MOVING_MNIST, batch=16,
                            smoke_shape=(16, 32, 32, 1)),
    "tcn_seq_mnist": BenchModel("configs/mnist_lenet5.py", (28, 28, 1), _SEQ_MNIST_ADAM, batch=64,
                                smoke_shape=(8, 8, 1)),
}
DEFAULT_MODELS = ("lenet5", "resnet20", "mobilenet_v1_050")
MODEL_GROUPS = {"beyond_labels": ("unet", "yolov1_small", "c3d_small", "tcn_seq_mnist")}
STEPS_PER_EPOCH = 351  # only sets the schedule's length; it does not change the cost of a step


def machine_info() -> dict:
    """CPU model, cores, versions, date and load: the header of every table."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import jax
    import jaxlib

    info = {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "python": platform.python_version(),
            "jax": jax.__version__, "jaxlib": jaxlib.__version__,
            "xla_flags": os.environ.get("XLA_FLAGS", ""), "date": datetime.date.today().isoformat(),
            "load_average": [round(x, 2) for x in os.getloadavg()]}
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = None
    return info


def random_batches(shape, batch: int, count: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"image": rng.integers(0, 256, (batch, *shape), dtype=np.uint8),
             "label": rng.integers(0, 10, batch).astype(np.int32)} for _ in range(count)]


def random_boxes(rng: np.random.Generator, batch: int, max_boxes: int, size: tuple[int, int],
                 num_classes: int) -> dict:
    """1..max_boxes valid xyxy boxes per image (sides a quarter to 5/8 of the image, as the
    digit scenes' digits), their classes and box_mask; padding rows zero and False."""
    height, width = size
    count = rng.integers(1, max_boxes + 1, batch)
    mask = np.arange(max_boxes)[None, :] < count[:, None]
    h = rng.uniform(height / 4, height * 5 / 8, (batch, max_boxes))
    w = np.minimum(h * rng.uniform(0.5, 1.2, (batch, max_boxes)), width)
    x0, y0 = rng.uniform(0, width - w), rng.uniform(0, height - h)
    boxes = np.stack([x0, y0, x0 + w, y0 + h], -1) * mask[..., None]
    classes = rng.integers(0, num_classes, (batch, max_boxes)) * mask
    return {"boxes": boxes.astype(np.float32), "classes": classes.astype(np.int32), "box_mask": mask}


def model_batches(model: str, batch: int, count: int, shape: tuple[int, ...] | None = None,
                  seed: int = 0) -> list[dict]:
    """`count` random uint8 batches of `model`'s input (`shape`, default its own) with random
    targets of its task: labels, per-pixel classes, or boxes."""
    config, spec = load_recipe(model), recipe_spec(model)
    shape = tuple(shape or MODELS[model].shape)
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(count):
        b = {spec.input_key: rng.integers(0, 256, (batch, *shape), dtype=np.uint8)}
        if config.task == "segmentation":
            b["segmentation"] = rng.integers(0, spec.num_classes, (batch, *shape[:2]), dtype=np.uint8)
        elif config.task == "detection":
            b.update(random_boxes(rng, batch, spec.max_boxes, shape[:2], spec.object_classes))
        else:
            b["label"] = rng.integers(0, spec.num_classes, batch).astype(np.int32)
        batches.append(b)
    return batches


def load_recipe(model: str):
    from cnn_jax.config import load_config

    entry = MODELS[model]
    return load_config(REPO_ROOT / entry.config, entry.overrides)


def recipe_spec(model: str):
    """The dataset spec of `model`'s recipe (classes, statistics, input key; no data is read)."""
    from cnn_jax.data import catalog

    return catalog.get_dataset_spec(load_recipe(model).data.name)


# --------------------------------------------------------------------------------------------
# The two sides
# --------------------------------------------------------------------------------------------
class JaxTrainStep:
    """The trainer's train step (`StepRunner`, one step per call, or `chunk` > 1 steps per call)
    of the model and task of `model_name`'s recipe, on inputs of the batches' shape."""

    def __init__(self, model_name: str, batches: list[dict], chunk: int = 1, conv_impl: str = "auto"):
        import jax

        from cnn_jax.config import DTYPES
        from cnn_jax.models import create_model
        from cnn_jax.optim import create_optimizer
        from cnn_jax.tasks import create_task, model_classes
        from cnn_jax.training import sharding
        from cnn_jax.training.state import create_train_state, init_variables
        from cnn_jax.training.steps import StepRunner

        config = load_recipe(model_name)
        config.conv_impl = conv_impl
        spec = recipe_spec(model_name)
        shape = batches[0][spec.input_key].shape[1:]
        mesh = sharding.create_mesh()
        rep = sharding.replicated(mesh)
        model = create_model(config.model.name, num_classes=model_classes(config, spec),
                             dtype=DTYPES[config.model.dtype], conv_impl=conv_impl,
                             **config.model.kwargs.to_dict())
        variables = jax.jit(lambda k: init_variables(model, k, shape), out_shardings=rep)(
            jax.random.key(config.seed))
        tx, _ = create_optimizer(config.optimizer, STEPS_PER_EPOCH, config.num_epochs,
                                 params=variables["params"])
        self.state = jax.jit(lambda v: create_train_state(model, tx, v), out_shardings=rep)(variables)
        self.runner = StepRunner(mesh, jax.tree.map(lambda _: rep, self.state), task=create_task(config, spec),
                                 dropout_key=jax.random.key(1), steps_per_call=chunk)
        self.groups = [batches[i:i + chunk] for i in range(0, len(batches) - chunk + 1, chunk)]
        self.chunk = chunk
        self.sums = self.runner.zero_sums()
        self._i = 0

    def run(self, steps: int) -> float:
        """Seconds for `steps` training steps (a multiple of the chunk), results on the host."""
        start = time.perf_counter()
        for _ in range(steps // self.chunk):
            group = self.groups[self._i % len(self.groups)]
            self._i += 1
            self.state, self.sums = self.runner(self.state, self.sums, group)
        float(self.sums["loss"])  # wait for the result, as a log point does
        elapsed = time.perf_counter() - start
        self.sums = self.runner.zero_sums()
        return elapsed


class TorchTrainStep:
    """PyTorch eager: the twin model, torch.optim + scheduler, the task's loss, metric sums on the
    tensor side (classification: loss, top-1, top-5; segmentation: loss, pixel count and the
    confusion matrix; detection: the loss)."""

    def __init__(self, model_name: str, batches: list[dict]):
        import torch
        from _torch_models import create_torch_model, task_loss, torch_optimizer

        from cnn_jax.tasks import model_classes

        config, spec = load_recipe(model_name), recipe_spec(model_name)
        self.task, self.key = config.task, spec.input_key
        shape = batches[0][self.key].shape[1:]
        torch.manual_seed(config.seed)
        self.num_classes = model_classes(config, spec)
        self.model = create_torch_model(config.model.name, self.num_classes, shape,
                                        **config.model.kwargs.to_dict()).train()
        self.opt, self.sched = torch_optimizer(self.model, config.optimizer, STEPS_PER_EPOCH, config.num_epochs)
        channels, rank = len(spec.mean), len(shape) + 1
        view = (1, channels) + (1,) * (rank - 2)
        self.mean = torch.tensor(spec.mean, dtype=torch.float32).view(view) * 255
        self.inv_std = 1.0 / (torch.tensor(spec.std, dtype=torch.float32).view(view) * 255)
        self.ignore_index = spec.ignore_index if self.task == "segmentation" else -100
        # The layout torch's DataLoader gives: channels first (NCHW, NCDHW) uint8, int64 targets.
        channels_first = (0, rank - 1, *range(1, rank - 1))
        self.batches = [{k: np.ascontiguousarray(v.transpose(channels_first)) if k == self.key
                         else v.astype(np.int64) if v.dtype.kind in "iu" else v
                         for k, v in b.items()} for b in batches]
        self.torch, self.task_loss = torch, task_loss
        self.sums = None
        self._i = 0

    def _step(self, batch: dict) -> None:
        torch = self.torch
        x = (torch.from_numpy(batch[self.key]).float() - self.mean) * self.inv_std
        outputs = self.model(x)
        loss, sums = self.task_loss(self.task, outputs, batch, self.num_classes, self.ignore_index)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.sched.step()
        with torch.no_grad():
            new = sums()
            self.sums = new if self.sums is None else [a + b for a, b in zip(self.sums, new, strict=True)]

    def run(self, steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            batch = self.batches[self._i % len(self.batches)]
            self._i += 1
            self._step(batch)
        float(self.sums[0])
        elapsed = time.perf_counter() - start
        self.sums = None
        return elapsed


# --------------------------------------------------------------------------------------------
# A/B
# --------------------------------------------------------------------------------------------
def build_train_step(kind: str, model: str, shape: tuple[int, ...], batch: int, pool: int, chunk: int,
                     threads: int, depthwise_impl: str, conv_impl: str):
    """One side of the train-step race, built inside its own process (`Variant`)."""
    if depthwise_impl != "auto":
        _force_depthwise_impl(depthwise_impl)
    batches = model_batches(model, batch, pool, shape)
    if kind == "torch":
        import torch

        torch.set_num_threads(threads)
        return TorchTrainStep(model, batches)
    return JaxTrainStep(model, batches, chunk=chunk, conv_impl=conv_impl)


def bench_model(model: str, *, batch: int, steps: int, warmup: int, repeats: int, chunk: int,
                torch_side: bool, threads: int, depthwise_impl: str = "auto", conv_impl: str = "auto",
                shape: tuple[int, ...] | None = None) -> dict:
    chunk = max(1, chunk)
    steps = max(chunk, steps // chunk * chunk)
    warmup = max(chunk, -(-warmup // chunk) * chunk)
    shape = tuple(shape or MODELS[model].shape)
    common = dict(model=model, shape=shape, batch=batch, pool=max(4, chunk), threads=threads,
                  depthwise_impl=depthwise_impl, conv_impl=conv_impl)
    runners = {}
    t0 = time.perf_counter()
    try:
        runners["cnn_jax"] = Variant(build_train_step, kind="jax", chunk=1, **common)
        if chunk > 1:
            runners[f"cnn_jax_chunk{chunk}"] = Variant(build_train_step, kind="jax", chunk=chunk, **common)
        if torch_side:
            runners["torch"] = Variant(build_train_step, kind="torch", chunk=1, **common)
        setup_s = time.perf_counter() - t0
        load_before = os.getloadavg()[0]
        times = alternate(runners, steps, warmup, repeats)
    finally:
        for runner in runners.values():
            runner.close()
    result = {"model": model, "config": MODELS[model].config, "batch": batch,
              "input_shape": list(shape), "steps_per_repeat": steps,
              "repeats": repeats, "warmup_steps": warmup, "setup_s": round(setup_s, 2),
              "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
              "images_per_s": {}, "seconds": {}}
    for name, ts in times.items():
        result["images_per_s"][name] = round(steps * batch / statistics.median(ts), 1)
        result["seconds"][name] = [round(t, 4) for t in ts]
    if torch_side:
        t = result["images_per_s"]["torch"]
        result["ratio_vs_torch"] = {n: round(v / t, 3) for n, v in result["images_per_s"].items() if n != "torch"}
    return result


def markdown_table(results: list[dict]) -> str:
    variants = [v for v in results[0]["images_per_s"] if v != "torch"] if results else []
    head = ["model", "batch"] + [f"{v} img/s" for v in variants] + ["torch img/s"] + [
        f"{v} / torch" for v in variants] + ["load"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in results:
        ips, ratio = r["images_per_s"], r.get("ratio_vs_torch", {})
        cells = [r["model"], str(r["batch"])] + [f"{ips[v]:,.0f}" for v in variants]
        cells.append(f"{ips['torch']:,.0f}" if "torch" in ips else "-")
        cells += [f"**{ratio[v]:.2f}x**" if v in ratio else "-" for v in variants]
        cells.append(f"{r['load_before']:.1f}-{r['load_after']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _force_depthwise_impl(impl: str) -> None:
    """Benchmark knob: every depthwise convolution uses `impl` (to measure that lever)."""
    from cnn_jax.layers import conv

    original = conv._conv_layer

    def forced(module, x, *, groups, depthwise_impl, **kwargs):
        return original(module, x, groups=groups, depthwise_impl=impl, **kwargs)

    conv._conv_layer = forced


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                        help="comma-separated, from " + ", ".join([*MODELS, *MODEL_GROUPS]))
    parser.add_argument("--batch", type=int, default=0, help="every model's batch (default: its own, MODELS)")
    parser.add_argument("--steps", type=int, default=20, help="steps per timed repeat")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per variant first")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--chunk", type=int, default=None,
                        help="also time K steps per jitted call (StepRunner) over chunks of K batches (default: the "
                             "trainer's steps_per_call; 1: no)")
    parser.add_argument("--no-torch", action="store_true", help="cnn_jax only")
    parser.add_argument("--depthwise-impl", choices=("auto", "xla", "shifted"), default="auto",
                        help="force this depthwise convolution implementation (a lever; default: auto)")
    parser.add_argument("--conv-impl", choices=("auto", "xla", "onednn"), default="auto",
                        help="the cnn_jax model's conv_impl (a lever; default: auto)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (default: the cores XLA uses)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: a check that the script runs")
    parser.add_argument("--out", "--json", dest="out",
                        help="the results file (default experiments/results/bench_train_step*.json)")
    args = parser.parse_args(argv)
    header = results_header(__file__, sys.argv[1:] if argv is None else argv)
    name = results_name(args, parser)  # before --smoke shrinks the settings
    models = [m for name in args.models.split(",") for m in MODEL_GROUPS.get(name, (name,))]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        parser.error(f"unknown model {unknown[0]!r}: use one of {', '.join([*MODELS, *MODEL_GROUPS])}")
    if args.smoke:
        args.batch, args.steps, args.warmup, args.repeats = 8, 2, 1, 1
        args.chunk = args.chunk or 2
        if args.models == parser.get_default("models"):
            models = ["lenet5"]  # the others compile for a minute on 2 cores
    if args.chunk is None:
        from cnn_jax.config import base_config

        args.chunk = base_config().steps_per_call
    threads = args.threads or len(os.sched_getaffinity(0))
    torch_side = not args.no_torch
    info = machine_info() | {"threads": threads, "depthwise_impl": args.depthwise_impl,
                             "conv_impl": args.conv_impl}
    results = []
    for model in models:
        entry = MODELS[model]
        r = bench_model(model, batch=args.batch or entry.batch, steps=args.steps, warmup=args.warmup,
                        repeats=args.repeats, chunk=args.chunk, torch_side=torch_side, threads=threads,
                        depthwise_impl=args.depthwise_impl, conv_impl=args.conv_impl,
                        shape=entry.smoke_shape if args.smoke else entry.shape)
        results.append(r)
        print(json.dumps(r), flush=True)
    out = results_record(name, TITLE, header,
                         [results_table(results, args, threads)], smoke=args.smoke, settings=info,
                         results=results)
    print(f"\ntrain step, images/s (median of {args.repeats} repeats of {args.steps} steps, A/B alternated); "
          f"{info['cpu']}, {info['cores']} cores, {threads} threads; jax {info['jax']}, torch {info['torch']}; "
          f"XLA_FLAGS={info['xla_flags']!r}; conv {args.conv_impl}, depthwise {args.depthwise_impl}; "
          f"{info['date']}\n")
    print(markdown_table(results))
    print(json.dumps(out, indent=2))
    save_results(out, args.out)
    return out


# --------------------------------------------------------------------------------------------
# The results file
# --------------------------------------------------------------------------------------------
TITLE = "Training step on the CPU: cnn_jax's trainer step against PyTorch eager, A/B"


def results_name(args, parser) -> str:
    """bench_train_step, suffixed by the choices that change what is measured."""
    name = "bench_train_step"
    if args.models != parser.get_default("models"):
        name += "_" + args.models.replace(",", "_")
    if args.conv_impl != "auto":
        name += f"_conv_{args.conv_impl}"
    if args.depthwise_impl != "auto":
        name += f"_depthwise_{args.depthwise_impl}"
    return name


def results_table(results: list[dict], args, threads: int) -> dict:
    k = args.chunk
    variants = ["cnn_jax"] + ([f"cnn_jax_chunk{k}"] if k > 1 else [])
    labels = {"cnn_jax": "1 step/call", f"cnn_jax_chunk{k}": f"{k} steps/call"}
    headers = (["model (config)", "batch x input"] + [f"cnn_jax, {labels[v]}, img/s" for v in variants]
               + ["torch img/s"] + [f"{labels[v]} / torch" for v in variants] + ["load before-after"])
    rows = []
    for r in results:
        ips, ratio = r["images_per_s"], r.get("ratio_vs_torch", {})
        entry = MODELS[r["model"]]
        config = entry.config + "".join(f" --config.{o}" for o in entry.overrides)
        shape = "x".join(map(str, r.get("input_shape", entry.shape)))
        rows.append([f"{r['model']} (`{config}`)", f"{r['batch']} x {shape}"]
                    + [f"{ips[v]:,.0f}" for v in variants]
                    + [f"{ips['torch']:,.0f}" if "torch" in ips else "-"]
                    + [f"**{ratio[v]:.2f}x**" if v in ratio else "-" for v in variants]
                    + [f"{r['load_before']:.1f}-{r['load_after']:.1f}"])
    return make_table(headers, rows, notes=[
        f"Images/s, median of {args.repeats} repeats of {args.steps} steps "
        f"after {args.warmup} warm-up steps, variants alternated, each in its own process, "
        f"{threads} threads each; random inputs and targets of each model's task (a clip or a "
        f"pixel sequence counts as one image); conv_impl {args.conv_impl}, "
        f"depthwise {args.depthwise_impl}. {k} steps/call: {k} steps per jitted call, as the "
        f"trainer runs with `steps_per_call = {k}`." if k > 1 else
        f"Images/s, median of {args.repeats} repeats of {args.steps} steps, "
        f"variants alternated, each in its own process, {threads} threads each."])


if __name__ == "__main__":
    main()
