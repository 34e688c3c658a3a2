"""Faster R-CNN (Ren, He, Girshick & Sun 2015) with an FPN (Lin et al. 2017) on scenes of MNIST
digits.

    cnn-jax train --config configs/digits_fasterrcnn.py --workdir runs/digits_fasterrcnn
    python experiments/detection_runs.py          # with the localiser, YOLOv1 and Mask R-CNN

`fasterrcnn_resnet18_fpn` (cnn_jax/models/rcnn.py: ResNet-18 C2-C4, a 64-channel FPN P2-P5, an RPN
with one anchor size per level, 12-96 px, and three aspect ratios, MultiScale RoIAlign to 7x7, a
256-wide two-layer box head) on `digit_scenes/train_size=24000`: 64x64 canvases of 1-4 digits 16-40
px tall; 24,000 training canvases of MNIST training digits (twice the default), 1,000 of them held
out for validation, the same 2,000 test canvases of MNIST test digits as `digit_scenes`. The bar (the issue's): `test.AP50` >= 0.90.

Recipe (ours; the paper's is SGD at lr 0.02 for batch 16 on an ImageNet-pretrained backbone):
from scratch, Adam at lr 1e-3 with a one-epoch linear warm-up and a cosine decay, batch 32,
7 epochs, no augmentation; the four losses (RPN objectness and boxes, RoI classes and boxes)
summed as in the paper. The best checkpoint by validation AP50 is tested.
Data: `cnn-jax data import mnist --from mnist.npz`; the scenes are generated on first use.
"""

from cnn_jax import recipes
from cnn_jax.config import base_config


def get_config():
    c = base_config()
    recipes.digit_scenes_detection(c)  # 64x64, 1-4 digits 16-40 px tall
    c.data.name = "digit_scenes/train_size=24000"  # the test split does not depend on train_size
    c.model.name = "fasterrcnn_resnet18_fpn"
    c.model.kwargs.box_batch_size_per_image = 32  # RoIs sampled per image, <= 1/4 foreground
    c.num_epochs = 7
    c.batch_size = 32
    c.eval_batch_size = 250
    recipes.adam(c, lr=1e-3)
    c.optimizer.warmup_epochs = 1.0
    return c
