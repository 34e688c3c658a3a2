"""LeNet-5 on MNIST, the time-to-accuracy recipe: >= 99.0% test accuracy in as little wall time as
possible on a CPU (experiments/bench_time_to_accuracy.py races it against the same recipe in
PyTorch).

    cnn-jax train --config configs/mnist_lenet5_fast.py --workdir runs/mnist_lenet5_fast

Expected: >= 99.0% test accuracy after 4 epochs; measured accuracy and wall time: see README
Results. Data: `cnn-jax data import mnist --from mnist.npz`.

What makes it fast, against configs/mnist_lenet5.py (tanh, 12 epochs of batch 128):
  * the modern LeNet-5 (ReLU, 2x2 max pooling, C1 padded; same 61,706 parameters), which
    converges in fewer epochs than tanh with average pooling;
  * the 1cycle policy (Smith & Topin 2019, "Super-Convergence"): SGD with Nesterov momentum
    warmed up to a high peak learning rate and annealed to almost zero, which reaches a given
    accuracy in a fraction of the epochs of a constant or cosine schedule;
  * a larger batch (256): half the steps of batch 128;
  * one step per jitted call (steps_per_call = 1, below): no second, several-step program to
    compile;
  * no validation split (data.val_size=0): the trainer would evaluate it after every epoch, and
    the 5,000 held-out digits would be 8% fewer training digits. The test accuracy is that of the
    final state.
"""

from cnn_jax import recipes
from cnn_jax.config import base_config


def get_config():
    c = base_config()
    recipes.mnist_data(c, val_size=0)
    c.model.name = "lenet5_modern"
    c.num_epochs = 4
    c.batch_size = 256
    c.eval_batch_size = 2_000
    recipes.sgd(c, lr=0.1, nesterov=True, weight_decay=5e-4, schedule="onecycle")
    c.log_every_steps = 100
    c.steps_per_call = 1
    return c
