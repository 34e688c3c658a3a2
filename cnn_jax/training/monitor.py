"""Watching a validation metric across epochs: the plateau schedule and early stopping.

Both count epochs without improvement of one validation metric ('accuracy', higher is
better, or 'loss', lower is better), improvement meaning better than the best so far by more
than `min_delta`:

* Plateau (Krizhevsky et al. 2012, §5: "divide the learning rate by 10 when the validation
  error rate stopped improving"): after `patience` epochs in a row without improvement the
  learning rate is multiplied by `decay_factor` and the count starts again.
* Early stopping: after `patience` epochs in a row without improvement training ends; the
  test then uses the best checkpoint by validation accuracy, as every run does.

Patience is counted as Keras counts it: with patience 2, the second epoch in a row without
improvement acts. (torch's ReduceLROnPlateau acts one epoch later, on the third.)

The state is a few numbers, saved in every checkpoint (`state_dict` / `load_state_dict`) so a
resumed run takes the same decisions as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np


@dataclasses.dataclass
class Patience:
    """Counts epochs without improvement of a validation metric."""

    metric: str = "accuracy"
    patience: int = 1
    min_delta: float = 0.0
    best: float = math.nan
    bad_epochs: int = 0
    lower_is_better: bool = False  # True for losses and divergences

    def __post_init__(self):
        if self.patience < 1:
            raise ValueError(f"patience must be at least 1, got {self.patience}")

    def _improved(self, value: float) -> bool:
        if math.isnan(self.best):
            return True
        if self.lower_is_better:
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, metrics: dict) -> bool:
        """Records one epoch's validation metrics; True when patience has run out."""
        # float32, as checkpoints keep it, so a resumed run compares the same numbers
        value = float(np.float32(metrics[self.metric]))
        if self._improved(value):
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def reset_count(self) -> None:
        self.bad_epochs = 0


class Monitor:
    """The plateau schedule's learning-rate factor and the early-stopping decision of a run.

    Each watches its configured validation metric, or `default_metric` (the task's `watch`) when
    the config leaves it empty; a metric of `lower_is_better` improves by falling.
    """

    def __init__(self, config, default_metric: str = "accuracy", lower_is_better=("loss",)):
        def patience(metric, count, min_delta):
            metric = metric or default_metric
            return Patience(metric, count, min_delta, lower_is_better=metric in lower_is_better)

        self.plateau = None
        if config.optimizer.schedule == "plateau":
            self.plateau = patience(config.optimizer.plateau_metric, config.optimizer.plateau_patience,
                                    config.optimizer.plateau_min_delta)
        self.decay_factor = float(config.optimizer.decay_factor)
        self.early = None
        if config.early_stopping.patience > 0:
            self.early = patience(config.early_stopping.metric, config.early_stopping.patience,
                                  config.early_stopping.min_delta)
        self.lr_scale = 1.0
        self.stopped_epoch = 0  # the epoch after which early stopping ended training (0: never)

    def end_of_epoch(self, epoch: int, val_metrics: dict) -> list[str]:
        """Updates with one epoch's validation metrics; returns what it decided, for the log."""
        events = []
        if self.plateau is not None and self.plateau.update(val_metrics):
            self.lr_scale = float(np.float32(self.lr_scale * self.decay_factor))
            self.plateau.reset_count()
            events.append(f"validation {self.plateau.metric} has not improved for "
                          f"{self.plateau.patience} epoch(s): learning rate x{self.decay_factor:g} "
                          f"(now x{self.lr_scale:g} of the schedule)")
        if self.early is not None and self.early.update(val_metrics):
            self.stopped_epoch = epoch
            events.append(f"early stopping: validation {self.early.metric} has not improved for "
                          f"{self.early.patience} epoch(s) (best {self.early.best:.4f})")
        return events

    @property
    def stopped(self) -> bool:
        return self.stopped_epoch > 0

    def state_dict(self) -> dict:
        def watched(p):
            best, bad = (p.best, p.bad_epochs) if p else (math.nan, 0)
            return [np.asarray(best, np.float32), np.asarray(bad, np.int32)]

        # 0-d arrays: what Orbax's StandardSave stores
        return {
            "lr_scale": np.asarray(self.lr_scale, np.float32),
            "stopped_epoch": np.asarray(self.stopped_epoch, np.int32),
            "plateau": watched(self.plateau),
            "early": watched(self.early),
        }

    def load_state_dict(self, d: dict) -> None:
        self.lr_scale = float(d["lr_scale"])
        self.stopped_epoch = int(d["stopped_epoch"])
        for p, (best, bad) in ((self.plateau, d["plateau"]), (self.early, d["early"])):
            if p is not None:
                p.best, p.bad_epochs = float(best), int(bad)
