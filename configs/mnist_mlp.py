"""Fully connected 300-100-10 network (LeCun et al. 1998, Fig. 9) on MNIST.

    cnn-jax train --config configs/mnist_mlp.py --workdir runs/mnist_mlp

Paper: 3.05% test error. Other members of the family: --config.model.name=mlp_300 (4.7%),
--config.model.name=mlp_linear (12.0%).
"""

from cnn_jax.config import base_config


def get_config():
    c = base_config()
    c.data.name = "mnist"
    c.data.val_size = 5_000
    c.model.name = "mlp_300_100"
    c.num_epochs = 15
    c.batch_size = 128
    c.optimizer.name = "sgd"
    c.optimizer.lr = 0.05
    c.optimizer.momentum = 0.9
    c.optimizer.schedule = "cosine"
    return c
