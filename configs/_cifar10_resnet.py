"""The CIFAR-10 recipe shared by configs/cifar10_resnet{20,32,44,56,110}.py (He et al. 2016, §4.2).

Not a config itself (no `get_config`): each cifar10_resnetNN.py runs this file and calls
`resnet_config(depth)`, so the five configs cannot drift apart.

The paper counts iterations of batch 128: lr 0.1, divided by 10 at 32k and 48k iterations,
stop at 64k, "determined on a 45k/5k train/val split". With 45,000 training images and the
last partial batch dropped, an epoch is 45,000 // 128 = 351 iterations, so the decays fall at
epochs 32,000 / 351 = 91.2 and 48,000 / 351 = 136.8 (exactly iterations 32,000 and 48,000), and
182 epochs give 63,882 iterations (64k less a third of an epoch). The often quoted 82/123/164
epochs are the same iterations over all 50,000 images (390 per epoch); to train on those, add
    --config.data.val_size=0 --config.optimizer.decay_epochs='(82, 123)' --config.num_epochs=164
"""

from cnn_jax.config import base_config

CIFAR10_TRAIN_IMAGES = 50_000
VAL_IMAGES = 5_000  # §4.2: the 45k/5k train/val split
BATCH_SIZE = 128
LR_DECAY_ITERATIONS = (32_000, 48_000)
TOTAL_ITERATIONS = 64_000
# ResNet-110 only: "0.01 to warm up the training until the training error is below 80% (about
# 400 iterations), and then go back to 0.1" (§4.2).
WARMUP_ITERATIONS = {110: 400}


def resnet_config(depth: int):
    """He et al.'s CIFAR-10 recipe for the registered model `resnet{depth}` (depth = 6n + 2)."""
    c = base_config()
    c.data.name = "cifar10"
    c.data.val_size = VAL_IMAGES
    # "4 pixels are padded on each side, and a 32x32 crop is randomly sampled from the padded
    # image or its horizontal flip"; testing uses the single original 32x32 view.
    c.data.augment.random_crop_padding = 4
    c.data.augment.horizontal_flip = True
    c.model.name = f"resnet{depth}"
    c.batch_size = BATCH_SIZE
    c.eval_batch_size = 1_000
    iterations_per_epoch = (CIFAR10_TRAIN_IMAGES - VAL_IMAGES) // BATCH_SIZE  # 351
    c.num_epochs = round(TOTAL_ITERATIONS / iterations_per_epoch)  # 182
    c.optimizer.name = "sgd"
    c.optimizer.lr = 0.1
    c.optimizer.momentum = 0.9
    c.optimizer.nesterov = False
    c.optimizer.weight_decay = 1e-4  # on kernels only (cnn_jax/optim.py)
    c.optimizer.schedule = "step"
    c.optimizer.decay_epochs = tuple(it / iterations_per_epoch for it in LR_DECAY_ITERATIONS)
    c.optimizer.decay_factor = 0.1
    # A linear ramp from 0 to 0.1 over the paper's ~400 warm-up iterations stands in for its
    # constant 0.01 (the trainer's warmup is linear, as in Goyal et al. 2017).
    c.optimizer.warmup_epochs = WARMUP_ITERATIONS.get(depth, 0) / iterations_per_epoch
    return c
