"""The configs and experiment scripts of saliency, motion, sequences and generative models: each
config builds the task, model and data it names; each script runs end to end (--smoke) and writes
the table it promises; their verdicts decide as their docstrings say."""

import math

import numpy as np
import pytest
from conftest import REPO_ROOT
from experiment_scripts import script, smoke

from cnn_jax.config import load_config
from cnn_jax.errors import ConfigError
from cnn_jax.training.validate import validate_config

pytestmark = pytest.mark.usefixtures("fast_compilation")
EXPERIMENTS = REPO_ROOT / "experiments"

# config spec: (task, model, dataset, loss or None)
CONFIGS = {
    "search_saliency.py:mse": ("saliency", "mlnet", "search_scenes", "mse"),
    "search_saliency.py:ead": ("saliency", "mlnet", "search_scenes", "ead"),
    "search_saliency.py:mlnet": ("saliency", "mlnet", "search_scenes", "mlnet"),
    "search_saliency.py:kl_divergence": ("saliency", "mlnet", "search_scenes", "kl_divergence"),
    "search_saliency.py:bhattacharyya": ("saliency", "mlnet", "search_scenes", "bhattacharyya"),
    "moving_mnist_motion.py:3d": ("classification", "c3d_small", "moving_mnist/frames=16", None),
    "moving_mnist_motion.py:2d": ("classification", "frames2d_small", "moving_mnist/frames=16", None),
    "moving_mnist_motion.py:frame": ("classification", "frame2d_small", "moving_mnist/frames=16", None),
    "seq_mnist_tcn.py:seq": ("classification", "tcn_seq_mnist", "mnist", None),
    "seq_mnist_tcn.py:permuted": ("classification", "tcn_pmnist", "mnist", None),
    "mnist_generative.py:autoencoder": ("reconstruction", "autoencoder", "mnist", None),
    "mnist_generative.py:vae": ("vae", "vae", "mnist", None),
    "mnist_generative.py:dcgan": ("gan", "dcgan", "mnist", None),
    "mnist_generative.py:autoencoder_fashion": ("reconstruction", "autoencoder", "fashion_mnist", None),
    "mnist_generative.py:vae_fashion": ("vae", "vae", "fashion_mnist", None),
    "mnist_generative.py:dcgan_fashion": ("gan", "dcgan", "fashion_mnist", None),
}
# Commands each config's header must give (one per file at least).
COMMANDS = ("search_saliency.py:kl_divergence", "moving_mnist_motion.py:3d", "seq_mnist_tcn.py:seq",
            "seq_mnist_tcn.py:permuted", "mnist_generative.py:vae", "mnist_generative.py:dcgan")


@pytest.mark.parametrize("spec", list(CONFIGS))
def test_config_sets_its_task_model_and_data_and_validates(spec):
    config = load_config(f"{REPO_ROOT}/configs/{spec}")
    task, model, data, loss = CONFIGS[spec]
    assert (config.task, config.model.name, config.data.name) == (task, model, data)
    if loss is not None:
        assert config.loss.name == loss
    validate_config(config, num_devices=1)


@pytest.mark.parametrize("spec", COMMANDS)
def test_config_header_gives_the_command_that_trains_it(spec):
    header = (REPO_ROOT / "configs" / spec.split(":")[0]).read_text().split('"""')[1]
    assert f"cnn-jax train --config configs/{spec}" in header


@pytest.mark.parametrize("path, bad", [("search_saliency.py", "l1"), ("moving_mnist_motion.py", "4d"),
                                       ("seq_mnist_tcn.py", "row"), ("mnist_generative.py", "gan")])
def test_an_unknown_variant_is_refused_with_the_choices(path, bad):
    with pytest.raises(ConfigError, match="is not one of"):
        load_config(f"{REPO_ROOT}/configs/{path}:{bad}")


def test_dcgan_config_is_the_papers_adam_and_steps_one_optimizer_per_player():
    import jax
    import optax

    from cnn_jax.tasks import task_optimizer

    c = load_config(f"{REPO_ROOT}/configs/mnist_generative.py:dcgan")
    o = c.optimizer
    assert (o.name, o.lr, o.b1, o.schedule, c.batch_size) == ("adam", 2e-4, 0.5, "constant", 128)
    assert o.ema_decay == 0 and o.grad_accum_steps == 1  # the GAN task steps its players itself
    tx = task_optimizer(c, optax.adam(o.lr, b1=o.b1))
    state = tx.init({"generator": {"w": jax.numpy.ones(2)}, "discriminator": {"w": jax.numpy.ones(3)}})
    assert set(state) == {"generator", "discriminator"}


def test_tcn_config_is_bai_et_al_recipe():
    for arg, permuted in (("seq", False), ("permuted", True)):
        c = load_config(f"{REPO_ROOT}/configs/seq_mnist_tcn.py:{arg}")
        o = c.optimizer
        assert (o.name, o.lr, c.batch_size, c.num_epochs) == ("adam", 2e-3, 64, 20)
        assert (o.schedule, tuple(o.decay_epochs), o.decay_factor) == ("step", (10,), 0.1)
        assert o.grad_clip_norm == 0 and (c.model.name == "tcn_pmnist") == permuted


def test_generative_configs_hold_out_as_many_real_images_as_the_test_set():
    for arg in ("vae", "dcgan_fashion", "autoencoder"):
        assert load_config(f"{REPO_ROOT}/configs/mnist_generative.py:{arg}").data.val_size == 10_000


# ------------------------------------------------------------------------------------------------
# Verdicts and helpers of the scripts
# ------------------------------------------------------------------------------------------------
def test_saliency_verdict_counts_lower_kl_as_better_and_names_the_models_that_lose():
    module = script("saliency_losses")
    baseline = {"cc": 0.2, "kl": 1.5, "nss": 0.5, "sim": 0.3, "auc_judd": 0.6, "auc_borji": 0.6}
    good = {"cc": 0.5, "kl": 1.0, "nss": 1.5, "sim": 0.4, "auc_judd": 0.8, "auc_borji": 0.7}
    bad_kl = {**good, "kl": 1.6}
    lines = module.verdict({"mse": good, "ead": bad_kl}, baseline)
    assert len(lines) == 6
    assert lines[0].startswith("CC: every model beats")
    assert lines[1] == "KL: NOT every model beats the centre bias (1.5000); not: EAD."


def test_motion_verdict_bounds_the_single_frame_model_by_three_binomial_errors_around_chance():
    module = script("motion_needs_3d")
    bound = module.near_chance_bound(600)
    assert bound == pytest.approx(0.125 + 3 * math.sqrt(0.125 * 0.875 / 600))  # 0.1655
    holds = module.verdict({"3d": [0.9, 0.95, 0.92], "frame": [0.12, 0.13, 0.14], "2d": [0.2, 0.2, 0.2]}, 600)
    assert holds[0].startswith("3-D above both 2-D models on every seed: holds")
    assert "holds (0.1300)" in holds[1] and "mean 0.2000, above chance" in holds[2]
    # Seed 1's 3-D run loses to its late fusion: the first line fails; the single frame is far off.
    fails = module.verdict({"3d": [0.9, 0.15, 0.92], "frame": [0.2, 0.2, 0.2], "2d": [0.12, 0.16, 0.14]}, 600)
    assert "does NOT hold" in fails[0] and "does NOT hold" in fails[1] and "within chance" in fails[2]
    assert module.mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0) and module.mean_std([0.5]) == (0.5, 0.0)


def test_generated_images_are_quantised_to_the_nearest_grey_level():
    to_uint8 = script("generative").to_uint8
    out = to_uint8(np.array([0.0, 0.5 / 255, 0.499, 1.0, 1.2, -0.1]))
    assert out.dtype == np.uint8 and out.tolist() == [0, 0, 127, 255, 255, 0]


# ------------------------------------------------------------------------------------------------
# Smoke runs
# ------------------------------------------------------------------------------------------------
@pytest.mark.slow  # about 1-2 minutes on 2 cores: CI runs it with -m slow
def test_saliency_losses_smoke_gives_six_metrics_per_loss_and_the_centre_bias_row(tmp_path, capsys):
    payload = smoke("saliency_losses", tmp_path / "tfds", tmp_path, "--losses", "mse",
                            "kl_divergence")
    (table,) = payload["tables"]
    assert table["headers"][1:7] == ["CC", "KL (lower)", "NSS", "SIM", "AUC-Judd", "AUC-Borji"]
    assert [row[0] for row in table["rows"]] == ["MSE", "KL divergence", "centre bias (no training)"]
    for row in table["rows"]:
        assert all(math.isfinite(float(cell)) for cell in row[1:7])
    centre = payload["centre_bias"]
    assert centre["count"] == 32 and 0.0 <= centre["auc_judd"] <= 1.0
    for summary in (payload["runs"]["mse"][0], payload["runs"]["kl_divergence"][0]):
        assert summary["command"].startswith("cnn-jax train --config configs/search_saliency.py:")
    assert payload["verdict"] == []  # smoke: no verdict
    assert "| centre bias (no training) " in capsys.readouterr().out


@pytest.mark.slow  # about 1-2 minutes on 2 cores: CI runs it with -m slow
def test_motion_needs_3d_smoke_gives_the_three_models_per_seed_against_chance(small_data_dir, tmp_path):
    payload = smoke("motion_needs_3d", small_data_dir, tmp_path, "--seeds", "0", "1")
    (table,) = payload["tables"]
    assert set(payload["accuracies"]) == {"3d", "frame", "2d"} and payload["chance"] == 0.125
    for variant, accuracies in payload["accuracies"].items():
        assert len(accuracies) == 2 and all(0.0 <= a <= 1.0 for a in accuracies)
        assert [s["name"] for s in payload["runs"][variant]] == [f"{variant}_seed0", f"{variant}_seed1"]
    rows = {row[1]: row for row in table["rows"]}
    assert set(rows) == {f"`configs/moving_mnist_motion.py:{v}`" for v in ("3d", "frame", "2d")}
    for row in rows.values():
        assert " ± " in row[2] and len(row[3].split(" / ")) == 2 and row[4] == "0.1250"


@pytest.mark.slow  # about 1-2 minutes on 2 cores: CI runs it with -m slow
def test_generative_smoke_gives_the_vae_elbo_and_three_frechet_distances(small_data_dir, tmp_path):
    payload = smoke("generative", small_data_dir, tmp_path, "--datasets", "mnist")
    (table,) = payload["tables"]
    r = payload["results"]["mnist"]
    assert r["frechet"]["count"] == 200  # SMOKE_SAMPLES of each kind against as many test images
    for kind in ("real", "vae", "dcgan"):
        assert math.isfinite(r["frechet"][kind]) and r["frechet"][kind] >= 0
    assert r["vae_test_negative_elbo"] == pytest.approx(-r["runs"]["vae"]["results"]["test"]["elbo"])
    assert [row[1].split(" (")[0] for row in table["rows"]] == [
        "real: held-out training images", "VAE samples", "DCGAN samples"]
    assert table["rows"][1][3] == f"{r['vae_test_negative_elbo']:.2f}"
    assert "not the Inception FID" in table["notes"][0]


@pytest.mark.slow  # about a minute on 2 cores: CI runs it with -m slow
def test_seq_mnist_tcn_smoke_gives_both_variants_beside_the_paper(small_data_dir, tmp_path):
    payload = smoke("seq_mnist_tcn", small_data_dir, tmp_path)
    (table,) = payload["tables"]
    assert payload["epochs"] == 1 and payload["paper"] == {"seq": 99.0, "permuted": 97.2}
    assert set(payload["accuracies"]) == {"seq", "permuted"}
    assert all(0.0 <= a <= 1.0 for a in payload["accuracies"].values())
    assert [row[1] for row in table["rows"]] == ["`configs/seq_mnist_tcn.py:seq`",
                                                 "`configs/seq_mnist_tcn.py:permuted`"]
    assert [row[2] for row in table["rows"]] == ["1 of 20", "1 of 20"]
    assert any("Shortened schedule: 1 of the paper's 20 epochs" in n for n in table["notes"])
    for variant, summary in payload["runs"].items():
        assert summary["command"].startswith(f"cnn-jax train --config configs/seq_mnist_tcn.py:{variant}")
        assert "--config.num_epochs=1" in summary["command"]
