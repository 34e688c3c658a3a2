"""Transfer, stage 2 of 2: the whole of LeNet-5 fine-tuned on the Fashion-MNIST subset.

    cnn-jax train --config configs/fashion_mnist_lenet5_transfer_finetune.py --workdir runs/fashion_mnist_lenet5_transfer_finetune

Starts from every parameter of stage 1 (configs/fashion_mnist_lenet5_transfer_head.py: MNIST
features, a head trained on Fashion-MNIST), unfreezes all layers and trains them for the other
three quarters of the scratch run's 400 steps (15 epochs of 20) at the scratch run's learning
rate, 0.05 with a cosine decay — not the textbook tenth of it. Measured: with a tenth (0.005, half
the steps in each stage) the digit features barely move and the net stayed far below scratch
(75.0% vs 81.2% with 1,000 images; 65.8% vs 70.3% with 100); clothing is far enough from digits
that the features must change a lot, which takes the full rate. Same data as the other stage and
as configs/fashion_mnist_lenet5_scratch.py; the recipes tried are in experiments/transfer.py.
Measured with this recipe (3-epoch MNIST source): 81.6% with 1,000 images (scratch 81.2%),
84.4% with 10,000 (scratch 85.0%), 68.5/69.1/69.6% with 100 over seeds 0/1/2 (scratch
70.2/70.6/70.1%): MNIST features do not beat training from scratch on clothing at any size.
"""

from cnn_jax.config import base_config


def get_config():
    c = base_config()
    c.data.name = "fashion_mnist"
    c.data.val_size = 0
    c.data.train_subset = 1_000
    c.model.name = "lenet5"
    c.init.checkpoint = "runs/fashion_mnist_lenet5_transfer_head"  # stage 1's default workdir
    c.num_epochs = 15
    c.batch_size = 50
    c.optimizer.name = "sgd"
    c.optimizer.lr = 0.05
    c.optimizer.momentum = 0.9
    c.optimizer.nesterov = True
    c.optimizer.schedule = "cosine"
    c.optimizer.weight_decay = 5e-4
    return c
