"""Activations compared on CIFAR-10: training-error curves of one small CNN (Krizhevsky et al. 2012, Fig. 1).

    python experiments/activations.py [--data-dir DIR] [--epochs 24] [--inputs centred] [--tune-lr] [--out act.json]

Krizhevsky, Sutskever & Hinton 2012 (§3.1, Fig. 1): "A four-layer convolutional neural network with
ReLUs reaches a 25% training error rate on CIFAR-10 six times faster than an equivalent network with
tanh neurons"; "the learning rates for each network were chosen independently to make training as
fast as possible. No regularization of any kind was employed."

The setup here follows what the paper states, as far as a 2-core CPU allows in ~15 minutes:

  * four weight layers — configs/cifar10_activations.py: C1 16@5x5 (padded) -> 2x2 max pool ->
    C3 32@5x5 -> 2x2 max pool -> C5 64@5x5 -> output (the paper does not give the Fig. 1 net);
  * inputs only centred, in pixel units (§2: "subtracting the mean activity over the training set
    from each pixel"; here the per-channel mean): `--inputs centred`, the default. The trainer
    itself standardises (x/255 - mean) / std, which it cannot be told not to do, so this script
    swaps the dataset's std for 1/255 around each run (`centred_inputs`): runs of this script are
    NOT reproduced exactly by the `cnn-jax train` command it prints, which standardises.
    `--inputs standardised` runs the trainer as is;
  * weights from N(0, 0.01), biases 0 (§5, the ImageNet net's; `model.kwargs.kernel_init='normal'`);
  * SGD with momentum 0.9, batches of 128, a constant learning rate chosen per activation (below),
    no weight decay, dropout or augmentation.

Learning rate per activation, "chosen to make training as fast as possible": `--tune-lr` trains
each activation for --probe-epochs (3) epochs at each rate of --lr-grid (0.001 0.003 0.01 0.03 0.1)
and keeps the one with the lowest training error at the end of the probe (a rate whose error rises
in its last probe epoch, or whose loss turns NaN, is out). Without --tune-lr the script uses
LEARNING_RATES, the rates such a probe picked (a --tune-lr run records its probe).

Training error, two ways, both printed: (1) of the parameters at the end of each epoch on a fixed
2,000 of the training images (the first 2,000 of epoch 1's shuffled order), evaluated here from the
run's per-epoch checkpoints — the curve in the PNG and the epochs-to-25% that count; (2) the
trainer's running mean over the epoch's mini-batches (a record per epoch in metrics.jsonl), which
lags (1) by about half an epoch of learning.

Budget: a run sees the first --train-subset (5,000) of the 50,000 training images (an "epoch" is
one pass over them) and stops at --epochs (24) or, trained in chunks of --chunk (4) epochs, once
both of its training errors are at or below 25%; an activation that does not get there is
reported as "> cap". The full training set (one epoch of 50,000 images is about a minute on this
CPU) does not fit the budget with six activations.

The CIFAR-10 copy in ../shared/data is JPEG-degraded (quality 75): its error rates are not those of
the true CIFAR-10. `--smoke` trains each activation on 256 images for 2 epochs with a narrower
network.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402  (the script's own folder first, then the shared helpers)
    REPO_ROOT,
    RESULTS_DIR,
    Run,
    ensure_dataset,
    experiment_parser,
    format_seconds,
    make_table,
    markdown_table,
    print_header,
    read_metrics,
    results_path,
    results_record,
    run_root,
    save_results,
    train_run,
)

TITLE = "Training error per epoch by activation, small CNN on CIFAR-10 (Krizhevsky et al. 2012, Fig. 1)"
ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "swish")
TARGET_ERROR = 0.25  # Krizhevsky et al. 2012, Fig. 1
PAPER_SPEEDUP = 6.0  # ReLU vs tanh epochs to 25% training error, same figure
CONFIG = "configs/cifar10_activations.py"
INPUTS = ("centred", "standardised")
LR_GRID = (0.001, 0.003, 0.01, 0.03, 0.1)
# The rates a --tune-lr probe picked (centred inputs, the config's net and 5,000 images); a
# --tune-lr run records its own probe in its results file:
LEARNING_RATES = {"sigmoid": 0.1, "tanh": 0.03, "relu": 0.003, "leaky_relu": 0.003,
                  "elu": 0.003, "swish": 0.003}
TRAIN_EVAL_IMAGES = 2_000

SMOKE_OVERRIDES = ("data.train_subset=256", "num_epochs=2", "eval_batch_size=100",
                   "batch_size=64", "model.kwargs.conv_features=(4, 8)",
                   "model.kwargs.c5_features=8")


# --------------------------------------------------------------------------------------------
# Inputs as in the paper: centred only
# --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def centred_inputs(enabled: bool = True):
    """While active, runs of the trainer see pixels minus the per-channel training mean, in 0-255
    units (Krizhevsky et al. 2012 §2), instead of (x/255 - mean) / std: the dataset's std is
    replaced by 1/255 in the pipeline the trainer builds, so its task's normalisation subtracts
    the mean and divides by one."""
    if not enabled:
        yield
        return
    from cnn_jax.training import loop

    original = loop.input_pipeline

    def centred(config):
        data = original(config)
        data.spec = dataclasses.replace(data.spec, std=(1.0 / 255.0,) * len(data.spec.std))
        return data

    loop.input_pipeline = centred
    try:
        yield
    finally:
        loop.input_pipeline = original


# --------------------------------------------------------------------------------------------
# Training error
# --------------------------------------------------------------------------------------------
def epoch_errors(workdir: str | Path) -> list[float]:
    """Training error of each epoch from the run's train records: one minus the accuracy over all
    examples logged during that epoch (records are weighted by their example counts, so this also
    holds when a run logs several times per epoch)."""
    correct: dict[int, float] = {}
    count: dict[int, float] = {}
    for r in read_metrics(workdir, "train"):
        epoch = int(-(-r["epoch"] // 1))  # a record at epoch 2.4 belongs to the 3rd epoch
        correct[epoch] = correct.get(epoch, 0.0) + r["accuracy"] * r["count"]
        count[epoch] = count.get(epoch, 0.0) + r["count"]
    return [1.0 - correct[e] / count[e] for e in sorted(count)]


def epochs_to(errors: list[float], target: float) -> int | None:
    """The first epoch (1-based) whose training error is at most `target`, or None."""
    return next((i + 1 for i, e in enumerate(errors) if e <= target), None)


def fixed_training_images(config, count: int) -> tuple:
    """The first `count` images (and labels) of epoch 1's shuffled order of the run's training
    set: the same for every activation (same data, subset and seed)."""
    import numpy as np

    from cnn_jax.data.pipeline import create_input_pipeline

    data = create_input_pipeline(config.data, seed=config.seed, batch_size=config.batch_size,
                                 eval_batch_size=config.eval_batch_size)
    images, labels, have = [], [], 0
    for batch in data.train_batches(0):
        images.append(batch["image"])
        labels.append(batch["label"])
        have += len(batch["label"])
        if have >= count:
            break
    return (np.concatenate(images)[:count], np.concatenate(labels)[:count], data.spec,
            data.steps_per_epoch)


class TrainingErrorMeter:
    """Training error of a run's per-epoch checkpoints on fixed training images."""

    def __init__(self, config, images, labels, spec, steps_per_epoch: int, centred: bool):
        import jax
        import jax.numpy as jnp

        from cnn_jax.models import create_model
        from cnn_jax.tasks import normalize

        model = create_model(config.model.name, num_classes=spec.num_classes,
                             **config.model.kwargs.to_dict())
        std = (1.0 / 255.0,) * len(spec.std) if centred else spec.std
        self.steps_per_epoch = steps_per_epoch
        self.labels = labels
        self.batches = [images[i:i + 500] for i in range(0, len(images), 500)]

        @jax.jit
        def predict(params, x):
            logits = model.apply({"params": params}, normalize(x, spec.mean, std), train=False)
            return jnp.argmax(logits, axis=-1)

        self.predict = predict

    def errors(self, workdir: Path, known: dict[int, float]) -> dict[int, float]:
        """{epoch: error} for every epoch-end checkpoint of `workdir` not in `known` yet."""
        import numpy as np
        import orbax.checkpoint as ocp

        out = dict(known)
        for path in sorted((workdir / "checkpoints").glob("*")):
            if not path.name.isdigit() or int(path.name) % self.steps_per_epoch:
                continue
            epoch = int(path.name) // self.steps_per_epoch
            if epoch in out:
                continue
            params = ocp.StandardCheckpointer().restore(path / "default")["params"]
            predicted = np.concatenate([np.asarray(self.predict(params, b)) for b in self.batches])
            out[epoch] = float(np.mean(predicted != self.labels))
        return out


# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------
def pick_lr(probe: dict[float, list[float] | None]) -> float | None:
    """The rate whose probe ended with the lowest training error; a probe that diverged (None) or
    whose error rose in its last epoch is out. None when every probe is out."""
    scores = {}
    for lr, errors in probe.items():
        if not errors or not all(math.isfinite(e) for e in errors):
            continue
        if len(errors) > 1 and errors[-1] > min(errors[:-1]):
            continue
        scores[lr] = errors[-1]
    return min(scores, key=lambda lr: (scores[lr], lr)) if scores else None


def probe_lrs(name: str, common: tuple[str, ...], root: Path, data_dir: str, grid, epochs: int,
              centred: bool) -> dict[float, list[float] | None]:
    """Running training error per epoch of `epochs`-epoch runs at each rate of `grid`."""
    from cnn_jax.errors import NonFiniteLossError

    probe = {}
    for lr in grid:
        run = Run(f"probe_{name}_lr{lr:g}", CONFIG, (f"model.kwargs.activation={name}", *common,
                                                      f"optimizer.lr={lr}", f"num_epochs={epochs}"))
        try:
            with centred_inputs(centred):
                summary = train_run(run, root, data_dir)
            probe[lr] = epoch_errors(summary["workdir"])
        except NonFiniteLossError as e:
            print(f"{name} at lr {lr:g}: {e}", flush=True)
            probe[lr] = None
    return probe


def train_curve(run: Run, root: Path, data_dir: str, cap: int, chunk: int, meter, centred: bool):
    """Trains `run` in chunks of `chunk` epochs until both training errors are at or below the
    target or `cap` epochs are done. Returns (last summary, evaluated errors, running errors,
    wall seconds, status)."""
    from cnn_jax.errors import NonFiniteLossError

    done, wall, evaluated, summary, status = 0, 0.0, {}, None, "finished"
    workdir = root / run.name
    while done < cap:
        done = min(cap, done + chunk)
        try:
            with centred_inputs(centred):
                summary = train_run(run.with_overrides(f"num_epochs={done}"), root, data_dir)
        except NonFiniteLossError as e:
            print(f"{run.name}: {e}", flush=True)
            status = "diverged"
            break
        wall += summary["wall_seconds"]
        start = time.perf_counter()
        evaluated = meter.errors(workdir, evaluated)
        wall += time.perf_counter() - start
        running = epoch_errors(workdir)
        real = [evaluated[e] for e in sorted(evaluated)]
        if epochs_to(real, TARGET_ERROR) and epochs_to(running, TARGET_ERROR):
            break
    real = [evaluated[e] for e in sorted(evaluated)]
    running = epoch_errors(workdir) if (workdir / "metrics.jsonl").exists() else []
    return summary, real, running, wall, status


def plot_curves(curves: dict[str, list[float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for name, errors in curves.items():
        ax.plot(range(1, len(errors) + 1), [100 * e for e in errors], marker="o", markersize=3,
                label=name, linestyle="--" if name == "tanh" else "-")
    ax.axhline(100 * TARGET_ERROR, color="gray", linewidth=0.8, linestyle=":")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training error (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=8)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _reached(epochs: int | None, done: int) -> str:
    return str(epochs) if epochs else f"> {done}"


def main(argv=None) -> dict:
    parser = experiment_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--activations", nargs="+", choices=ACTIVATIONS, default=list(ACTIVATIONS),
                        metavar="NAME", help=f"of {', '.join(ACTIVATIONS)} (default all)")
    parser.add_argument("--epochs", type=int, default=0,
                        help="cap on epochs per activation (default: the config's, 24)")
    parser.add_argument("--chunk", type=int, default=4,
                        help="epochs trained between checks of the 25%% target (default 4)")
    parser.add_argument("--train-subset", type=int, default=-1,
                        help="first N training images, 0 = all 50,000 (default: the config's, 5,000)")
    parser.add_argument("--inputs", choices=INPUTS, default="centred",
                        help="centred: pixels minus the training mean, 0-255 units (the paper's; "
                             "default); standardised: the trainer's (x/255 - mean) / std")
    parser.add_argument("--lr", type=float, default=0.0,
                        help="one learning rate for every activation (default: per activation, "
                             "LEARNING_RATES or --tune-lr)")
    parser.add_argument("--tune-lr", action="store_true",
                        help="pick each activation's learning rate by a probe over --lr-grid first")
    parser.add_argument("--lr-grid", nargs="+", type=float, default=list(LR_GRID),
                        help=f"rates probed by --tune-lr (default {' '.join(map(str, LR_GRID))})")
    parser.add_argument("--probe-epochs", type=int, default=3,
                        help="epochs of each --tune-lr probe (default 3)")
    parser.add_argument("--kernel-init", default="",
                        help="weight initialiser of every layer, e.g. lecun_normal (default: the "
                             "config's, normal = N(0, 0.01))")
    parser.add_argument("--plot", default="",
                        help="PNG of the curves (default: beside the results file, "
                             "experiments/results/activations.png, or RUNS/activations.png)")
    args = parser.parse_args(argv)
    centred = args.inputs == "centred"

    env = print_header(TITLE, argv, __file__)
    data_note = ensure_dataset("cifar10", args.data_dir, args.shared_data)
    root = run_root(args.workdir, "activations")
    print(f"data:     {data_note}\nruns in:  {root}", flush=True)

    common = [f"keep_checkpoints={args.chunk + 1}"]  # every epoch-end checkpoint of a chunk
    if args.train_subset >= 0:
        common.append(f"data.train_subset={args.train_subset}")
    if args.kernel_init:
        common.append(f"model.kwargs.kernel_init={args.kernel_init}")
    if args.smoke:
        common += SMOKE_OVERRIDES
    if args.data_dir:
        common.append(f"data.data_dir={args.data_dir}")
    if args.epochs:
        common.append(f"num_epochs={args.epochs}")
    config = Run("-", CONFIG, tuple(common)).load()
    common = tuple(c for c in common if not c.startswith(("num_epochs=", "data.data_dir=")))
    cap, subset = config.num_epochs, config.data.train_subset or 50_000
    print(f"setup:    {CONFIG}, first {subset:,} training images, at most {cap} epochs, batch "
          f"{config.batch_size}, SGD momentum {config.optimizer.momentum:g}, "
          f"{config.optimizer.schedule} learning rate, {config.model.kwargs.kernel_init} weights, "
          f"{args.inputs} inputs", flush=True)

    start = time.perf_counter()
    probes, rates = {}, {}
    for name in args.activations:
        if args.lr:
            rates[name] = args.lr
        elif args.tune_lr:
            probes[name] = probe_lrs(name, common, root, args.data_dir, args.lr_grid,
                                     args.probe_epochs, centred)
            rates[name] = pick_lr(probes[name]) or min(args.lr_grid)
            print(f"{name}: learning rate {rates[name]:g} (probe, training error % after "
                  f"{args.probe_epochs} epochs: " + ", ".join(
                      f"{lr:g}: " + (f"{100 * e[-1]:.1f}" if e else "NaN")
                      for lr, e in probes[name].items()) + ")", flush=True)
        else:
            rates[name] = LEARNING_RATES[name]
    probe_wall = time.perf_counter() - start

    images, labels, spec, steps_per_epoch = fixed_training_images(
        config, min(TRAIN_EVAL_IMAGES, subset))
    results, curves = [], {}
    for name in args.activations:
        run = Run(name, CONFIG, (f"model.kwargs.activation={name}", *common,
                                 f"optimizer.lr={rates[name]}"))
        meter = TrainingErrorMeter(run.load(), images, labels, spec, steps_per_epoch, centred)
        summary, real, running, wall, status = train_curve(run, root, args.data_dir, cap,
                                                           args.chunk, meter, centred)
        real, running = [round(e, 4) for e in real], [round(e, 4) for e in running]
        curves[name] = real
        result = {"activation": name, "lr": rates[name], "status": status,
                  "train_error_per_epoch": real, "running_train_error_per_epoch": running,
                  "epochs_to_25": epochs_to(real, TARGET_ERROR),
                  "epochs_to_25_running": epochs_to(running, TARGET_ERROR),
                  "epochs_trained": len(real), "wall_seconds": round(wall, 1),
                  **({"lr_probe": {str(k): v for k, v in probes[name].items()}}
                     if name in probes else {}),
                  **({k: v for k, v in summary.items() if k != "wall_seconds"} if summary else {})}
        results.append(result)
        print(f"{name} (lr {rates[name]:g}): training error by epoch "
              + " ".join(f"{100 * e:.1f}" for e in real)
              + f"; 25% reached at epoch {result['epochs_to_25'] or '-'}"
              + (" (diverged)" if status == "diverged" else ""), flush=True)
    total = time.perf_counter() - start

    table = markdown_table(
        ["activation", "lr", "epochs to 25% train error", "same, running mean",
         "train error, last epoch %", "test error %", "wall"],
        [[r["activation"], f"{r['lr']:g}", _reached(r["epochs_to_25"], r["epochs_trained"]),
          _reached(r["epochs_to_25_running"], len(r["running_train_error_per_epoch"])),
          f"{100 * r['train_error_per_epoch'][-1]:.1f}" if r["train_error_per_epoch"] else "-",
          f"{100 * (1 - r['results']['test']['accuracy']):.1f}" if "results" in r else "-",
          format_seconds(r["wall_seconds"])] for r in results])
    print("\n" + table)

    by_name = {r["activation"]: r for r in results}
    speedup, bound = None, False  # tanh epochs / ReLU epochs to 25%; a lower bound if tanh did not
    if "relu" in by_name and "tanh" in by_name:
        relu, tanh = by_name["relu"]["epochs_to_25"], by_name["tanh"]["epochs_to_25"]
        if relu and tanh:
            speedup = tanh / relu
            print(f"\ntanh/ReLU epochs to 25% training error: {tanh}/{relu} = {speedup:.2f} "
                  f"(paper: about {PAPER_SPEEDUP:g})")
        elif relu:
            speedup, bound = by_name["tanh"]["epochs_trained"] / relu, True
            print(f"\nReLU reaches 25% training error at epoch {relu}, tanh not within "
                  f"{by_name['tanh']['epochs_trained']} epochs: tanh/ReLU at least "
                  f"{speedup:.2f} (paper: about {PAPER_SPEEDUP:g})")
        else:
            print(f"\nReLU did not reach 25% training error within {by_name['relu']['epochs_trained']}"
                  f" epochs (paper: ReLU about {PAPER_SPEEDUP:g}x faster than tanh)")
        if not args.smoke and speedup and not bound and speedup < PAPER_SPEEDUP / 1.5:
            print(f"The paper's ratio of about {PAPER_SPEEDUP:g} is not reproduced by this setup "
                  f"(measured {speedup:.2f}).")
    # The figure goes beside the results file when that is experiments/results/activations.json.
    default_results = results_path("activations", args.out, args.smoke) == RESULTS_DIR / "activations.json"
    plot = Path(args.plot) if args.plot else (
        RESULTS_DIR / "activations.png" if default_results else root / "activations.png")
    plot.parent.mkdir(parents=True, exist_ok=True)
    plot_curves(curves, plot, f"CIFAR-10 (JPEG-degraded copy), first {subset:,} training images, "
                              f"{args.inputs} inputs, {config.model.kwargs.kernel_init} weights,\n"
                              + ("lr per activation" if not args.lr else f"lr {args.lr:g}")
                              + f"; error of each epoch's final parameters on {len(labels):,} "
                                "fixed training images")
    print(f"curves: {plot}")
    print(f"total wall time {format_seconds(total)}" + (f" (learning-rate probes "
                                                        f"{format_seconds(probe_wall)})"
                                                        if probes else "")
          + f"; load average at the end {os.getloadavg()[0]:.2f}")
    print(f"training error: of each epoch's final parameters on {len(labels):,} fixed training "
          "images ('same, running mean': the trainer's mean over the epoch's mini-batches); "
          f"{args.inputs} inputs" + (" (the printed cnn-jax commands standardise instead: "
                                     "this script replaces the std by 1/255)" if centred else "")
          + "; CIFAR-10 here is a JPEG-degraded copy (quality 75)")

    notes = [f"CIFAR-10 (JPEG-degraded copy), first {subset:,} training images, {args.inputs} "
             f"inputs, {config.model.kwargs.kernel_init} weights, at most {cap} epochs; training "
             f"error of each epoch's final parameters on {len(labels):,} fixed training images.",
             speedup_sentence(speedup, bound, by_name),
             f"Total wall time {format_seconds(total)}"
             + (f" (learning-rate probes {format_seconds(probe_wall)})." if probes else ".")]
    try:
        figure = str(plot.resolve().relative_to(REPO_ROOT))
    except ValueError:
        figure = str(plot)
    record = results_record(
        "activations", TITLE, env, [make_table(
            ["activation", "learning rate", "epochs to 25% training error", "same, running mean",
             "training error at the last epoch trained %", "test error %", "wall"],
            [[r["activation"], f"{r['lr']:g}", _reached(r["epochs_to_25"], r["epochs_trained"]),
              _reached(r["epochs_to_25_running"], len(r["running_train_error_per_epoch"])),
              f"{100 * r['train_error_per_epoch'][-1]:.1f}" if r["train_error_per_epoch"] else "-",
              f"{100 * (1 - r['results']['test']['accuracy']):.1f}" if "results" in r else "-",
              format_seconds(r["wall_seconds"])] for r in results], notes=notes)],
        experiment="activations", smoke=args.smoke, data=data_note, train_subset=subset,
        epochs_cap=cap, inputs=args.inputs, target_error=TARGET_ERROR,
        relu_vs_tanh_speedup=speedup, speedup_is_lower_bound=bound, plot=str(plot),
        figure=figure, runs=results, total_wall_seconds=round(total, 1))
    save_results(record, args.out)
    return record


# --------------------------------------------------------------------------------------------
# The results file's sentences, and the row of the README's results table
# --------------------------------------------------------------------------------------------
def speedup_sentence(speedup: float | None, bound: bool, by_name: dict) -> str:
    if speedup is None:
        return "ReLU or tanh did not reach 25% training error (or was not run): no ratio."
    relu = by_name["relu"]["epochs_to_25"]
    if bound:
        return (f"tanh/ReLU epochs to 25% training error: at least {speedup:.2f} (tanh not "
                f"within {by_name['tanh']['epochs_trained']} epochs, ReLU at epoch {relu}); "
                f"paper: about {PAPER_SPEEDUP:g}.")
    return (f"tanh/ReLU epochs to 25% training error: {by_name['tanh']['epochs_to_25']}/{relu} "
            f"= {speedup:.2f}; paper: about {PAPER_SPEEDUP:g}.")


def readme_rows(record: dict | None) -> list[dict]:
    """The README's results row: tanh/ReLU epochs to 25% training error, ours from `record`."""
    ours = None
    if record and record.get("relu_vs_tanh_speedup"):
        ours = ("at least " if record["speedup_is_lower_bound"] else "") + \
            f"{record['relu_vs_tanh_speedup']:.2f}x"
    elif record:
        ours = "not reached"
    return [{"what": "ReLU vs tanh, CIFAR-10: epochs to 25% training error, tanh / ReLU",
             "how": "`experiments/activations.py`", "ours": ours,
             "paper": f"about {PAPER_SPEEDUP:g}x (Krizhevsky et al. 2012, Fig. 1)"}]


if __name__ == "__main__":
    main()
