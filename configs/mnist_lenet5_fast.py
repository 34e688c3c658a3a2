"""LeNet-5 on MNIST, the time-to-accuracy recipe: >= 99.0% test accuracy in as little wall time as
possible on a 2-core CPU (issue "Speed"; experiments/bench_time_to_accuracy.py races it against
the same recipe in PyTorch).

    cnn-jax train --config configs/mnist_lenet5_fast.py --workdir runs/mnist_lenet5_fast

Expected: >= 99.0% test accuracy after 4 epochs: 99.14%, 99.08%, 99.12% with --config.seed=0, 1, 2
(2026-11-28; wall times: README "Performance"). Three epochs were not enough to be sure: seeds
1-3 gave 98.94%, 99.02%, 99.00% (the same commands with --config.num_epochs=3, 2026-11-27, when
C5 still ran as a convolution rather than as a matrix product).

What makes it fast, against configs/mnist_lenet5.py (tanh, 12 epochs of batch 128, 219 s):
  * the modern LeNet-5 (ReLU, 2x2 max pooling, C1 padded; same 61,706 parameters), which
    converges in fewer epochs than tanh with average pooling;
  * the 1cycle policy (Smith & Topin 2019, "Super-Convergence"): SGD with Nesterov momentum
    warmed up to a high peak learning rate and annealed to almost zero, which reaches a given
    accuracy in a fraction of the epochs of a constant or cosine schedule;
  * a larger batch (256): half the steps of batch 128 (the per-batch speed-up is not measured);
  * one step per jitted call (steps_per_call = 1, below: saves compiling a second program);
  * no validation split (data.val_size=0): the trainer would evaluate it after every epoch, and
    the 5,000 held-out digits would be 8% fewer training digits. The test accuracy is that of the
    final state.
"""

from cnn_jax.config import base_config


def get_config():
    c = base_config()
    c.data.name = "mnist"
    c.data.val_size = 0
    c.model.name = "lenet5_modern"
    c.num_epochs = 4
    c.batch_size = 256
    c.eval_batch_size = 2_000
    c.optimizer.name = "sgd"
    c.optimizer.lr = 0.1
    c.optimizer.momentum = 0.9
    c.optimizer.nesterov = True
    c.optimizer.schedule = "onecycle"
    c.optimizer.weight_decay = 5e-4
    c.log_every_steps = 100
    # One step per jitted call: for this small network at batch 256 four per call ran no faster
    # (one-off timings of experiments/bench_train_step.py's JaxTrainStep on this config), and the
    # four-step program would add its compilation (about 2 s in a cProfile of one run).
    c.steps_per_call = 1
    return c
