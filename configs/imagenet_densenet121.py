"""DenseNet-121 (Huang et al. 2017, "Densely connected convolutional networks") on ImageNet 2012.

    cnn-jax train --config configs/imagenet_densenet121.py --workdir runs/imagenet_densenet121

Expected: the paper's Table 3 gives 25.02% top-1 / 7.71% top-5 error with single-crop testing
(23.61% / 6.66% with 10 crops) on the validation set; torchvision's DenseNet-121 reaches 74.43% /
91.97% accuracy with one 224x224 center crop of the image resized to 256, our evaluation.

Recipe as in the paper (sec. 4.2): SGD with Nesterov momentum 0.9, batch 256, 90 epochs, lr 0.1
divided by 10 at epochs 30 and 60, weight decay 1e-4 (on kernels only, see cnn_jax/optim.py), no
dropout on ImageNet. Augmentation: random resized crop and horizontal flip, no colour
augmentation. On GPUs add --config.model.dtype=bfloat16.
"""

from cnn_jax import recipes
from cnn_jax.config import base_config


def get_config():
    c = base_config()
    recipes.imagenet_data(c)
    c.model.name = "densenet121"
    c.num_epochs = 90
    c.batch_size = 256
    c.eval_batch_size = 256
    recipes.sgd(c, lr=0.1, nesterov=True, weight_decay=1e-4, schedule="step", decay_epochs=(30, 60))
    c.checkpoint_every_steps = 1000
    return c
