"""LeNet-5 (LeCun et al. 1998) on MNIST: tanh, average pooling, 28x28 digits padded to 32x32.

    cnn-jax train --config configs/mnist_lenet5.py --workdir runs/mnist_lenet5

Expected: >= 99.0% test accuracy (the paper's Table: 0.95% test error for LeNet-5; see README
"Results" for the measured accuracy, epochs and wall time of this exact command).
"""

from cnn_jax.config import base_config


def get_config():
    c = base_config()
    c.data.name = "mnist"
    c.data.val_size = 5_000
    c.model.name = "lenet5"
    c.num_epochs = 12
    c.batch_size = 128
    c.optimizer.name = "sgd"
    c.optimizer.lr = 0.05
    c.optimizer.momentum = 0.9
    c.optimizer.nesterov = True
    c.optimizer.schedule = "cosine"
    c.optimizer.weight_decay = 5e-4
    return c
