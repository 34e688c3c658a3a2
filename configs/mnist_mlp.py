"""Fully connected 300-100-10 network (LeCun et al. 1998, Fig. 9) on MNIST; the argument
`distorted` trains on distorted digits (Fig. 9's "[distortions]" rows).

    cnn-jax train --config configs/mnist_mlp.py --workdir runs/mnist_mlp
    cnn-jax train --config configs/mnist_mlp.py:distorted --workdir runs/mnist_mlp_distorted

Paper: 3.05% test error, 2.45% with distortions. Other members of the family:
--config.model.name=mlp_300 (4.7%, 3.6% with distortions), --config.model.name=mlp_linear
(12.0%). Measured: see README Results (`experiments/lenet_table.py` trains every row).
Data: `cnn-jax data import mnist --from mnist.npz`.

The distortions are drawn afresh for every image of every epoch (one random affine map, then an
elastic field), in place of the paper's fixed set of distorted copies of the training digits:
  * affine, LeCun et al. 1998 §III: "horizontal and vertical translations, scaling, squeezing
    (simultaneous horizontal compression and vertical elongation, or the reverse) and horizontal
    shearing". The paper gives no ranges; ours are small enough that a digit stays in the field:
    shifts of up to 10% (2.8 pixels), scale and squeeze within 10%, shear within 10 degrees, plus
    rotations within 10 degrees (Simard et al. 2003 §2 use rotations among their affine maps).
  * elastic, Simard, Steinkraus & Platt 2003 §2: a uniform random displacement field smoothed by
    a Gaussian of sigma = 4 pixels and scaled by alpha = 34, their values for 28x28 MNIST.
Distorted digits are harder to fit, so that run is 30 epochs instead of 15.
"""

from cnn_jax import recipes
from cnn_jax.config import base_config
from cnn_jax.errors import check_choice


def get_config(arg: str | None = None):
    if arg is not None:
        check_choice(arg, ("distorted",), "variant")
    c = base_config()
    recipes.mnist_data(c)
    c.model.name = "mlp_300_100"
    c.num_epochs = 15
    c.batch_size = 128
    recipes.sgd(c, lr=0.05, schedule="cosine")
    if arg == "distorted":
        c.data.augment.rotation = 10.0  # degrees
        c.data.augment.translate = 0.1  # of the height and width
        c.data.augment.shear = 10.0  # degrees
        c.data.augment.zoom = 0.1
        c.data.augment.squeeze = 0.1
        c.data.augment.elastic_alpha = 34.0  # Simard et al. 2003 §2
        c.data.augment.elastic_sigma = 4.0
        c.num_epochs = 30
    return c
