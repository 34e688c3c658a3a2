"""A convolutional autoencoder and a variational autoencoder (Kingma & Welling 2014, "Auto-encoding
variational Bayes") for 28x28 single-channel images (MNIST, Fashion-MNIST).

Both share one encoder and one decoder (sizes for 28x28x1; any ``image_shape`` whose height and
width are multiples of 4):

* encoder: 4x4 convolution of stride 2 with 32 filters (28 -> 14), ReLU, 4x4 stride 2 with 64
  (14 -> 7), ReLU, flattened (3,136 features);
* decoder: linear map from the code to 7 x 7 x 64, ReLU, 4x4 transposed convolution of stride 2 to
  32 channels (7 -> 14), ReLU, 4x4 stride 2 to the image's channels (14 -> 28): the logits of a
  Bernoulli distribution per pixel (the likelihood of §C.1 for binary data; a sigmoid gives the
  pixel probabilities).

``autoencoder``: the encoder's features go through a linear ``bottleneck`` of ``latent`` units to
the decoder; it returns the reconstruction logits ``(N, 28, 28, 1)``. 195,285 parameters with
``latent=20``.

``vae``: the encoder gives the mean and the log-variance of a diagonal Gaussian ``q(z | x)`` of
``latent`` dimensions (two linear maps, §C.2); ``z = mean + exp(log_variance / 2) * eps`` with
``eps ~ N(0, I)`` drawn from the ``'sample'`` random stream (the reparameterisation of §2.4, so
``z`` is differentiable in the encoder's parameters); the decoder gives ``p(x | z)``'s logits. It
returns ``{'logits', 'mean', 'log_variance'}``. With a Bernoulli likelihood the ELBO (eq. 10) of
an image ``x`` in [0, 1] is ``-sum(sigmoid_binary_cross_entropy(logits, x)) - KL`` with
``KL = -1/2 sum(1 + log_variance - mean^2 - exp(log_variance))`` (Appendix B), in nats; its negative
bounds the negative log-likelihood from above. ``decode(z)`` maps codes to logits and
``sample_prior(n)`` decodes ``n`` codes drawn from the prior ``N(0, I)`` (stream ``'sample'``).
``VAE.loss(outputs, batch)`` is that negative ELBO averaged over a batch, with its two parts.
``latent=20`` (one of the paper's MNIST sizes, Fig. 2): 258,025 parameters.

Apply with ``rngs={'sample': key}``: the VAE samples ``z`` in training and evaluation alike (the
ELBO is an expectation over ``q``); ``sample=False`` decodes the mean instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax import layers, losses
from cnn_jax.models.registry import register_model

# Filters of the encoder's stride-2 convolutions; the decoder mirrors them.
ENCODER_WIDTHS = (32, 64)


def gaussian_kl(mean: jax.Array, log_variance: jax.Array) -> jax.Array:
    """KL(N(mean, exp(log_variance)) || N(0, I)) of each row, in nats (Kingma & Welling 2014
    Appendix B): ``-1/2 sum(1 + log_variance - mean^2 - exp(log_variance))``."""
    mean, log_variance = mean.astype(jnp.float32), log_variance.astype(jnp.float32)
    return -0.5 * jnp.sum(1.0 + log_variance - jnp.square(mean) - jnp.exp(log_variance), axis=-1)


class ConvEncoder(nn.Module):
    """Stride-2 4x4 convolutions with ReLU, flattened: ``(N, H, W, C) -> (N, H W / 16 * 64)``."""

    widths: Sequence[int] = ENCODER_WIDTHS
    kernel_init: str | Callable = "he_normal"
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for i, width in enumerate(self.widths):
            x = layers.Conv(width, 4, strides=2, padding=1, kernel_init=self.kernel_init,
                            dtype=self.dtype, conv_impl=self.conv_impl, name=f"conv{i + 1}")(x)
            x = nn.relu(x)
        return x.reshape(x.shape[0], -1)


class ConvDecoder(nn.Module):
    """Linear map to the encoder's last map, then stride-2 4x4 transposed convolutions with ReLU
    between them: ``(N, latent) -> (N, *image_shape)`` logits."""

    image_shape: Sequence[int] = (28, 28, 1)
    widths: Sequence[int] = ENCODER_WIDTHS
    kernel_init: str | Callable = "he_normal"
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        height, width, channels = self.image_shape
        factor = 2 ** len(self.widths)
        if height % factor or width % factor:
            raise ValueError(f"image_shape {tuple(self.image_shape)}: height and width must be "
                             f"multiples of {factor}")
        init = layers.get_initializer(self.kernel_init)
        x = nn.Dense(height // factor * width // factor * self.widths[-1], kernel_init=init,
                     dtype=self.dtype, name="project")(z)
        x = nn.relu(x).reshape(z.shape[0], height // factor, width // factor, self.widths[-1])
        outputs = (*reversed(self.widths[:-1]), channels)
        for i, features in enumerate(outputs):
            if i:
                x = nn.relu(x)
            # (W - 1) * 2 - 2 + 4 = 2 W: each layer doubles the map exactly.
            x = layers.ConvTranspose(features, 4, strides=2, padding=1,
                                     kernel_init=self.kernel_init, dtype=self.dtype,
                                     conv_impl=self.conv_impl, name=f"deconv{i + 1}")(x)
        return x


class _ConvCoder(nn.Module):
    """The encoder and decoder both models share, and the fields they share."""

    latent: int = 20
    image_shape: Sequence[int] = (28, 28, 1)
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    def setup(self) -> None:
        self.encoder = ConvEncoder(dtype=self.dtype, conv_impl=self.conv_impl)
        self.decoder = ConvDecoder(self.image_shape, dtype=self.dtype, conv_impl=self.conv_impl)

    def features(self, x: jax.Array) -> jax.Array:
        """The encoder's flattened features of images of ``image_shape``."""
        if tuple(x.shape[1:]) != tuple(self.image_shape):
            raise ValueError(f"{type(self).__name__} was built for images "
                             f"{tuple(self.image_shape)} (image_shape), got a batch of shape "
                             f"{x.shape}")
        return self.encoder(jnp.asarray(x, self.dtype))

    def decode(self, z: jax.Array) -> jax.Array:
        """Codes ``(N, latent)`` -> Bernoulli logits ``(N, H, W, C)``."""
        return self.decoder(jnp.asarray(z, self.dtype))


class Autoencoder(_ConvCoder):
    """Convolutional autoencoder: encoder, linear bottleneck of ``latent`` units, decoder.

    Fields:
      latent: units of the bottleneck (the code).
      image_shape: (H, W, C) of the images; H and W multiples of 4.
      conv_impl: how the convolutions (transposed ones too) run, ``'auto'`` | ``'xla'`` |
        ``'onednn'`` (:mod:`cnn_jax.layers.conv`).
    Returns the reconstruction's Bernoulli logits ``(N, H, W, C)``.
    """

    def setup(self) -> None:
        super().setup()
        self.bottleneck = nn.Dense(self.latent, dtype=self.dtype)

    def encode(self, x: jax.Array) -> jax.Array:
        """Images -> codes ``(N, latent)``."""
        return self.bottleneck(self.features(x))

    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        del train  # no dropout or BatchNorm
        return self.decode(self.encode(x))


class VAE(_ConvCoder):
    """Variational autoencoder with a diagonal Gaussian posterior and a Bernoulli decoder.

    Fields:
      latent: dimensions of ``z``.
      image_shape: (H, W, C) of the images; H and W multiples of 4.
      conv_impl: as for :class:`Autoencoder`.
    ``__call__(x, train, sample=True)`` returns ``{'logits', 'mean', 'log_variance'}``.
    """

    def setup(self) -> None:
        super().setup()
        self.mean = nn.Dense(self.latent, dtype=self.dtype)
        self.log_variance = nn.Dense(self.latent, dtype=self.dtype)

    def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Images -> mean and log-variance ``(N, latent)`` of ``q(z | x)``."""
        features = self.features(x)
        return self.mean(features), self.log_variance(features)

    def reparameterize(self, mean: jax.Array, log_variance: jax.Array) -> jax.Array:
        """``z = mean + sigma * eps``, ``eps ~ N(0, I)`` from the ``'sample'`` stream (§2.4)."""
        eps = jax.random.normal(self.make_rng("sample"), mean.shape, mean.dtype)
        return mean + jnp.exp(0.5 * log_variance) * eps

    def sample_prior(self, num_samples: int) -> jax.Array:
        """Logits of ``num_samples`` images decoded from codes drawn from ``N(0, I)``."""
        z = jax.random.normal(self.make_rng("sample"), (num_samples, self.latent), self.dtype)
        return self.decode(z)

    def __call__(self, x: jax.Array, train: bool = False,
                 sample: bool = True) -> dict[str, jax.Array]:
        del train  # no dropout or BatchNorm; z is sampled in evaluation too (module docstring)
        mean, log_variance = self.encode(x)
        z = self.reparameterize(mean, log_variance) if sample else mean
        return {"logits": self.decode(z), "mean": mean, "log_variance": log_variance}

    def loss(self, outputs: dict, batch: dict) -> tuple[jax.Array, dict[str, jax.Array]]:
        """The negative ELBO in nats per image, averaged over the images whose ``batch['mask']``
        (default: all) is set, and its parts ``reconstruction`` (-log p(x | z), summed over the
        pixels) and ``kl`` (KL(q(z | x) || N(0, I))). Targets are ``batch['image']`` in [0, 1]
        (uint8 images are divided by 255): the Bernoulli likelihood of grey levels, as is usual
        for MNIST."""
        images = batch["image"]
        targets = images / 255.0 if jnp.issubdtype(images.dtype, jnp.integer) else images
        reconstruction = losses.sigmoid_binary_cross_entropy(outputs["logits"], targets)
        reconstruction = jnp.sum(reconstruction.reshape(reconstruction.shape[0], -1), axis=-1)
        kl = gaussian_kl(outputs["mean"], outputs["log_variance"])
        weights = jnp.asarray(batch.get("mask", jnp.ones(kl.shape)), jnp.float32)
        count = jnp.maximum(jnp.sum(weights), 1.0)
        parts = {"reconstruction": jnp.sum(weights * reconstruction) / count,
                 "kl": jnp.sum(weights * kl) / count}
        return parts["reconstruction"] + parts["kl"], parts


def _no_classes(name: str, num_classes: int) -> None:
    if num_classes != 0:
        raise ValueError(f"{name} has no class head: num_classes must be 0, got {num_classes}")


_MNIST = dict(family="autoencoder", input_shape=(28, 28, 1), num_classes=0)


@register_model("autoencoder", **_MNIST, task="reconstruction",
                description="Convolutional autoencoder for 28x28x1, 20-unit bottleneck; "
                            "195,285 parameters")
def autoencoder(num_classes: int = 0, **kwargs: Any) -> Autoencoder:
    """Convolutional autoencoder; 195,285 parameters with ``latent=20``."""
    _no_classes("autoencoder", num_classes)
    return Autoencoder(**kwargs)


@register_model("vae", **_MNIST, task="vae",
                description="Convolutional VAE, Bernoulli decoder, 20-D Gaussian code "
                            "(Kingma & Welling 2014); 258,025 parameters")
def vae(num_classes: int = 0, **kwargs: Any) -> VAE:
    """Variational autoencoder; 258,025 parameters with ``latent=20``."""
    _no_classes("vae", num_classes)
    return VAE(**kwargs)
