"""LeNet-5 on CIFAR-10 (32x32x3 inputs, no padding), with random crops and horizontal flips.

    cnn-jax train --config configs/cifar10_lenet5.py --workdir runs/cifar10_lenet5

Expected: roughly 60-70% test accuracy. The offline CIFAR-10 copy in ../shared/data is
JPEG-degraded (quality 75), which costs about 2-3 points against the true CIFAR-10.
"""

from cnn_jax.config import base_config


def get_config():
    c = base_config()
    c.data.name = "cifar10"
    c.data.val_size = 5_000
    c.data.augment.random_crop_padding = 4
    c.data.augment.horizontal_flip = True
    c.model.name = "lenet5_modern"
    c.num_epochs = 30
    c.batch_size = 128
    c.optimizer.name = "sgd"
    c.optimizer.lr = 0.05
    c.optimizer.momentum = 0.9
    c.optimizer.nesterov = True
    c.optimizer.schedule = "cosine"
    c.optimizer.weight_decay = 5e-4
    return c
