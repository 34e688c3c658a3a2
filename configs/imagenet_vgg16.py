"""VGG-16, configuration D (Simonyan & Zisserman 2015, "Very deep convolutional networks for
large-scale image recognition") on ImageNet 2012.

    cnn-jax train --config configs/imagenet_vgg16.py --workdir runs/imagenet_vgg16

Expected (single 224x224 center crop of the image resized to 256, ImageNet validation set):
about 71.6% top-1 / 90.4% top-5 (torchvision's VGG-16: 71.59% / 90.38%). The paper's numbers for
configuration D, top-1 / top-5 error on the validation set:
  * Table 3, single test scale Q (dense evaluation of the whole image): trained at S=256, tested
    at 256: 27.0% / 8.8%; S=384, Q=384: 26.8% / 8.7%; scale-jittered training S in [256, 512],
    Q=384: 25.6% / 8.1%;
  * Table 4, multi-scale testing (S in [256, 512], Q in {256, 384, 512}): 24.8% / 7.5%.
Our evaluation is one center crop, so expect a little worse than Table 3's S=256 row.

Recipe as in the paper (sec. 3.1): SGD with momentum 0.9, batch 256, weight decay 5e-4, dropout
0.5 on the first two fully connected layers (the model's default), lr 1e-2 divided by 10 three
times, 74 epochs (370K iterations). The paper divided the rate when the validation accuracy
stopped improving; the trainer has no plateau schedule, so the three divisions are fixed at epochs
30, 50 and 65 (our choice). Initialisation is He-normal (the paper initialised D from a trained
configuration A, or later with Glorot's scheme). Augmentation: random resized crop and horizontal
flip instead of the paper's random 224 crops of rescaled images and RGB colour shift.
On GPUs add --config.model.dtype=bfloat16.
"""

from cnn_jax import recipes
from cnn_jax.config import base_config


def get_config():
    c = base_config()
    recipes.imagenet_data(c)
    c.model.name = "vgg16"
    c.model.kwargs.dropout_rate = 0.5
    c.num_epochs = 74
    c.batch_size = 256
    c.eval_batch_size = 256
    recipes.sgd(c, lr=1e-2, weight_decay=5e-4, schedule="step", decay_epochs=(30, 50, 65))
    c.checkpoint_every_steps = 1000
    return c
