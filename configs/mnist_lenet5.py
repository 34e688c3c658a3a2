"""LeNet-5 (LeCun et al. 1998) on MNIST: tanh, average pooling, 28x28 digits padded to 32x32.

    cnn-jax train --config configs/mnist_lenet5.py --workdir runs/mnist_lenet5

Expected: >= 99.0% test accuracy (the paper's Fig. 9: 0.95% test error for LeNet-5); measured:
see README Results. Data: `cnn-jax data import mnist --from mnist.npz`.

Recipe: SGD with Nesterov momentum 0.9, batch 128, lr 0.05 with a cosine decay over 12 epochs,
weight decay 5e-4 on the kernels, 5,000 training digits held out for validation (the test
accuracy is that of the checkpoint with the best validation accuracy).
"""

from cnn_jax import recipes
from cnn_jax.config import base_config


def get_config():
    c = base_config()
    recipes.mnist_data(c)
    c.model.name = "lenet5"
    c.num_epochs = 12
    c.batch_size = 128
    recipes.sgd(c, lr=0.05, nesterov=True, weight_decay=5e-4, schedule="cosine")
    return c
