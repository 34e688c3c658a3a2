"""train_and_evaluate end to end on real MNIST digits: metrics, checkpoints, results, failures."""

import json

import numpy as np
import orbax.checkpoint as ocp
import pytest
from trainer_utils import small_config

from cnn_jax.errors import NonFiniteLossError
from cnn_jax.training.evaluate import evaluate_workdir
from cnn_jax.training.loop import _check_finite, train_and_evaluate


@pytest.fixture(scope="module")
def finished_run(mnist_data_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    results = train_and_evaluate(small_config(mnist_data_dir), workdir)
    return workdir, results


def test_results_json_holds_test_metrics_epochs_and_wall_time(finished_run):
    workdir, results = finished_run
    saved = json.loads((workdir / "results.json").read_text())
    assert saved == results
    assert saved["epochs"] == 2 and saved["steps"] == 48
    assert saved["test"]["count"] == 1000
    # Two epochs on 3,072 real digits put LeNet-5 far above chance (10%): measured accuracy 0.86,
    # loss 0.45, under both convolution backends (CNN_JAX_ONEDNN=0 gives the same digits). LeNet-5
    # has no BatchNorm and does not amplify rounding (parameters 1.8e-7 apart after 24 steps of
    # gradients summed in another order, test_recipe_loop.py), so another CPU's rounding moves the
    # accuracy by at most a few near-tie digits: the margins are 60 of 1,000 digits and 2.2x.
    assert saved["test"]["accuracy"] > 0.8
    assert 0 < saved["test"]["loss"] < 1.0
    assert saved["wall_seconds"] > 0


def test_training_loss_falls_and_every_split_is_logged(finished_run):
    workdir, _ = finished_run
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    assert [r["step"] for r in train] == [8, 16, 24, 32, 40, 48]
    assert train[-1]["loss"] < 0.5 * train[0]["loss"]  # measured 0.21 of it (1.84 -> 0.38)
    assert all(r["images_per_second"] > 0 and 0 <= r["top5_accuracy"] <= 1 for r in train)
    assert [r["step"] for r in records if r["split"] == "val"] == [24, 48]
    assert [r["split"] for r in records].count("test") == 1
    assert list((workdir / "tb").glob("events.out.tfevents.*"))


def test_latest_and_best_checkpoints_are_kept(finished_run):
    workdir, results = finished_run
    assert sorted(int(p.name) for p in (workdir / "checkpoints").iterdir()) == [24, 48]
    best = [int(p.name) for p in (workdir / "best").iterdir()]
    assert len(best) == 1 and str(best[0]) in results["checkpoint"]


def test_eval_command_reproduces_the_test_metrics(finished_run):
    workdir, results = finished_run
    evaluated = evaluate_workdir(workdir, "test", "best")
    # The same evaluation program on the same restored parameters and batches: the same bits.
    assert evaluated["accuracy"] == results["test"]["accuracy"]
    assert evaluated["loss"] == results["test"]["loss"]


def test_a_best_checkpoint_at_the_last_step_is_tested_once(mnist_data_dir, tmp_path, monkeypatch):
    # One epoch: one validation, so the best checkpoint is the last step's, whose parameters are
    # the final ones: the test evaluation of the final state is its test, not a second pass.
    from cnn_jax.training import steps

    calls = []
    evaluate = steps.StepRunner.evaluate
    monkeypatch.setattr(steps.StepRunner, "evaluate",
                        lambda self, *args: calls.append(1) or evaluate(self, *args))
    results = train_and_evaluate(small_config(mnist_data_dir, num_epochs=1), tmp_path)
    assert results["checkpoint"].startswith("best by validation") and "step 24" in results["checkpoint"]
    assert results["test"] == results["test_final"]
    assert len(calls) == 2  # the validation and one test pass
    assert evaluate_workdir(tmp_path, "test", "best")["accuracy"] == results["test"]["accuracy"]


def test_rerunning_a_finished_run_resumes_and_trains_no_more(finished_run):
    workdir, results = finished_run
    again = train_and_evaluate(_same_config(workdir), workdir)
    assert again["steps"] == results["steps"]
    assert again["test"]["accuracy"] == results["test"]["accuracy"]  # the same program again
    assert again["wall_seconds"] == results["wall_seconds"]  # the training's time, not the re-evaluation's


def _same_config(workdir):
    from cnn_jax.config import from_dict

    return from_dict(json.loads((workdir / "config.json").read_text()))


def test_nonfinite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(mnist_data_dir, tmp_path):
    # Epoch 1 trains normally and is checkpointed at step 24; at epoch 1 the step schedule
    # multiplies the learning rate by 1e30, so the loss overflows during epoch 2.
    config = small_config(mnist_data_dir, **{"optimizer.schedule": "step", "optimizer.decay_epochs": "(1,)",
                                             "optimizer.decay_factor": "1e30"})
    with pytest.raises(NonFiniteLossError, match=r"NaN/inf .* last good checkpoint \(step 24\) is intact"):
        train_and_evaluate(config, tmp_path)
    assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()) == [24]
    restored = ocp.StandardCheckpointer().restore((tmp_path / "checkpoints" / "24" / "default").absolute())
    leaves = [np.asarray(x) for x in __import__("jax").tree.leaves(restored["params"])]
    assert all(np.isfinite(x).all() for x in leaves)
    assert not (tmp_path / "results.json").exists()


def test_a_stop_right_after_a_log_step_finds_no_loss_to_check_and_goes_on_to_save():
    # The detection task's summary of zero summed steps has no "loss"; the stop path checks it
    # before its checkpoint (a SIGTERM there raised KeyError and saved nothing).
    nothing = {"nonfinite": np.float32(0.0), "loss": np.float32(0.0), "loss_count": np.float32(0.0),
               "count": np.float32(0.0)}
    _check_finite({"count": 0}, nothing, step=8, ckpt=None)

    class Checkpoints:  # what _check_finite reads when it raises
        def wait(self):
            pass

        class latest:  # noqa: N801
            @staticmethod
            def latest_step():
                return 4

    with pytest.raises(NonFiniteLossError, match="step 4"):
        _check_finite({"count": 0}, {**nothing, "nonfinite": np.float32(1.0)}, step=8,
                      ckpt=Checkpoints())


def test_workdir_of_another_model_is_not_resumed(finished_run, mnist_data_dir):
    from cnn_jax.errors import ConfigError

    workdir, _ = finished_run
    with pytest.raises(ConfigError, match="use a new --workdir"):
        train_and_evaluate(small_config(mnist_data_dir, **{"model.name": "lenet1"}), workdir)
