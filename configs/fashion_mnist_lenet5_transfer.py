"""Transfer learning with LeNet-5 (LeCun et al. 1998), MNIST -> a small labelled subset of
Fashion-MNIST; the argument is the stage: `scratch` (the baseline), `head` (stage 1) or
`finetune` (stage 2). `experiments/transfer.py` runs all three at several subset sizes.

    cnn-jax train --config configs/mnist_lenet5.py --workdir runs/mnist_lenet5
    cnn-jax train --config configs/fashion_mnist_lenet5_transfer.py:head \
        --workdir runs/fashion_mnist_lenet5_transfer_head
    cnn-jax train --config configs/fashion_mnist_lenet5_transfer.py:finetune \
        --workdir runs/fashion_mnist_lenet5_transfer_finetune
    cnn-jax train --config configs/fashion_mnist_lenet5_transfer.py:scratch \
        --workdir runs/fashion_mnist_lenet5_transfer_scratch

Expected: see README Results (transfer learning). Data: `cnn-jax data import mnist --from
mnist.npz` and `cnn-jax data import fashion_mnist --from fashion_mnist.npz`.

Every stage sees the same data: the first `data.train_subset` = 1,000 training images are all
the labels a run sees (change it on the command line: --config.data.train_subset=100). No
validation split is held out — it would be more labelled data than the subset — so the test set
is evaluated with the final parameters, and there is no early stopping. Every stage uses the
recipe of configs/mnist_lenet5.py (SGD, Nesterov momentum 0.9, lr 0.05 with a cosine decay,
weight decay 5e-4) with batches of 50; the scratch run's 400 steps (20 epochs of 20 steps) are
split between the two transfer stages, a quarter and three quarters:

  * scratch: LeNet-5 trained from random weights, 20 epochs.
  * head (stage 1): every layer loaded from the MNIST run in `init.checkpoint` except the
    classifier `output`, which starts fresh (`init.exclude_regex`) and is the only layer trained
    (`optimizer.freeze_regex` matches every other parameter), 5 epochs: the head learns to read
    the MNIST features before anything else moves, so that stage 2 does not start by
    back-propagating a random head's gradients into them.
  * finetune (stage 2): starts from every parameter of stage 1 (`init.checkpoint` is the head
    stage's workdir above, the one `cnn-jax train` also picks when --workdir is left out) and
    trains all layers for the other 15 epochs at the scratch run's learning rate, not the textbook
    tenth of it: clothing is far enough from digits that the features must change a lot (Yosinski
    et al. 2014: features transfer worse the less alike the tasks are).
"""

from cnn_jax import recipes
from cnn_jax.config import base_config
from cnn_jax.errors import check_choice

STAGES = ("scratch", "head", "finetune")
HEAD_WORKDIR = "runs/fashion_mnist_lenet5_transfer_head"  # `cnn-jax train`'s default for :head


def get_config(arg: str | None = None):
    check_choice(arg, STAGES, "stage")
    c = base_config()
    c.data.name = "fashion_mnist"
    c.data.val_size = 0
    c.data.train_subset = 1_000
    c.model.name = "lenet5"
    c.batch_size = 50
    recipes.sgd(c, lr=0.05, nesterov=True, weight_decay=5e-4, schedule="cosine")
    if arg == "scratch":
        c.num_epochs = 20
    elif arg == "head":
        c.num_epochs = 5
        c.init.checkpoint = "runs/mnist_lenet5"  # the workdir of configs/mnist_lenet5.py's command
        c.init.exclude_regex = r"^output/"  # LeNet-5's classifier: a new head for the new classes
        c.optimizer.freeze_regex = r"^(?!output/)"  # everything but the head stays as loaded
    else:
        c.num_epochs = 15
        c.init.checkpoint = HEAD_WORKDIR
    return c
