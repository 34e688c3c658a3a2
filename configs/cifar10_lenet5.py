"""LeNet-5 on CIFAR-10 (32x32x3 inputs, no padding), with random crops and horizontal flips.

    cnn-jax train --config configs/cifar10_lenet5.py --workdir runs/cifar10_lenet5

Expected: roughly 60-70% test accuracy (no paper trains this network on CIFAR-10). The offline
CIFAR-10 copy this project is tested with is JPEG-degraded (quality 75), which costs about 2-3
points against the published accuracies. Data: `cnn-jax data import cifar10 --from cifar10.npz`.

Recipe: that of configs/mnist_lenet5.py (SGD, Nesterov momentum 0.9, lr 0.05 with a cosine decay,
weight decay 5e-4, batch 128) for 30 epochs, on the modern LeNet-5 (ReLU, max pooling), a 45k/5k
train/val split, 4-pixel padded random crops and horizontal flips.
"""

from cnn_jax import recipes
from cnn_jax.config import base_config


def get_config():
    c = base_config()
    recipes.cifar10_data(c)
    c.model.name = "lenet5_modern"
    c.num_epochs = 30
    c.batch_size = 128
    recipes.sgd(c, lr=0.05, nesterov=True, weight_decay=5e-4, schedule="cosine")
    return c
