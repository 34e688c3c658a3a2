"""`cnn-jax`: train, eval, inspect models, prepare data.

    cnn-jax train --config configs/mnist_lenet5.py --workdir runs/x --config.optimizer.lr=0.05
    cnn-jax train --config configs/cifar10_resnet.py:56      # a config file's variant (get_config(arg))
    cnn-jax eval --workdir runs/x [--split test|val|train] [--checkpoint best|latest]
    cnn-jax predict --workdir runs/x image.png ...     # top-5 classes, or a PNG overlay per image
    cnn-jax report --workdir runs/x                    # runs/x/report/index.html and its PNGs
    cnn-jax data import mnist --from PATH [--data_dir DIR]
    cnn-jax data generate digit_scenes [--data_dir DIR]
    cnn-jax data list [--data_dir DIR]
    cnn-jax models [--family resnet]

Multi-host: every host runs the same `cnn-jax train` (or `eval`) with
    --coordinator-address HOST:PORT --num-processes N --process-id I
(or, on TPU pods and under Slurm or Open MPI, `--distributed` alone); see
cnn_jax/training/distributed.py and docs/scaling.md.

Errors a user can fix (bad config, missing data, bad input files) print one line and exit 2.
Each command imports what it needs when it runs, so that `cnn-jax --help` starts without JAX.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from cnn_jax.errors import ConfigError, DataNotPreparedError, NonFiniteLossError, one_line


def _split_config_overrides(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separates `--config.a.b=v` / `--config.a.b v` overrides from the other arguments."""
    rest, overrides = [], []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--config."):
            if "=" in arg:
                overrides.append(arg[len("--"):])
            elif i + 1 < len(args):
                overrides.append(f"{arg[len('--'):]}={args[i + 1]}")
                i += 1
            else:
                overrides.append(arg[len("--"):])  # reported as not key=value
        else:
            rest.append(arg)
        i += 1
    return rest, overrides


def _add_distributed_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("multi-process runs (one process per host; see docs/scaling.md)")
    g.add_argument("--coordinator-address", metavar="HOST:PORT",
                   help="process 0's address, reachable from every process (env JAX_COORDINATOR_ADDRESS)")
    g.add_argument("--num-processes", type=int, metavar="N", help="processes in the run (env JAX_NUM_PROCESSES)")
    g.add_argument("--process-id", type=int, metavar="I", help="this process, 0..N-1 (env JAX_PROCESS_ID)")
    g.add_argument("--distributed", action="store_true",
                   help="let JAX detect the cluster (Cloud TPU pods, Slurm, Open MPI, Kubernetes)")
    g.add_argument("--peer-timeout", type=int, default=60, metavar="S",
                   help="stop when another process has been silent this long (default 60 s)")
    g.add_argument("--initialization-timeout", type=int, default=300, metavar="S",
                   help="wait this long for every process to connect (default 300 s)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cnn-jax", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a config; resumes if the workdir has checkpoints",
                       epilog="Any config key can be overridden: --config.optimizer.lr=0.05")
    t.add_argument("--config", required=True,
                   help="a configs/*.py file with get_config(), or FILE:ARG for get_config(ARG)")
    t.add_argument("--workdir", help="run directory (default runs/<config name>)")
    _add_distributed_flags(t)

    pr = sub.add_parser("predict", help="a run's predictions for image files (top-5, or a PNG overlay)")
    pr.add_argument("--workdir", required=True)
    pr.add_argument("--checkpoint", default="best", choices=("best", "latest"))
    pr.add_argument("images", nargs="+", help="image files (resized to the model's input)")

    e = sub.add_parser("eval", help="the task's metrics of a run's best (or latest) checkpoint")
    e.add_argument("--workdir", required=True)
    e.add_argument("--split", default="test", choices=("test", "val", "train"),
                   help="train: the training examples (those the validation split leaves), "
                        "without augmentation, to set beside val and test")
    e.add_argument("--checkpoint", default="best", choices=("best", "latest"))
    _add_distributed_flags(e)

    d = sub.add_parser("data", help="prepare datasets")
    dsub = d.add_subparsers(dest="data_command", required=True)
    di = dsub.add_parser("import", help="import local copies into the tfds data_dir (offline)")
    di.add_argument("name", help="mnist, fashion_mnist, cifar10, cifar100, nuclei_dsb2018, "
                                 "voc2012_segmentation, voc2007_detection, voc2012_detection, coco2017, "
                                 "salicon, mit1003")
    di.add_argument("--from", dest="path", required=True,
                    help="a folder of the standard distribution files, an archive, or an .npz")
    di.add_argument("--data_dir", help="tfds data_dir (default $TFDS_DATA_DIR or ~/tensorflow_datasets)")
    dg = dsub.add_parser("generate", help="generate a dataset with exact ground truth")
    dg.add_argument("name", help="digit_scenes, digit_scenes_single, search_scenes, moving_mnist, or a "
                                 "variant such as digit_scenes/canvas=96,max_digits=6")
    dg.add_argument("--data_dir", help="tfds data_dir (default $TFDS_DATA_DIR or ~/tensorflow_datasets)")
    dl = dsub.add_parser("list", help="datasets prepared in the data_dir")
    dl.add_argument("--data_dir")

    rp = sub.add_parser("report", help="a run's report page: curves, filters, Grad-CAM, confusion (W/report)")
    rp.add_argument("--workdir", required=True)
    rp.add_argument("--split", default="test", choices=("test", "val"))
    rp.add_argument("--checkpoint", default="best", choices=("best", "latest"))
    rp.add_argument("--out", help="folder to write (default <workdir>/report)")

    m = sub.add_parser("models", help="list registered models")
    m.add_argument("--family")

    s = sub.add_parser("summary", help="per-layer shapes, activations, parameters and multiply-adds")
    s.add_argument("--model", required=True, help="a registered model name (`cnn-jax models`)")
    s.add_argument("--input", help="H,W,C of one image (default: the model's registered input)")
    s.add_argument("--num_classes", type=int, help="classifier width (default: the model's)")
    s.add_argument("--json", action="store_true", help="print JSON instead of the table")
    s.add_argument("--receptive-field", dest="receptive_field", action="store_true",
                   help="print each layer's receptive field (size, jump, start) instead")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    rest, overrides = _split_config_overrides(argv)
    args = _parser().parse_args(rest)
    if overrides and args.command != "train":
        print("error: --config.* overrides only apply to `cnn-jax train`", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.command not in ("train", "eval"):
        return _run_command(args, overrides)
    # A multi-process run joins its process group before anything else touches JAX.
    from cnn_jax.training import distributed

    try:
        options = distributed.DistributedOptions.from_args(
            args.coordinator_address, args.num_processes, args.process_id, args.distributed,
            args.peer_timeout, args.initialization_timeout)
        multi_process = distributed.initialize(options)
    except distributed.DistributedError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not multi_process:
        return _run_command(args, overrides)
    watchdog = distributed.PeerWatchdog(options.peer_timeout, options.coordinator_address).start()
    try:
        code = _run_command(args, overrides)
    except BaseException as e:  # a bug, or a collective that failed because a peer died
        import jax

        where = f"process {jax.process_index()} of {jax.process_count()}"
        if distributed.is_peer_failure(e):  # expected when a peer dies: one line, no traceback
            distributed.die(f"{where} lost a peer in a collective ({one_line(e)}); "
                            f"another process died, was killed or lost its network")
        import traceback

        traceback.print_exc()
        distributed.die(f"{where} failed: {one_line(e)}")
    if code:  # the error is printed; the other processes must not wait for this one
        distributed.exit_now(code)
    watchdog.finish()
    return code


def _run_command(args, overrides: list[str]) -> int:
    try:
        return _dispatch(args, overrides)
    except (ConfigError, DataNotPreparedError, NonFiniteLossError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _dispatch(args, overrides: list[str]) -> int:
    if args.command == "train":
        from cnn_jax.config import load_config
        from cnn_jax.training.loop import train_and_evaluate

        config = load_config(args.config, overrides)
        workdir = args.workdir or _default_workdir(args.config)
        results = train_and_evaluate(config, workdir)
        if _is_main_process():
            print(json.dumps(results, indent=2))
        return 0
    if args.command == "eval":
        from cnn_jax.training.evaluate import evaluate_workdir

        results = evaluate_workdir(args.workdir, args.split, args.checkpoint)
        if _is_main_process():
            print(json.dumps(results, indent=2))
        return 0
    if args.command == "predict":
        from cnn_jax.training.predict import predict_files

        for line in predict_files(args.workdir, args.images, args.checkpoint):
            print(line)
        return 0
    if args.command == "report":
        from cnn_jax.analysis.report import write_report
        from cnn_jax.training.runs import load_run

        print(write_report(load_run(args.workdir, args.checkpoint), args.out, args.split))
        return 0
    if args.command == "data":
        from cnn_jax.data import (
            data_main_generate,
            data_main_import,
            default_data_dir,
            list_prepared,
        )

        if args.data_command == "import":
            print(data_main_import(args.name, args.path, args.data_dir))
        elif args.data_command == "generate":
            print(data_main_generate(args.name, args.data_dir))
        else:
            for line in list_prepared(args.data_dir or default_data_dir()):
                print(line)
        return 0
    if args.command == "models":
        from cnn_jax.models import get_model_spec, list_models

        for name in list_models(args.family):
            s = get_model_spec(name)
            print(f"{name:24s} {s.family:12s} {'x'.join(map(str, s.input_shape)):12s} {s.description}")
        return 0
    if args.command == "summary":
        try:
            text = _summary(args.model, args.input, args.num_classes, args.json, args.receptive_field)
        except ValueError as e:  # unknown model, malformed --input
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(text)
        return 0
    raise AssertionError(args.command)


def _default_workdir(spec: str) -> str:
    """runs/<config name>[_<arg>] for `--config FILE[:ARG]`."""
    path, sep, arg = spec.rpartition(":")
    if not sep or "/" in arg:
        path, arg = spec, ""
    return str(Path("runs") / (Path(path).stem + (f"_{arg}" if arg else "")))


def parse_input_shape(text: str) -> tuple[int, ...]:
    """``'224,224,3'`` or ``'224x224x3'`` -> (224, 224, 3)."""
    parts = [p for p in text.replace("x", ",").split(",") if p.strip()]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"--input {text!r} is not a list of sizes like 224,224,3") from None
    if not shape or any(d < 1 for d in shape):
        raise ValueError(f"--input {text!r} is not a list of positive sizes like 224,224,3")
    return shape


def _summary(
    model: str,
    input_text: str | None = None,
    num_classes: int | None = None,
    as_json: bool = False,
    receptive_field: bool = False,
) -> str:
    """What ``cnn-jax summary`` prints: the summary (or receptive-field) table, or its JSON."""
    input_shape = parse_input_shape(input_text) if input_text else None
    from cnn_jax.analysis import receptive_field as compute_fields
    from cnn_jax.analysis import receptive_field_table, summarize_model

    if receptive_field:
        rows = compute_fields(model, input_shape, num_classes=num_classes)
        if as_json:
            return json.dumps([r.to_dict() for r in rows], indent=2)
        return receptive_field_table(rows, title=model)
    summary = summarize_model(model, input_shape, num_classes)
    return json.dumps(summary.to_dict(), indent=2) if as_json else summary.table()


def _is_main_process() -> bool:
    import jax

    return jax.process_index() == 0


if __name__ == "__main__":
    sys.exit(main())
