"""The trainer: `train_and_evaluate(config, workdir)`, one run read top to bottom.

Sections: workdir and logging · mesh · input · task, model and optimizer · steps · checkpoints and
resume · the loop (train; log, checkpoint, stop, end of epoch) · final test.

A run is a pure function of its config: one PRNG key from `config.seed` initialises the model
and seeds dropout (folded with the step number), and batches are a pure function of (seed, epoch,
step), so a run restarted from its newest checkpoint ends with the same parameters, bit for bit,
as one that never stopped.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections

from cnn_jax.config import from_dict, to_dict
from cnn_jax.errors import ConfigError, NonFiniteLossError
from cnn_jax.tasks import create_task
from cnn_jax.training import sharding
from cnn_jax.training.checkpoint import RunCheckpoints
from cnn_jax.training.init import check_init_config
from cnn_jax.training.monitor import Monitor
from cnn_jax.training.reporting import (
    MetricWriter,
    Progress,
    logging_to,
    save_image_grid,
    stop_on_signals,
)
from cnn_jax.training.runs import input_pipeline
from cnn_jax.training.state import build_train_state, count_params
from cnn_jax.training.steps import StepRunner
from cnn_jax.training.validate import validate_config

log = logging.getLogger("cnn_jax")

# The keys a resumed run must share with the run that wrote the workdir.
RUN_IDENTITY = ("model.name", "data.name", "batch_size", "seed")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> dict:
    """Trains `config` in `workdir` (resuming from its newest checkpoint) and returns results.

    Returns the dict also written to `workdir/results.json`: test metrics of the best checkpoint
    by the task's validation metric (or of the final one when there is no validation split),
    epochs, steps, wall seconds (a finished run started again trains nothing, is evaluated again
    and keeps the wall seconds it finished with). If the run is stopped by SIGTERM/SIGINT it checkpoints the
    current step and returns `{"status": "preempted", ...}` without writing results.json.
    """
    start_time = time.time()
    # ---- workdir, logging, mesh -------------------------------------------------------------
    validate_config(config, num_devices=jax.device_count())
    mesh = sharding.create_mesh(model_axis=config.sharding.model_axis)
    workdir = Path(workdir)
    if not any(p.name.isdigit() for p in (workdir / "checkpoints").glob("*")):
        # A new run: initialiser names and init.checkpoint fail here, before data is read. (A
        # resumed run restores its own checkpoint, so its init source may be gone by now.)
        check_init_config(config.init)
    workdir.mkdir(parents=True, exist_ok=True)
    with logging_to(workdir):
        _save_or_check_config(config, workdir)
        return _run(config, workdir, mesh, start_time)


def _run(config, workdir: Path, mesh, start_time: float) -> dict:
    is_main = jax.process_index() == 0
    log.info("devices: %d x %s in %d process(es), mesh %s", mesh.size, mesh.devices.flat[0].platform,
             jax.process_count(), dict(mesh.shape))

    # ---- input ------------------------------------------------------------------------------
    data = input_pipeline(config)
    steps_per_epoch = data.steps_per_epoch
    if steps_per_epoch < 1:
        raise ConfigError(f"batch_size={config.batch_size} is larger than the {data.num_train} training "
                          "examples: lower batch_size")
    log.info("data %s: %d train / %d val / %d test, %d steps per epoch", data.spec.name, data.num_train,
             data.num_val, data.num_test, steps_per_epoch)

    # ---- task, model, optimizer, initial state ----------------------------------------------
    # Parameters and optimizer state are replicated, or sharded over the `model` axis by
    # config.sharding.rules (training/sharding.py); batches are split over the `data` axis.
    task = create_task(config, data.spec)
    ckpt = RunCheckpoints(workdir, keep=config.keep_checkpoints)
    resuming = ckpt.latest.latest_step() is not None
    state, schedule, dropout_key = build_train_state(config, data.spec, steps_per_epoch, mesh,
                                                     initialize=not resuming)
    state_sharding = jax.tree.map(lambda x: x.sharding, state)
    log.info("model %s: %s parameters", config.model.name, f"{count_params(state.params):,}")
    if split := sharding.sharded_paths(state_sharding.params):
        log.info("sharded over 'model' (%d devices): %s; parameters per device %.1f MB of %.1f MB",
                 mesh.shape[sharding.MODEL_AXIS], ", ".join(split), sharding.bytes_per_device(state.params) / 1e6,
                 sum(x.nbytes for x in jax.tree.leaves(state.params)) / 1e6)

    # ---- steps ------------------------------------------------------------------------------
    runner = StepRunner(mesh, state_sharding, task=task, dropout_key=dropout_key,
                        grad_accum_steps=config.optimizer.grad_accum_steps, steps_per_call=config.steps_per_call)

    # ---- checkpoints and resume -------------------------------------------------------------
    # A checkpoint holds the train state and the Monitor (plateau lr factor, early stopping).
    monitor = Monitor(config, task.watch, task.lower_is_better)

    def checkpoint_items(state) -> dict:
        return {**state.checkpoint_items(), "monitor": monitor.state_dict()}

    def with_lr_scale(state):
        scale = jax.device_put(jnp.asarray(monitor.lr_scale, jnp.float32), sharding.replicated(mesh))
        return state.replace(lr_scale=scale)

    restored = ckpt.restore_latest(checkpoint_items(state))
    if restored is not None:
        monitor.load_state_dict(restored.pop("monitor"))
        state = with_lr_scale(state.restore_items(restored))
        log.info("resumed from step %d (%s)", int(state.step), workdir / "checkpoints")
    best_score = ckpt.best_value()  # the watched metric, negated where lower is better
    first_step = step = int(state.step)

    # ---- the loop ---------------------------------------------------------------------------
    def is_log_step(s: int) -> bool:
        return s % config.log_every_steps == 0 or s % steps_per_epoch == 0

    def is_checkpoint_step(s: int) -> bool:
        return bool(config.checkpoint_every_steps) and s % config.checkpoint_every_steps == 0

    def must_sync(s: int) -> bool:  # the runner ends a call wherever the loop looks at the state
        return is_log_step(s) or is_checkpoint_step(s)

    writer = MetricWriter(workdir, enabled=is_main)
    progress = Progress(steps_per_epoch, config.num_epochs, enabled=config.progress_bar and is_main)
    sums = runner.zero_sums()
    calls, compile_seconds, preempted = 0, None, False
    last_log_step, last_log_time = step, time.time()
    # A run that early stopping ended trains no more when started again.
    batches = () if monitor.stopped else _train_batches(data, step, steps_per_epoch, config.num_epochs)
    with stop_on_signals() as stop:
        for step, chunk in runner.chunks(batches, first_step, must_sync):
            t0 = time.time()
            state, sums = runner(state, sums, chunk)
            calls += 1  # multi-process stop requests agree on this count
            if compile_seconds is None:
                jax.block_until_ready(sums)
                compile_seconds = time.time() - t0
                log.info("first train call (compilation included) took %.1f s", compile_seconds)
                last_log_step, last_log_time = step, time.time()

            if is_log_step(step):
                metrics = task.summarize(sums)
                _check_finite(metrics, sums, step, ckpt)
                now = time.time()
                rate = (step - last_log_step) * config.batch_size / max(now - last_log_time, 1e-9)
                last_log_step, last_log_time = step, now
                lr = float(schedule(step - 1)) * monitor.lr_scale
                writer.write(step, "train", {**metrics, "images_per_second": rate, "lr": lr},
                             epoch=step / steps_per_epoch)
                progress.update(step, **task.progress(metrics), img_s=f"{rate:,.0f}")
                sums = runner.zero_sums()
            else:
                progress.update(step)

            if is_checkpoint_step(step):
                ckpt.save_latest(step, checkpoint_items(state))

            if stop.reached(calls):
                _check_finite(task.summarize(sums), sums, step, ckpt)
                ckpt.save_latest(step, checkpoint_items(state), force=True)
                ckpt.wait()
                log.warning("stopped at step %d; the next start of this command resumes there", step)
                preempted = True
                break

            if step % steps_per_epoch == 0:  # end of an epoch: evaluate, checkpoint (latest, best)
                epoch = step // steps_per_epoch
                progress.close()
                val = runner.evaluate(state, data.eval_batches("val")) if data.num_val else None
                if val is not None:
                    writer.write(step, "val", val, epoch=epoch)
                    if task.watch_score(val) > best_score:
                        best_score = task.watch_score(val)
                        ckpt.save_best(step, checkpoint_items(state), best_score)
                    for event in monitor.end_of_epoch(epoch, val):
                        log.info("epoch %d: %s", epoch, event)
                    state = with_lr_scale(state)
                ckpt.save_latest(step, checkpoint_items(state))
                if is_main and hasattr(task, "samples"):  # generative models: what they make now
                    save_image_grid(task.samples(state), workdir / "samples" / f"epoch_{epoch:03d}.png")
                log.info("epoch %d/%d (step %d): %s", epoch, config.num_epochs, step,
                         f"val {task.describe(val)}" if val else "no validation split")
                last_log_time = time.time()  # images/s counts training only, not evaluation
                if monitor.stopped:
                    break
    progress.close()
    ckpt.wait()
    if preempted:
        ckpt.close()
        writer.close()
        return {"status": "preempted", "step": step}

    # ---- final test -------------------------------------------------------------------------
    results = {"status": "finished", "epochs": step // steps_per_epoch, "steps": step,
               "model": config.model.name, "dataset": data.spec.name}
    if monitor.stopped:
        results["stopped_early_at_epoch"] = monitor.stopped_epoch
    results["test_final"] = runner.evaluate(state, data.eval_batches("test"))
    best = ckpt.restore_best(checkpoint_items(state)) if data.num_val else None
    if best is not None:
        best.pop("monitor")
        # The best checkpoint at the last step holds the final parameters: its test is test_final.
        results["test"] = (results["test_final"] if int(best["step"]) == step else
                           runner.evaluate(state.restore_items(best), data.eval_batches("test")))
        best_val = -best_score if task.watch in task.lower_is_better else best_score
        results["checkpoint"] = f"best by validation {task.watch} (step {int(best['step'])}, val {best_val:.4f})"
        results[f"val_best_{task.watch}"] = best_val
    else:
        results["test"] = results["test_final"]
        results["checkpoint"] = f"final (step {step})"
    writer.write(step, "test", results["test"])
    results["wall_seconds"] = round(time.time() - start_time, 1)
    previous = workdir / "results.json"
    if step == first_step and previous.exists():  # trained nothing now: keep the training's time
        results["wall_seconds"] = json.loads(previous.read_text()).get("wall_seconds", results["wall_seconds"])
    results["compile_seconds"] = round(compile_seconds, 1) if compile_seconds else None
    # What one device holds of the train state (less than the whole with sharding rules).
    results["bytes_per_device"] = {"params": sharding.bytes_per_device(state.params),
                                   "opt_state": sharding.bytes_per_device(state.opt_state)}
    log.info("test (%s): %s", results["checkpoint"], task.describe(results["test"]))
    if is_main:
        (workdir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    ckpt.close()
    writer.close()
    return results


def _train_batches(data, step: int, steps_per_epoch: int, num_epochs: int) -> Iterator[dict]:
    """The training batches of steps step + 1, ..., steps_per_epoch * num_epochs, epoch after epoch."""
    for epoch in range(step // steps_per_epoch, num_epochs):
        start = step % steps_per_epoch if epoch == step // steps_per_epoch else 0
        yield from data.train_batches(epoch, start_step=start)


def _save_or_check_config(config: ml_collections.ConfigDict, workdir: Path) -> None:
    """Keeps the run's config in its workdir; refuses to resume a run of a different setup."""
    path = workdir / "config.json"
    if path.exists():
        saved = from_dict(json.loads(path.read_text()))
        for key in RUN_IDENTITY:
            a, b = _get(saved, key), _get(config, key)
            if a != b:
                raise ConfigError(f"workdir {workdir} holds a run with {key}={a!r}, this config has {b!r}: "
                                  "use a new --workdir (or the original config to resume)")
        if saved.to_dict() != config.to_dict():
            log.warning("resuming with a config that differs from %s; saving the new one", path)
    if jax.process_index() == 0:  # one writer in a multi-host run (the workdir is shared)
        path.write_text(json.dumps(to_dict(config), indent=2, sort_keys=True))


def _get(config, dotted: str):
    for part in dotted.split("."):
        config = config[part]
    return config


def _check_finite(metrics: dict, sums: dict, step: int, ckpt: RunCheckpoints) -> None:
    # No "loss" when no step was summed since the last log (a stop request right after one):
    # some tasks leave an average of nothing out rather than report 0.
    loss = metrics.get("loss", 0.0)
    if float(sums["nonfinite"]) > 0 or not math.isfinite(loss):
        ckpt.wait()
        last = ckpt.latest.latest_step()
        where = f"the last good checkpoint (step {last}) is intact" if last is not None else "no checkpoint was written"
        raise NonFiniteLossError(f"training loss became NaN/inf before step {step}; {where}: lower "
                                 "optimizer.lr or set optimizer.grad_clip_norm")
