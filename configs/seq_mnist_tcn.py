"""Sequential and permuted sequential MNIST with a temporal convolutional network (Bai, Kolter &
Koltun 2018); the argument is `seq` (pixels in raster order) or `permuted` (in one fixed random
order).

    cnn-jax train --config configs/seq_mnist_tcn.py:seq --workdir runs/seq_mnist_tcn
    cnn-jax train --config configs/seq_mnist_tcn.py:permuted --workdir runs/pmnist_tcn

Each 28x28 digit is read pixel by pixel, a sequence of 784 one-channel steps, and classified from
the last step. The paper's Table 1 reports 99.0% (sequential) and 97.2% (permuted) test accuracy;
measured: see docs/results.md. A shortened schedule (`--config.num_epochs=N`, the rate still
divided by 10 after epoch 10 when N > 10) trades accuracy for wall time on a CPU; say so next to
its number. Data: `cnn-jax data import mnist --from mnist.npz`.

Model: `tcn_seq_mnist` / `tcn_pmnist` (cnn_jax.models.tcn): 8 residual blocks of 25 channels,
kernel 7, dilations 1 ... 128, dropout 0.05, weight normalisation; 66,910 parameters, receptive
field 3,061 steps. Recipe: the authors' code for the experiment (`TCN/mnist_pixel`): Adam at lr
2e-3, batch 64, 20 epochs, the rate divided by 10 after epoch 10, no gradient clipping. Departure:
5,000 training digits are held out for validation (the paper trains on all 60,000); the test
accuracy is that of the checkpoint with the best validation accuracy.
"""

from cnn_jax import recipes
from cnn_jax.config import base_config
from cnn_jax.errors import check_choice

MODELS = {"seq": "tcn_seq_mnist", "permuted": "tcn_pmnist"}


def get_config(arg="seq"):
    check_choice(arg, MODELS, "variant")
    c = base_config()
    recipes.mnist_data(c)
    c.model.name = MODELS[arg]
    c.num_epochs = 20
    c.batch_size = 64
    c.eval_batch_size = 1000
    recipes.adam(c, lr=2e-3, schedule="step")
    c.optimizer.decay_epochs = (10,)
    c.optimizer.decay_factor = 0.1
    return c
