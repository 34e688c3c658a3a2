"""Training curves from metrics.jsonl: per-epoch count-weighted training means, validation at
each epoch's end, the last test record, the learning rate, and resumed runs read once."""

import json

import numpy as np
import pytest

from cnn_jax.analysis import curves_figure, epoch_curves, learning_rate_figure, read_metrics


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


RECORDS = [
    {"step": 5, "split": "train", "epoch": 0.5, "loss": 2.0, "accuracy": 0.2, "count": 100,
     "lr": 0.1},
    {"step": 10, "split": "train", "epoch": 1.0, "loss": 1.0, "accuracy": 0.6, "count": 300,
     "lr": 0.05},
    {"step": 10, "split": "val", "epoch": 1, "loss": 1.2, "accuracy": 0.55, "count": 50},
    {"step": 20, "split": "train", "epoch": 2.0, "loss": 0.4, "accuracy": 0.9, "count": 400,
     "lr": 0.01},
    {"step": 20, "split": "val", "epoch": 2, "loss": 1.5, "accuracy": 0.6, "count": 50},
    {"step": 20, "split": "test", "loss": 1.3, "accuracy": 0.58, "count": 80},
]


def test_epoch_curves_weight_the_training_records_by_their_counts(tmp_path):
    _write(tmp_path / "metrics.jsonl", RECORDS)
    curves = epoch_curves(read_metrics(tmp_path))
    np.testing.assert_array_equal(curves.epochs, [1, 2])
    np.testing.assert_allclose(curves.train["loss"], [(2.0 * 100 + 1.0 * 300) / 400, 0.4])
    np.testing.assert_allclose(curves.train["accuracy"], [0.5, 0.9])
    np.testing.assert_allclose(curves.val["loss"], [1.2, 1.5])
    np.testing.assert_allclose(curves.gap("loss"), [1.2 - 1.25, 1.5 - 0.4])  # over-fitting grows
    np.testing.assert_allclose(curves.gap("accuracy"), [0.5 - 0.55, 0.9 - 0.6])
    assert curves.test == {"loss": 1.3, "accuracy": 0.58, "count": 80}
    np.testing.assert_array_equal(curves.lr_steps, [5, 10, 20])
    np.testing.assert_allclose(curves.lr, [0.1, 0.05, 0.01])


def test_a_resumed_run_counts_the_last_record_of_each_step(tmp_path):
    rerun = {**RECORDS[3], "loss": 0.3}
    _write(tmp_path / "metrics.jsonl", [*RECORDS[:4], rerun, *RECORDS[4:]])
    curves = epoch_curves(read_metrics(tmp_path / "metrics.jsonl"))
    np.testing.assert_allclose(curves.train["loss"], [1.25, 0.3])


def test_epochs_without_validation_are_nan(tmp_path):
    _write(tmp_path / "metrics.jsonl", [RECORDS[0], RECORDS[1], RECORDS[3]])
    curves = epoch_curves(read_metrics(tmp_path))
    assert np.isnan(curves.val["loss"]).all() and curves.test == {}


def test_a_workdir_without_metrics_says_what_to_pass(tmp_path):
    with pytest.raises(FileNotFoundError, match="--workdir of a `cnn-jax train`"):
        read_metrics(tmp_path)


def test_the_curves_figure_draws_each_split_per_epoch(tmp_path):
    _write(tmp_path / "metrics.jsonl", RECORDS)
    curves = epoch_curves(read_metrics(tmp_path))
    fig = curves_figure(curves)
    loss_axes = fig.axes[0]
    lines = {line.get_label(): line for line in loss_axes.get_lines()}
    np.testing.assert_allclose(lines["train"].get_ydata(), curves.train["loss"])
    np.testing.assert_allclose(lines["val"].get_ydata(), [1.2, 1.5])
    np.testing.assert_allclose(lines["test"].get_ydata(), [1.3, 1.3])
    lr = learning_rate_figure(curves.lr_steps, curves.lr).axes[0].get_lines()[0]
    np.testing.assert_allclose(lr.get_xdata(), [5, 10, 20])
