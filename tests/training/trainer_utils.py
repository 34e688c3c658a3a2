"""Helpers shared by the trainer tests."""

from conftest import CONFIGS

from cnn_jax.config import load_config


def small_config(data_dir, **overrides):
    """LeNet-5 on the small MNIST: 3,072 train / 1,024 val, batch 128 -> 24 steps per epoch."""
    items = [f"data.data_dir={data_dir}", "data.val_size=1024", "batch_size=128",
             "eval_batch_size=500", "num_epochs=2", "progress_bar=false", "log_every_steps=8"]
    items += [f"{k}={v}" for k, v in overrides.items()]
    return load_config(CONFIGS / "mnist_lenet5.py", items)
