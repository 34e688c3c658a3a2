"""Classification and localisation as regression (Sermanet et al. 2014, OverFeat §4): ResNet-18
with a class head and a 4-number box head on canvases of one MNIST digit.

    cnn-jax train --config configs/digits_localizer.py --workdir runs/digits_localizer
    python experiments/detection_runs.py          # with YOLOv1, Faster R-CNN and Mask R-CNN

`localizer_resnet18` (cnn_jax/models/localizer.py: ResNet-18 (He et al. 2016) whose last layer
gives K + 4 numbers from the 512 pooled features, the lecture's "N x K + N x 4" outputs) on
`digit_scenes_single`: 64x64 canvases of one digit 16-40 px tall at a random place, 12,000
training canvases of MNIST training digits, 1,000 of them held out for validation, 2,000 test
canvases of MNIST test digits. The bars (the issue's): class accuracy
>= 0.98 and mean IoU of the predicted box >= 0.80 on the test canvases.

Loss: softmax cross-entropy plus the box term `1 - GIoU` (Rezatofighi et al. 2019), which scores a
box by its overlap, the quantity the bar measures, and still has a gradient where a box misses the
digit entirely. Recipe (ours): Adam at lr 1e-3 with a cosine decay, batch 64, 12 epochs, no
augmentation (a flipped digit is not a digit); the best checkpoint by validation
`localization_accuracy` (class right and IoU >= 0.5) is tested.
Data: `cnn-jax data import mnist --from mnist.npz`; the canvases are generated on first use.
"""

from cnn_jax import recipes
from cnn_jax.config import base_config


def get_config():
    c = base_config()
    recipes.digit_scenes_detection(c, single=True)
    c.model.name = "localizer_resnet18"
    c.model.kwargs.box_loss = "giou"
    c.num_epochs = 12
    c.batch_size = 64
    c.eval_batch_size = 500
    recipes.adam(c, lr=1e-3)
    return c
