"""A real train + eval loop on CIFAR-10-shaped data served by tfds.testing.mock_data (the
flax examples' habit): every stage runs — pipeline, augmentation, jit steps, checkpoints."""

import json

import tensorflow_datasets as tfds
from conftest import CONFIGS

from cnn_jax.config import load_config
from cnn_jax.training.loop import train_and_evaluate


def test_train_and_evaluate_runs_on_mock_cifar10(tmp_path):
    config = load_config(CONFIGS / "cifar10_lenet5.py", [
        f"data.data_dir={tmp_path / 'tfds'}", "data.val_size=64", "batch_size=32", "eval_batch_size=48",
        "num_epochs=2", "progress_bar=false", "log_every_steps=2",
    ])
    with tfds.testing.mock_data(num_examples=256):
        results = train_and_evaluate(config, tmp_path / "run")
    assert results["status"] == "finished"
    assert results["steps"] == 2 * (256 - 64) // 32
    assert results["test"]["count"] == 256  # the last, padded batch is masked exactly
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "val"] == [6, 12]
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["12", "6"]
