"""GoogLeNet / Inception v1 (Szegedy et al. 2015, "Going deeper with convolutions") on ImageNet
2012, in torchvision's form with batch normalisation.

    cnn-jax train --config configs/imagenet_googlenet.py --workdir runs/imagenet_googlenet

Expected: about 69.8% top-1 / 89.5% top-5 with one 224x224 center crop (torchvision's GoogLeNet:
69.78% / 89.53%). The paper reports top-5 error only (Table 3): one model, one crop 10.07%; one
model, 144 crops 7.89%; the winning ensemble of 7 models with 144 crops each 6.67% (Table 2, test
set).

Recipe: the paper trained with asynchronous SGD, momentum 0.9, the rate decreased by 4% every 8
epochs, Polyak averaging, and no stated initial rate or epoch count; it cannot be followed exactly.
With batch normalisation in every convolution (as torchvision's model), we use the ResNet recipe:
SGD with momentum 0.9, batch 256, lr 0.1, weight decay 1e-4, 90 epochs, lr divided by 10 at epochs
30, 60 and 80. The paper's dropout of 40% before the classifier is kept; the auxiliary classifiers
are off (the trainer takes one output). Augmentation: the random resized crop the paper introduced
(sec. 6: 8%-100% of the area, aspect 3/4-4/3) and horizontal flip.
On GPUs add --config.model.dtype=bfloat16.
"""

from cnn_jax import recipes
from cnn_jax.config import base_config


def get_config():
    c = base_config()
    recipes.imagenet_data(c)
    c.model.name = "googlenet"
    c.model.kwargs.dropout_rate = 0.4
    c.num_epochs = 90
    c.batch_size = 256
    c.eval_batch_size = 256
    recipes.sgd(c, lr=0.1, weight_decay=1e-4, schedule="step", decay_epochs=(30, 60, 80))
    c.checkpoint_every_steps = 1000
    return c
