"""Fully connected 300-100-10 network on MNIST with a distorted training set (LeCun et al. 1998, Fig. 9).

    cnn-jax train --config configs/mnist_mlp_distorted.py --workdir runs/mnist_mlp_distorted

Paper: 3.05% test error without distortions, 2.45% with them; the one-hidden-layer member,
--config.model.name=mlp_300, 4.7% and 3.6%. `experiments/lenet_table.py` trains both and prints
the measured numbers next to the paper's.

The distortions are drawn afresh for every image of every epoch (one random affine map, then an
elastic field), in place of the paper's fixed set of distorted copies of the training digits:
  * affine, LeCun et al. 1998 §III: "horizontal and vertical translations, scaling, squeezing
    (simultaneous horizontal compression and vertical elongation, or the reverse) and horizontal
    shearing". The paper gives no ranges; ours are small enough that a digit stays in the field:
    shifts of up to 10% (2.8 pixels), scale and squeeze within 10%, shear within 10 degrees, plus
    rotations within 10 degrees (Simard et al. 2003 §2 use rotations among their affine maps).
  * elastic, Simard, Steinkraus & Platt 2003 §2: a uniform random displacement field smoothed by
    a Gaussian of sigma = 4 pixels and scaled by alpha = 34, their values for 28x28 MNIST.
Distorted digits are harder to fit, so the run is longer than configs/mnist_mlp.py's 15 epochs.

Measured (2-core CPU shared with other jobs, about 90 s per run): 1.37% test error for 300-100-10
and 1.60% for 300-10, against 1.80% and 1.84% for the same nets without distortions.
"""

from cnn_jax.config import base_config


def get_config():
    c = base_config()
    c.data.name = "mnist"
    c.data.val_size = 5_000
    c.data.augment.rotation = 10.0
    c.data.augment.translate = 0.1
    c.data.augment.shear = 10.0
    c.data.augment.zoom = 0.1
    c.data.augment.squeeze = 0.1
    c.data.augment.elastic_alpha = 34.0
    c.data.augment.elastic_sigma = 4.0
    c.model.name = "mlp_300_100"
    c.num_epochs = 30
    c.batch_size = 128
    c.optimizer.name = "sgd"
    c.optimizer.lr = 0.05
    c.optimizer.momentum = 0.9
    c.optimizer.schedule = "cosine"
    return c
