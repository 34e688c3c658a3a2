"""MobileNet v1, alpha 1.0 (Howard et al. 2017, "MobileNets: efficient convolutional neural
networks for mobile vision applications", Table 1) on CIFAR-10, unchanged from its ImageNet form.

    cnn-jax train --config configs/cifar10_mobilenet_v1.py --workdir runs/cifar10_mobilenet_v1
    # half width (Table 6's alpha 0.5, 823,722 parameters here):
    #   --config.model.name=mobilenet_v1_050

Expected: the paper reports no CIFAR-10 result, and we know of no published number for this
exact network on 32x32 inputs, so none is promised. Its five
stride-2 layers (the stem and four depthwise layers) shrink a 32x32 image to 16, 8, 4, 2 and
finally 1x1: the two 1024-channel layers at the end see a single pixel, where at 224x224 they see
7x7. CIFAR adaptations of MobileNet drop one or two of these strides; the registered model has no
option for that, so this config runs the ImageNet network as it is (3,217,226 parameters for 10
classes): expect it to trail the CIFAR-adapted versions, which keep larger maps, and the ResNets
of configs/cifar10_resnet.py. The offline CIFAR-10 copy this project is tested with is
JPEG-degraded (quality 75), which costs a further 2-3 points against the published accuracies.
Data: `cnn-jax data import cifar10 --from cifar10.npz`.

Recipe (our choice, a common CIFAR recipe; the paper trained only on ImageNet, with RMSprop): SGD
with momentum 0.9, batch 128, lr 0.1 with cosine decay to 0 over 200 epochs, weight decay 1e-4 on
every kernel (the paper advises little or none on the depthwise filters, which cnn_jax/optim.py
cannot exempt; 1e-4 instead of the usual 5e-4 keeps it small), 4-pixel padded random crops and
horizontal flips, a 45k/5k train/val split.
"""

from cnn_jax import recipes
from cnn_jax.config import base_config


def get_config():
    c = base_config()
    recipes.cifar10_data(c)
    c.model.name = "mobilenet_v1"
    c.num_epochs = 200
    c.batch_size = 128
    recipes.sgd(c, lr=0.1, weight_decay=1e-4, schedule="cosine")
    return c
