"""Orbax checkpoints of a run: the latest N, the best by a validation metric, auto-resume.

    workdir/checkpoints/<step>/   latest `keep` checkpoints (epoch ends, every
                                  `checkpoint_every_steps`, and on SIGTERM)
    workdir/best/<step>/          the one with the best validation metric so far (the task's
                                  `watch`: accuracy for classifiers; higher is better)

Orbax writes each checkpoint to a temporary directory and renames it into place when complete,
so a run killed at any moment leaves only whole checkpoints. If the newest one still fails to
restore (a damaged disk, a truncated file) we fall back to the one before it, with a warning.

In a multi-process run every process calls the same saves and restores: Orbax writes each
checkpoint collectively (each process its shards, process 0 the metadata and the final rename),
so the workdir must be one directory every host sees (NFS, a Filestore or gcsfuse mount).
"""

from __future__ import annotations

import logging
from pathlib import Path

import jax
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


def _abstract(tree):
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def _barrier_prefix(name: str) -> ocp.options.MultiprocessingOptions:
    # In a multi-process run every process takes part in each save, meeting at barriers named
    # after the step; the two managers save the same step at an epoch's end, so their barriers
    # need different names.
    return ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=name)


class RunCheckpoints:
    """The two checkpoint managers of one workdir."""

    def __init__(self, workdir: str | Path, keep: int):
        workdir = Path(workdir).absolute()
        self.latest = ocp.CheckpointManager(
            workdir / "checkpoints",
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                                 multiprocessing_options=_barrier_prefix("latest")),
        )
        self.best = ocp.CheckpointManager(
            workdir / "best",
            options=ocp.CheckpointManagerOptions(
                max_to_keep=1, create=True, best_fn=best_metric, best_mode="max",
                multiprocessing_options=_barrier_prefix("best"),
            ),
        )

    def save_latest(self, step: int, items: dict, *, force: bool = False) -> None:
        if self.latest.latest_step() == step:
            return
        self.latest.save(step, args=ocp.args.StandardSave(items), force=force)

    def save_best(self, step: int, items: dict, value: float) -> None:
        """Saves `items` as the best checkpoint, `value` being its validation metric."""
        if self.best.latest_step() == step:
            return
        self.best.save(step, args=ocp.args.StandardSave(items), metrics={"val": float(value)}, force=True)

    def best_value(self) -> float:
        """The validation metric of the best checkpoint (-inf when there is none)."""
        step = self.best.best_step()
        if step is None:
            return float("-inf")
        metrics = self.best.metrics(step) if hasattr(self.best, "metrics") else None
        return best_metric(metrics) if metrics else float("-inf")

    def restore_latest(self, target: dict) -> dict | None:
        """Newest checkpoint that restores, as a dict like `target`; None when there is none."""
        return _restore_newest(self.latest, target)

    def restore_best(self, target: dict) -> dict | None:
        step = self.best.best_step()
        if step is None:
            return None
        return self.best.restore(step, args=ocp.args.StandardRestore(_abstract(target)))

    def wait(self) -> None:
        self.latest.wait_until_finished()
        self.best.wait_until_finished()

    def close(self) -> None:
        self.latest.close()
        self.best.close()


def best_metric(metrics: dict) -> float:
    # 'val_accuracy' is what runs of classifiers wrote before the metric became the task's.
    return float(metrics["val"] if "val" in metrics else metrics["val_accuracy"])


def _restore_newest(manager: ocp.CheckpointManager, target: dict) -> dict | None:
    abstract = _abstract(target)
    for step in sorted(manager.all_steps(), reverse=True):
        try:
            return manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except Exception as e:  # a damaged checkpoint: say so and use the one before it
            log.warning(
                "checkpoint at step %d in %s cannot be restored (%s); trying the previous one",
                step, manager.directory, str(e).splitlines()[0] if str(e) else type(e).__name__,
            )
    return None
