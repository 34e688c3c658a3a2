"""YOLOv1 (Redmon, Divvala, Girshick & Farhadi 2016) reduced for a CPU, on scenes of MNIST digits;
the argument is the stage: `pretrain` (its convolutions on digit classification) or `detect`
(the default).

    cnn-jax train --config configs/digits_yolov1.py:pretrain --workdir runs/digits_yolov1_pretrain
    cnn-jax train --config configs/digits_yolov1.py --workdir runs/digits_yolov1
    python experiments/detection_runs.py          # both, with the localiser, Faster R-CNN and Mask R-CNN

`yolov1_small` (cnn_jax/models/yolo.py: six convolutions and two FC layers, an 8x8 grid of two
boxes and ten class probabilities per cell, the loss of the paper's eq. 3 with lambda_coord = 5
and lambda_noobj = 0.5) on `digit_scenes/train_size=24000`: 64x64 canvases of 1-4 digits 16-40 px
tall, boxes overlapping up to IoU 0.3; 24,000 training canvases of MNIST training digits (twice
the default), 1,000 of them held out for validation, the same 2,000 test canvases of MNIST test
digits as `digit_scenes`. The bar (the issue's): `test.AP50` >= 0.90; COCO's `AP` (IoU
0.50:0.95) is reported beside it.

Recipe: the paper's (§2.2) pretrains the first 20 convolutions on ImageNet classification (with
average pooling and an FC layer), then trains the detector from them with SGD (momentum 0.9,
weight decay 5e-4, a warm-up), dropout 0.5 after the first FC layer, and random scaling and
translation of up to 20% of the image. Here (ours):
  * pretrain: `yolov1_small_classifier` (the detector's six convolutions, average pooling, FC
    10) classifies the one digit of `digit_scenes_single` canvases (11,000 training, 1,000
    validation), 4 epochs; the best checkpoint by validation accuracy is kept;
  * detect: every convolution and BatchNorm loaded from the pretraining run (`init.checkpoint`,
    the workdir above; the FC layers start fresh, `init.exclude_regex`), 40 epochs.
Both: BatchNorm after every convolution (YOLOv2's first change, Redmon & Farhadi 2017 §2; the
model's `batch_norm`), no dropout, LeCun-normal initial weights (He-normal weights through the
leaky-ReLU layers of the network without BatchNorm start it with outputs so large that it
settles on predicting the mean), Adam with a one-epoch linear warm-up and a cosine decay, at lr
1e-3 (pretrain) and 3e-3 (detect), random translation and zoom of up to 10% (boxes move with the
image; digits that leave it are clipped or dropped), batch 64. Detection evaluates and tests an
exponential moving average of the weights (decay 0.999; Polyak & Juditsky 1992), keeps
class-specific confidences C * p(c) above 0.05, NMS at IoU 0.5 per class. The best checkpoint by
validation AP50 is tested.
Data: `cnn-jax data import mnist --from mnist.npz`; the scenes are generated on first use.
"""

from cnn_jax import recipes
from cnn_jax.config import base_config
from cnn_jax.errors import check_choice

VARIANTS = ("detect", "pretrain")
PRETRAIN_WORKDIR = "runs/digits_yolov1_pretrain"  # the :pretrain stage's workdir above


def _common(c):
    c.data.augment.translate = 0.1
    c.data.augment.zoom = 0.1
    c.model.kwargs.kernel_init = "lecun_normal"
    c.model.kwargs.batch_norm = True  # YOLOv2's BatchNorm after every convolution ...
    c.batch_size = 64
    c.eval_batch_size = 500
    recipes.adam(c, lr=1e-3)
    c.optimizer.warmup_epochs = 1.0


def get_config(arg="detect"):
    check_choice(arg, VARIANTS, "variant")
    c = base_config()
    if arg == "pretrain":
        recipes.digit_scenes_detection(c, single=True)  # one digit per canvas, with its label
        c.task = "classification"
        c.model.name = "yolov1_small_classifier"
        _common(c)
        c.num_epochs = 4
        return c
    recipes.digit_scenes_detection(c)  # 64x64, 1-4 digits 16-40 px tall
    c.data.name = "digit_scenes/train_size=24000"  # the test split does not depend on train_size
    c.model.name = "yolov1_small"
    _common(c)
    c.model.kwargs.dropout_rate = 0.0  # ... which lets dropout go (Redmon & Farhadi 2017 §2)
    c.optimizer.lr = 3e-3
    c.optimizer.ema_decay = 0.999
    c.num_epochs = 40
    c.init.checkpoint = PRETRAIN_WORKDIR
    c.init.exclude_regex = "^(fc1|fc2|classifier)/"
    return c
