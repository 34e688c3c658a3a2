"""A four-layer CNN on CIFAR-10 for comparing activations (Krizhevsky et al. 2012, §3.1 and
Fig. 1).

    cnn-jax train --config configs/cifar10_activations.py --workdir runs/cifar10_relu \
        --config.model.kwargs.activation=relu

Four weight layers, as the paper's Fig. 1 net (whose layers the paper does not give): the LeNet
module with C1 16@5x5 (padded, 32x32) -> 2x2 max pool -> C3 32@5x5 (12x12) -> 2x2 max pool ->
C5 64@5x5 (2x2) -> output, 67,882 parameters. `model.kwargs.activation` is sigmoid, tanh, relu,
leaky_relu, elu or swish (or prelu). As in the paper's Fig. 1, "no regularization of any kind": no
weight decay, augmentation or dropout; a constant learning rate, so that the training error per
epoch compares the activations, not a schedule; SGD with momentum 0.9 and batches of 128, and
weights from N(0, 0.01) (`kernel_init='normal'`, the paper's §5). A run sees the first 5,000
training images (`data.train_subset`; 0 = all 50,000) for at most 24 epochs.

`experiments/activations.py` trains one run per activation, each at its own learning rate (the
paper chose each network's "to make training as fast as possible"; the script's LEARNING_RATES,
picked by its --tune-lr probe; lr below is ReLU's), and prints the epochs each needs to reach 25%
training error (the paper: ReLU six times faster than tanh). The script also feeds the paper's
inputs — pixels minus the training mean, in 0-255 units — which this config alone cannot: run by
hand, the trainer standardises them ((x/255 - mean) / std), and with these small N(0, 0.01)
weights a standardised input gives a different, much slower start (see the script's docstring).

Measured: see README Results (activations). The offline CIFAR-10 copy this project is tested with
is JPEG-degraded (quality 75), which costs about 2-3 points against the published accuracies.
Data: `cnn-jax data import cifar10 --from cifar10.npz`.
"""

from cnn_jax import recipes
from cnn_jax.config import base_config


def get_config():
    c = base_config()
    # No validation split: training error is what is compared; the test set is evaluated at the end.
    recipes.cifar10_data(c, val_size=0, augment=False)
    c.data.train_subset = 5_000
    c.model.name = "lenet5_modern"  # max pooling and a padded C1 (cnn_jax/models/lenet.py)
    c.model.kwargs.conv_features = (16, 32)
    c.model.kwargs.c5_features = 64
    c.model.kwargs.hidden_sizes = ()
    c.model.kwargs.activation = "relu"
    c.model.kwargs.kernel_init = "normal"  # N(0, 0.01), Krizhevsky et al. 2012 §5
    c.num_epochs = 24
    c.batch_size = 128
    recipes.sgd(c, lr=0.003, schedule="constant")
    # One train record per epoch in metrics.jsonl: its accuracy is the mean over all the epoch's
    # mini-batches, not that of the last 100 steps.
    c.log_every_steps = 1_000_000
    return c
