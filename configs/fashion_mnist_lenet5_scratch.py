"""LeNet-5 trained from scratch on a small labelled subset of Fashion-MNIST: the baseline of the
transfer example (issue 4; `experiments/transfer.py` compares it with LeNet-5 transferred from MNIST).

    cnn-jax train --config configs/fashion_mnist_lenet5_scratch.py --workdir runs/fashion_mnist_lenet5_scratch

The first `data.train_subset` = 1,000 training images are all the labels the run sees (change it on
the command line: --config.data.train_subset=100). No validation split is held out — it would be
more labelled data than the subset — so the test set is evaluated with the final parameters.
Recipe of configs/mnist_lenet5.py (SGD, Nesterov momentum 0.9, cosine, weight decay 5e-4), with
batches of 50 and 20 epochs (400 steps) for 1,000 images.

Same total steps as the two transfer stages together, same images, same weight decay, no early
stopping (there is no validation split to stop on), final parameters scored for every run.
Measured: 81.2% test accuracy with 1,000 images, 70.3% with 100 (batches of 20, 80 epochs;
70.2/70.6/70.1% over seeds 0/1/2), 85.0% with 10,000 (batches of 100, 4 epochs).
"""

from cnn_jax.config import base_config


def get_config():
    c = base_config()
    c.data.name = "fashion_mnist"
    c.data.val_size = 0
    c.data.train_subset = 1_000
    c.model.name = "lenet5"
    c.num_epochs = 20
    c.batch_size = 50
    c.optimizer.name = "sgd"
    c.optimizer.lr = 0.05
    c.optimizer.momentum = 0.9
    c.optimizer.nesterov = True
    c.optimizer.schedule = "cosine"
    c.optimizer.weight_decay = 5e-4
    return c
