"""Where the CPU time of cnn_jax's train step goes, and what alternative convolution lowerings do
to it: docs/performance.md (the profile of the ResNet-20 step and the convolution levers).

    python experiments/profile_train_step.py --model resnet20                    # time + profile
    python experiments/profile_train_step.py --model resnet20 --conv xla         # XLA's convolutions
    python experiments/profile_train_step.py --model lenet5 --conv im2col        # a lever
    XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=individual_dot python experiments/profile_train_step.py
    python experiments/profile_train_step.py --smoke                             # what the test runs

The step is the one experiments/bench_train_step.py times (`JaxTrainStep`: the trainer's
`StepRunner` with the model's shipped recipe, batch 128 of random images). It prints the median
time per step over `--repeats` runs of `--steps` steps, then runs `--steps` steps under
`jax.profiler.trace` and sums the trace's events per XLA operation and per kind of fusion (the
name without its number: `transpose_copy_fusion`, `ynn_fusion`, ...), in ms per step.

`--conv` swaps how `cnn_jax.layers.Conv` computes an ordinary (ungrouped) convolution; the
parameters are the same:
  auto       what the trainer runs (the model's `conv_impl='auto'`: oneDNN on one CPU device,
             cnn_jax/backends/onednn);
  onednn     `conv_impl='onednn'`: oneDNN, or an error saying why it cannot be built;
  xla        XLA's convolution (`conv_impl='xla'`);
  im2col     the k x k shifted slices concatenated on the channel axis, then one matrix product;
  tap-dw     XLA's convolution forward and input gradient, the weight gradient as k x k matrix
             products of a shifted slice with the output gradient (a custom VJP);
  barrier    XLA's convolution with a custom VJP that puts `lax.optimization_barrier` on the
             output gradient and input before XLA's own backward convolutions.
The last three build the model with `conv_impl='xla'` and replace, for this process only, the
XLA convolution its layers bind.

The results go to experiments/results/profile_train_step_<model>_<conv>.json (or --out; --smoke
writes none unless --out is given).
"""

from __future__ import annotations

import argparse
import collections
import functools
import gzip
import itertools
import json
import os
import re
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from _common import make_table, results_header, results_record, save_results  # noqa: E402
from jax import lax  # noqa: E402

CONV_IMPLS = ("auto", "onednn", "xla", "im2col", "tap-dw", "barrier")


def _xla_conv(x, w, strides, padding, dilation):
    spatial = {1: "H", 2: "HW", 3: "DHW"}[x.ndim - 2]
    return lax.conv_general_dilated(x, w, strides, padding, rhs_dilation=dilation,
                                    dimension_numbers=(f"N{spatial}C", f"{spatial}IO", f"N{spatial}C"))


def _windows(x, kernel_shape, strides, padding, dilation):
    """The zero-padded input's strided slice under each kernel tap, in kernel order."""
    xp = jnp.pad(x, [(0, 0), *padding, (0, 0)])
    out = [(size - d * (k - 1) - 1) // s + 1
           for size, k, s, d in zip(xp.shape[1:-1], kernel_shape, strides, dilation, strict=True)]
    for tap in itertools.product(*(range(k) for k in kernel_shape)):
        start = [t * d for t, d in zip(tap, dilation, strict=True)]
        limit = [b + (o - 1) * s + 1 for b, o, s in zip(start, out, strides, strict=True)]
        yield lax.slice(xp, (0, *start, 0), (xp.shape[0], *limit, xp.shape[-1]), (1, *strides, 1))


def im2col_conv(x, w, strides, padding, dilation):
    patches = jnp.concatenate(list(_windows(x, w.shape[:-2], strides, padding, dilation)), axis=-1)
    y = jnp.dot(patches.reshape(-1, patches.shape[-1]), w.reshape(-1, w.shape[-1]))
    return y.reshape(*patches.shape[:-1], w.shape[-1])


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def tap_dw_conv(x, w, strides, padding, dilation):
    return _xla_conv(x, w, strides, padding, dilation)


def _tap_dw_fwd(x, w, strides, padding, dilation):
    return _xla_conv(x, w, strides, padding, dilation), (x, w)


def _tap_dw_bwd(strides, padding, dilation, residuals, g):
    x, w = residuals
    (dx,) = jax.vjp(lambda x: _xla_conv(x, w, strides, padding, dilation), x)[1](g)
    dims = tuple(range(x.ndim - 1))
    taps = [lax.dot_general(win, g, ((dims, dims), ((), ())))
            for win in _windows(x, w.shape[:-2], strides, padding, dilation)]
    return dx, jnp.stack(taps).reshape(w.shape)


tap_dw_conv.defvjp(_tap_dw_fwd, _tap_dw_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def barrier_conv(x, w, strides, padding, dilation):
    return _xla_conv(x, w, strides, padding, dilation)


def _barrier_bwd(strides, padding, dilation, residuals, g):
    x, w = lax.optimization_barrier(residuals)
    g = lax.optimization_barrier(g)
    return jax.vjp(lambda x, w: _xla_conv(x, w, strides, padding, dilation), x, w)[1](g)


barrier_conv.defvjp(_tap_dw_fwd, _barrier_bwd)


def use_conv(impl: str) -> str:
    """Routes cnn_jax.layers' ungrouped convolutions through `impl` (same parameters); returns the
    `conv_impl` to build the model with."""
    if impl in ("auto", "onednn", "xla"):
        return impl
    import cnn_jax.layers.conv as conv_module
    from cnn_jax.layers.conv_geometry import pad_pairs

    fn = {"im2col": im2col_conv, "tap-dw": tap_dw_conv, "barrier": barrier_conv}[impl]
    original = conv_module._flax_conv

    def apply(x, kernel, *, strides, padding, dilation, precision):
        return fn(x, kernel, tuple(strides), padding, tuple(dilation))

    def conv(module, x, *, groups, padding, **kwargs):
        if groups != 1 or padding == "CIRCULAR":
            return original(module, x, groups=groups, padding=padding, **kwargs)
        padding = pad_pairs(x.shape, kwargs["kernel_size"], kwargs["strides"], padding, kwargs["dilation"])
        return conv_module._direct_layer(module, x, apply, groups=groups, padding=padding, **kwargs)

    conv_module._flax_conv = conv
    return "xla"  # the others replace XLA's convolution


def profile(step, steps: int) -> dict[str, float]:
    """ms per step of each traced event, from a perfetto trace of `steps` steps."""
    with tempfile.TemporaryDirectory() as d:
        with jax.profiler.trace(d, create_perfetto_trace=True):
            step.run(steps)
        trace = json.load(gzip.open(next(Path(d).rglob("*perfetto_trace.json.gz"))))
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    total = collections.Counter()
    for e in events:
        if e.get("ph") == "X":
            total[e["name"]] += e.get("dur", 0) / 1e3 / steps
    return dict(total)


def by_kind(events: dict[str, float]) -> dict[str, float]:
    """Sums XLA operations by kind (name without its number), leaving out Python and runtime frames."""
    kinds = collections.Counter()
    for name, ms in events.items():
        if name.startswith(("$", "ThunkExecutor", "np.", "SlinkyThreadPool")):
            continue
        kinds[re.sub(r"[.\d]+$", "", name)] += ms
    return dict(kinds.most_common())


def main(argv=None) -> dict:
    from bench_train_step import MODELS, JaxTrainStep, machine_info, random_batches

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20", choices=sorted(MODELS))
    parser.add_argument("--conv", default="auto", choices=CONV_IMPLS)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--top", type=int, default=15, help="operations listed")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: a check that the script runs")
    parser.add_argument("--out", help="the results file (default experiments/results/profile_train_step_*.json)")
    args = parser.parse_args(argv)
    header = results_header(__file__, sys.argv[1:] if argv is None else argv)
    if args.smoke:
        args.model, args.batch, args.steps, args.repeats = "lenet5", 8, 2, 1
    conv_impl = use_conv(args.conv)
    step = JaxTrainStep(args.model, random_batches(MODELS[args.model][1], args.batch, 4), conv_impl=conv_impl)
    step.run(args.steps)  # compile, warm up
    ms = statistics.median(step.run(args.steps) / args.steps * 1e3 for _ in range(args.repeats))
    events = profile(step, args.steps)
    ops = {k: round(v, 2) for k, v in by_kind(events).items()}
    top = dict(sorted(((k, round(v, 2)) for k, v in events.items()
                       if not k.startswith(("$", "ThunkExecutor", "np."))), key=lambda kv: -kv[1])[:args.top])
    info = machine_info()
    out = {"model": args.model, "conv": args.conv, "batch": args.batch, "ms_per_step": round(ms, 1),
           "images_per_s": round(args.batch / ms * 1e3, 1), "ms_per_step_by_kind": ops,
           "top_operations_ms_per_step": top, "xla_flags": info["xla_flags"],
           "load_average": info["load_average"], "jax": info["jax"], "date": info["date"]}
    print(f"{args.model}, conv {args.conv}, batch {args.batch}: {ms:.1f} ms per step "
          f"({out['images_per_s']:,.0f} images/s); XLA_FLAGS={info['xla_flags']!r}; load {info['load_average']}")
    for kind, v in list(ops.items())[:args.top]:
        print(f"  {v:9.2f} ms/step  {kind}")
    print(json.dumps(out))
    fields = {k: v for k, v in out.items() if k not in ("date", "jax", "load_average")}
    record = results_record(f"profile_train_step_{args.model}_{args.conv.replace('-', '_')}",
                            f"Where the CPU time of the {args.model} train step goes "
                            f"(conv {args.conv})", header, [profile_table(out, args)],
                            smoke=args.smoke, repeats=args.repeats, steps=args.steps, **fields)
    save_results(record, args.out)
    return record


def profile_table(out: dict, args) -> dict:
    """The results file's table: ms per step by kind of operation, the largest first."""
    kinds = list(out["ms_per_step_by_kind"].items())[:args.top]
    return make_table(
        ["kind of operation (XLA)", "ms per step"], [[f"`{k}`", f"{v:.2f}"] for k, v in kinds],
        notes=[f"{out['model']}, conv {out['conv']}, batch {out['batch']}: **{out['ms_per_step']:.1f} "
               f"ms per step** ({out['images_per_s']:,.0f} images/s), median of {args.repeats} "
               f"runs of {args.steps} steps; then {args.steps} steps under `jax.profiler.trace`, "
               f"events summed by kind (the {len(kinds)} largest shown)."])


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
