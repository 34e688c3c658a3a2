"""U-Net (Ronneberger, Fischer & Brox 2015) on generated digit scenes, beside FCN-8s.

    cnn-jax train --config configs/digits_unet.py --workdir runs/digits_unet
    python experiments/digits_segmenters.py      # FCN-8s, U-Net and DeepLabV3 in one table

The same data and recipe as configs/digits_fcn.py (128x128 canvases of 1-2 MNIST digits, 11 pixel
classes, Adam at lr 1e-3 with a cosine decay, batch 32, 6 epochs), with the U-Net of the paper's
Fig. 1 at 8 base channels (an eighth of its 64, as the FCNs run at an eighth of VGG16's widths),
'same' padding and BatchNorm: skips at every level, so the masks are drawn at full resolution.
Measured: see docs/results.md.
"""

from cnn_jax import recipes
from cnn_jax.config import base_config


def get_config():
    c = base_config()
    recipes.digit_scenes_segmentation(c)
    c.model.name = "unet"
    c.model.kwargs.padding = "same"
    c.model.kwargs.base_width = 8
    c.model.kwargs.batch_norm = True
    c.num_epochs = 6
    c.batch_size = 32
    c.eval_batch_size = 250
    recipes.adam(c, lr=1e-3)
    return c
