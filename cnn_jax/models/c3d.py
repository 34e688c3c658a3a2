"""C3D (Tran, Bourdev, Fergus, Torresani & Paluri 2015, "Learning spatiotemporal features with 3D
convolutional networks") and a per-frame 2-D twin of it.

The network of the paper's Fig. 3 (§3.3), with the Caffe model's layer names. Input clips are
``(N, T, H, W, C)``; every convolution is 3x3x3, stride 1, padded by 1, followed by ReLU:

==========  ========  ==============  ========================
layer       filters   pool after      map after it, 16x112x112 clip
==========  ========  ==============  ========================
conv1a      64        pool1 1x2x2     16 x 56 x 56
conv2a      128       pool2 2x2x2     8 x 28 x 28
conv3a/b    256, 256  pool3 2x2x2     4 x 14 x 14
conv4a/b    512, 512  pool4 2x2x2     2 x 7 x 7
conv5a/b    512, 512  pool5 2x2x2     1 x 4 x 4
fc6, fc7    4096      ReLU, dropout   (8192 inputs to fc6)
fc8         classes   (softmax in the loss)
==========  ========  ==============  ========================

pool1 keeps the time axis "to not merge the temporal signal too early" (§3.1, §3.3). Pools round
up, as Caffe's do: pool5 of a 2x7x7 map is 1x4x4, and fc6 reads 512 * 4 * 4 = 8,192 features (the
released Sports-1M model's fc6 is 8192 -> 4096). Unlike Caffe's, a window must fit inside the map
(a map of one frame or one pixel cannot be pooled by 2), so clips need at least 16 frames (time is
halved four times) of at least 32x32 pixels (space five times). The map is flattened
channel-major, in Caffe's (C, T, H, W) order, so that model's fc6 ports by a transpose.
Parameters of ``c3d`` with the 487 Sports-1M classes: 27,655,936 in the convolutions, fc6
33,558,528, fc7 16,781,312, fc8 1,995,239, in all 79,991,015.

``c3d_small`` is the same network at an eighth of the width (convolutions 8 ... 64 filters, fc6 and
fc7 256) for 16-frame 64x64 Moving MNIST clips on a CPU: pool5 leaves 1 x 2 x 2 x 64 = 256
features; 566,200 parameters for 8 classes (631,736 on 20-frame clips, whose pool5 keeps 2
frames).

Two 2-D twins of ``c3d_small`` see no motion inside their convolutions: every kernel 1x3x3 (a
2-D convolution applied to each frame: it runs as one, frames folded into the batch), every pool
1x2x2, fc6 to fc8 on each frame; 278,056 parameters for 8 classes and clips of any length (the
convolutions a third of ``c3d_small``'s, the same head as on 16 frames).

* ``frame2d_small`` classifies one frame of the clip (the first), the single-frame model of
  Karpathy et al. 2014 (§3.1). Where no single frame tells the classes apart (the direction of
  motion in Moving MNIST, cnn_jax.data.moving_mnist) it can do no better than chance.
* ``frames2d_small`` classifies every frame and averages their logits over time, as Karpathy et
  al. average a single-frame model's predictions over a video. The average fuses the frames late,
  after each frame's prediction, and that is enough to see some motion: a logit that depends on
  how high the digits stand is constant over a clip whose digits move east or west and varies
  over one whose digits move north or south, so the mean over the frames carries the axis of the
  motion (not its sign). (Averaging the frames' pool5 maps before fc6 would show the axis more directly: the
  mean of the maps draws the digits' trace.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax import layers
from cnn_jax.models.fcn import scaled
from cnn_jax.models.registry import register_model

# (name, filters) of each convolution, and the pool after it (None: none). pool1 keeps time.
LAYERS: tuple[tuple[str, int, str | None], ...] = (
    ("conv1a", 64, "pool1"),
    ("conv2a", 128, "pool2"),
    ("conv3a", 256, None),
    ("conv3b", 256, "pool3"),
    ("conv4a", 512, None),
    ("conv4b", 512, "pool4"),
    ("conv5a", 512, None),
    ("conv5b", 512, "pool5"),
)


def clip_batch(x: jax.Array, dtype: Any, model: str) -> jax.Array:
    """``x`` as a batch of clips ``(N, T, H, W, C)`` in ``dtype``; other ranks name ``model``."""
    if x.ndim != 5:
        raise ValueError(f"{model} takes clips (N, T, H, W, C), got shape {x.shape}")
    return jnp.asarray(x, dtype)


class C3D(nn.Module):
    """C3D: eight 3x3x3 convolutions, five max pools, two fully connected layers, logits.

    Fields:
      num_classes: outputs of fc8 (487 for Sports-1M, 101 for UCF101).
      width: multiplier of every convolution's filters (rounded, at least 1).
      fc_features: fc6 and fc7 outputs (4096 in the paper).
      dropout_rate: after fc6 and fc7 (0.5, as the released model).
      temporal: True for the paper's 3x3x3 kernels and 2x2x2 pools; False for the per-frame
        network (1x3x3 kernels as 2-D convolutions, 1x2x2 pools, each frame classified, the
        frames' logits averaged over time).
      frame: with ``temporal=False``, the one frame of each clip that is classified (None: every
        frame, their logits averaged).
      kernel_init: every convolution and linear layer.
      conv_impl: how the convolutions run, ``'auto'`` | ``'xla'`` | ``'onednn'``
        (:mod:`cnn_jax.layers.conv`; 'auto' runs them on oneDNN on one CPU device).
    Input ``(N, T, H, W, C)``; output logits ``(N, num_classes)``.
    """

    num_classes: int = 487
    width: float = 1.0
    fc_features: int = 4096
    dropout_rate: float = 0.5
    temporal: bool = True
    frame: int | None = None
    kernel_init: str | Callable = "he_normal"
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = clip_batch(x, self.dtype, "C3D")
        if self.frame is not None:
            if self.temporal or not 0 <= self.frame < x.shape[1]:
                raise ValueError(f"C3D(frame={self.frame}) needs temporal=False and a frame of the "
                                 f"clip's {x.shape[1]} frames (0 to {x.shape[1] - 1})")
            x = x[:, self.frame:self.frame + 1]
        n, frames = x.shape[:2]
        if not self.temporal:  # each frame on its own: a 2-D network over N * T images
            x = x.reshape(n * frames, *x.shape[2:])
        for name, filters, pool in LAYERS:
            x = layers.Conv(
                scaled(filters, self.width),
                kernel_size=(3, 3, 3) if self.temporal else (3, 3),
                padding=1,
                kernel_init=self.kernel_init,
                dtype=self.dtype,
                conv_impl=self.conv_impl,
                name=name,
            )(x)
            x = nn.relu(x)
            if pool is not None:
                if not self.temporal:
                    window = (2, 2)
                else:  # pool1 keeps the time axis
                    window = (1, 2, 2) if pool == "pool1" else (2, 2, 2)
                x = layers.max_pool(x, window, ceil_mode=True)
        # Channel-major flatten, Caffe's (C, T, H, W) (or each frame's (C, H, W)) order.
        x = jnp.moveaxis(x, -1, 1).reshape(x.shape[0], -1)
        dense_init = layers.get_initializer(self.kernel_init)
        for name in ("fc6", "fc7"):
            x = nn.Dense(self.fc_features, kernel_init=dense_init, dtype=self.dtype, name=name)(x)
            x = nn.Dropout(self.dropout_rate, deterministic=not train)(nn.relu(x))
        logits = nn.Dense(self.num_classes, kernel_init=dense_init, dtype=self.dtype, name="fc8")(x)
        if not self.temporal:  # each frame's logits, averaged over the clip
            logits = jnp.mean(logits.reshape(n, frames, -1), axis=1)
        return logits


_SMALL = dict(width=0.125, fc_features=256)
_MOVING_MNIST = dict(family="c3d", input_shape=(16, 64, 64, 1), test_input_shape=(16, 32, 32, 1),
                     num_classes=8)


@register_model("c3d", family="c3d", input_shape=(16, 112, 112, 3),
                test_input_shape=(16, 32, 32, 3), num_classes=487,
                description="C3D, 8 conv 3x3x3 + 2 FC (Tran et al. 2015 Fig. 3); 79,991,015 "
                            "parameters for Sports-1M's 487 classes")
def c3d(num_classes: int = 487, **kwargs: Any) -> C3D:
    """C3D as in the paper; 79,991,015 parameters at 487 classes."""
    return C3D(num_classes=num_classes, **kwargs)


@register_model("c3d_small", **_MOVING_MNIST,
                description="C3D at 1/8 width, fc 256, for 16x64x64 Moving MNIST clips")
def c3d_small(num_classes: int = 8, **kwargs: Any) -> C3D:
    """C3D with 8 ... 64 filters and fc6/fc7 of 256; 566,200 parameters at 8 classes on 16-frame
    64x64 single-channel clips."""
    return C3D(num_classes=num_classes, **{**_SMALL, **kwargs})


@register_model("frame2d_small", **_MOVING_MNIST,
                description="c3d_small with 1x3x3 kernels on the first frame of a clip alone")
def frame2d_small(num_classes: int = 8, **kwargs: Any) -> C3D:
    """The single-frame 2-D twin of ``c3d_small``: the first frame of each clip classified;
    278,056 parameters at 8 classes on 64x64 single-channel clips of any length."""
    return C3D(num_classes=num_classes, **{**_SMALL, "temporal": False, "frame": 0, **kwargs})


@register_model("frames2d_small", **_MOVING_MNIST,
                description="c3d_small with 1x3x3 kernels on each frame, logits averaged over time")
def frames2d_small(num_classes: int = 8, **kwargs: Any) -> C3D:
    """The per-frame 2-D twin of ``c3d_small``, the frames' logits averaged; 278,056 parameters at
    8 classes on 64x64 single-channel clips of any length."""
    return C3D(num_classes=num_classes, **{**_SMALL, "temporal": False, **kwargs})
