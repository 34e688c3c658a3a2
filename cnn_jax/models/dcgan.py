"""DCGAN (Radford, Metz & Chintala 2016, "Unsupervised representation learning with deep
convolutional generative adversarial networks"): generator and discriminator in one module.

The architecture guidelines of §3: no pooling (strided convolutions in the discriminator,
fractionally strided, i.e. transposed, convolutions in the generator), BatchNorm in both networks
except the generator's output layer and the discriminator's input layer, no fully connected hidden
layers, ReLU in the generator with tanh on its output, LeakyReLU of slope 0.2 in the discriminator;
every weight drawn from N(0, 0.02) (§4).

Sized here for 28x28 single-channel images (MNIST and Fashion-MNIST as they are, scaled to
[-1, 1]; no padding): for ``image_size`` ``s = b 2^n`` with base ``b`` <= 7 (28 = 7 * 4, 32 = 4 *
8, 64 = 4 * 16, Fig. 1's LSUN size) and ``features`` ``f``:

* generator: ``z`` (``latent`` = 100, drawn from N(0, I)) seen as a 1x1 map; a ``b x b`` transposed
  convolution (the "projection" of Fig. 1, a matrix product) to ``b x b x f 2^(n-1)``; ``n - 1``
  transposed convolutions 4x4 of stride 2 halving the channels down to ``f``, each with BatchNorm
  and ReLU; a last one to ``s x s x channels`` and tanh. For 28x28: 100 -> 7x7x128 -> 14x14x64 ->
  28x28x1.
* discriminator: 4x4 convolutions of stride 2 from ``f`` channels (no BatchNorm) doubling up to
  ``f 2^(n-1)`` at ``b x b``, LeakyReLU 0.2 after each; a ``b x b`` convolution to one logit. For
  28x28: 28x28x1 -> 14x14x64 -> 7x7x128 -> 1.

Layers followed by BatchNorm have no bias. Parameters at 28x28, ``f = 64``: generator 759,681,
discriminator 138,689, in all 898,370. (With ``image_size=64, features=128, channels=3`` the
generator is Fig. 1's: 4x4x1024 -> 8x8x512 -> 16x16x256 -> 32x32x128 -> 64x64x3.)

One module with ``generate`` and ``discriminate`` methods, parameters under ``generator/`` and
``discriminator/`` (and BatchNorm statistics likewise): one ``init`` builds both, one train state
holds them, and the two optimizers of the adversarial game are one optimizer partitioned by
parameter path (``^generator/`` and ``^discriminator/``, e.g. ``optax.multi_transform``), so
checkpoints, resume, sharding and EMA treat a GAN like any other model. ``__call__(images)``
runs both halves (what ``init`` and the model sweeps need): it draws ``z`` from the ``'sample'``
stream and returns ``{'real_logits': D(images), 'fake_logits': D(G(z)), 'samples': G(z)}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax import layers
from cnn_jax.models.registry import register_model

DCGAN_INIT = layers.get_initializer("normal", stddev=0.02)  # §4


def base_and_doublings(image_size: int) -> tuple[int, int]:
    """``(b, n)`` with ``image_size = b 2^n`` and ``b <= 7``: the first map's side and the number
    of stride-2 layers."""
    base, doublings = image_size, 0
    while base > 7 and base % 2 == 0:
        base, doublings = base // 2, doublings + 1
    if base > 7 or doublings < 1:
        raise ValueError(f"image_size {image_size} is not b * 2^n with b <= 7 and n >= 1 "
                         "(28, 32 and 64 are)")
    return base, doublings


class _Half(nn.Module):
    """Fields the generator and the discriminator share."""

    image_size: int = 28
    features: int = 64
    kernel_init: str | Callable = DCGAN_INIT
    dtype: Any = jnp.float32
    conv_impl: str = "auto"


class Generator(_Half):
    """``z`` ``(N, latent)`` -> images ``(N, s, s, channels)`` in [-1, 1] (module docstring)."""

    channels: int = 1

    def _deconv(self, features: int, kernel: int, strides: int, padding: int, bias: bool,
                name: str) -> layers.ConvTranspose:
        return layers.ConvTranspose(features, kernel, strides=strides, padding=padding,
                                    use_bias=bias, kernel_init=self.kernel_init, dtype=self.dtype,
                                    conv_impl=self.conv_impl, name=name)

    @nn.compact
    def __call__(self, z: jax.Array, train: bool = False) -> jax.Array:
        base, doublings = base_and_doublings(self.image_size)
        x = jnp.asarray(z, self.dtype).reshape(z.shape[0], 1, 1, -1)
        widths = [self.features * 2**i for i in reversed(range(doublings))]  # f 2^(n-1) ... f
        for i, width in enumerate(widths):
            # The first is the b x b projection of the 1x1 code; the others double the map.
            kernel, strides, padding = (base, 1, 0) if i == 0 else (4, 2, 1)
            x = self._deconv(width, kernel, strides, padding, False, f"deconv{i + 1}")(x)
            x = layers.BatchNorm(dtype=self.dtype, name=f"bn{i + 1}")(x, train=train)
            x = nn.relu(x)
        x = self._deconv(self.channels, 4, 2, 1, True, f"deconv{doublings + 1}")(x)
        return jnp.tanh(x)


class Discriminator(_Half):
    """Images ``(N, s, s, channels)`` -> logits ``(N,)`` of "real" (module docstring)."""

    negative_slope: float = 0.2

    @nn.compact
    def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
        base, doublings = base_and_doublings(self.image_size)
        if images.shape[1:3] != (self.image_size, self.image_size):
            raise ValueError(f"the discriminator was built for {self.image_size}x{self.image_size} "
                             f"images (image_size), got a batch of shape {images.shape}")
        x = jnp.asarray(images, self.dtype)
        for i in range(doublings):
            first = i == 0  # no BatchNorm on the input layer (§3)
            x = layers.Conv(self.features * 2**i, 4, strides=2, padding=1, use_bias=first,
                            kernel_init=self.kernel_init, dtype=self.dtype,
                            conv_impl=self.conv_impl, name=f"conv{i + 1}")(x)
            if not first:
                x = layers.BatchNorm(dtype=self.dtype, name=f"bn{i + 1}")(x, train=train)
            x = nn.leaky_relu(x, self.negative_slope)
        x = layers.Conv(1, base, padding=0, kernel_init=self.kernel_init, dtype=self.dtype,
                        conv_impl=self.conv_impl, name=f"conv{doublings + 1}")(x)
        return x.reshape(x.shape[0])


class DCGAN(nn.Module):
    """Generator and discriminator of a DCGAN, under ``generator/`` and ``discriminator/``.

    Fields:
      image_size: side of the square images (28 for MNIST; 32, 64 too).
      channels: image channels.
      latent: dimensions of ``z`` (100 in the paper).
      features: the generator's last and the discriminator's first width (``f``).
      conv_impl: how the convolutions (transposed ones too) run, ``'auto'`` | ``'xla'`` |
        ``'onednn'`` (:mod:`cnn_jax.layers.conv`).
    """

    image_size: int = 28
    channels: int = 1
    latent: int = 100
    features: int = 64
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    def setup(self) -> None:
        common = dict(image_size=self.image_size, features=self.features, dtype=self.dtype,
                      conv_impl=self.conv_impl)
        self.generator = Generator(channels=self.channels, **common)
        self.discriminator = Discriminator(**common)

    def sample_latent(self, num_samples: int) -> jax.Array:
        """``num_samples`` codes from N(0, I), drawn from the ``'sample'`` stream."""
        return jax.random.normal(self.make_rng("sample"), (num_samples, self.latent), self.dtype)

    def generate(self, z: jax.Array, train: bool = False) -> jax.Array:
        """Codes ``(N, latent)`` -> images ``(N, s, s, channels)`` in [-1, 1]."""
        return self.generator(z, train)

    def discriminate(self, images: jax.Array, train: bool = False) -> jax.Array:
        """Images in [-1, 1] -> logits ``(N,)`` that they are real."""
        return self.discriminator(images, train)

    def __call__(self, images: jax.Array, train: bool = False) -> dict[str, jax.Array]:
        samples = self.generate(self.sample_latent(images.shape[0]), train)
        return {"real_logits": self.discriminate(images, train),
                "fake_logits": self.discriminate(samples, train), "samples": samples}


@register_model("dcgan", family="dcgan", input_shape=(28, 28, 1), num_classes=0, task="gan",
                description="DCGAN generator + discriminator for 28x28x1 (Radford et al. 2016); "
                            "898,370 parameters")
def dcgan(num_classes: int = 0, **kwargs: Any) -> DCGAN:
    """DCGAN for 28x28 single-channel images; 898,370 parameters (generator 759,681)."""
    if num_classes != 0:
        raise ValueError(f"dcgan has no class head: num_classes must be 0, got {num_classes}")
    return DCGAN(**kwargs)
