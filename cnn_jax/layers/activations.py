"""Activation functions chosen by name, plus the learned-slope PReLU (He et al. 2015).

``get_activation('relu')`` returns a plain function; names with learned parameters (``'prelu'``) need
a module, so they go through :class:`Activation` or :class:`PReLU`. Definitions follow the papers and
agree with torch's defaults so ported weights give the same activations:

* ``leaky_relu``: slope 0.01 for x < 0 (Maas et al. 2013; torch's default).
* ``elu``: alpha = 1 (Clevert et al. 2016).
* ``swish`` / ``silu``: x * sigmoid(x) (Ramachandran et al. 2017, beta = 1).
* ``gelu``: the exact x * Phi(x) of Hendrycks & Gimpel 2016 (torch's default); ``gelu_tanh`` is their
  tanh approximation (JAX's default for ``jax.nn.gelu``).
* ``hard_swish`` / ``hard_sigmoid``: x * relu6(x + 3) / 6 and relu6(x + 3) / 6 (MobileNetV3,
  Howard et al. 2019, eq. 2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

ActivationFn = Callable[[jax.Array], jax.Array]


def identity(x: jax.Array) -> jax.Array:
    """The identity: a layer that leaves its input unchanged (a linear unit)."""
    return x


def leaky_relu(x: jax.Array) -> jax.Array:
    """Leaky ReLU with slope 0.01 for negative inputs."""
    return jax.nn.leaky_relu(x, negative_slope=0.01)


def gelu(x: jax.Array) -> jax.Array:
    """Exact GELU, x * Phi(x) with Phi the standard normal CDF."""
    return jax.nn.gelu(x, approximate=False)


def gelu_tanh(x: jax.Array) -> jax.Array:
    """GELU's tanh approximation, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    return jax.nn.gelu(x, approximate=True)


def softmax(x: jax.Array) -> jax.Array:
    """Softmax over the last (channel) axis, exp(x_i) / sum_j exp(x_j): an output activation
    that turns class scores into probabilities (per pixel for a dense map), not an elementwise
    one."""
    return jax.nn.softmax(x, axis=-1)


ACTIVATIONS: dict[str, ActivationFn] = {
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "relu6": jax.nn.relu6,
    "leaky_relu": leaky_relu,
    "elu": jax.nn.elu,
    "swish": jax.nn.silu,
    "silu": jax.nn.silu,
    "gelu": gelu,
    "gelu_tanh": gelu_tanh,
    "softplus": jax.nn.softplus,
    "hard_swish": jax.nn.hard_swish,
    "hard_sigmoid": jax.nn.hard_sigmoid,
    "identity": identity,
    "softmax": softmax,
}

# Activations with learned parameters: they exist only as modules.
PARAMETRIC_ACTIVATIONS: tuple[str, ...] = ("prelu",)


def get_activation(name_or_fn: str | ActivationFn | None) -> ActivationFn:
    """Return the activation function named ``name_or_fn`` (case-insensitive).

    A callable passes through unchanged and ``None`` means no activation (``identity``). Raises
    ``ValueError`` for unknown names, listing the known ones, and for ``'prelu'``, whose slope is a
    parameter and therefore needs ``Activation('prelu')`` or ``PReLU()`` inside a module.
    """
    if name_or_fn is None:
        return identity
    if callable(name_or_fn):
        return name_or_fn
    if not isinstance(name_or_fn, str):
        raise TypeError(f"activation must be a name or a callable, got {type(name_or_fn).__name__}")
    name = name_or_fn.lower()
    if name in PARAMETRIC_ACTIVATIONS:
        raise ValueError(
            f"activation {name_or_fn!r} has a learned parameter, so it cannot be a plain function: "
            "use cnn_jax.layers.Activation('prelu') or cnn_jax.layers.PReLU() inside your module"
        )
    if name not in ACTIVATIONS:
        known = ", ".join([*ACTIVATIONS, *PARAMETRIC_ACTIVATIONS])
        raise ValueError(f"unknown activation {name_or_fn!r}; choose one of: {known}")
    return ACTIVATIONS[name]


class PReLU(nn.Module):
    """Parametric ReLU, f(x) = max(0, x) + alpha * min(0, x) (He et al. 2015, eq. 1).

    ``alpha`` is learned: one slope shared by all channels (``num_parameters=1``, the paper's
    "channel-shared" variant) or one per channel of the last axis (``num_parameters=C``, the
    "channel-wise" variant). It starts at 0.25, the paper's initial value (§2.1). Parameter
    ``'alpha'`` has shape ``(num_parameters,)``, the same as torch's ``nn.PReLU.weight``.
    """

    num_parameters: int = 1
    init_value: float = 0.25
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.num_parameters not in (1, x.shape[-1]):
            raise ValueError(
                f"PReLU has {self.num_parameters} slopes but the input has {x.shape[-1]} channels "
                "on its last axis: use num_parameters=1 (shared) or the channel count"
            )
        alpha = self.param(
            "alpha",
            nn.initializers.constant(self.init_value),
            (self.num_parameters,),
            self.param_dtype,
        )
        alpha = jnp.asarray(alpha, x.dtype)
        return jnp.where(x >= 0, x, alpha * x)


class Activation(nn.Module):
    """An activation layer chosen by name or callable, usable anywhere a module is.

    ``fn`` is a name from :data:`ACTIVATIONS`, ``'prelu'`` (which creates a learned :class:`PReLU`
    submodule named ``'prelu'`` with ``num_parameters`` slopes), a callable, or ``None`` (identity).
    The field is called ``fn`` rather than ``name`` because ``name`` is every Flax module's own name.
    """

    fn: str | ActivationFn | None
    num_parameters: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if isinstance(self.fn, str) and self.fn.lower() in PARAMETRIC_ACTIVATIONS:
            return PReLU(num_parameters=self.num_parameters, name="prelu")(x)
        return get_activation(self.fn)(x)


def activate(x: jax.Array, fn: str | ActivationFn | None, *, name: str) -> jax.Array:
    """Applies an activation inside a compact module: a parametric one (``'prelu'``) becomes a
    named :class:`Activation` submodule holding its slopes, any other is applied as a function.
    So a model with its default activation has exactly the layers (and the `summary` rows) of
    the paper's, and ``'prelu'`` adds ``<name>/prelu/alpha``."""
    if isinstance(fn, str) and fn.lower() in PARAMETRIC_ACTIVATIONS:
        return Activation(fn, name=name)(x)
    return get_activation(fn)(x)
