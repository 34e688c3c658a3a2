"""The trainer: `train_and_evaluate(config, workdir)`, one run read top to bottom.

Sections: workdir and logging · mesh · input · model and optimizer · sharding and steps ·
checkpoints and resume · the loop (train, log, evaluate, checkpoint) · final test.

A run is a pure function of its config: one PRNG key from `config.seed` initialises the model
and seeds dropout (folded with the step number) and the input order (fixed by seed and epoch),
so a run restarted from its newest checkpoint ends with the same parameters as one that never
stopped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cnn_jax.config import ConfigError, from_dict, to_dict, validate_config
from cnn_jax.layers.conv import set_conv_impl
from cnn_jax.metrics import summarize
from cnn_jax.models import create_model
from cnn_jax.optim import create_optimizer
from cnn_jax.training import sharding
from cnn_jax.training.checkpoint import RunCheckpoints
from cnn_jax.training.monitor import Monitor
from cnn_jax.training.state import count_params, create_train_state, init_variables
from cnn_jax.training.steps import make_multi_step, make_steps, shard_chunk, zero_metrics

log = logging.getLogger("cnn_jax")

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the last good checkpoint is left as it was."""


# --------------------------------------------------------------------------------------------
# Workdir, logging, metric writers
# --------------------------------------------------------------------------------------------
def _import_tensorboardx_writer():
    """tensorboardX's SummaryWriter, imported without the torch import tensorboardX tries when
    torch is installed (2 s of a 20 s MNIST run; we only write floats). Later `import torch`
    works as usual."""
    if "torch" in sys.modules:
        from tensorboardX import SummaryWriter

        return SummaryWriter
    sys.modules["torch"] = None  # makes `import torch` raise ImportError, which tensorboardX catches
    try:
        from tensorboardX import SummaryWriter
    finally:
        del sys.modules["torch"]
    return SummaryWriter


class MetricWriter:
    """Writes each record to workdir/metrics.jsonl and to TensorBoard event files (workdir/tb)."""

    def __init__(self, workdir: Path, enabled: bool = True):
        self.enabled = enabled
        if not enabled:
            return
        SummaryWriter = _import_tensorboardx_writer()
        self._jsonl = open(workdir / "metrics.jsonl", "a", buffering=1)
        self._tb = SummaryWriter(str(workdir / "tb"))

    def write(self, step: int, split: str, values: dict, **extra) -> None:
        if not self.enabled:
            return
        record = {"step": int(step), "split": split, **extra, **values}
        self._jsonl.write(json.dumps(record) + "\n")
        for key, value in values.items():
            if isinstance(value, (int, float)) and key != "count":
                self._tb.add_scalar(f"{split}/{key}", value, int(step))

    def close(self) -> None:
        if self.enabled:
            self._jsonl.close()
            self._tb.close()


class _TqdmHandler(logging.StreamHandler):
    """Console log lines printed through tqdm, so they do not break a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


def _setup_logging(workdir: Path) -> logging.Handler:
    """Console + workdir/log.txt (log.process<i>.txt for the other processes of a multi-host run)."""
    log.setLevel(logging.INFO)
    log.propagate = False  # absl installs a root handler; print each line once
    if not any(isinstance(h, _TqdmHandler) for h in log.handlers):
        console = _TqdmHandler()
        console.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        log.addHandler(console)
    name = "log.txt" if jax.process_index() == 0 else f"log.process{jax.process_index()}.txt"
    file_handler = logging.FileHandler(workdir / name)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(file_handler)
    return file_handler


def _save_or_check_config(config: ml_collections.ConfigDict, workdir: Path) -> None:
    """Keeps the run's config in its workdir; refuses to resume a run of a different setup."""
    path = workdir / "config.json"
    if path.exists():
        saved = from_dict(json.loads(path.read_text()))
        for key in ("model.name", "data.name", "batch_size", "seed"):
            a, b = _get(saved, key), _get(config, key)
            if a != b:
                raise ConfigError(
                    f"workdir {workdir} holds a run with {key}={a!r}, this config has {b!r}: "
                    "use a new --workdir (or the original config to resume)"
                )
        if saved.to_dict() != config.to_dict():
            log.warning("resuming with a config that differs from %s; saving the new one", path)
    if jax.process_index() == 0:  # one writer in a multi-host run (the workdir is shared)
        path.write_text(json.dumps(to_dict(config), indent=2, sort_keys=True))


def _get(config, dotted: str):
    for part in dotted.split("."):
        config = config[part]
    return config


class _StopRequest:
    """Whether to checkpoint and stop after `step`: a SIGTERM/SIGINT flag in a single process.

    In a multi-process run every process must stop after the same step (the checkpoint is
    written collectively), whichever process got the signal: JAX's preemption service catches
    SIGTERM and `reached_preemption_sync_point` names the same step on every process. SIGINT
    (Ctrl-C) is turned into a SIGTERM of this process so that it takes the same path.
    """

    def __init__(self, flag: threading.Event, multi_process: bool):
        self.flag = flag
        self.multi_process = multi_process

    def reached(self, call: int) -> bool:
        """Asked after every train call; `call` counts them (+1 each, the same on every process)."""
        if self.multi_process:
            from jax.experimental import multihost_utils

            return multihost_utils.reached_preemption_sync_point(call)
        return self.flag.is_set()


@contextlib.contextmanager
def _stop_on_signals():
    """SIGTERM/SIGINT make `reached(step)` true after a step (then the loop checkpoints and exits)."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield _StopRequest(flag, False)
        return
    if jax.process_count() > 1:
        def forward(signum, _frame):
            log.warning("received SIGINT: stopping every process at the same step, as for SIGTERM")
            signal.signal(signal.SIGINT, previous_int)
            os.kill(os.getpid(), signal.SIGTERM)

        previous_int = signal.signal(signal.SIGINT, forward)
        try:
            yield _StopRequest(flag, True)
        finally:
            signal.signal(signal.SIGINT, previous_int)
        return

    def handler(signum, _frame):
        log.warning("received %s: saving a checkpoint at the current step, then stopping",
                    signal.Signals(signum).name)
        flag.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield _StopRequest(flag, False)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _progress(total: int, initial: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, leave=False,
                dynamic_ncols=True, mininterval=0.5, file=sys.stderr)


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------
def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> dict:
    """Trains `config` in `workdir` (resuming from its newest checkpoint) and returns results.

    Returns the dict also written to `workdir/results.json`: test metrics of the best
    checkpoint by validation accuracy (or of the final one when there is no validation split),
    epochs, steps, wall seconds. If the run is stopped by SIGTERM/SIGINT it checkpoints the
    current step and returns `{"status": "preempted", ...}` without writing results.json.
    """
    start_time = time.time()
    # ---- workdir and logging ----------------------------------------------------------------
    validate_config(config, num_devices=jax.device_count())
    set_conv_impl(config.conv_impl)
    mesh = sharding.create_mesh(model_axis=config.sharding.model_axis)
    workdir = Path(workdir)
    if not any(p.name.isdigit() for p in (workdir / "checkpoints").glob("*")):
        # A new run: initialiser names and init.checkpoint fail here, before data is read. (A
        # resumed run restores its own checkpoint, so its init source may be gone by now.)
        from cnn_jax.training.init import check_init_config

        check_init_config(config.init)
    workdir.mkdir(parents=True, exist_ok=True)
    file_handler = _setup_logging(workdir)
    try:
        return _run(config, workdir, mesh, start_time)
    finally:
        log.removeHandler(file_handler)
        file_handler.close()


def _run(config, workdir: Path, mesh, start_time: float) -> dict:
    _save_or_check_config(config, workdir)
    is_main = jax.process_index() == 0
    writer = MetricWriter(workdir, enabled=is_main)
    log.info("devices: %d x %s in %d process(es), mesh %s", mesh.size, mesh.devices.flat[0].platform,
             jax.process_count(), dict(mesh.shape))

    # ---- input --------------------------------------------------------------------------------
    data = _input_pipeline(config)
    spec = data.spec
    steps_per_epoch = data.steps_per_epoch
    if steps_per_epoch < 1:
        raise ConfigError(
            f"batch_size={config.batch_size} is larger than the {data.num_train} training examples: "
            "lower batch_size"
        )
    total_steps = steps_per_epoch * config.num_epochs
    log.info("data %s: %d train / %d val / %d test, %d steps per epoch", spec.name, data.num_train,
             data.num_val, data.num_test, steps_per_epoch)

    # ---- model, optimizer, initial state -----------------------------------------------------
    # Parameters and optimizer state are replicated, or sharded over the `model` axis by
    # config.sharding.rules (training/sharding.py); batches are split over the `data` axis.
    replicated = sharding.replicated(mesh)
    ckpt = RunCheckpoints(workdir, keep=config.keep_checkpoints)
    resuming = ckpt.latest.latest_step() is not None
    state, schedule, dropout_key = build_train_state(
        config, spec, steps_per_epoch, mesh, initialize=not resuming)
    state_sharding = jax.tree.map(lambda x: x.sharding, state)
    log.info("model %s: %s parameters", config.model.name, f"{count_params(state.params):,}")
    if split := sharding.sharded_paths(state_sharding.params):
        log.info("sharded over 'model' (%d devices): %s; parameters per device %.1f MB of %.1f MB",
                 mesh.shape[sharding.MODEL_AXIS], ", ".join(split),
                 sharding.bytes_per_device(state.params) / 1e6,
                 sum(x.nbytes for x in jax.tree.leaves(state.params)) / 1e6)

    # ---- steps --------------------------------------------------------------------------------
    step_options = dict(dropout_key=dropout_key, mean=spec.mean, std=spec.std,
                        label_smoothing=config.loss.label_smoothing,
                        grad_accum_steps=config.optimizer.grad_accum_steps)
    train_step, eval_step = make_steps(mesh, state_sharding, sharding.batch_sharding(mesh), **step_options)
    steps_per_call = config.steps_per_call
    multi_step = (make_multi_step(mesh, state_sharding, sharding.batch_sharding(mesh), **step_options)
                  if steps_per_call > 1 else None)

    def evaluate(split: str, state) -> dict:
        sums = jax.device_put(zero_metrics(), replicated)
        for batch in data.eval_batches(split):
            sums = eval_step(state, sums, sharding.shard_batch(batch, mesh))
        return summarize(sums)

    # ---- checkpoints and resume ---------------------------------------------------------------------
    # A checkpoint holds the train state and the Monitor (plateau lr factor, early stopping).
    monitor = Monitor(config)

    def checkpoint_items(state) -> dict:
        return {**state.checkpoint_items(), "monitor": monitor.state_dict()}

    def with_lr_scale(state):
        return state.replace(lr_scale=jax.device_put(jnp.asarray(monitor.lr_scale, jnp.float32), replicated))

    restored = ckpt.restore_latest(checkpoint_items(state))
    if restored is not None:
        monitor.load_state_dict(restored.pop("monitor"))
        state = with_lr_scale(state.restore_items(restored))
        log.info("resumed from step %d (%s)", int(state.step), workdir / "checkpoints")
    best_val = ckpt.best_val_accuracy()
    step = int(state.step)

    # ---- the loop -----------------------------------------------------------------------------------
    # Steps run `steps_per_call` at a time (one jitted call, steps.make_multi_step). A call ends
    # after every step the loop acts on: multiples of steps_per_call, log, checkpoint and epoch
    # steps, and the first step (alone, so that its time is the compilation's). The calls are
    # therefore the same in a resumed run as in an uninterrupted one. A stretch shorter than
    # steps_per_call between two such steps runs one step per call (only two programs compile).
    def ends_a_call(s: int) -> bool:
        return (s % steps_per_call == 0 or s % steps_per_epoch == 0 or s % config.log_every_steps == 0
                or bool(config.checkpoint_every_steps and s % config.checkpoint_every_steps == 0)
                or s == first_step + 1)

    sums = jax.device_put(zero_metrics(), replicated)
    images_per_step = config.batch_size
    first_step = step
    calls = 0  # train calls so far: the counter that multi-process stop requests agree on
    last_log_step, last_log_time = step, time.time()
    compile_seconds = None
    preempted = False
    with _stop_on_signals() as stop:
        while step < total_steps and not preempted and not monitor.stopped:
            epoch = step // steps_per_epoch
            bar = _progress(steps_per_epoch, step % steps_per_epoch,
                            f"epoch {epoch + 1}/{config.num_epochs}", config.progress_bar and is_main)
            pending = []
            for batch in data.train_batches(epoch, start_step=step % steps_per_epoch):
                pending.append(batch)
                if not ends_a_call(step + len(pending)):
                    continue
                t0 = time.time()
                if len(pending) == steps_per_call > 1:
                    state, sums = multi_step(state, sums, shard_chunk(pending, mesh))
                else:
                    for one in pending:
                        state, sums = train_step(state, sums, sharding.shard_batch(one, mesh))
                step += len(pending)
                bar.update(len(pending))
                pending = []
                calls += 1
                if compile_seconds is None:
                    jax.block_until_ready(sums)
                    if multi_step is not None:  # compile the K-step call now, not in a timed step
                        multi_step.compile_for(state, sums, shard_chunk([batch] * steps_per_call, mesh))
                    compile_seconds = time.time() - t0
                    log.info("first train step (compilation included) took %.1f s", compile_seconds)
                    last_log_step, last_log_time = step, time.time()
                if step % config.log_every_steps == 0 or step % steps_per_epoch == 0:
                    train_metrics = summarize(sums)
                    _check_finite(sums, step, ckpt)
                    now = time.time()
                    ips = (step - last_log_step) * images_per_step / max(now - last_log_time, 1e-9)
                    last_log_step, last_log_time = step, now
                    lr = float(schedule(step - 1)) * monitor.lr_scale
                    writer.write(step, "train", {**train_metrics, "images_per_second": ips, "lr": lr},
                                 epoch=step / steps_per_epoch)
                    bar.set_postfix(loss=f"{train_metrics['loss']:.4f}",
                                    acc=f"{train_metrics['accuracy']:.4f}", img_s=f"{ips:,.0f}")
                    sums = jax.device_put(zero_metrics(), replicated)
                if config.checkpoint_every_steps and step % config.checkpoint_every_steps == 0:
                    ckpt.save_latest(step, checkpoint_items(state))
                if stop.reached(calls):
                    _check_finite(sums, step, ckpt)
                    ckpt.save_latest(step, checkpoint_items(state), force=True)
                    ckpt.wait()
                    log.warning("stopped at step %d; the next start of this command resumes there", step)
                    preempted = True
                    break
            bar.close()
            if preempted or step % steps_per_epoch:
                continue
            # End of an epoch: evaluate, log, checkpoint (latest, and best by validation).
            epoch_done = step // steps_per_epoch
            record = {"epoch": epoch_done}
            if data.num_val:
                val = evaluate("val", state)
                writer.write(step, "val", val, epoch=epoch_done)
                record["val"] = val
                if val["accuracy"] > best_val:
                    best_val = val["accuracy"]
                    ckpt.save_best(step, checkpoint_items(state), best_val)
                for event in monitor.end_of_epoch(epoch_done, val):
                    log.info("epoch %d: %s", epoch_done, event)
                state = with_lr_scale(state)
            ckpt.save_latest(step, checkpoint_items(state))
            log.info("epoch %d/%d (step %d): %s", epoch_done, config.num_epochs, step,
                     _fmt(record.get("val"), "val") or "no validation split")
            last_log_time = time.time()  # images/s counts training only, not evaluation

    ckpt.wait()
    if preempted:
        ckpt.close()
        writer.close()
        return {"status": "preempted", "step": step}

    # ---- final test ---------------------------------------------------------------------------------
    results = {"status": "finished", "epochs": step // steps_per_epoch, "steps": step,
               "model": config.model.name, "dataset": spec.name}
    if monitor.stopped:
        results["stopped_early_at_epoch"] = monitor.stopped_epoch
    final_test = evaluate("test", state)
    results["test_final"] = final_test
    best = ckpt.restore_best(checkpoint_items(state)) if data.num_val else None
    if best is not None:
        best.pop("monitor")
        results["test"] = evaluate("test", state.restore_items(best))
        results["checkpoint"] = f"best by validation accuracy (step {int(best['step'])}, val {best_val:.4f})"
        results["val_best_accuracy"] = best_val
    else:
        results["test"] = final_test
        results["checkpoint"] = f"final (step {step})"
    writer.write(step, "test", results["test"])
    results["wall_seconds"] = round(time.time() - start_time, 1)
    results["compile_seconds"] = round(compile_seconds, 1) if compile_seconds else None
    # What one device holds of the train state (less than the whole with sharding rules).
    results["bytes_per_device"] = {"params": sharding.bytes_per_device(state.params),
                                   "opt_state": sharding.bytes_per_device(state.opt_state)}
    log.info("test (%s): %s", results["checkpoint"], _fmt(results["test"], "test"))
    if is_main:
        (workdir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    ckpt.close()
    writer.close()
    return results


def build_train_state(config: ml_collections.ConfigDict, spec, steps_per_epoch: int, mesh, *,
                      initialize: bool = True):
    """The model's initial train state on `mesh` (parameters replicated, or sharded by
    `config.sharding.rules`; optimizer state like its parameters), its schedule and dropout key.

    One PRNG key from `config.seed` gives the initial parameters and the dropout stream. With
    `initialize`, `config.init` then applies (per-layer-type initialisers, weights of another
    run or of torchvision); a resumed run skips that, its checkpoint replaces everything anyway.
    """
    model = create_model(config.model.name, num_classes=spec.num_classes,
                         dtype=DTYPES[config.model.dtype], **config.model.kwargs.to_dict())
    init_key, dropout_key = jax.random.split(jax.random.key(config.seed))
    replicated = sharding.replicated(mesh)

    def init(key):
        return init_variables(model, key, spec.image_shape)

    # Each parameter is created where the rules place it: a model too large for one device is
    # never assembled on one.
    shapes = jax.eval_shape(init, init_key)
    try:
        variable_sharding = {"params": sharding.param_shardings(shapes["params"], mesh, config.sharding.rules),
                             "batch_stats": jax.tree.map(lambda _: replicated, shapes["batch_stats"])}
    except ValueError as e:
        raise ConfigError(_one_line(e)) from None
    try:
        tx, schedule = create_optimizer(config.optimizer, steps_per_epoch, config.num_epochs,
                                        params=shapes["params"], batch_size=config.batch_size)
    except ValueError as e:
        raise ConfigError(_one_line(e)) from None

    def new_state(v):
        return create_train_state(model, tx, v, ema_decay=config.optimizer.ema_decay)

    if initialize and _init_requested(config.init):
        from cnn_jax.training.init import initialize_from_config

        variables = jax.jit(init, out_shardings=variable_sharding)(init_key)
        try:
            variables = initialize_from_config(
                config.init, variables, rng=jax.random.fold_in(init_key, 1), model_name=config.model.name,
                image_shape=spec.image_shape, num_classes=spec.num_classes,
                model_kwargs=config.model.kwargs.to_dict())
        except ValueError as e:
            raise ConfigError(_one_line(e)) from None
        variables = jax.device_put(variables, variable_sharding)
        state_sharding = sharding.state_shardings(jax.eval_shape(new_state, variables), mesh,
                                                  config.sharding.rules)
        return jax.jit(new_state, out_shardings=state_sharding)(variables), schedule, dropout_key

    def new_state_from_key(key):  # parameters and optimizer state in one program (one compile)
        return new_state(init(key))

    state_sharding = sharding.state_shardings(jax.eval_shape(new_state_from_key, init_key), mesh,
                                              config.sharding.rules)
    # Compiled without XLA's backend optimisations: the program runs once, and optimising its
    # random-number generation costs more compile time than it saves in running. The values differ
    # from an optimised build's in the last bits (a different float contraction), the same every run.
    state = jax.jit(new_state_from_key, out_shardings=state_sharding).lower(init_key).compile(
        compiler_options={"xla_backend_optimization_level": 0})(init_key)
    return state, schedule, dropout_key


def _init_requested(init_cfg) -> bool:
    return bool(init_cfg.checkpoint or init_cfg.conv_kernel or init_cfg.dense_kernel or init_cfg.bias)


def _one_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def _input_pipeline(config: ml_collections.ConfigDict):
    """This process's input pipeline; data options that cannot work become a ConfigError."""
    from cnn_jax.data.pipeline import create_input_pipeline

    try:
        return create_input_pipeline(
            config.data,
            seed=config.seed,
            batch_size=config.batch_size,
            eval_batch_size=config.eval_batch_size,
            process_index=jax.process_index(),
            process_count=jax.process_count(),
        )
    except ValueError as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(str(e).splitlines()[0]) from None


def _check_finite(sums: dict, step: int, ckpt: RunCheckpoints) -> None:
    if float(sums["nonfinite"]) > 0 or not math.isfinite(float(sums["loss"])):
        ckpt.wait()
        last = ckpt.latest.latest_step()
        where = f"the last good checkpoint (step {last}) is intact" if last is not None else "no checkpoint was written"
        raise NonFiniteLossError(
            f"training loss became NaN/inf before step {step}; {where}: lower optimizer.lr or "
            "set optimizer.grad_clip_norm"
        )


def _fmt(metrics: dict | None, prefix: str) -> str:
    if not metrics:
        return ""
    return (f"{prefix} loss {metrics['loss']:.4f}, accuracy {metrics['accuracy']:.4f}, "
            f"top-5 {metrics['top5_accuracy']:.4f} ({metrics['count']} examples)")


# --------------------------------------------------------------------------------------------
# Evaluation of a finished (or interrupted) run
# --------------------------------------------------------------------------------------------
def evaluate_workdir(workdir: str | Path, split: str = "test", checkpoint: str = "best") -> dict:
    """Evaluates the run in `workdir` on `split` with its best (or latest) checkpoint."""
    workdir = Path(workdir)
    path = workdir / "config.json"
    if not path.exists():
        raise ConfigError(f"{workdir} holds no run (no config.json): pass the --workdir of a `cnn-jax train`")
    config = from_dict(json.loads(path.read_text()))
    validate_config(config, num_devices=jax.device_count())
    set_conv_impl(config.conv_impl)
    mesh = sharding.create_mesh(model_axis=config.sharding.model_axis)
    data = _input_pipeline(config)
    if split == "val" and not data.num_val:
        raise ConfigError("this run has no validation split (data.val_size=0): use --split test")
    replicated = sharding.replicated(mesh)
    state, _, _ = build_train_state(config, data.spec, max(data.steps_per_epoch, 1), mesh, initialize=False)
    target = {**state.checkpoint_items(), "monitor": Monitor(config).state_dict()}
    ckpt = RunCheckpoints(workdir, keep=config.keep_checkpoints)
    items = None
    used = checkpoint
    if checkpoint == "best":
        items = ckpt.restore_best(target)
        if items is None:
            used = "latest"
    if items is None:
        items = ckpt.restore_latest(target)
    ckpt.close()
    if items is None:
        raise ConfigError(f"{workdir} has no checkpoint yet: train first")
    items.pop("monitor")
    state = state.restore_items(items)
    _, eval_step = make_steps(mesh, jax.tree.map(lambda x: x.sharding, state), sharding.batch_sharding(mesh),
                              dropout_key=jax.random.key(0), mean=data.spec.mean, std=data.spec.std,
                              label_smoothing=0.0)
    sums = jax.device_put(zero_metrics(), replicated)
    for batch in data.eval_batches(split):
        sums = eval_step(state, sums, sharding.shard_batch(batch, mesh))
    metrics = summarize(sums)
    return {"split": split, "checkpoint": used, "step": int(np.asarray(state.step)), **metrics}
