"""DeepLabV3 (Chen, Papandreou, Schroff & Adam 2017) on a dilated ResNet, on generated digit scenes.

    cnn-jax train --config configs/digits_deeplab.py --workdir runs/digits_deeplab
    python experiments/digits_segmenters.py      # FCN-8s, U-Net and DeepLabV3 in one table

The dilated-backbone answer to resolution: the last two ResNet stages keep their stride and dilate
their convolutions instead (output stride 8, Yu & Koltun 2016; torchvision's
replace_stride_with_dilation), and the ASPP head looks at several scales at once. The same data
and recipe as configs/digits_fcn.py; the model is `deeplabv3_resnet50`'s architecture on a small
backbone for CPU runs: basic blocks (2, 2, 2, 2) of widths 16-128 (ResNet-18's layout at a quarter
of its width) and an ASPP of 64 channels at rates 2, 4, 6 — the paper's rates 12, 24, 36 span a
65x65 output-stride-8 map of a 513-pixel crop; these keep the same share of the 16x16 map of a
128-pixel canvas. Measured: see docs/results.md.
"""

from cnn_jax import recipes
from cnn_jax.config import base_config


def get_config():
    c = base_config()
    recipes.digit_scenes_segmentation(c)
    c.model.name = "deeplabv3_resnet50"
    c.model.kwargs.block = "basic"
    c.model.kwargs.stage_sizes = (2, 2, 2, 2)
    c.model.kwargs.stage_widths = (16, 32, 64, 128)
    c.model.kwargs.aspp_features = 64
    c.model.kwargs.aspp_rates = (2, 4, 6)
    c.num_epochs = 6
    c.batch_size = 32
    c.eval_batch_size = 250
    recipes.adam(c, lr=1e-3)
    return c
