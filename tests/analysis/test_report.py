"""`cnn-jax report --workdir W` on a one-epoch LeNet-5 run writes every panel and a page that
links them with the run's config and results; a run without classes says which panels it skips."""

import json
import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from conftest import CONFIGS

from cnn_jax.analysis import write_report
from cnn_jax.cli import main
from cnn_jax.config import load_config
from cnn_jax.training.loop import train_and_evaluate

PANELS = ("curves.png", "filters.png", "grad_cam.png", "confusion_matrix.png", "misclassified.png",
          "reliability.png")


@pytest.fixture(scope="module")
def one_epoch_run(mnist_data_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    config = load_config(CONFIGS / "mnist_lenet5.py", [
        f"data.data_dir={mnist_data_dir}", "data.val_size=1024", "batch_size=128",
        "eval_batch_size=500", "num_epochs=1", "progress_bar=false", "log_every_steps=8",
        "steps_per_call=1"])
    train_and_evaluate(config, workdir)
    return workdir


def test_report_writes_every_panel_and_an_index_linking_them(one_epoch_run, capsys):
    assert main(["report", "--workdir", str(one_epoch_run)]) == 0
    report = one_epoch_run / "report"
    assert capsys.readouterr().out.strip() == str(report / "index.html")
    for name in PANELS:
        assert (report / name).stat().st_size > 1000, name
        assert (report / name).read_bytes()[:4] == b"\x89PNG"
    page = (report / "index.html").read_text()
    for name in PANELS:
        assert f"src='{name}'" in page
    assert '"name": "lenet5"' in page  # the config
    assert "val_best_accuracy" in page  # results.json


def test_report_accuracy_is_the_runs_test_accuracy(one_epoch_run):
    if not (one_epoch_run / "report" / "summary.json").exists():
        main(["report", "--workdir", str(one_epoch_run)])
    summary = json.loads((one_epoch_run / "report" / "summary.json").read_text())
    results = json.loads((one_epoch_run / "results.json").read_text())
    assert summary["examples"] == results["test"]["count"] == 1000
    assert summary["accuracy"] == pytest.approx(results["test"]["accuracy"], abs=1e-6)
    assert summary["misclassified"] == round(1000 * (1 - summary["accuracy"]))
    assert summary["panels"]["Grad-CAM"] == "grad_cam.png"
    assert 0 <= summary["expected_calibration_error"] <= 1


class PixelClasses(nn.Module):
    """Per-pixel logits (N, H, W, 3) from one 3x3 convolution: a segmentation model."""

    @nn.compact
    def __call__(self, x, train=False):
        return nn.Conv(3, (3, 3), name="conv")(x)


def test_a_segmentation_run_gets_the_panels_that_apply_and_says_why_not_the_others(tmp_path):
    model = PixelClasses()
    images = np.random.default_rng(0).integers(0, 255, (4, 16, 16, 3)).astype(np.uint8)
    config = ml_collections.ConfigDict({"task": "segmentation", "model": {"name": "pixels"}})
    run = types.SimpleNamespace(
        workdir=tmp_path, config=config, spec=types.SimpleNamespace(name="shapes", label_names=()),
        model=model, variables=model.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3))),
        task=types.SimpleNamespace(inputs=lambda b: jnp.asarray(b["image"], jnp.float32) / 255,
                                   input_key="image"),
        step=10, checkpoint="latest",
        data=lambda: types.SimpleNamespace(eval_batches=lambda split: iter([{"image": images}])))
    page = write_report(run).read_text()
    assert sorted(p.name for p in (tmp_path / "report").glob("*.png")) == ["filters.png"]
    assert "the run has no metrics.jsonl" in page
    assert page.count("it applies to classification runs of images, this is a segmentation run<") == 4


class ClipClasses(nn.Module):
    """Class logits (N, 3) of a clip (N, T, H, W, C) from one 3x3x3 convolution."""

    @nn.compact
    def __call__(self, x, train=False):
        return jnp.mean(nn.Conv(3, (3, 3, 3), name="conv3d")(x), axis=(1, 2, 3))


def test_a_video_classifier_run_reads_its_clips_and_draws_only_its_curves(tmp_path):
    model = ClipClasses()
    clips = np.random.default_rng(0).integers(0, 255, (2, 4, 8, 8, 1)).astype(np.uint8)
    config = ml_collections.ConfigDict({"task": "classification", "model": {"name": "clips"}})
    run = types.SimpleNamespace(
        workdir=tmp_path, config=config, spec=types.SimpleNamespace(name="moving", label_names=()),
        model=model, variables=model.init(jax.random.PRNGKey(0), jnp.zeros((1, 4, 8, 8, 1))),
        task=types.SimpleNamespace(inputs=lambda b: jnp.asarray(b["clip"], jnp.float32) / 255,
                                   input_key="clip"),
        step=10, checkpoint="latest",
        data=lambda: types.SimpleNamespace(eval_batches=lambda split: iter([{"clip": clips}])))
    page = write_report(run).read_text()
    assert list((tmp_path / "report").glob("*.png")) == []
    assert "the model has no 2-D convolution" in page
    assert page.count("this is a classification run of clips") == 4


def test_report_of_a_directory_without_a_run_says_so_in_one_line(tmp_path, capsys):
    assert main(["report", "--workdir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {tmp_path} holds no run (no config.json): pass the --workdir of a `cnn-jax train`")
