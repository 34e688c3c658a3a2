"""ResNet-50 on ImageNet 2012 with a global batch of 4096: Goyal et al. 2017, "Accurate, large
minibatch SGD: training ImageNet in 1 hour" (linear scaling rule + gradual warmup).

    cnn-jax train --config configs/imagenet_resnet50_b4096.py --workdir runs/imagenet_resnet50_b4096
    # e.g. a TPU pod slice: the same command on every host with --distributed (README "Scaling out")

Expected: about 76% top-1 (24% error) on the ImageNet validation set (our test split), the same
as batch 256 (configs/imagenet_resnet50.py, 76.1%): Goyal et al. report that ResNet-50 with this
recipe keeps its error from batch 256 (23.60% +- 0.12 top-1 error, Table 1) up to 8k (23.74% +-
0.09, Table 1; Figure 7 plots 64 to 65,536) and rises beyond it (Figure 7). Not measured here.
Past 8k, layer-wise adaptive rates keep large batches trainable:
--config.optimizer.name=lars (You, Gitman & Ginsburg 2017, "Large batch training of
convolutional networks"; trust coefficient 0.001, kernels only; with LARS the learning rate needs
retuning).

Recipe (configs/imagenet_resnet50.py otherwise): lr 0.1 per 256 images scaled linearly with the
batch (optimizer.lr_scaling='linear': 0.1 x 4096/256 = 1.6, §2.1), warmed up over the first 5
epochs from 0.1 to 1.6 ("gradual warmup", §2.2), then divided by 10 at epochs 30, 60 and 80 of 90;
SGD momentum 0.9, weight decay 1e-4 on kernels only (§5.1). As in the b1024 config, BatchNorm
uses the whole global batch and zero-initialised residual scales are not used. On fewer devices,
--config.optimizer.grad_accum_steps=k reaches 4096 in k micro-batches.
"""

import runpy
from pathlib import Path


def get_config():
    c = runpy.run_path(str(Path(__file__).with_name("imagenet_resnet50.py")))["get_config"]()
    c.batch_size = 4096
    c.eval_batch_size = 1024
    c.optimizer.lr = 0.1  # per 256 images: the schedule peaks at 0.1 x 4096 / 256 = 1.6
    c.optimizer.lr_scaling = "linear"
    c.optimizer.base_batch_size = 256
    c.optimizer.warmup_epochs = 5.0
    c.checkpoint_every_steps = 100  # ~3 checkpoints per epoch of 310 steps
    return c
