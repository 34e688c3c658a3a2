"""Shared by the analysis tests: real MNIST digits and a LeNet-5 trained on a few of them (once
per session: the functions are cached, so every test module's fixtures share them)."""

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cnn_jax.analysis import Classifier
from cnn_jax.models import create_model

# MNIST's per-channel statistics in [0, 1] units (cnn_jax.data's catalogue uses the same).
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
TRAIN_DIGITS, TEST_DIGITS = 2048, 500


def mnist_preprocess(images):
    return (jnp.asarray(images, jnp.float32) / 255.0 - MNIST_MEAN) / MNIST_STD


@functools.lru_cache(maxsize=1)
def load_digits(shared_data: Path):
    """(train images, train labels, test images, test labels): uint8 (N, 28, 28, 1), int32."""
    with np.load(shared_data / "mnist.npz") as d:
        return (d["x_train"][:TRAIN_DIGITS, :, :, None],
                d["y_train"][:TRAIN_DIGITS].astype(np.int32),
                d["x_test"][:TEST_DIGITS, :, :, None], d["y_test"][:TEST_DIGITS].astype(np.int32))


@functools.lru_cache(maxsize=1)
def train_lenet(shared_data: Path) -> Classifier:
    """LeNet-5 (ReLU, max pooling) after 3 epochs of Adam on 2,048 digits, batch 64."""
    x_train, y_train, _, _ = load_digits(shared_data)
    model = create_model("lenet5_modern", num_classes=10)
    variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)), train=False)
    params = variables["params"]
    optimizer = optax.adam(3e-3)
    opt_state = optimizer.init(params)

    @jax.jit
    def step(params, opt_state, images, labels):
        def loss(p):
            logits = model.apply({"params": p}, mnist_preprocess(images), train=False)
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        grads = jax.grad(loss)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    order = np.random.default_rng(0)
    for _ in range(3):
        perm = order.permutation(TRAIN_DIGITS)
        for i in range(0, TRAIN_DIGITS, 64):
            idx = perm[i:i + 64]
            params, opt_state = step(params, opt_state, x_train[idx], y_train[idx])
    return Classifier(model, {"params": params}, mnist_preprocess)
