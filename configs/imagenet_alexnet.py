"""AlexNet (Krizhevsky, Sutskever & Hinton 2012, "ImageNet classification with deep convolutional
neural networks") on ImageNet 2012: the paper's layer table with LRN, 227x227 input.

    cnn-jax train --config configs/imagenet_alexnet.py --workdir runs/imagenet_alexnet

Expected: the paper's Table 2 gives 40.7% top-1 / 18.2% top-5 error on the validation set for one
CNN (5 CNNs: 38.1% / 16.4%), averaging the predictions of ten 224x224 patches (corners, center and
their mirrors); our evaluation is one center crop, which costs about one to two points of top-1
(torchvision's single-tower AlexNet, one center crop: 56.5% top-1 / 79.1% top-5).

Recipe as in the paper (sec. 5): SGD with momentum 0.9, batch 128, weight decay 5e-4, dropout 0.5
in the first two fully connected layers, lr 0.01 divided by 10 when the validation error stopped
improving (three times in about 90 epochs). The trainer has no plateau schedule: the divisions are
a step schedule at epochs 30, 60 and 80. Initialisation is He-normal, not the paper's N(0, 0.01)
with biases of 1. Augmentation: random resized crop to 227 and horizontal flip, in place of the
paper's random crops of 256x256 images and PCA colour noise; evaluation resizes the shorter side to
256 and takes the central 227x227.
"""

from cnn_jax import recipes
from cnn_jax.config import base_config


def get_config():
    c = base_config()
    # conv1 11x11/4 without padding: 227 -> 55x55 as in Figure 2 (224 -> 54)
    recipes.imagenet_data(c, image_size=227)
    c.model.name = "alexnet_lrn"
    c.model.kwargs.dropout_rate = 0.5
    c.num_epochs = 90
    c.batch_size = 128
    c.eval_batch_size = 256
    recipes.sgd(c, lr=0.01, weight_decay=5e-4, schedule="step", decay_epochs=(30, 60, 80))
    c.checkpoint_every_steps = 2000  # ~5 checkpoints per epoch of 9,930 steps
    return c
