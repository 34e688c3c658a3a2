"""MobileNet v1 1.0-224 (Howard et al. 2017, "MobileNets: efficient convolutional neural networks
for mobile vision applications") on ImageNet 2012.

    cnn-jax train --config configs/imagenet_mobilenet_v1.py --workdir runs/imagenet_mobilenet_v1

Expected: 70.6% top-1 accuracy (paper Table 8, "1.0 MobileNet-224": 70.6% ImageNet accuracy, 569M
mult-adds, 4.2M parameters; Table 2 gives the same 70.6%), single 224x224 center crop.

Recipe: the paper trains "using RMSprop with asynchronous gradient descent similar to Inception
V3" with little regularisation (no label smoothing, no side heads, smaller crop distortion, little
or no weight decay on the depthwise filters) and gives no further numbers. We use the Inception-v3
settings (Szegedy et al. 2016, sec. 8): RMSProp with decay 0.9 and epsilon 1.0, lr 0.045 decayed by
0.94 every two epochs (a step schedule with decay_epochs 2, 4, 6, ...), momentum 0.9, and weight
decay 4e-5 on all kernels (the value Sandler et al. 2018 report for MobileNetV2, sec. 6.1).
Synchronous batch 256 and 120 epochs are our choices (the paper ran asynchronous replicas and
states neither). Augmentation: random resized crop (8%-100% area; the paper used a larger minimum
crop) and horizontal flip. On GPUs add --config.model.dtype=bfloat16.
"""

from cnn_jax import recipes
from cnn_jax.config import base_config


def get_config():
    c = base_config()
    recipes.imagenet_data(c)
    c.model.name = "mobilenet_v1"
    c.num_epochs = 120
    c.batch_size = 256
    c.eval_batch_size = 256
    c.optimizer.name = "rmsprop"  # decay 0.9 (cnn_jax/optim.py)
    c.optimizer.lr = 0.045
    c.optimizer.momentum = 0.9
    c.optimizer.eps = 1.0
    c.optimizer.weight_decay = 4e-5
    c.optimizer.schedule = "step"
    c.optimizer.decay_epochs = tuple(range(2, c.num_epochs, 2))
    c.optimizer.decay_factor = 0.94
    c.checkpoint_every_steps = 1000
    return c
