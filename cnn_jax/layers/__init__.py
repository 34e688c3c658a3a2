"""Building blocks shared by every model in the zoo: convolutions, activations, pooling,
normalisation and initialisers, each chosen by name where a config needs to name it.

Import as ``from cnn_jax import layers`` or ``from cnn_jax.layers import Conv, max_pool, ...``.
"""

import flax.linen as nn

from cnn_jax.backends.onednn import CONV_IMPLS
from cnn_jax.layers.activations import (
    ACTIVATIONS,
    Activation,
    PReLU,
    activate,
    get_activation,
)
from cnn_jax.layers.conv import (
    CausalConv1D,
    Conv,
    ConvBNAct,
    ConvTranspose,
    DepthwiseConv,
    DepthwiseSeparableConv,
)
from cnn_jax.layers.conv_geometry import conv_output_size
from cnn_jax.layers.initializers import get_initializer
from cnn_jax.layers.norm import BatchNorm, LocalResponseNorm, local_response_norm
from cnn_jax.layers.pooling import (
    avg_pool,
    global_avg_pool,
    global_max_pool,
    max_pool,
    sum_pool,
)
from cnn_jax.layers.resize import center_crop, resize_bilinear

# Dropout (Srivastava et al. 2014) needs nothing beyond Flax's: it draws from the 'dropout' rng.
Dropout = nn.Dropout

__all__ = [
    "activate",
    "ACTIVATIONS",
    "Activation",
    "BatchNorm",
    "CONV_IMPLS",
    "CausalConv1D",
    "Conv",
    "ConvBNAct",
    "ConvTranspose",
    "DepthwiseConv",
    "DepthwiseSeparableConv",
    "Dropout",
    "LocalResponseNorm",
    "PReLU",
    "avg_pool",
    "center_crop",
    "conv_output_size",
    "get_activation",
    "get_initializer",
    "global_avg_pool",
    "global_max_pool",
    "local_response_norm",
    "max_pool",
    "resize_bilinear",
    "sum_pool",
]
