"""RetinaNet (Lin, Goyal, Girshick, He & Dollár 2017) on scenes of MNIST digits, with the focal
loss or with alpha-balanced cross-entropy: the comparison of the paper's Table 1a-b.

    cnn-jax train --config configs/digits_retinanet.py:focal --workdir runs/digits_retinanet_focal
    cnn-jax train --config configs/digits_retinanet.py:bce --workdir runs/digits_retinanet_bce
    python experiments/focal_ablation.py          # both, 3 seeds each

`retinanet_resnet18_fpn` (cnn_jax/models/retinanet.py: ResNet-18 C2-C4, a 64-channel FPN P2-P4,
nine anchors per position of 12-76 px, the classification prior pi = 0.01 of §4.1 in both
variants) on `digit_scenes`: 64x64 canvases of 1-4 digits 16-40 px tall; 12,000 training canvases
of MNIST training digits, 1,000 of them held out for validation, 2,000 test canvases of MNIST test
digits. Variants (the paper's best of each kind on COCO):

  * `focal`: the focal loss, gamma = 2, alpha = 0.25 (Table 1b: 34.0 AP);
  * `bce`: gamma = 0, the alpha-balanced cross-entropy, alpha = 0.75 (Table 1a: 31.1 AP).

Recipe (ours; the paper's is SGD at lr 0.01 for batch 16 on an ImageNet-pretrained ResNet-50):
from scratch, Adam at lr 1e-3 with a one-epoch linear warm-up and a cosine decay, batch 32,
7 epochs, no augmentation. The best checkpoint by validation AP50 is tested; COCO's AP is the
comparison.
Data: `cnn-jax data import mnist --from mnist.npz`; the scenes are generated on first use.
"""

from cnn_jax import recipes
from cnn_jax.config import base_config
from cnn_jax.errors import check_choice

# (gamma, alpha) of each variant: Lin et al. 2017, Table 1b (focal) and Table 1a (alpha-balanced CE)
LOSSES = {"focal": (2.0, 0.25), "bce": (0.0, 0.75)}


def get_config(arg="focal"):
    check_choice(arg, LOSSES, "variant")
    c = base_config()
    recipes.digit_scenes_detection(c)  # 64x64, 1-4 digits 16-40 px tall
    c.model.name = "retinanet_resnet18_fpn"
    c.model.kwargs.focal_gamma, c.model.kwargs.focal_alpha = LOSSES[arg]
    c.num_epochs = 7
    c.batch_size = 32
    c.eval_batch_size = 250
    recipes.adam(c, lr=1e-3)
    c.optimizer.warmup_epochs = 1.0
    return c
