"""The blocks several `configs/*.py` files share: each dataset's input pipeline and SGD.

A config file starts from `cnn_jax.config.base_config()` and calls these on it
(`from cnn_jax import recipes`); each sets exactly the keys its docstring names, so a config still
reads as its recipe and states every value a paper gives. What only one config uses stays in that
config.
"""

from __future__ import annotations

from collections.abc import Sequence

import ml_collections

MNIST_VAL_IMAGES = 5_000  # held out of the 60,000 training digits to pick the best checkpoint
CIFAR10_VAL_IMAGES = 5_000  # He et al. 2016 §4.2: "a 45k/5k train/val split"
IMAGENET_VAL_IMAGES = 10_000  # held out of the training set: the test split picks no checkpoint
# The momentum of every SGD recipe in configs/ (AlexNet §5, VGG §3.1, ResNet §3.4,
# DenseNet §4.2).
SGD_MOMENTUM = 0.9


def mnist_data(c: ml_collections.ConfigDict, val_size: int = MNIST_VAL_IMAGES) -> None:
    """MNIST with `val_size` training digits held out; no augmentation.

    Sets data.name and data.val_size. Offline: `cnn-jax data import mnist --from mnist.npz`.
    """
    c.data.name = "mnist"
    c.data.val_size = val_size


def cifar10_data(c: ml_collections.ConfigDict, val_size: int = CIFAR10_VAL_IMAGES,
                 augment: bool = True) -> None:
    """CIFAR-10 with `val_size` training images held out and, with `augment`, the standard
    augmentation of He et al. 2016 §4.2: "4 pixels are padded on each side, and a 32x32 crop is
    randomly sampled from the padded image or its horizontal flip"; testing uses the original
    32x32 image.

    Sets data.name, data.val_size and (with `augment`) data.augment.random_crop_padding and
    data.augment.horizontal_flip. Offline: `cnn-jax data import cifar10 --from cifar10.npz`.
    """
    c.data.name = "cifar10"
    c.data.val_size = val_size
    if augment:
        c.data.augment.random_crop_padding = 4
        c.data.augment.horizontal_flip = True


def imagenet_data(c: ml_collections.ConfigDict, image_size: int = 224) -> None:
    """ImageNet 2012 as torchvision trains on it: a random resized crop (Szegedy et al. 2015 §6:
    8%-100% of the area, aspect ratio 3/4-4/3) to `image_size` and a horizontal flip; evaluation
    resizes the shorter side to 256 and takes the central `image_size` crop. 10,000 training
    images are held out for validation. Records are decoded by Grain threads, not cached (1.28M
    photos do not fit in memory).

    Sets data.name, data.val_size, data.cache, data.num_workers, data.image_size,
    data.eval_resize, data.augment.random_resized_crop and data.augment.horizontal_flip.
    """
    c.data.name = "imagenet2012"
    c.data.val_size = IMAGENET_VAL_IMAGES
    c.data.cache = False
    c.data.num_workers = 0  # threads: as fast as worker processes, without their start-up per epoch
    c.data.image_size = image_size
    c.data.eval_resize = 256
    c.data.augment.random_resized_crop = True
    c.data.augment.horizontal_flip = True


def sgd(c: ml_collections.ConfigDict, *, lr: float, weight_decay: float = 0.0,
        nesterov: bool = False, schedule: str = "cosine",
        decay_epochs: Sequence[float] = ()) -> None:
    """SGD with momentum 0.9 (Nesterov's with `nesterov`) at peak rate `lr`, coupled weight decay
    on the kernels only (cnn_jax/optim.py), and `schedule`: 'cosine' (to 0 at the end), 'constant',
    or 'step' (divided by 10 at each of `decay_epochs`).

    Sets optimizer.name, lr, momentum, nesterov, weight_decay, schedule, decay_epochs and
    decay_factor.
    """
    c.optimizer.name = "sgd"
    c.optimizer.lr = lr
    c.optimizer.momentum = SGD_MOMENTUM
    c.optimizer.nesterov = nesterov
    c.optimizer.weight_decay = weight_decay
    c.optimizer.schedule = schedule
    c.optimizer.decay_epochs = tuple(decay_epochs)
    c.optimizer.decay_factor = 0.1


DIGIT_SCENES_VAL_IMAGES = 1_000  # held out of the 12,000 generated training canvases
# 128x128 canvases of 1-2 digits 64-88 px tall: their strokes are about as wide as FCN-8s's output
# stride (8 px) or wider, so a prediction at stride 8 can draw them; smaller digits have strokes
# thinner than the stride. experiments/fcn_skips.py prints the mean IoU of the ground truth itself
# pooled to strides 8, 16 and 32 and upsampled: what coarse predictions can reach on the canvases.
DIGIT_SCENES_SEGMENTATION = "digit_scenes/canvas=128,min_height=64,max_height=88,max_digits=2"


def digit_scenes_segmentation(c: ml_collections.ConfigDict,
                              val_size: int = DIGIT_SCENES_VAL_IMAGES) -> None:
    """Semantic segmentation of generated digit scenes (DIGIT_SCENES_SEGMENTATION: 128x128
    canvases of 1-2 MNIST digits 64-88 px tall; 11 pixel classes, background and the ten digits; the anti-aliased
    rim of each digit ignored), `val_size` canvases held out. Generated from MNIST on first use
    (`cnn-jax data import mnist --from mnist.npz` first). No augmentation: a flipped digit is not a
    digit.

    Sets task, data.name and data.val_size.
    """
    c.task = "segmentation"
    c.data.name = DIGIT_SCENES_SEGMENTATION
    c.data.val_size = val_size


def digit_scenes_detection(c: ml_collections.ConfigDict, single: bool = False,
                           val_size: int = DIGIT_SCENES_VAL_IMAGES) -> None:
    """Detection on generated digit scenes (`digit_scenes`: 64x64 canvases of 1-4 MNIST digits
    16-40 pixels tall, each with its tight box and instance mask), or localisation of the one
    digit of `digit_scenes_single` when `single`; `val_size` canvases held out. Generated from
    MNIST on first use (`cnn-jax data import mnist --from mnist.npz` first).

    Sets task, data.name and data.val_size.
    """
    c.task = "localization" if single else "detection"
    c.data.name = "digit_scenes_single" if single else "digit_scenes"
    c.data.val_size = val_size


def adam(c: ml_collections.ConfigDict, *, lr: float, weight_decay: float = 0.0,
         schedule: str = "cosine") -> None:
    """Adam (Kingma & Ba 2015) at peak rate `lr` with the `schedule`, and decoupled weight decay
    (AdamW, Loshchilov & Hutter 2019) on the kernels when `weight_decay` > 0.

    Sets optimizer.name, lr, weight_decay, weight_decay_mode and schedule.
    """
    c.optimizer.name = "adamw" if weight_decay else "adam"
    c.optimizer.lr = lr
    c.optimizer.weight_decay = weight_decay
    c.optimizer.weight_decay_mode = "decoupled" if weight_decay else "coupled"
    c.optimizer.schedule = schedule
