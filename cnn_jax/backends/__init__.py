"""How convolutions are computed, below the layers that choose: XLA's own operations
(:mod:`cnn_jax.backends.xla`) and the optional oneDNN backend for CPUs
(:mod:`cnn_jax.backends.onednn`). Nothing here imports :mod:`cnn_jax.layers`."""
