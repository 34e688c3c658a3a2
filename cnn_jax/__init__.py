"""cnn_jax: classic convolutional networks in JAX/Flax, trained and verified against the papers."""

__version__ = "0.1.0"
