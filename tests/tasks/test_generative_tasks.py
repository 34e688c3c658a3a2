"""Generative tasks in the one trainer: the autoencoder's and the VAE's likelihoods, a GAN's
alternating players with one optimizer each, samples written every epoch."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cnn_jax.config import base_config
from cnn_jax.optim import per_part
from cnn_jax.tasks import ReconstructionTask
from cnn_jax.training.loop import train_and_evaluate


def test_per_part_steps_one_player_and_leaves_the_others_moments_alone():
    tx = per_part(optax.adam(0.1), ("a", "b"))
    params = {"a": jnp.ones(3), "b": jnp.ones(2)}
    state = tx.init(params)
    updates, state2 = tx.update({"a": jnp.ones(3)}, state, params)
    assert set(updates) == {"a"} and float(updates["a"][0]) == pytest.approx(-0.1, rel=1e-5)  # Adam eps
    assert jax.tree.leaves(state2["b"])[1] is jax.tree.leaves(state["b"])[1]  # b untouched
    assert int(state2["a"][0].count) == 1 and int(state2["b"][0].count) == 0


def test_reconstruction_loss_is_the_bernoulli_nll_of_the_pixels_in_nats():
    task = ReconstructionTask(mean=(0.0,), std=(1.0,))
    images = np.array([[[[0], [255]], [[128], [0]]]], np.uint8)  # one 2x2 image
    logits = jnp.zeros((1, 2, 2, 1))  # p = 0.5 everywhere: ln 2 per pixel
    loss, sums = task.train_loss(logits, {"image": images})
    assert float(loss) == pytest.approx(4 * np.log(2), rel=1e-6)
    assert float(sums["count"]) == 1


def _config(data_dir, task, model, **extra):
    c = base_config()
    c.task, c.model.name = task, model
    c.data.data_dir, c.data.val_size, c.data.train_subset = str(data_dir), 0, 256
    c.batch_size, c.eval_batch_size, c.num_epochs = 64, 500, 1
    c.optimizer.name, c.optimizer.lr, c.optimizer.b1 = "adam", 2e-4, 0.5
    c.optimizer.schedule, c.progress_bar, c.log_every_steps = "constant", False, 2
    for key, value in extra.items():
        c.model.kwargs[key] = value
    return c


@pytest.mark.parametrize("task, model, watched", [
    pytest.param("vae", "vae", "elbo", marks=pytest.mark.slow),
    pytest.param("gan", "dcgan", "d_loss", marks=pytest.mark.slow),
    ("reconstruction", "autoencoder", "loss")])
def test_generative_runs_train_in_the_trainer_and_write_samples(mnist_data_dir, tmp_path, task, model, watched):
    results = train_and_evaluate(_config(mnist_data_dir, task, model), tmp_path)
    assert results["status"] == "finished" and results["steps"] == 4
    assert np.isfinite(results["test"][watched]) and results["test"]["count"] == 1000
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "train"] == [2, 4]
    assert (tmp_path / "samples" / "epoch_001.png").exists() == (task != "reconstruction")
    if task == "vae":
        assert results["test"]["elbo"] == pytest.approx(-results["test"]["loss"])


def test_a_gan_step_moves_both_players_and_their_own_moments(mnist_data_dir):
    from cnn_jax.data import dataset_spec_from_config
    from cnn_jax.tasks import create_task
    from cnn_jax.training import sharding
    from cnn_jax.training.state import build_train_state

    config = _config(mnist_data_dir, "gan", "dcgan")
    spec = dataset_spec_from_config(config.data)
    state, _, _ = build_train_state(config, spec, 4, sharding.create_mesh())
    task = create_task(config, spec)
    batch = {"image": np.random.default_rng(0).integers(0, 256, (8, 28, 28, 1), dtype=np.uint8)}
    new, sums = jax.jit(task.train_step)(state, task.zero_sums(), batch, jax.random.key(0))
    for part in ("generator", "discriminator"):
        moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), state.params[part], new.params[part])
        assert max(jax.tree.leaves(moved)) > 0, part
        assert int(new.opt_state[part][0].count) == 1  # one Adam step each
    assert int(new.step) == 1 and float(sums["count"]) == 8
    assert 0.0 < float(sums["d_real"]) / 8 < 1.0 and np.isfinite(float(sums["g_loss"]))
