"""Training curves from a run's ``metrics.jsonl``: loss and accuracy per epoch on the training and
validation splits, and the learning rate per step.

The trainer logs a training record every ``log_every_steps`` (the metrics of the steps since the
previous record, ``count`` examples, with a fractional ``epoch``), a validation record at the end of
each epoch and test records at the end of the run. An epoch's training value here is the
count-weighted mean of the records logged during it, so it is the average over the epoch's
batches (taken while the weights were moving, with dropout and augmentation on), against the
validation value of the weights at the epoch's end. Their gap is what over-fitting looks like
(Goodfellow, Bengio & Courville 2016, "Deep Learning", §7.8 and Fig. 7.3). A resumed run appends
to the file: the last record of each (split, step) counts.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np

METRICS = ("loss", "accuracy")


def read_metrics(path: str | Path) -> list[dict]:
    """The records of ``metrics.jsonl`` (a run's workdir or the file itself), one per
    (split, step) — the last one written — in file order."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: pass the --workdir of a `cnn-jax train`")
    records: dict[tuple[str, int], dict] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            key = (record.get("split", ""), record.get("step", 0))
            records.pop(key, None)
            records[key] = record
    return list(records.values())


@dataclasses.dataclass(frozen=True)
class Curves:
    """Per-epoch values of each split (``train``, ``val``): ``curves.train['loss'][e]`` belongs to
    epoch ``curves.epochs[e]``, NaN where the split logged nothing that epoch."""

    epochs: np.ndarray
    train: dict[str, np.ndarray]
    val: dict[str, np.ndarray]
    test: dict[str, float]
    """The last test record (the reported checkpoint's metrics), empty before the run ends."""
    lr_steps: np.ndarray
    lr: np.ndarray

    def gap(self, metric: str = "loss") -> np.ndarray:
        """Validation minus training value per epoch (for accuracy: training minus validation),
        positive when the model does better on the data it trains on."""
        if metric == "loss":
            return self.val[metric] - self.train[metric]
        return self.train[metric] - self.val[metric]

    def to_dict(self) -> dict:
        return {"epochs": self.epochs.tolist(),
                "train": {k: v.tolist() for k, v in self.train.items()},
                "val": {k: v.tolist() for k, v in self.val.items()}, "test": dict(self.test)}


def epoch_curves(records: list[dict]) -> Curves:
    """Per-epoch training and validation loss and accuracy, and the learning rate, of the
    records of :func:`read_metrics`."""
    train = [r for r in records if r.get("split") == "train"]
    val = [r for r in records if r.get("split") == "val"]
    test = [r for r in records if r.get("split") == "test"]

    def epoch_of(record) -> int:
        return max(1, math.ceil(float(record.get("epoch", 0)) - 1e-9))

    epochs = sorted({epoch_of(r) for r in train} | {int(r["epoch"]) for r in val if "epoch" in r})
    index = {e: i for i, e in enumerate(epochs)}

    def table(rows, weighted: bool) -> dict[str, np.ndarray]:
        out = {}
        for metric in METRICS:
            sums, weights = np.zeros(len(epochs)), np.zeros(len(epochs))
            for r in rows:
                if metric in r:
                    w = float(r.get("count", 1)) if weighted else 1.0
                    sums[index[epoch_of(r)]] += w * float(r[metric])
                    weights[index[epoch_of(r)]] += w
            with np.errstate(invalid="ignore"):
                out[metric] = sums / np.where(weights > 0, weights, np.nan)
        return out

    lr_rows = [r for r in train if "lr" in r]
    last_test = {k: v for k, v in test[-1].items() if k not in ("split", "step")} if test else {}
    return Curves(epochs=np.asarray(epochs, int), train=table(train, True), val=table(val, False),
                  test=last_test, lr_steps=np.asarray([r["step"] for r in lr_rows], int),
                  lr=np.asarray([r["lr"] for r in lr_rows], float))
