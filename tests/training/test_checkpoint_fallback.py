"""A damaged newest checkpoint is skipped with a warning; the run resumes from the one before."""

import json

from trainer_utils import small_config

from cnn_jax.training.loop import train_and_evaluate


def test_truncated_newest_checkpoint_falls_back_to_the_previous_one(mnist_data_dir, tmp_path):
    config = small_config(mnist_data_dir, **{"num_epochs": 1, "checkpoint_every_steps": 8})
    first = train_and_evaluate(config, tmp_path)
    assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()) == [8, 16, 24]
    # Truncate every data file of the newest checkpoint, as a disk filling up would.
    damaged = [p for p in (tmp_path / "checkpoints" / "24").rglob("*") if p.is_file() and p.stat().st_size > 0]
    assert damaged
    for p in damaged:
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    (tmp_path / "results.json").unlink()
    again = train_and_evaluate(config, tmp_path)
    log = (tmp_path / "log.txt").read_text()
    assert "WARNING checkpoint at step 24" in log and "cannot be restored" in log
    assert "resumed from step 16" in log
    # The 8 steps redone from step 16 replay the same batches: the result is the same run.
    assert again["steps"] == 24
    assert again["test_final"]["accuracy"] == first["test_final"]["accuracy"]
    assert json.loads((tmp_path / "results.json").read_text())["steps"] == 24
