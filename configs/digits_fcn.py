"""FCN-32s, FCN-16s and FCN-8s (Long, Shelhamer & Darrell 2015) on generated digit scenes.

    cnn-jax train --config configs/digits_fcn.py:8s --workdir runs/digits_fcn_8s     # or :32s, :16s
    python experiments/fcn_skips.py                                                 # all three, 3 seeds

The paper's finding (its Table 2, VOC2011 val mean IU): skips from finer layers sharpen the
prediction, FCN-32s 59.4 < FCN-16s 62.4 <= FCN-8s 62.7. Here on `digit_scenes` (128x128 canvases of
1-2 MNIST digits 64-88 pixels tall, 11 pixel classes; cnn_jax.recipes.DIGIT_SCENES_SEGMENTATION)
with the VGG16 FCNs at an eighth of their width (`model.kwargs.width=0.125`), trained from
scratch; measured: see docs/results.md.

Recipe (ours, not the paper's, which fine-tunes ImageNet VGG16 with SGD at lr 1e-10 on an
unnormalised loss): Adam at lr 1e-3 with a cosine decay, batch 32, 6 epochs, per-pixel softmax
cross-entropy averaged over the counted pixels, 1,000 canvases held out for validation (the best
checkpoint by validation mean IoU is tested on the 2,000 test canvases, made of MNIST test digits).
Data: `cnn-jax data import mnist --from mnist.npz`; the scenes are generated on first use.
"""

from cnn_jax import recipes
from cnn_jax.config import base_config
from cnn_jax.errors import check_choice

VARIANTS = ("32s", "16s", "8s")


def get_config(arg="8s"):
    check_choice(arg, VARIANTS, "variant")
    c = base_config()
    recipes.digit_scenes_segmentation(c)
    c.model.name = f"fcn{arg}"
    c.model.kwargs.width = 0.125
    c.num_epochs = 6
    c.batch_size = 32
    c.eval_batch_size = 250
    recipes.adam(c, lr=1e-3)
    return c
