"""One 3x3 convolution layer of ResNet-20, forward + both gradients, jitted JAX against PyTorch
eager, and the plain NHWC -> CHWN transpose its weight gradient needs: docs/performance.md
(the evidence that the ResNet-20 step's gap is fusion, not the convolution kernels).

    .venv-bench/bin/python experiments/bench_conv_layer.py          # torch side if torch imports
    python experiments/bench_conv_layer.py --covering               # kernels that cover the input
    python experiments/bench_conv_layer.py --upsampling             # FCN's upsampling layers
    python experiments/bench_conv_layer.py --smoke                  # tiny sizes (what the test runs)

For each (size, channels) of ResNet-20's three stages at batch 128: JAX `grad` of
sum(relu(conv(x, w))) with respect to x and w (XLA's convolution, `cnn_jax.backends.xla.conv`,
NHWC/HWIO, padding 1; and the same by oneDNN, `cnn_jax.backends.onednn.conv`, what cnn_jax's
layers run on a CPU),
the same with torch (`nn.Conv2d`, NCHW, `backward` into x and the weight; in a child process, so
that it does not share the process with the oneDNN library cnn_jax loads), and in JAX the
transpose of x to CHWN alone. Median of 5 repeats of `--steps` calls, in ms per call; threads:
the cores XLA uses.

`--covering`: convolutions whose kernel covers the whole unpadded input (one output position,
LeNet-5's C5 at the time-to-accuracy recipe's batch 256 first), forward + both gradients by
XLA's convolution, by oneDNN's (`covering_as_dot=False`), and by what `cnn_jax.layers.Conv` runs
for them on a CPU (the flattened input times the flattened kernel, XLA's dot).

`--upsampling`: the transposed convolutions that upsample FCN's scores (kernel 2S, stride S, crop
S/2; 11 classes, batch 32, the 128x128 digit scenes), each of the three passes of the convolution
they are the adjoint of (the layer's forward pass is its backward-data pass) by oneDNN, by XLA's
convolution and by stride-1 convolution of stride-sized blocks
(`cnn_jax.backends.xla.space_to_depth_conv`), and the route cnn_jax takes for it
(`cnn_jax.backends.onednn.routing`).

The results go to experiments/results/bench_conv_layer.json, bench_conv_layer_covering.json
with --covering, or bench_conv_layer_upsampling.json with --upsampling (or --out; --smoke writes
none unless --out is given).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import make_table, results_header, results_record, save_results  # noqa: E402

SHAPES = ((32, 16), (16, 32), (8, 64))  # ResNet-20's stages: spatial size, channels
# (batch, size, in channels, out channels) of convolutions whose kernel is size x size
COVERING = ((256, 5, 16, 120), (128, 4, 64, 256), (128, 6, 256, 512), (32, 7, 512, 1024))


def _median_ms(fn, steps: int, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        times.append((time.perf_counter() - start) / steps * 1e3)
    return statistics.median(times)


def jax_side(batch: int, size: int, channels: int, steps: int) -> dict:
    import jax
    import jax.numpy as jnp

    from cnn_jax.backends import onednn, xla

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((batch, size, size, channels)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, 3, channels, channels)) * 0.1, jnp.float32)
    pad = ((1, 1), (1, 1))

    def loss(x, w):
        return jnp.sum(jax.nn.relu(xla.conv(x, w, (1, 1), pad, (1, 1))))

    def onednn_loss(x, w):
        return jnp.sum(jax.nn.relu(onednn.conv(x, w, strides=(1, 1), padding=pad, impl="onednn")))

    grads = jax.jit(jax.grad(loss, argnums=(0, 1)))
    transpose = jax.jit(lambda x: jnp.transpose(x, (3, 1, 2, 0)))
    row = {"jax_fwd_bwd_ms": round(_median_ms(lambda: jax.block_until_ready(grads(x, w)), steps), 2),
           "jax_transpose_chwn_ms": round(_median_ms(lambda: jax.block_until_ready(transpose(x)), steps), 2)}
    if onednn.available():
        fast = jax.jit(jax.grad(onednn_loss, argnums=(0, 1)))
        row["jax_onednn_fwd_bwd_ms"] = round(_median_ms(lambda: jax.block_until_ready(fast(x, w)), steps), 2)
    return row


def covering_side(batch: int, size: int, cin: int, cout: int, steps: int) -> dict:
    import jax
    import jax.numpy as jnp

    from cnn_jax.backends import onednn, xla

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((batch, size, size, cin)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((size, size, cin, cout)) * 0.1, jnp.float32)
    none = ((0, 0), (0, 0))
    on_onednn = dict(strides=(1, 1), padding=none, impl="onednn")
    ways = {"xla_ms": lambda x, w: xla.conv(x, w, (1, 1), none, (1, 1)),
            "onednn_conv_ms": lambda x, w: onednn.conv(x, w, **on_onednn, covering_as_dot=False),
            "cnn_jax_ms": lambda x, w: onednn.conv(x, w, **on_onednn)}
    row = {"batch": batch, "size": size, "in": cin, "out": cout}
    for name, conv in ways.items():
        if name != "xla_ms" and not onednn.available():
            continue
        grads = jax.jit(jax.grad(lambda x, w, conv=conv: jnp.sum(jax.nn.relu(conv(x, w))), argnums=(0, 1)))
        row[name] = round(_median_ms(lambda g=grads: jax.block_until_ready(g(x, w)), steps), 2)
    return row


def main_covering(args) -> list[dict]:
    shapes = COVERING[:1] if args.smoke else COVERING
    rows = []
    for batch, size, cin, cout in shapes:
        rows.append(covering_side(2 if args.smoke else batch, size, cin, cout, args.steps))
        print(json.dumps(rows[-1]), flush=True)
    print(f"\nKernel covering the input, forward + both gradients, ms per call "
          f"({len(os.sched_getaffinity(0))} threads, load {os.getloadavg()[0]:.2f})")
    print("| batch | input | output channels | XLA's convolution | oneDNN's convolution | "
          "cnn_jax (dot) |\n| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['batch']} | {r['size']}x{r['size']}x{r['in']} | {r['out']} | {r['xla_ms']} | "
              f"{r.get('onednn_conv_ms', 'n/a')} | {r.get('cnn_jax_ms', 'n/a')} |")
    return rows


# (stride, batch): FCN-8s's x2 layers, its x8, FCN-16s's x16, FCN-32s's x32, on 128x128 scenes
UPSAMPLING = ((2, 32), (8, 32), (16, 32), (32, 32))
UPSAMPLING_ROUTES = ("onednn", "xla", "blocks")


def upsampling_params(stride: int, batch: int, classes: int = 11, size: int = 128) -> dict:
    """The primitives' parameters of the convolution an FCN upsampling layer is the adjoint of:
    its output ``(batch, size, size, classes)`` is that convolution's input."""
    from cnn_jax.backends.onednn import routing

    return routing.conv_params((batch, size, size, classes), (2 * stride, 2 * stride, classes,
                                                              classes),
                               (stride,) * 2, ((stride // 2, stride // 2),) * 2)


def upsampling_side(stride: int, batch: int, steps: int) -> dict:
    import functools

    import jax
    import jax.numpy as jnp

    from cnn_jax.backends import onednn
    from cnn_jax.backends.onednn import routing

    p = upsampling_params(stride, batch)
    rng = np.random.default_rng(0)
    x, w, y = (jnp.asarray(rng.standard_normal(p[key]), jnp.float32)
               for key in ("x_shape", "w_shape", "y_shape"))
    operands = {"forward": (x, w), "backward_data": (y, w), "backward_weights": (x, y)}
    row = {"stride": stride, "batch": batch, "scores": list(p["y_shape"][1:])}
    for pass_, (a, b) in operands.items():
        for route in UPSAMPLING_ROUTES:
            if route == "onednn" and not onednn.available():
                continue
            fn = jax.jit(functools.partial(routing.ROUTES[route], pass_, p))
            row[f"{pass_}_{route}_ms"] = round(
                _median_ms(lambda f=fn, a=a, b=b: jax.block_until_ready(f(a, b)), steps), 2)
        row[f"{pass_}_cnn_jax"] = routing.route(pass_, p, onednn=onednn.available())
    return row


def main_upsampling(args) -> list[dict]:
    shapes = UPSAMPLING[-1:] if args.smoke else UPSAMPLING
    rows = []
    for stride, batch in shapes:
        rows.append(upsampling_side(stride, 2 if args.smoke else batch, args.steps))
        print(json.dumps(rows[-1]), flush=True)
    print(f"\nFCN upsampling layers, ms per pass ({len(os.sched_getaffinity(0))} threads, "
          f"load {os.getloadavg()[0]:.2f})")
    for row in upsampling_table(rows, args)["rows"]:
        print("| " + " | ".join(str(v) for v in row) + " |")
    return rows


def torch_side(batch: int, size: int, channels: int, steps: int) -> dict:
    import torch

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    torch.manual_seed(0)
    x = torch.randn(batch, channels, size, size, requires_grad=True)
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False)

    def step():
        x.grad = None
        conv.weight.grad = None
        torch.relu(conv(x)).sum().backward()

    return {"torch_fwd_bwd_ms": round(_median_ms(step, steps), 2)}


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--covering", action="store_true",
                        help="kernels covering the whole input: XLA, oneDNN and cnn_jax's dot")
    parser.add_argument("--upsampling", action="store_true",
                        help="FCN's upsampling layers: each pass by oneDNN, XLA and blocks")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", help="the results file (default experiments/results/bench_conv_layer*.json)")
    args = parser.parse_args(argv)
    header = results_header(__file__, sys.argv[1:] if argv is None else argv)
    if args.upsampling:
        if args.smoke:
            args.steps = 2
        rows = main_upsampling(args)
        save_results(results_record(
            "bench_conv_layer_upsampling", UPSAMPLING_TITLE, header,
            [upsampling_table(rows, args)], smoke=args.smoke, rows=rows), args.out)
        return rows
    if args.covering:
        if args.smoke:
            args.steps = 2
        rows = main_covering(args)
        save_results(results_record(
            "bench_conv_layer_covering", COVERING_TITLE, header, [covering_table(rows, args)],
            smoke=args.smoke, rows=rows), args.out)
        return rows
    shapes = SHAPES
    if args.smoke:
        args.batch, args.steps, shapes = 2, 2, SHAPES[-1:]
    threads = len(os.sched_getaffinity(0))
    use_torch = not args.no_torch
    if use_torch:
        import importlib.util

        use_torch = importlib.util.find_spec("torch") is not None
    rows = []
    for size, channels in shapes:
        row = {"batch": args.batch, "size": size, "channels": channels}
        row |= jax_side(args.batch, size, channels, args.steps)
        if use_torch:  # in its own process: the oneDNN cnn_jax loads must not share it with torch's
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                row |= pool.apply(torch_side, (args.batch, size, channels, args.steps))
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n3x3 convolution, forward + both gradients, ms per call (batch {args.batch}, {threads} threads, "
          f"load {os.getloadavg()[0]:.2f})")
    print("| input | JAX, XLA's convolution | JAX, oneDNN (cnn_jax's default on CPU) | PyTorch | "
          "JAX transpose to CHWN alone |\n| --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['size']}x{r['size']}x{r['channels']} | {r['jax_fwd_bwd_ms']} | "
              f"{r.get('jax_onednn_fwd_bwd_ms', 'n/a')} | {r.get('torch_fwd_bwd_ms', 'n/a')} | "
              f"{r['jax_transpose_chwn_ms']} |")
    save_results(results_record("bench_conv_layer", TITLE, header, [layer_table(rows, args, threads)],
                                smoke=args.smoke, rows=rows), args.out)
    return rows


# --------------------------------------------------------------------------------------------
# The results files
# --------------------------------------------------------------------------------------------
TITLE = "One 3x3 convolution layer, forward + both gradients: XLA, oneDNN and PyTorch"
COVERING_TITLE = "Kernels that cover their whole input, forward + both gradients: XLA, oneDNN, dot"
UPSAMPLING_TITLE = ("FCN's upsampling layers, each pass: oneDNN, XLA's convolution and stride-1 "
                    "convolution of blocks")


def layer_table(rows: list[dict], args, threads: int) -> dict:
    return make_table(
        ["input", "JAX, XLA's convolution, ms", "JAX, oneDNN, ms", "PyTorch, ms",
         "JAX, the CHWN transpose alone, ms"],
        [[f"{r['size']}x{r['size']}x{r['channels']}", r["jax_fwd_bwd_ms"],
          r.get("jax_onednn_fwd_bwd_ms", "n/a"), r.get("torch_fwd_bwd_ms", "n/a"),
          r["jax_transpose_chwn_ms"]] for r in rows],
        notes=[f"Batch {args.batch}, ms per call, median of 5 repeats of {args.steps} calls, "
               f"{threads} threads; PyTorch in its own process."])


def covering_table(rows: list[dict], args) -> dict:
    return make_table(
        ["batch", "input", "output channels", "XLA's convolution, ms", "oneDNN's convolution, ms",
         "cnn_jax (dot), ms"],
        [[r["batch"], f"{r['size']}x{r['size']}x{r['in']}", r["out"], r["xla_ms"],
          r.get("onednn_conv_ms", "n/a"), r.get("cnn_jax_ms", "n/a")] for r in rows],
        notes=[f"ms per call, median of 5 repeats of {args.steps} calls."])


def upsampling_table(rows: list[dict], args) -> dict:
    passes = (("backward_data", "the layer's forward (backward data)"),
              ("forward", "its input gradient (forward)"),
              ("backward_weights", "its weight gradient (backward weights)"))
    return make_table(
        ["layer", "pass", "oneDNN, ms", "XLA, ms", "blocks, ms", "cnn_jax runs"],
        [[f"x{r['stride']}: kernel {2 * r['stride']}, stride {r['stride']}, "
          f"{r['scores'][0]}x{r['scores'][1]} scores", label,
          r.get(f"{pass_}_onednn_ms", "n/a"), r[f"{pass_}_xla_ms"], r[f"{pass_}_blocks_ms"],
          r[f"{pass_}_cnn_jax"]] for r in rows for pass_, label in passes],
        notes=[f"Batch {rows[0]['batch']}, 11 classes, 128x128 output, ms per call, median of 5 "
               f"repeats of {args.steps} calls; 'cnn_jax runs' is the route "
               "cnn_jax.backends.onednn.routing takes for the pass under conv_impl='auto' on one "
               "CPU device."])


if __name__ == "__main__":
    main()
