"""ResNet-50 on ImageNet 2012 with a global batch of 1024: Goyal et al. 2017, "Accurate, large
minibatch SGD: training ImageNet in 1 hour" (linear scaling rule + gradual warmup).

    cnn-jax train --config configs/imagenet_resnet50_b1024.py --workdir runs/imagenet_resnet50_b1024
    # 2 hosts x 4 GPUs: the same command on each host, plus
    #   --coordinator-address HOST0:1234 --num-processes 2 --process-id {0,1}   (README "Scaling out")

Expected: about 76% top-1 (24% error) on the ImageNet validation set (our test split), the same
as batch 256 (configs/imagenet_resnet50.py, 76.1%): Goyal et al. report that ResNet-50 with this
recipe keeps its error from batch 256 (23.60% +- 0.12 top-1 error, Table 1) up to 8k (23.74% +-
0.09, Table 1; Figure 7 plots 64 to 65,536), and breaks down only beyond 8k. Not measured here.

Recipe (configs/imagenet_resnet50.py otherwise): lr 0.1 per 256 images scaled linearly with the
batch (optimizer.lr_scaling='linear': 0.1 x 1024/256 = 0.4, §2.1), warmed up over the first 5
epochs from 0.1 to 0.4 ("gradual warmup", §2.2), then divided by 10 at epochs 30, 60 and 80 of 90;
SGD momentum 0.9, weight decay 1e-4 on kernels only (no decay on BatchNorm parameters, §5.1).
Differences from the paper: BatchNorm statistics are those of the whole global batch (the
paper's are per 32-image worker, §2.3), and the last BatchNorm scale of each residual block starts
at 1, not 0 (§5.1). Batches of 1024 that do not fit in memory: --config.optimizer.grad_accum_steps=k
gives the same gradient in k micro-batches.
"""

import runpy
from pathlib import Path


def get_config():
    c = runpy.run_path(str(Path(__file__).with_name("imagenet_resnet50.py")))["get_config"]()
    c.batch_size = 1024
    c.eval_batch_size = 1024
    c.optimizer.lr = 0.1  # per 256 images: the schedule peaks at 0.1 x 1024 / 256 = 0.4
    c.optimizer.lr_scaling = "linear"
    c.optimizer.base_batch_size = 256
    c.optimizer.warmup_epochs = 5.0
    c.checkpoint_every_steps = 250  # ~5 checkpoints per epoch of 1,241 steps
    return c
