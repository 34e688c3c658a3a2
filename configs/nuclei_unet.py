"""U-Net (Ronneberger, Fischer & Brox 2015) on the 2018 Data Science Bowl nuclei image.

    cnn-jax train --config configs/nuclei_unet.py --workdir runs/nuclei_unet
    python experiments/nuclei_unet.py        # the run, then its foreground IoU beside Otsu's

One real fluorescence microscopy image of 512x512 with 125 labelled nuclei (Caicedo et al. 2019):
the model trains on 65 overlapping 128x128 tiles of the left half and is tested on the 8 tiles that
cover the right half exactly, so the test's foreground IoU is that of the right half. The issue's
bar: foreground IoU >= 0.80, against about 0.66 for a global Otsu threshold on the same half
(experiments/nuclei_unet.py computes both); measured: see docs/results.md.

Recipe: U-Net with 'same' padding (output = input size), 32 base channels (half the paper's 64),
BatchNorm after each convolution (the paper has none; it lets Adam train the net from scratch on so
few images), 2 classes; Adam at lr 1e-3 with a cosine decay, batch 8, horizontal and vertical
flips; no validation split (65 tiles are few, and any held-out tile overlaps training tiles): the
final checkpoint is tested. Data: `cnn-jax data import nuclei_dsb2018 --from nuclei_dsb2018.npz`.
"""

from cnn_jax import recipes
from cnn_jax.config import base_config


def get_config():
    c = base_config()
    c.task = "segmentation"
    c.data.name = "nuclei_dsb2018"
    c.data.val_size = 0
    c.data.augment.horizontal_flip = True
    c.data.augment.vertical_flip = True
    c.model.name = "unet"
    c.model.kwargs.padding = "same"
    c.model.kwargs.base_width = 32
    c.model.kwargs.batch_norm = True
    c.num_epochs = 100
    c.batch_size = 8
    c.eval_batch_size = 8
    c.log_every_steps = 40
    recipes.adam(c, lr=1e-3)
    return c
