"""LeNet-1 (LeCun et al. 1989; 1998 §III) on MNIST.

    cnn-jax train --config configs/mnist_lenet1.py --workdir runs/mnist_lenet1

Paper: 1.7% test error (LeCun et al. 1998, Fig. 9).
"""

from cnn_jax.config import base_config


def get_config():
    c = base_config()
    c.data.name = "mnist"
    c.data.val_size = 5_000
    c.model.name = "lenet1"
    c.num_epochs = 12
    c.batch_size = 128
    c.optimizer.name = "sgd"
    c.optimizer.lr = 0.05
    c.optimizer.momentum = 0.9
    c.optimizer.nesterov = True
    c.optimizer.schedule = "cosine"
    return c
