"""Generative models of MNIST and Fashion-MNIST digits: a convolutional autoencoder, a variational
autoencoder (Kingma & Welling 2014) and DCGAN (Radford, Metz & Chintala 2016); the argument is the
model, with `_fashion` for Fashion-MNIST (`autoencoder`, `vae`, `dcgan`, `autoencoder_fashion`,
`vae_fashion`, `dcgan_fashion`).

    cnn-jax train --config configs/mnist_generative.py:vae --workdir runs/mnist_vae
    cnn-jax train --config configs/mnist_generative.py:dcgan --workdir runs/mnist_dcgan
    python experiments/generative.py      # VAE and DCGAN, test ELBO and Fréchet distances

Data: 28x28 grey images, 10,000 training images held out (`cnn-jax data import mnist --from
mnist.npz`, or `fashion_mnist` from fashion_mnist.npz): the VAE's and the autoencoder's checkpoint
is picked by their likelihood on them, and experiments/generative.py compares them, real images no
model trained on, with the test set to give the Fréchet distance of real images (the floor a
generator is measured against). Labels are not used.

* `autoencoder` (task `reconstruction`): 20-unit bottleneck, 195,285 parameters; loss the
  Bernoulli negative log-likelihood of the grey levels in nats per image.
* `vae` (task `vae`): 20-D Gaussian code (one of the paper's MNIST sizes, Fig. 2), Bernoulli
  decoder, 258,025 parameters; loss the negative ELBO in nats per image, the test ELBO reported
  (a lower bound on log p(x)). Recipe (ours; the paper uses Adagrad, batch 100): Adam at lr 1e-3
  with a cosine decay, batch 128, 20 epochs (the autoencoder alike).
* `dcgan` (task `gan`): generator 759,681 and discriminator 138,689 parameters for 28x28x1, z of
  100 dimensions; the paper's recipe (§4): Adam at lr 2e-4 with beta1 = 0.5, constant, batch 128,
  one optimizer per player (cnn_jax.tasks.task_optimizer), one discriminator step then one
  generator step per batch; 10 epochs. A GAN's losses say little about its samples: the last
  checkpoint is the one to sample from (`cnn-jax train` keeps the latest).

VAE and DCGAN runs write an 8x8 grid of samples from fixed codes to `samples/epoch_NNN.png` in the
workdir every epoch. Measured: see docs/results.md.
"""

from cnn_jax import recipes
from cnn_jax.config import base_config
from cnn_jax.errors import check_choice

MODELS = ("autoencoder", "vae", "dcgan")
DATASETS = {"": "mnist", "_fashion": "fashion_mnist"}
VARIANTS = tuple(m + suffix for suffix in DATASETS for m in MODELS)
TASKS = {"autoencoder": "reconstruction", "vae": "vae", "dcgan": "gan"}
HELD_OUT_IMAGES = 10_000  # of the 60,000 training images: as many as the test set


def get_config(arg="vae"):
    check_choice(arg, VARIANTS, "variant")
    model, _, dataset = arg.partition("_")
    c = base_config()
    c.data.name = DATASETS[f"_{dataset}" if dataset else ""]
    c.data.val_size = HELD_OUT_IMAGES
    c.task = TASKS[model]
    c.model.name = model
    c.batch_size = 128
    c.eval_batch_size = 1000
    if model == "dcgan":
        c.num_epochs = 10
        recipes.adam(c, lr=2e-4, schedule="constant")
        c.optimizer.b1 = 0.5  # Radford et al. §4: 0.9 "resulted in training oscillation"
    else:
        c.num_epochs = 20
        recipes.adam(c, lr=1e-3)
    return c
