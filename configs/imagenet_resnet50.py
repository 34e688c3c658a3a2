"""ResNet-50 (He et al. 2016, "Deep residual learning for image recognition") on ImageNet 2012.

    cnn-jax train --config configs/imagenet_resnet50.py --workdir runs/imagenet_resnet50
    # any ImageFolder copy instead of tfds: --config.data.name=folder:/data/imagenet

Expected (ImageNet validation set = our test split, single 224x224 center crop of the image
resized to 256): about 76.1% top-1 / 92.9% top-5, i.e. 23.9% top-1 error: torchvision's ResNet-50
(76.13% / 92.86%) was trained with this recipe. For reference, the paper's own numbers:
  * Table 3 (10-crop testing): 22.85% top-1 / 6.71% top-5 error;
  * Table 4 (single model, multi-scale fully-convolutional testing): 20.74% / 5.25% error;
  * the authors' released model, single 224 center crop from 256: 24.7% / 7.8% error.

Recipe: SGD with momentum 0.9, batch 256, lr 0.1 x batch/256 (linear scaling, Goyal et al. 2017:
change optimizer.lr with batch_size, e.g. batch 1024 -> lr 0.4 with warmup_epochs 5), weight
decay 1e-4 (on kernels only, see cnn_jax/optim.py), 90 epochs, lr divided by 10 at epochs 30, 60
and 80: a fixed step schedule, as Goyal et al. 2017 use for this model, in place of the paper's
"divide by 10 when the error plateaus" over 60e4 iterations (~120 epochs; sec. 3.4).
Augmentation: random resized crop (8%-100% area, aspect 3/4-4/3) and horizontal flip, the
torchvision recipe, instead of the paper's scale augmentation (shorter side in [256, 480]) and
colour augmentation. 10,000 training images are held out for validation (model selection), so
the test split is never used to pick a checkpoint. On GPUs add --config.model.dtype=bfloat16.
"""

from cnn_jax.config import base_config


def get_config():
    c = base_config()
    c.data.name = "imagenet2012"
    c.data.val_size = 10_000
    c.data.cache = False  # 1.28 M photos: decoded per record by Grain
    c.data.num_workers = 0  # threads (as fast as worker processes, no start-up per epoch)
    c.data.image_size = 224
    c.data.eval_resize = 256
    c.data.augment.random_resized_crop = True
    c.data.augment.horizontal_flip = True
    c.model.name = "resnet50"
    c.num_epochs = 90
    c.batch_size = 256
    c.eval_batch_size = 256
    c.optimizer.name = "sgd"
    c.optimizer.lr = 0.1 * c.batch_size / 256
    c.optimizer.momentum = 0.9
    c.optimizer.nesterov = False
    c.optimizer.weight_decay = 1e-4
    c.optimizer.schedule = "step"
    c.optimizer.decay_epochs = (30, 60, 80)
    c.optimizer.decay_factor = 0.1
    c.checkpoint_every_steps = 1000  # ~5 checkpoints per epoch of 4,965 steps
    return c
