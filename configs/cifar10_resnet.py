"""The CIFAR-10 ResNets (He et al. 2016, "Deep residual learning for image recognition", §4.2):
ResNet-20, 32, 44, 56 and 110, one recipe; the argument is the depth (20 when none is given).

    cnn-jax train --config configs/cifar10_resnet.py:56 --workdir runs/cifar10_resnet_56

Expected, the paper's Table 6 (test error; parameters as printed there, and ours):

    depth   Table 6 error   parameters   ours
    20      8.75%           0.27M        269,722
    32      7.51%           0.46M        464,154
    44      7.17%           0.66M        658,586
    56      6.97%           0.85M        853,018
    110     6.43%           1.7M         1,727,962   (best of 5 runs; mean 6.61% +- 0.16%)

The offline CIFAR-10 copy this project is tested with is JPEG-degraded (quality 75), which costs
about 2-3 points against the published accuracies. Data: `cnn-jax data import cifar10 --from
cifar10.npz`.

Network: 6n + 2 layers (n basic blocks per stage on 32x32, 16x16 and 8x8 maps with 16, 32 and 64
filters), parameter-free option A shortcuts, as in §4.2. Recipe: SGD with momentum 0.9, batch 128,
weight decay 1e-4, a 45k/5k train/val split, 4-pixel padded random 32x32 crops and horizontal
flips; per-channel normalisation stands in for the paper's per-pixel mean subtraction.

The paper counts iterations of batch 128: lr 0.1, divided by 10 at 32k and 48k iterations,
stop at 64k, "determined on a 45k/5k train/val split". With 45,000 training images and the
last partial batch dropped, an epoch is 45,000 // 128 = 351 iterations, so the decays fall at
epochs 32,000 / 351 = 91.2 and 48,000 / 351 = 136.8 (exactly iterations 32,000 and 48,000), and
182 epochs give 63,882 iterations (64k less a third of an epoch). The often quoted 82/123/164
epochs are the same iterations over all 50,000 images (390 per epoch); to train on those, add
    --config.data.val_size=0 --config.optimizer.decay_epochs='(82, 123)' --config.num_epochs=164

ResNet-110 alone warms up: the paper trains at lr 0.01 until the training error is below 80%
(about 400 iterations), then at 0.1; here the lr rises linearly from 0 to 0.1 over those 400
iterations (warmup_epochs = 400 / 351; the trainer's warm-up is linear, as in Goyal et al. 2017).
"""

from cnn_jax import recipes
from cnn_jax.config import base_config
from cnn_jax.errors import check_choice

DEPTHS = ("20", "32", "44", "56", "110")  # the registered models resnet20 ... resnet110
CIFAR10_TRAIN_IMAGES = 50_000
BATCH_SIZE = 128
LR_DECAY_ITERATIONS = (32_000, 48_000)
TOTAL_ITERATIONS = 64_000
WARMUP_ITERATIONS = {110: 400}  # §4.2: ResNet-110 only


def get_config(arg: str | None = None):
    depth = "20" if arg is None else arg
    check_choice(depth, DEPTHS, "depth")
    c = base_config()
    recipes.cifar10_data(c)
    c.model.name = f"resnet{depth}"
    c.batch_size = BATCH_SIZE
    iterations_per_epoch = (CIFAR10_TRAIN_IMAGES - c.data.val_size) // BATCH_SIZE  # 351
    c.num_epochs = round(TOTAL_ITERATIONS / iterations_per_epoch)  # 182
    recipes.sgd(c, lr=0.1, weight_decay=1e-4, schedule="step",
                decay_epochs=[it / iterations_per_epoch for it in LR_DECAY_ITERATIONS])
    c.optimizer.warmup_epochs = WARMUP_ITERATIONS.get(int(depth), 0) / iterations_per_epoch
    return c
