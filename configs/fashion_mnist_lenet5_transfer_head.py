"""Transfer, stage 1 of 2: LeNet-5 trained on MNIST, a new head trained on a small Fashion-MNIST subset.

    cnn-jax train --config configs/mnist_lenet5.py --workdir runs/mnist_lenet5
    cnn-jax train --config configs/fashion_mnist_lenet5_transfer_head.py --workdir runs/fashion_mnist_lenet5_transfer_head
    cnn-jax train --config configs/fashion_mnist_lenet5_transfer_finetune.py --workdir runs/fashion_mnist_lenet5_transfer_finetune

Every layer is loaded from the MNIST run in `init.checkpoint` except the classifier `output`,
which starts fresh (`init.exclude_regex`) and is the only layer trained (`optimizer.freeze_regex`
matches every other parameter): a head learns to read the MNIST features before anything else
moves, so that stage 2 does not start by back-propagating a random head's gradients into them.
Stage 2 is configs/fashion_mnist_lenet5_transfer_finetune.py. Data as
configs/fashion_mnist_lenet5_scratch.py (the first 1,000 labelled images, no validation split);
this stage gets a quarter of the scratch run's 400 steps (5 epochs of 20), stage 2 the rest.

Why only a quarter: a head on frozen digit features is a poor classifier of clothing, and the
accuracy is made in stage 2 (experiments/transfer.py's docstring has the recipes tried).
Measured (experiments/transfer.py, 3-epoch MNIST source): 66.8% test accuracy with 1,000
images after this stage, 81.6% after stage 2, 81.2% from scratch; with 100 images 61.4 / 68.5 /
70.3% — frozen digit features are a poor start for clothing, see stage 2's header.
"""

from cnn_jax.config import base_config


def get_config():
    c = base_config()
    c.data.name = "fashion_mnist"
    c.data.val_size = 0
    c.data.train_subset = 1_000
    c.model.name = "lenet5"
    c.init.checkpoint = "runs/mnist_lenet5"  # the workdir of configs/mnist_lenet5.py's README command
    c.init.exclude_regex = r"^output/"  # LeNet-5's classifier: a new head for the new classes
    c.optimizer.freeze_regex = r"^(?!output/)"  # everything but the head stays as loaded
    c.num_epochs = 5
    c.batch_size = 50
    c.optimizer.name = "sgd"
    c.optimizer.lr = 0.05
    c.optimizer.momentum = 0.9
    c.optimizer.nesterov = True
    c.optimizer.schedule = "cosine"
    c.optimizer.weight_decay = 5e-4
    return c
