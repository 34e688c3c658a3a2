"""The plateau schedule and early stopping decide on the validation metric, epoch by epoch."""

import math

import pytest

from cnn_jax.config import base_config
from cnn_jax.training.monitor import Monitor, Patience


def _config(**changes):
    c = base_config()
    for key, value in changes.items():
        section, leaf = key.split(".")
        c[section][leaf] = value
    return c


def _run(monitor, accuracies):
    scales, stops = [], []
    for epoch, acc in enumerate(accuracies, start=1):
        monitor.end_of_epoch(epoch, {"accuracy": acc, "loss": 1 - acc})
        scales.append(monitor.lr_scale)
        stops.append(monitor.stopped)
    return scales, stops


def test_plateau_divides_the_lr_by_ten_exactly_when_patience_runs_out():
    monitor = Monitor(_config(**{"optimizer.schedule": "plateau", "optimizer.plateau_patience": 2}))
    #            best  up    same  worse  up   same  same  same  same
    accuracies = [0.5, 0.6, 0.6, 0.59, 0.7, 0.7, 0.7, 0.7, 0.7]
    scales, _ = _run(monitor, accuracies)
    expected = [1, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.001]
    assert scales == pytest.approx(expected, rel=1e-6)


def test_plateau_on_loss_watches_for_a_decrease_and_min_delta_counts():
    p = Patience("loss", patience=1, min_delta=0.05, lower_is_better=True)
    assert not p.update({"loss": 1.0})
    assert p.update({"loss": 0.97})  # better, but by less than min_delta: no improvement
    p.reset_count()
    assert not p.update({"loss": 0.9})
    assert p.best == pytest.approx(0.9)


def test_early_stopping_stops_after_patience_epochs_without_improvement():
    monitor = Monitor(_config(**{"early_stopping.patience": 3}))
    _, stops = _run(monitor, [0.5, 0.6, 0.55, 0.6, 0.59, 0.7])
    assert stops == [False, False, False, False, True, True]
    assert monitor.stopped_epoch == 5
    assert monitor.lr_scale == 1.0  # no plateau schedule configured


def test_monitor_state_round_trips_so_a_resumed_run_decides_the_same():
    config = _config(**{"optimizer.schedule": "plateau", "optimizer.plateau_patience": 2,
                        "early_stopping.patience": 4})
    a = Monitor(config)
    _run(a, [0.5, 0.6, 0.6, 0.59])
    b = Monitor(config)
    b.load_state_dict(a.state_dict())
    rest = [0.6, 0.6, 0.6, 0.6]
    assert _run(a, rest) == _run(b, rest)


def test_zero_patience_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        Patience("accuracy", patience=0)
    assert math.isnan(Patience().best)


def test_an_empty_metric_watches_the_tasks_own_in_its_direction():
    monitor = Monitor(_config(**{"early_stopping.patience": 1}), "mean_iou")
    assert monitor.early.metric == "mean_iou" and not monitor.early.lower_is_better
    monitor = Monitor(_config(**{"early_stopping.patience": 1, "early_stopping.metric": "loss"}), "mean_iou")
    assert monitor.early.metric == "loss" and monitor.early.lower_is_better


def test_a_metric_the_task_does_not_report_is_a_config_error():
    from cnn_jax.errors import ConfigError
    from cnn_jax.tasks import check_task

    class Spec:
        name, targets, num_classes = "mnist", ("label",), 10

    config = _config(**{"early_stopping.metric": "mean_iou"})
    with pytest.raises(ConfigError, match="early_stopping.metric='mean_iou' is not a metric of task 'classification'"):
        check_task(config, Spec())
