"""Recipe options through the whole trainer on real MNIST digits: plateau schedule, early
stopping, EMA evaluation, gradient accumulation, frozen layers."""

import json

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from trainer_utils import small_config

from cnn_jax.data.pipeline import create_input_pipeline
from cnn_jax.errors import ConfigError
from cnn_jax.training import sharding
from cnn_jax.training.evaluate import evaluate_workdir
from cnn_jax.training.loop import train_and_evaluate
from cnn_jax.training.state import build_train_state


def _records(workdir, split="train"):
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["split"] == split]


def _final_params(workdir, step):
    restored = ocp.StandardCheckpointer().restore((workdir / "checkpoints" / str(step) / "default").absolute())
    return restored


def test_plateau_schedule_divides_the_lr_when_validation_stops_improving(mnist_data_dir, tmp_path):
    # min_delta=1 makes every epoch after the first "no improvement": patience 1 -> x0.1 after epoch 2
    config = small_config(mnist_data_dir, num_epochs=3, **{
        "optimizer.schedule": "plateau", "optimizer.plateau_patience": 1,
        "optimizer.plateau_min_delta": 1.0})
    train_and_evaluate(config, tmp_path)
    lr = {r["step"]: r["lr"] for r in _records(tmp_path)}
    assert [lr[s] for s in (8, 24, 32, 48)] == pytest.approx([0.05] * 4)
    assert [lr[s] for s in (56, 72)] == pytest.approx([0.005] * 2)
    log = (tmp_path / "log.txt").read_text()
    assert "learning rate x0.1" in log


def test_early_stopping_ends_the_run_and_a_restart_trains_no_more(mnist_data_dir, tmp_path):
    config = small_config(mnist_data_dir, num_epochs=5, **{
        "early_stopping.patience": 1, "early_stopping.min_delta": 1.0})
    results = train_and_evaluate(config, tmp_path)
    assert results["stopped_early_at_epoch"] == 2
    assert results["epochs"] == 2 and results["steps"] == 48
    assert [r["step"] for r in _records(tmp_path, "val")] == [24, 48]
    again = train_and_evaluate(config, tmp_path)
    assert again["steps"] == 48 and again["stopped_early_at_epoch"] == 2


def test_ema_parameters_are_checkpointed_and_evaluated(mnist_data_dir, tmp_path):
    config = small_config(mnist_data_dir, num_epochs=1, **{"optimizer.ema_decay": 0.9})
    results = train_and_evaluate(config, tmp_path)
    saved = _final_params(tmp_path, 24)
    assert "ema_params" in saved
    diff = max(float(np.max(np.abs(a - b))) for a, b in
               zip(jax.tree.leaves(saved["ema_params"]), jax.tree.leaves(saved["params"]), strict=True))
    assert diff > 1e-4
    evaluated = evaluate_workdir(tmp_path, "test", checkpoint="latest")
    assert evaluated["accuracy"] == pytest.approx(results["test_final"]["accuracy"], abs=1e-6)


@pytest.mark.slow
def test_gradient_accumulation_trains_like_the_whole_batch(mnist_data_dir, tmp_path):
    whole = small_config(mnist_data_dir, num_epochs=1)
    accumulated = small_config(mnist_data_dir, num_epochs=1, **{"optimizer.grad_accum_steps": 4})
    train_and_evaluate(whole, tmp_path / "whole")
    train_and_evaluate(accumulated, tmp_path / "accumulated")
    a = jax.tree.leaves(_final_params(tmp_path / "whole", 24)["params"])
    b = jax.tree.leaves(_final_params(tmp_path / "accumulated", 24)["params"])
    diffs = [float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=True)]
    # LeNet-5 has no BatchNorm or dropout: the same gradient, summed in another order (4 micro-
    # batches of 32 in a scan, not one program over 128). Its largest sums, C1's weight gradient,
    # have 128 * 28 * 28 = 100,352 products: ~sqrt(100,352) * 2^-24 = 2e-5 of the update (random
    # rounding), the update is ~1e-2, and without BatchNorm the 24 steps add such differences up
    # rather than amplify them: <= 24 * 2e-5 * 1e-2 = 5e-6, under 1e-4 with 20x to spare. Measured:
    # 1.8e-7 (1.5e-7 with CNN_JAX_ONEDNN=0). A wrong accumulation (a sum not divided by k, one
    # micro-batch's gradient) moves parameters by ~1e-2.
    assert max(diffs) < 1e-4
    assert max(diffs) > 0  # in another order, so the accumulating step did run


def test_accumulation_that_does_not_divide_the_batch_is_refused(mnist_data_dir, tmp_path):
    config = small_config(mnist_data_dir, **{"optimizer.grad_accum_steps": 3})
    with pytest.raises(ConfigError, match="grad_accum_steps"):
        train_and_evaluate(config, tmp_path)


def test_frozen_layers_keep_their_initial_values_bitwise(mnist_data_dir, tmp_path):
    config = small_config(mnist_data_dir, num_epochs=1, **{
        "optimizer.freeze_regex": "^(c1|c3)/", "optimizer.weight_decay": 1e-3})
    train_and_evaluate(config, tmp_path)
    trained = _final_params(tmp_path, 24)["params"]
    mesh = sharding.create_mesh()
    data = create_input_pipeline(config.data, seed=config.seed, batch_size=128, eval_batch_size=500)
    initial, _, _ = build_train_state(config, data.spec, data.steps_per_epoch, mesh)
    for layer in ("c1", "c3"):
        for leaf in ("kernel", "bias"):
            np.testing.assert_array_equal(np.asarray(trained[layer][leaf]), np.asarray(initial.params[layer][leaf]))
    assert not np.array_equal(np.asarray(trained["output"]["kernel"]), np.asarray(initial.params["output"]["kernel"]))


@pytest.mark.slow
def test_mixup_and_distortions_train_through_the_trainer(mnist_data_dir, tmp_path):
    config = small_config(mnist_data_dir, num_epochs=1, **{
        "data.augment.mixup_alpha": 0.4, "data.augment.rotation": 10.0, "data.augment.elastic_alpha": 34.0})
    plain = train_and_evaluate(small_config(mnist_data_dir, num_epochs=1), tmp_path / "plain")
    mixed = train_and_evaluate(config, tmp_path / "mixed")
    train = _records(tmp_path / "mixed")
    # soft targets raise the training loss well above the plain run's, and the run still learns.
    # Measured under both convolution backends: last training loss 1.63 (mixed) against 0.72,
    # test accuracy 0.66 (mixed) and 0.78 (chance: 0.1). LeNet-5's trajectory does not amplify
    # rounding (see the gradient accumulation test), so another CPU moves these accuracies by a
    # few near-tie digits, against a margin of 60 of 1,000.
    assert train[-1]["loss"] > _records(tmp_path / "plain")[-1]["loss"] + 0.1
    assert mixed["test"]["accuracy"] > 0.6 and plain["test"]["accuracy"] > 0.6


@pytest.mark.slow
def test_a_run_starts_from_another_runs_weights_with_a_fresh_head(mnist_data_dir, tmp_path):
    source = train_and_evaluate(small_config(mnist_data_dir, num_epochs=1), tmp_path / "source")
    # lr 1e-6: the first epoch hardly moves the loaded weights, so validation starts where the
    # source run ended instead of at chance
    transfer = small_config(mnist_data_dir, num_epochs=1, **{
        "init.checkpoint": str(tmp_path / "source"), "optimizer.lr": 1e-6})
    results = train_and_evaluate(transfer, tmp_path / "transfer")
    assert results["test"]["accuracy"] == pytest.approx(source["test"]["accuracy"], abs=0.01)
    scratch = train_and_evaluate(small_config(mnist_data_dir, num_epochs=1, **{"optimizer.lr": 1e-6}),
                                 tmp_path / "scratch")
    assert scratch["test"]["accuracy"] < 0.5
    with pytest.raises(ConfigError, match="does not exist"):
        train_and_evaluate(small_config(mnist_data_dir, **{"init.checkpoint": str(tmp_path / "nope")}),
                           tmp_path / "bad")
