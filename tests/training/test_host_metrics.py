"""Evaluation of metrics that are not sums: a task's host outputs are gathered from every batch."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cnn_jax.models import create_model
from cnn_jax.tasks import ClassificationTask
from cnn_jax.training import sharding
from cnn_jax.training.state import create_train_state, init_variables
from cnn_jax.training.steps import StepRunner


@dataclasses.dataclass(frozen=True)
class HostAccuracyTask(ClassificationTask):
    """Top-1 accuracy computed a second way, on the host, from the gathered predictions."""

    def host_outputs(self, outputs, batch):
        return {"prediction": jnp.argmax(outputs, -1), "label": batch["label"], "mask": batch["mask"]}

    def host_metrics(self, gathered):
        real = gathered["mask"] > 0
        return {"host_accuracy": float(np.mean(gathered["prediction"][real] == gathered["label"][real])),
                "host_count": int(real.sum())}


def test_host_metrics_see_every_real_example_of_every_batch_and_agree_with_the_sums():
    model = create_model("lenet5", num_classes=10)
    mesh = sharding.create_mesh()
    rep = sharding.replicated(mesh)
    state = jax.jit(lambda k: create_train_state(model, optax.sgd(0.1), init_variables(model, k, (28, 28, 1))),
                    out_shardings=rep)(jax.random.key(0))
    runner = StepRunner(mesh, jax.tree.map(lambda _: rep, state),
                        task=HostAccuracyTask(mean=(0.5,), std=(0.25,)), dropout_key=jax.random.key(1))
    rng = np.random.default_rng(0)
    batches = []
    for real in (16, 16, 9):  # the last batch is padded, as evaluation batches are
        batch = {"image": rng.integers(0, 256, (16, 28, 28, 1), dtype=np.uint8),
                 "label": rng.integers(0, 10, 16).astype(np.int32),
                 "mask": (np.arange(16) < real).astype(np.int32)}
        batches.append(batch)
    metrics = runner.evaluate(state, batches)
    assert metrics["host_count"] == metrics["count"] == 41
    assert abs(metrics["host_accuracy"] - metrics["accuracy"]) < 1e-6
