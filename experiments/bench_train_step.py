"""Training-step throughput on the CPU: cnn_jax's real train step against PyTorch eager, A/B.

    .venv-bench/bin/python experiments/bench_train_step.py                       # docs/performance.md
    .venv-bench/bin/python experiments/bench_train_step.py --models lenet5 --chunk 8 --out out.json
    .venv-bench/bin/python experiments/bench_train_step.py --depthwise-impl xla  # the lever, off
    XLA_FLAGS=--xla_cpu_use_thunk_runtime=false .venv-bench/bin/python experiments/bench_train_step.py
    python experiments/bench_train_step.py --smoke     # tiny sizes, seconds (what the test runs)

(`.venv-bench` holds torch==2.13.0, the CPU build: docs/performance.md.) The results go to
experiments/results/bench_train_step[_<models>][_conv_<impl>][_depthwise_<impl>].json (or --out;
--smoke writes none unless --out is given).

cnn_jax side: the step the trainer runs, `StepRunner` (jit, shardings, donated state and metric
sums, loss + top-1 + top-5 sums on device), with the optimizer `create_optimizer` builds from the
shipped config of each model, fed a numpy uint8 batch each step through `shard_batch` as the
loop does, one step per jitted call; and the same step run K at a time (`steps_per_call` K:
steps written out in one jitted call, what the trainer runs with `steps_per_call = K`, by
default 4; `--chunk K` picks K, `--chunk 1` leaves this variant out). PyTorch side: the twin network of experiments/_torch_models.py (same
layers and parameter count) in eager mode, NCHW, float32, `torch.optim.SGD` with the same
momentum, Nesterov flag and kernel-only weight decay, the LR scheduler stepped every iteration,
and the same metric sums kept on the tensor side (no `.item()` per step); its batch is a numpy
uint8 NCHW array converted with `torch.from_numpy` and normalised inside the step.

Each variant runs in its own spawned process (`Variant`), so that neither side's libraries, thread
pools or allocator state touch the other's (torch's oneDNN and the one cnn_jax loads do not
share a process), with the same number of threads (`torch.set_num_threads` = the cores XLA's CPU
client uses, `len(os.sched_getaffinity(0))`); only the variant being timed runs, the others wait.
Each variant is warmed up (compile, first steps), then the variants alternate — A, B, A, B, ...
in a rotating order — for `--repeats` rounds of `--steps` steps each; the table reports the
median images/s of each and their ratio.
The load average before and after is printed with the results: on a shared machine, compare
ratios measured in the same run rather than images/s across runs.

Models and recipes: LeNet-5 on 28x28x1 (configs/mnist_lenet5.py), ResNet-20 on 32x32x3
(configs/cifar10_resnet.py:20), MobileNet v1 alpha 0.5 on 32x32x3 (configs/cifar10_mobilenet_v1.py
with model mobilenet_v1_050); batch 128 each, random images and labels. `--models lenet5_fast`
(with `--batch 256`) times the time-to-accuracy recipe's step (configs/mnist_lenet5_fast.py).
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

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import make_table, results_header, results_record, save_results  # noqa: E402

# model -> (shipped config, image shape, config overrides)
MODELS = {
    "lenet5": ("configs/mnist_lenet5.py", (28, 28, 1), ()),
    "resnet20": ("configs/cifar10_resnet.py:20", (32, 32, 3), ()),
    "mobilenet_v1_050": ("configs/cifar10_mobilenet_v1.py", (32, 32, 3), ("model.name=mobilenet_v1_050",)),
    # the time-to-accuracy recipe (modern LeNet-5, batch 256): not in the default --models
    "lenet5_fast": ("configs/mnist_lenet5_fast.py", (28, 28, 1), ()),
}
DEFAULT_MODELS = ("lenet5", "resnet20", "mobilenet_v1_050")
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


def load_recipe(model: str):
    from cnn_jax.config import load_config

    path, _, overrides = MODELS[model]
    return load_config(REPO_ROOT / path, overrides)


# --------------------------------------------------------------------------------------------
# The two sides
# --------------------------------------------------------------------------------------------
class JaxTrainStep:
    """The trainer's train step (`StepRunner`, one step per call, or `chunk` > 1 steps per call)."""

    def __init__(self, model_name: str, batches: list[dict], chunk: int = 1, conv_impl: str = "auto"):
        import jax

        from cnn_jax.data import catalog
        from cnn_jax.models import create_model
        from cnn_jax.optim import create_optimizer
        from cnn_jax.tasks import create_task
        from cnn_jax.training import sharding
        from cnn_jax.training.state import create_train_state, init_variables
        from cnn_jax.training.steps import StepRunner

        config = load_recipe(model_name)
        spec = catalog.DATASETS[config.data.name]
        mesh = sharding.create_mesh()
        rep = sharding.replicated(mesh)
        model = create_model(config.model.name, num_classes=spec.num_classes, conv_impl=conv_impl)
        variables = jax.jit(lambda k: init_variables(model, k, MODELS[model_name][1]), out_shardings=rep)(
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
    """PyTorch eager: the twin model, torch.optim.SGD + scheduler, metric sums on the tensor side."""

    def __init__(self, model_name: str, batches: list[dict]):
        import torch
        import torch.nn.functional as F
        from _torch_models import create_torch_model, torch_optimizer

        from cnn_jax.data import catalog

        config = load_recipe(model_name)
        spec = catalog.DATASETS[config.data.name]
        torch.manual_seed(config.seed)
        self.model = create_torch_model(config.model.name).train()
        self.opt, self.sched = torch_optimizer(self.model, config.optimizer, STEPS_PER_EPOCH, config.num_epochs)
        channels = len(spec.mean)
        self.mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, channels, 1, 1) * 255
        self.inv_std = 1.0 / (torch.tensor(spec.std, dtype=torch.float32).view(1, channels, 1, 1) * 255)
        # The layout torch's DataLoader gives: NCHW uint8, labels int64.
        self.batches = [(np.ascontiguousarray(b["image"].transpose(0, 3, 1, 2)), b["label"].astype(np.int64))
                        for b in batches]
        self.torch, self.F = torch, F
        self.sums = None
        self._i = 0

    def _step(self, images: np.ndarray, labels: np.ndarray) -> None:
        torch, F = self.torch, self.F
        x = (torch.from_numpy(images).float() - self.mean) * self.inv_std
        y = torch.from_numpy(labels)
        logits = self.model(x)
        per_example = F.cross_entropy(logits, y, reduction="none")
        loss = per_example.mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.sched.step()
        with torch.no_grad():
            top5 = logits.topk(5, dim=1).indices
            hits = top5 == y[:, None]
            sums = torch.stack([per_example.sum(), hits[:, 0].sum().float(), hits.any(1).sum().float(),
                                torch.tensor(float(len(y)))])
            self.sums = sums if self.sums is None else self.sums + sums

    def run(self, steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            images, labels = self.batches[self._i % len(self.batches)]
            self._i += 1
            self._step(images, labels)
        float(self.sums[0])
        elapsed = time.perf_counter() - start
        self.sums = None
        return elapsed


# --------------------------------------------------------------------------------------------
# A/B
# --------------------------------------------------------------------------------------------
def alternate(runners: dict, steps: int, warmup: int, repeats: int) -> dict[str, list[float]]:
    """Warm each runner up, then time `repeats` rounds of `steps` steps, the order rotating each round."""
    for runner in runners.values():
        runner.run(warmup)
    times = {name: [] for name in runners}
    names = list(runners)
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            times[name].append(runners[name].run(steps))
    return times


def _worker(conn, kind: str, model: str, batch: int, pool: int, chunk: int, threads: int,
            depthwise_impl: str, conv_impl: str) -> None:
    """One variant in its own process: builds it, then answers ("run", steps) with the seconds."""
    try:
        if depthwise_impl != "auto":
            _force_depthwise_impl(depthwise_impl)
        batches = random_batches(MODELS[model][1], batch, pool)
        start = time.perf_counter()
        if kind == "torch":
            import torch

            torch.set_num_threads(threads)
            runner = TorchTrainStep(model, batches)
        else:
            runner = JaxTrainStep(model, batches, chunk=chunk, conv_impl=conv_impl)
        conn.send(("ready", time.perf_counter() - start))
        while True:
            message = conn.recv()
            if message[0] == "stop":
                return
            conn.send(("done", runner.run(message[1])))
    except BaseException as e:  # reported by the parent, which stops the benchmark
        conn.send(("error", f"{type(e).__name__}: {e}"))


class Variant:
    """A variant running in a child process (so neither side's libraries, thread pools or
    allocator state touch the other's), timed one at a time by `alternate`."""

    def __init__(self, kind: str, model: str, **kwargs):
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker, args=(child, kind, model), kwargs=kwargs, daemon=True)
        self.process.start()
        self.setup_s = self._reply("ready")

    def _reply(self, expected: str):
        tag, value = self.conn.recv()
        if tag != expected:
            raise RuntimeError(f"benchmark worker failed: {value}")
        return value

    def run(self, steps: int) -> float:
        self.conn.send(("run", steps))
        return self._reply("done")

    def close(self) -> None:
        self.conn.send(("stop",))
        self.process.join(timeout=60)


def bench_model(model: str, *, batch: int, steps: int, warmup: int, repeats: int, chunk: int,
                torch_side: bool, threads: int, depthwise_impl: str = "auto", conv_impl: str = "auto") -> dict:
    chunk = max(1, chunk)
    steps = max(chunk, steps // chunk * chunk)
    warmup = max(chunk, -(-warmup // chunk) * chunk)
    common = dict(batch=batch, pool=max(4, chunk), threads=threads, depthwise_impl=depthwise_impl,
                  conv_impl=conv_impl)
    runners = {}
    t0 = time.perf_counter()
    try:
        runners["cnn_jax"] = Variant("jax", model, chunk=1, **common)
        if chunk > 1:
            runners[f"cnn_jax_chunk{chunk}"] = Variant("jax", model, chunk=chunk, **common)
        if torch_side:
            runners["torch"] = Variant("torch", model, chunk=1, **common)
        setup_s = time.perf_counter() - t0
        load_before = os.getloadavg()[0]
        times = alternate(runners, steps, warmup, repeats)
    finally:
        for runner in runners.values():
            runner.close()
    result = {"model": model, "config": MODELS[model][0], "batch": batch, "steps_per_repeat": steps,
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
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated, from " + ", ".join(MODELS))
    parser.add_argument("--batch", type=int, default=128)
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
    if args.smoke:
        args.batch, args.steps, args.warmup, args.repeats = 8, 2, 1, 1
        args.chunk = args.chunk or 2
        if args.models == parser.get_default("models"):
            args.models = "lenet5"  # the others compile for a minute on 2 cores
    if args.chunk is None:
        from cnn_jax.config import base_config

        args.chunk = base_config().steps_per_call
    threads = args.threads or len(os.sched_getaffinity(0))
    torch_side = not args.no_torch
    info = machine_info() | {"threads": threads, "depthwise_impl": args.depthwise_impl,
                             "conv_impl": args.conv_impl}
    results = []
    for model in args.models.split(","):
        r = bench_model(model, batch=args.batch, steps=args.steps, warmup=args.warmup,
                        repeats=args.repeats, chunk=args.chunk, torch_side=torch_side, threads=threads,
                        depthwise_impl=args.depthwise_impl, conv_impl=args.conv_impl)
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
    headers = (["model (config)"] + [f"cnn_jax, {labels[v]}, img/s" for v in variants]
               + ["torch img/s"] + [f"{labels[v]} / torch" for v in variants] + ["load before-after"])
    rows = []
    for r in results:
        ips, ratio = r["images_per_s"], r.get("ratio_vs_torch", {})
        config = MODELS[r["model"]][0] + "".join(f" --config.{o}" for o in MODELS[r["model"]][2])
        rows.append([f"{r['model']} (`{config}`)"] + [f"{ips[v]:,.0f}" for v in variants]
                    + [f"{ips['torch']:,.0f}" if "torch" in ips else "-"]
                    + [f"**{ratio[v]:.2f}x**" if v in ratio else "-" for v in variants]
                    + [f"{r['load_before']:.1f}-{r['load_after']:.1f}"])
    return make_table(headers, rows, notes=[
        f"Images/s, median of {args.repeats} repeats of {args.steps} steps at batch {args.batch} "
        f"after {args.warmup} warm-up steps, variants alternated, each in its own process, "
        f"{threads} threads each; random images and labels; conv_impl {args.conv_impl}, "
        f"depthwise {args.depthwise_impl}. {k} steps/call: {k} steps per jitted call, as the "
        f"trainer runs with `steps_per_call = {k}`." if k > 1 else
        f"Images/s, median of {args.repeats} repeats of {args.steps} steps at batch {args.batch}, "
        f"variants alternated, each in its own process, {threads} threads each."])


if __name__ == "__main__":
    main()
