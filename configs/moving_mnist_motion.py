"""Moving MNIST labelled by the direction of motion: a 3-D convolutional network (C3D, Tran et al.
2015, at an eighth of its width) against two 2-D twins; the argument is `3d`, `frame` or `2d`.

    cnn-jax train --config configs/moving_mnist_motion.py:3d --workdir runs/moving_mnist_3d   # or :frame, :2d
    python experiments/motion_needs_3d.py      # all three, 3 seeds, against chance (1/8)

Data: `moving_mnist/frames=16` (cnn_jax.data.moving_mnist), generated on first use from the
imported MNIST (`cnn-jax data import mnist --from mnist.npz`): 16 frames of 64x64 in which two
digits move together on a torus in one of 8 directions, the label; 3,000 training clips (300 held
out for validation) from training digits, 600 test clips from test digits. Each frame on its own
is uniform over the digits' positions whatever the direction, so a model that sees one frame
sits at chance, 1/8; two consecutive frames give the direction exactly.

Models: `3d` is `c3d_small` (C3D's eight 3x3x3 convolutions with 8 ... 64 filters, its five
pools, fc6 and fc7 of 256; 566,200 parameters). The 2-D twins have the same layers with 1x3x3
kernels and 1x2x2 pools (278,056 parameters): `frame` is `frame2d_small`, which classifies the
first frame of a clip alone (Karpathy et al. 2014's single-frame model); `2d` is
`frames2d_small`, which classifies every frame and averages the logits over time, a late fusion
that can see the axis of the motion but not its sign (cnn_jax/models/c3d.py). Expected: the 3-D
model far above chance, the single-frame model near it; measured: see docs/results.md.

Recipe (ours: the paper trains with SGD at lr 0.003, batch 30, on Sports-1M): Adam at lr 1e-3 with
a cosine decay, batch 32, 10 epochs, dropout 0.5 after fc6 and fc7 as the released model; the checkpoint
with the best validation accuracy is tested.
"""

from cnn_jax import recipes
from cnn_jax.config import base_config
from cnn_jax.errors import check_choice

MODELS = {"3d": "c3d_small", "frame": "frame2d_small", "2d": "frames2d_small"}
MOVING_MNIST = "moving_mnist/frames=16"  # C3D's 16-frame clips (the default clips have 20)
MOVING_MNIST_VAL_CLIPS = 300  # held out of the 3,000 generated training clips


def get_config(arg="3d"):
    check_choice(arg, MODELS, "variant")
    c = base_config()
    c.data.name = MOVING_MNIST
    c.data.val_size = MOVING_MNIST_VAL_CLIPS
    c.model.name = MODELS[arg]
    c.num_epochs = 10
    c.batch_size = 32
    c.eval_batch_size = 100
    recipes.adam(c, lr=1e-3)
    return c
