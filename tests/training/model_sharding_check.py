"""Trains a small VGG twice on 8 fake CPU devices, parameters replicated and FC kernels sharded
over a 4-device `model` axis (mesh data 2 x model 4), and prints what the two runs report
(per-device bytes, losses, final parameters) as JSON.

Run by test_model_sharding.py in a fresh interpreter with
XLA_FLAGS=--xla_force_host_platform_device_count=8; argv[1] is the tfds data_dir of the small
MNIST, argv[2] a scratch folder.
"""

import json
import sys
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from cnn_jax.config import load_config
from cnn_jax.training.loop import train_and_evaluate
from cnn_jax.tree import path_of

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

# A VGG with two conv blocks (8 and 16 filters) and FC 784 -> 256 -> 256 -> 10 on 28x28 digits:
# fc6 (classifier_0) is split by output columns, fc7 (classifier_3) by input rows, as one would
# split VGG-16's 25088 x 4096 fc6 and 4096 x 4096 fc7.
RULES = "((r'classifier_0/kernel', (None, 'model')), (r'classifier_3/kernel', ('model', None)))"


def small_vgg(data_dir, *overrides):
    return load_config(CONFIGS / "mnist_lenet5.py", [
        f"data.data_dir={data_dir}", "data.val_size=256", "data.train_subset=256", "batch_size=64",
        "eval_batch_size=256", "num_epochs=1", "progress_bar=false", "log_every_steps=1",
        "model.name=vgg11", "model.kwargs.cfg=(8, 'M', 16, 'M')", "model.kwargs.pooled_size=None",
        "model.kwargs.hidden_sizes=(256, 256)", "optimizer.lr=0.01", *overrides])


def final_params(workdir: Path) -> dict:
    """The last checkpoint's parameters as numpy arrays by path (whatever mesh wrote them)."""
    steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    path = (workdir / "checkpoints" / str(steps[-1]) / "default").absolute()
    with ocp.PyTreeCheckpointer() as c:
        tree = c.metadata(path).item_metadata.tree
        args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
        params = c.restore(path, args=ocp.args.PyTreeRestore(restore_args=args))["params"]
    return {path_of(kp): x.tolist() for kp, x in jax.tree_util.tree_leaves_with_path(params)}


def main():
    assert jax.device_count() == 8, jax.device_count()
    data_dir, scratch = sys.argv[1], Path(sys.argv[2])
    out = {}
    for name, overrides in (("replicated", ()),
                            ("sharded", ("sharding.model_axis=4", f"sharding.rules={RULES}"))):
        workdir = scratch / name
        results = train_and_evaluate(small_vgg(data_dir, *overrides), workdir)
        records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
        out[name] = {
            "bytes_per_device": results["bytes_per_device"],
            "log": (workdir / "log.txt").read_text(),
            "train_loss": [r["loss"] for r in records if r["split"] == "train"],
            "val_loss": [r["loss"] for r in records if r["split"] == "val"],
            "final": final_params(workdir),
        }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
