"""Mask R-CNN (He, Gkioxari, Dollár & Girshick 2017) on scenes of MNIST digits: boxes and instance
masks, each scored by COCO's AP (box IoU and mask IoU).

    cnn-jax train --config configs/digits_maskrcnn.py --workdir runs/digits_maskrcnn
    python experiments/detection_runs.py          # with the localiser, YOLOv1 and Faster R-CNN

`maskrcnn_resnet18_fpn` (cnn_jax/models/rcnn.py: the Faster R-CNN of configs/digits_fasterrcnn.py
plus a mask head of four 3x3 convolutions of 64 channels, a 2x upsampling and a 28x28 mask per
class, from RoIAlign to 14x14) on `digit_scenes`, whose instance masks are each digit's ink
(visible after occlusion): 64x64 canvases of 1-4 digits 16-40 px tall; 12,000 training canvases
of MNIST training digits, 1,000 of them held out for validation, 2,000 test canvases of MNIST test
digits. Reported: COCO's box statistics (`AP`, `AP50`, ...) and the same from COCO's segm IoU
(`mask_AP`, `mask_AP50`, ...; pycocotools' mask IoU, run length encoded).

Recipe: configs/digits_fasterrcnn.py's (Adam at lr 1e-3, one-epoch warm-up, cosine, batch 32, 32
RoIs sampled per image, from scratch) on the default 12,000 canvases instead of 24,000, for 3 epochs
instead of 7 (the mask head costs more than the rest of a training step), the mask loss added to the four others as in the paper (§3, L = L_cls
+ L_box + L_mask). The best checkpoint by validation box AP50 is tested.
Data: `cnn-jax data import mnist --from mnist.npz`; the scenes are generated on first use.
"""

from pathlib import Path

from cnn_jax.config import load_config


def get_config():
    c = load_config(Path(__file__).with_name("digits_fasterrcnn.py"))
    c.model.name = "maskrcnn_resnet18_fpn"
    c.data.name = "digit_scenes"
    c.num_epochs = 3
    return c
