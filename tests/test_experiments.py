"""The reproduction scripts of experiments/ run end to end (--smoke) and report every row they promise.

Each script is run in-process on slices of the real data (MNIST, Fashion-MNIST, the JPEG CIFAR-10
copy) imported into one temporary tfds data_dir; --smoke trains every row for an epoch or two on
a few hundred images, so only the shape of the output is checked here, not the papers' numbers
(those come from the full runs, whose results files in experiments/results/ are rendered into the
README and docs/results.md by experiments/render_results.py, checked here too).
"""

import json

import numpy as np
import pytest
from conftest import REPO_ROOT
from experiment_scripts import script, smoke

from cnn_jax.config import load_config
from cnn_jax.training.validate import validate_config

pytestmark = pytest.mark.usefixtures("fast_compilation")
EXPERIMENTS = REPO_ROOT / "experiments"


def _slice(path, n_train, n_test):
    with np.load(path) as z:
        return {"x_train": z["x_train"][:n_train], "y_train": z["y_train"][:n_train],
                "x_test": z["x_test"][:n_test], "y_test": z["y_test"][:n_test]}


def _jpeg_slice(path, n_train, n_test):
    """The first images of cifar10_jpeg.npz: JPEG bytes cut where the offsets say."""
    out = {}
    with np.load(path) as z:
        for split, n in (("train", n_train), ("test", n_test)):
            offsets = z[f"{split}_offsets"][:n + 1]
            out[f"{split}_jpeg"] = z[f"{split}_jpeg"][:offsets[-1]]
            out[f"{split}_offsets"] = offsets
            out[f"y_{split}"] = z[f"y_{split}"][:n]
    return out


@pytest.fixture(scope="module")
def small_data_dir(shared_data, tmp_path_factory):
    """One tfds data_dir with 1,024/500 MNIST, 512/500 Fashion-MNIST and 300/100 CIFAR-10 images."""
    from cnn_jax.data import import_local

    src = tmp_path_factory.mktemp("src")
    root = tmp_path_factory.mktemp("tfds")
    for name, arrays in (("mnist", _slice(shared_data / "mnist.npz", 1024, 500)),
                         ("fashion_mnist", _slice(shared_data / "fashion_mnist.npz", 512, 500)),
                         ("cifar10", _jpeg_slice(shared_data / "cifar10_jpeg.npz", 300, 100))):
        np.savez(src / f"{name}_small.npz", **arrays)
        import_local(name, src / f"{name}_small.npz", root)
    return root


@pytest.mark.slow  # about 20-100 s on 2 cores: CI runs it with -m slow
def test_lenet_table_smoke_reports_every_row_of_the_lectures_table(small_data_dir, tmp_path, capsys):
    module = script("lenet_table")
    payload = smoke("lenet_table", small_data_dir, tmp_path)
    rows = {r["row"]: r for r in payload["rows"]}
    assert list(rows) == list(module.ROW_KEYS)
    assert {k: r["paper_error"] for k, r in rows.items()} == {
        "linear": 12.0, "fc300": 4.7, "fc300_100": 3.05, "lenet1": 1.7, "lenet5": 0.95,
        "fc300_dist": 3.6, "fc300_100_dist": 2.45}
    for r in rows.values():
        assert 0.0 <= r["error"] <= 100.0 and r["pass"] is None  # smoke: no thresholds
        assert r["results"]["epochs"] == 1 and r["command"].startswith("cnn-jax train --config ")
    assert rows["fc300_dist"]["command"].count("configs/mnist_mlp.py:distorted") == 1
    printed = capsys.readouterr().out
    for r in rows.values():
        assert f"| {r['label']} " in printed


def test_lenet_table_rows_option_runs_only_the_rows_asked_for(small_data_dir, tmp_path):
    payload = smoke("lenet_table", small_data_dir, tmp_path, "--rows", "fc300", "linear")
    assert [r["row"] for r in payload["rows"]] == ["linear", "fc300"]  # in the table's order
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["fc300", "linear"]
    assert payload["name"] == "lenet_table_fc300_linear"
    assert [row[0] for row in payload["tables"][0]["rows"]] == ["FC 10 only (linear)", "FC 300-10"]

    # The README's results table shows the measured rows and names the command for the others.
    table = script("render_results").readme_table(tmp_path).split("\n\n")[0].splitlines()
    rows = {line.split("|")[1].strip(): line.split("|")[3].strip() for line in table[2:]}
    measured = {r["label"]: r["error"] for r in payload["rows"]}
    assert rows["FC 300-10, MNIST test error"] == f"**{measured['FC 300-10']:.2f}%**"
    assert rows["LeNet-5, MNIST test error"] == "run `python experiments/lenet_table.py`"
    assert rows["ReLU vs tanh, CIFAR-10: epochs to 25% training error, tanh / ReLU"].startswith("run ")


def test_committed_docs_are_what_the_committed_results_files_render(capsys):
    render = script("render_results")
    assert render.main(["--check"]) == 0, capsys.readouterr().out
    for path in render.RESULTS_DIR.glob("*.json"):  # every committed file has what a section shows
        record = json.loads(path.read_text())
        assert not record.get("smoke"), path
        assert {"command", "date", "machine", "versions", "tables"} <= set(record), path


@pytest.mark.parametrize("spec", ["mnist_mlp.py:distorted", "cifar10_activations.py",
                                  "fashion_mnist_lenet5_transfer.py:scratch",
                                  "fashion_mnist_lenet5_transfer.py:head",
                                  "fashion_mnist_lenet5_transfer.py:finetune"])
def test_experiment_configs_validate_and_give_their_command(spec):
    validate_config(load_config(f"{REPO_ROOT}/configs/{spec}"), num_devices=1)
    header = (REPO_ROOT / "configs" / spec.split(":")[0]).read_text().split('"""')[1]
    assert f"cnn-jax train --config configs/{spec}" in header


def test_lenet_table_distorted_rows_train_on_the_affine_and_elastic_distortions():
    a = load_config(f"{REPO_ROOT}/configs/mnist_mlp.py:distorted").data.augment
    assert (a.elastic_alpha, a.elastic_sigma) == (34.0, 4.0)  # Simard et al. 2003
    assert a.translate > 0 and a.zoom > 0 and a.squeeze > 0 and a.shear > 0


def test_transfer_stage_one_loads_all_but_the_head_and_trains_only_the_head():
    import re

    config = load_config(f"{REPO_ROOT}/configs/fashion_mnist_lenet5_transfer.py:head")
    for path, loaded, trained in (("output/kernel", False, True), ("output/bias", False, True),
                                  ("c1/kernel", True, False), ("f6/bias", True, False)):
        assert (re.search(config.init.exclude_regex, path) is None) == loaded
        assert (re.search(config.optimizer.freeze_regex, path) is None) == trained


@pytest.mark.slow  # about 20-100 s on 2 cores: CI runs it with -m slow
def test_activations_smoke_gives_a_curve_and_epochs_to_25_percent_per_activation(
        small_data_dir, tmp_path, capsys):
    module = script("activations")
    payload = smoke("activations", small_data_dir, tmp_path)
    runs = {r["activation"]: r for r in payload["runs"]}
    assert list(runs) == ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "swish"]
    for r in runs.values():
        assert len(r["train_error_per_epoch"]) == 2  # one training error per epoch
        assert all(0.0 <= e <= 1.0 for e in r["train_error_per_epoch"])
        assert r["epochs_to_25"] == module.epochs_to(r["train_error_per_epoch"], 0.25)
    assert open(payload["plot"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "JPEG-degraded" in printed
    for name in runs:
        assert f"| {name} " in printed


def test_activations_learning_rate_probe_keeps_the_fastest_rate_that_did_not_diverge():
    pick = script("activations").pick_lr
    assert pick({0.001: [0.8, 0.7, 0.6], 0.01: [0.7, 0.5, 0.4], 0.1: None}) == 0.01
    # An error that rises in the probe's last epoch is a rate about to diverge: out.
    assert pick({0.003: [0.8, 0.6, 0.55], 0.01: [0.7, 0.45, 0.5]}) == 0.003
    assert pick({0.1: None, 0.3: [0.9, float("nan")]}) is None


def test_activations_centred_inputs_feed_pixels_minus_the_mean_and_restore_the_trainer(small_data_dir):
    import numpy as np

    from cnn_jax.tasks import normalize
    from cnn_jax.training import loop

    module = script("activations")
    config = load_config(REPO_ROOT / "configs/cifar10_activations.py",
                         [f"data.data_dir={small_data_dir}", "data.train_subset=256"])
    original = loop.input_pipeline
    with module.centred_inputs():
        spec = loop.input_pipeline(config).spec
    assert loop.input_pipeline is original
    x = np.full((1, 1, 1, 3), 200, np.uint8)
    np.testing.assert_allclose(np.asarray(normalize(x, spec.mean, spec.std))[0, 0, 0],
                               200 - 255 * np.asarray(spec.mean), rtol=1e-5)
    assert loop.input_pipeline(config).spec.std != spec.std  # the trainer's own: standardised


def test_wall_note_names_the_runs_that_finished_in_an_earlier_sitting():
    wall_note = script("_common").wall_note
    fresh = {"name": "a", "reused": False}
    assert wall_note(150, {"3d": [fresh]}) == "Total wall time 2.5 min."
    note = wall_note(30, {"3d": [fresh, {"name": "b", "reused": True}], "x": {"name": "c", "reused": True}})
    assert note.startswith("Wall time of this sitting 30 s; 2 of 3 runs had finished in an earlier one")
    assert "(b, c)" in note


def test_epochs_to_25_percent_is_the_first_epoch_at_or_below_the_target():
    module = script("activations")
    assert module.epochs_to([0.9, 0.4, 0.25, 0.1], 0.25) == 3
    assert module.epochs_to([0.9, 0.4], 0.25) is None


def test_training_error_per_epoch_weights_the_records_of_an_epoch_by_their_counts(tmp_path):
    records = [{"split": "train", "epoch": 0.5, "accuracy": 0.5, "count": 100},
               {"split": "val", "epoch": 1, "accuracy": 0.0, "count": 10},
               {"split": "train", "epoch": 1.0, "accuracy": 0.8, "count": 300},
               {"split": "train", "epoch": 2.0, "accuracy": 0.9, "count": 400}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    errors = script("activations").epoch_errors(tmp_path)
    assert errors == pytest.approx([1 - (50 + 240) / 400, 0.1])


@pytest.mark.slow  # about 20-100 s on 2 cores: CI runs it with -m slow
def test_transfer_smoke_compares_scratch_and_transferred_for_each_size(small_data_dir, tmp_path, capsys):
    payload = smoke("transfer", small_data_dir, tmp_path)
    rows = payload["rows"]
    assert [r["labelled"] for r in rows] == [100, 1000, 10000]
    source = payload["source"]["workdir"]
    for r in rows:
        assert {"scratch", "head", "finetune"} <= set(r)
        # Stage 1 starts from the MNIST run, stage 2 from stage 1.
        assert f"--config.init.checkpoint={source}" in r["head"]["command"]
        assert f"--config.init.checkpoint={r['head']['workdir']}" in r["finetune"]["command"]
        for key in ("scratch", "head", "finetune"):
            assert 0.0 <= r[key]["results"]["test"]["accuracy"] <= 1.0
    printed = capsys.readouterr().out
    for size in ("100", "1,000", "10,000"):
        assert f"| {size} " in printed


def test_transfer_runs_of_one_size_share_data_and_total_steps():
    module = script("transfer")
    for n in (100, 1_000, 10_000):
        scratch, head, finetune = module.runs_for(n, REPO_ROOT / "src", REPO_ROOT / "runs", False)
        configs = [load_config(REPO_ROOT / r.config, r.overrides) for r in (scratch, head, finetune)]
        assert {(c.data.name, c.data.train_subset, c.batch_size) for c in configs} == {
            ("fashion_mnist", n, module.schedule(n)[0])}
        assert configs[1].num_epochs + configs[2].num_epochs == configs[0].num_epochs
        assert configs[1].num_epochs * 4 == configs[0].num_epochs  # stage 1: a quarter
        assert configs[1].optimizer.freeze_regex and not configs[2].optimizer.freeze_regex
        # Stage 2 fine-tunes every layer at the scratch run's learning rate (a tenth was measured
        # too timid for digits -> clothing: experiments/transfer.py).
        assert configs[2].optimizer.lr == pytest.approx(configs[0].optimizer.lr)
        assert {c.optimizer.weight_decay for c in configs} == {configs[0].optimizer.weight_decay}
        steps = configs[0].num_epochs * (n // configs[0].batch_size)
        assert 400 <= steps < 500


@pytest.mark.slow  # about 20-100 s on 2 cores: CI runs it with -m slow
def test_transfer_seeds_give_one_run_per_seed_and_a_mean(small_data_dir, tmp_path):
    payload = smoke("transfer", small_data_dir, tmp_path, "--sizes", "100", "--seeds", "0", "1")
    (row,) = payload["rows"]
    for kind in ("scratch", "head", "finetune"):
        accs = [100 * s["results"]["test"]["accuracy"] for s in row["seeds"][kind]]
        assert len(accs) == 2 and row["mean"][kind] == pytest.approx(sum(accs) / 2, abs=0.01)
    assert "seed=1" in row["seeds"]["scratch"][1]["command"]
