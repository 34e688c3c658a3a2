"""ResNet-50 (He et al. 2016, "Deep residual learning for image recognition") on ImageNet 2012; the
argument is the global batch: 256 (when none is given), or 1024 or 4096 with Goyal et al. 2017's
linear scaling rule and gradual warm-up ("Accurate, large minibatch SGD: training ImageNet in 1
hour").

    cnn-jax train --config configs/imagenet_resnet50.py --workdir runs/imagenet_resnet50
    # any ImageFolder copy instead of tfds: --config.data.name=folder:/data/imagenet
    cnn-jax train --config configs/imagenet_resnet50.py:1024 --workdir runs/imagenet_resnet50_1024
    # 2 hosts x 4 GPUs: the same command on each host, plus
    #   --coordinator-address HOST0:1234 --num-processes 2 --process-id {0,1}
    #   (docs/scaling.md)
    cnn-jax train --config configs/imagenet_resnet50.py:4096 --workdir runs/imagenet_resnet50_4096
    # e.g. a TPU pod slice: the same command on every host with --distributed (docs/scaling.md)

Expected (ImageNet validation set = our test split, single 224x224 center crop of the image
resized to 256): about 76.1% top-1 / 92.9% top-5, i.e. 23.9% top-1 error: torchvision's ResNet-50
(76.13% / 92.86%) was trained with the batch-256 recipe. For reference, the paper's own numbers:
  * Table 3 (10-crop testing): 22.85% top-1 / 6.71% top-5 error;
  * Table 4 (single model, multi-scale fully-convolutional testing): 20.74% / 5.25% error;
  * the authors' released model, single 224 center crop from 256: 24.7% / 7.8% error.
Batches 1024 and 4096: about 76% top-1 (24% error), the same as batch 256: Goyal et al. report
that ResNet-50 with this recipe keeps its error from batch 256 (23.60% +- 0.12 top-1 error,
Table 1) up to 8k (23.74% +- 0.09, Table 1; Figure 7 plots 64 to 65,536) and rises beyond it.
Past 8k, layer-wise adaptive rates keep large batches trainable: --config.optimizer.name=lars
(You, Gitman & Ginsburg 2017, "Large batch training of convolutional networks"; trust
coefficient 0.001, kernels only; with LARS the learning rate needs retuning).

Recipe: SGD with momentum 0.9, lr 0.1 per 256 images, weight decay 1e-4 (on kernels only, see
cnn_jax/optim.py; no decay on BatchNorm parameters, Goyal et al. §5.1), 90 epochs, lr divided by
10 at epochs 30, 60 and 80: a fixed step schedule, as Goyal et al. 2017 use for this model, in
place of the paper's "divide by 10 when the error plateaus" over 60e4 iterations (~120 epochs;
sec. 3.4). Batches 1024 and 4096 scale the rate linearly with the batch
(optimizer.lr_scaling='linear': 0.1 x 1024/256 = 0.4, 0.1 x 4096/256 = 1.6; §2.1) and warm it up
over the first 5 epochs from 0.1 to that peak ("gradual warmup", §2.2). Differences from Goyal et
al.: BatchNorm statistics are those of the whole global batch (theirs are per 32-image worker,
§2.3), and the last BatchNorm scale of each residual block starts at 1, not 0 (§5.1). A batch
that does not fit in memory: --config.optimizer.grad_accum_steps=k gives the same gradient in k
micro-batches. Augmentation: random resized crop (8%-100% area, aspect 3/4-4/3) and horizontal
flip, the torchvision recipe, instead of the paper's scale augmentation (shorter side in [256,
480]) and colour augmentation. 10,000 training images are held out for validation (model
selection), so the test split is never used to pick a checkpoint. On GPUs add
--config.model.dtype=bfloat16. Data: the tfds `imagenet2012` build, or an ImageFolder copy.
"""

from cnn_jax import recipes
from cnn_jax.config import base_config
from cnn_jax.errors import check_choice

BASE_BATCH = 256  # the batch of lr 0.1 (He et al. 2016 §3.4; Goyal et al. 2017 §2.1)
# global batch: (evaluation batch, checkpoint every N steps: ~5 per epoch, ~3 at 4096)
BATCHES = {"256": (256, 1000), "1024": (1024, 250), "4096": (1024, 100)}


def get_config(arg: str | None = None):
    batch = str(BASE_BATCH) if arg is None else arg
    check_choice(batch, BATCHES, "batch")
    c = base_config()
    recipes.imagenet_data(c)
    c.model.name = "resnet50"
    c.num_epochs = 90
    c.batch_size = int(batch)
    c.eval_batch_size, c.checkpoint_every_steps = BATCHES[batch]
    recipes.sgd(c, lr=0.1, weight_decay=1e-4, schedule="step", decay_epochs=(30, 60, 80))
    if c.batch_size > BASE_BATCH:  # Goyal et al. 2017: linear scaling + 5 epochs of warm-up
        c.optimizer.lr_scaling = "linear"
        c.optimizer.base_batch_size = BASE_BATCH
        c.optimizer.warmup_epochs = 5.0
    return c
