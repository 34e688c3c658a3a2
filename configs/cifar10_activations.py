"""A small CNN on CIFAR-10 for comparing activations (Krizhevsky et al. 2012, §3.1 and Fig. 1).

    cnn-jax train --config configs/cifar10_activations.py --workdir runs/cifar10_relu \
        --config.model.kwargs.activation=relu

The LeNet module widened for 32x32x3 images: C1 16@5x5 (padded, 32x32) -> 2x2 max pool -> C3
32@5x5 (12x12) -> 2x2 max pool -> F 128 -> 10, 162,922 parameters, LeCun-normal weights.
`model.kwargs.activation` is sigmoid, tanh, relu, leaky_relu, elu or swish (or prelu). As in the
paper's Fig. 1, "no regularization of any kind": no weight decay, augmentation or dropout; and a
constant learning rate, so that the training error per epoch compares the activations, not a
schedule. To fit about 12 minutes for six activations on a 2-core CPU, a run sees the first
5,000 training images (`data.train_subset`; 0 = all 50,000) for 16 epochs in batches of 64.
`experiments/activations.py` trains one run per activation and prints the epochs each needs to
reach 25% training error (the paper: the ReLU net reaches it six times faster than the tanh one).
Measured with this config: ReLU at epoch 8, tanh at epoch 7 (about 100 s each on a 2-core CPU
shared with other jobs); the script's docstring says which of the paper's conditions differ.

The CIFAR-10 copy in ../shared/data is JPEG-degraded (quality 75): errors on it are not those of
the true CIFAR-10.
"""

from cnn_jax.config import base_config


def get_config():
    c = base_config()
    c.data.name = "cifar10"
    c.data.val_size = 0  # training error is what is compared; the test set is evaluated at the end
    c.data.train_subset = 5_000
    c.model.name = "lenet5_modern"  # LeNet with max pooling and a padded C1 (cnn_jax/models/lenet.py)
    c.model.kwargs.conv_features = (16, 32)
    c.model.kwargs.c5_features = None
    c.model.kwargs.hidden_sizes = (128,)
    c.model.kwargs.activation = "relu"
    c.model.kwargs.kernel_init = "lecun_normal"
    c.num_epochs = 16
    c.batch_size = 64
    c.optimizer.name = "sgd"
    c.optimizer.lr = 0.02
    c.optimizer.momentum = 0.9
    c.optimizer.schedule = "constant"
    # One train record per epoch in metrics.jsonl: its accuracy is the mean over all the epoch's
    # mini-batches (the error curve of the paper's Fig. 1), not that of the last 100 steps.
    c.log_every_steps = 1_000_000
    return c
