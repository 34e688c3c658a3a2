"""ResNet-110 (He et al. 2016, "Deep residual learning for image recognition", §4.2) on CIFAR-10.

    cnn-jax train --config configs/cifar10_resnet110.py --workdir runs/cifar10_resnet110

Expected: the paper's Table 6 gives 6.43% test error (93.57% accuracy) for ResNet-110, the best
of 5 runs (mean 6.61% ± 0.16%), with 1.7M parameters (ours: 1,727,962).
The CIFAR-10 copy in ../shared/data is JPEG-degraded (quality 75), which costs about 2-3 points
against the true CIFAR-10: expect roughly 90.5-91.5% test accuracy here (not measured).

Network: 6n + 2 = 110 layers (n = 18 basic blocks per stage on 32x32, 16x16 and 8x8 maps with 16, 32
and 64 filters), parameter-free option A shortcuts, as in §4.2. Recipe (configs/_cifar10_resnet.py):
SGD with momentum 0.9, batch 128, weight decay 1e-4, lr 0.1 divided by 10 at iterations 32k and 48k
(epochs 91.2 and 136.8 of 351 iterations), 182 epochs (63,882 iterations; the paper stops at 64k),
a 45k/5k train/val split, 4-pixel padded random 32x32 crops and horizontal flips; per-channel
normalisation stands in for the paper's per-pixel mean subtraction.
ResNet-110 alone warms up: the paper trains at lr 0.01 until the training error is below
80% (about 400 iterations), then at 0.1; here the lr rises linearly from 0 to 0.1 over those
400 iterations (warmup_epochs = 400 / 351).
"""

import runpy
from pathlib import Path


def get_config():
    recipe = runpy.run_path(str(Path(__file__).with_name("_cifar10_resnet.py")))
    return recipe["resnet_config"](110)
