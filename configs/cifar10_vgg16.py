"""VGG-16 with batch norm (configuration D of Simonyan & Zisserman 2015, Table 1, with BN after
every convolution as torchvision's vgg16_bn) on CIFAR-10, with the 512-wide classifier of CIFAR
VGGs.

    cnn-jax train --config configs/cifar10_vgg16.py --workdir runs/cifar10_vgg16

Expected: the VGG paper has no CIFAR results. VGG-16 with BN and a 512-wide classifier reaches
about 93% on the true CIFAR-10 in the literature: Li et al. 2017 ("Pruning filters for efficient
ConvNets", Table 1) report 6.75% test error for such a VGG-16 (15M parameters). The offline
CIFAR-10 copy this project is tested with is JPEG-degraded (quality 75), which costs about 2-3
points against the published accuracies. Data: `cnn-jax data import cifar10 --from cifar10.npz`.

Network: the thirteen 3x3 convolutions of D with BN and five 2x2 max pools, which leave a 1x1x512
map at 32x32. torchvision's head (adaptive average pool to 7x7, then 4096-4096-10) would repeat that
one vector 49 times into 25,088 inputs: 134.3M parameters, 119M of them in the classifier, with a
large initial loss. model.kwargs replace it by a 1x1 pool (the identity here) and 512-512-10 with
dropout 0.5, the usual CIFAR VGG head: 15,253,578 parameters. For torchvision's head add
    --config.model.kwargs.pooled_size=7 --config.model.kwargs.hidden_sizes='(4096, 4096)'

Recipe (our choice; the paper trained only on ImageNet): SGD with momentum 0.9, batch 128, weight
decay 5e-4 (on kernels only, see cnn_jax/optim.py; the paper's ImageNet value), lr 0.05 with cosine
decay to 0 over 200 epochs, 4-pixel padded random 32x32 crops and horizontal flips, a 45k/5k
train/val split (the test score is that of the best checkpoint by validation accuracy).
"""

from cnn_jax import recipes
from cnn_jax.config import base_config


def get_config():
    c = base_config()
    recipes.cifar10_data(c)
    c.model.name = "vgg16_bn"
    c.model.kwargs.pooled_size = 1
    c.model.kwargs.hidden_sizes = (512, 512)
    c.model.kwargs.dropout_rate = 0.5
    c.num_epochs = 200
    c.batch_size = 128
    recipes.sgd(c, lr=0.05, weight_decay=5e-4, schedule="cosine")
    return c
