"""LeNet-1 (LeCun et al. 1989; 1998 §III) on MNIST.

    cnn-jax train --config configs/mnist_lenet1.py --workdir runs/mnist_lenet1

Paper: 1.7% test error (LeCun et al. 1998, Fig. 9). Measured: see README Results
(`experiments/lenet_table.py`). Data: `cnn-jax data import mnist --from mnist.npz`.

Recipe: that of configs/mnist_lenet5.py without weight decay: SGD with Nesterov momentum 0.9,
batch 128, lr 0.05 with a cosine decay over 12 epochs, 5,000 training digits held out for
validation.
"""

from cnn_jax import recipes
from cnn_jax.config import base_config


def get_config():
    c = base_config()
    recipes.mnist_data(c)
    c.model.name = "lenet1"
    c.num_epochs = 12
    c.batch_size = 128
    recipes.sgd(c, lr=0.05, nesterov=True, schedule="cosine")
    return c
