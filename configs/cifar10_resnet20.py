"""ResNet-20 (He et al. 2016, "Deep residual learning for image recognition", §4.2) on CIFAR-10.

    cnn-jax train --config configs/cifar10_resnet20.py --workdir runs/cifar10_resnet20

Expected: the paper's Table 6 gives 8.75% test error (91.25% accuracy) for ResNet-20, with
0.27M parameters (ours: 269,722).
The CIFAR-10 copy in ../shared/data is JPEG-degraded (quality 75), which costs about 2-3 points
against the true CIFAR-10: expect roughly 88-89% test accuracy here (not measured).

Network: 6n + 2 = 20 layers (n = 3 basic blocks per stage on 32x32, 16x16 and 8x8 maps with 16, 32
and 64 filters), parameter-free option A shortcuts, as in §4.2. Recipe (configs/_cifar10_resnet.py):
SGD with momentum 0.9, batch 128, weight decay 1e-4, lr 0.1 divided by 10 at iterations 32k and 48k
(epochs 91.2 and 136.8 of 351 iterations), 182 epochs (63,882 iterations; the paper stops at 64k),
a 45k/5k train/val split, 4-pixel padded random 32x32 crops and horizontal flips; per-channel
normalisation stands in for the paper's per-pixel mean subtraction.
"""

import runpy
from pathlib import Path


def get_config():
    recipe = runpy.run_path(str(Path(__file__).with_name("_cifar10_resnet.py")))
    return recipe["resnet_config"](20)
