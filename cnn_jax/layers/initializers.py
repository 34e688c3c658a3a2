"""Weight initialisers chosen by name, so configs and model definitions can say ``'he_normal'``.

Every scheme is the one its paper defines, in the variance-scaling form ``Var(W) = scale / fan``:

* LeCun et al. 1998, "Efficient BackProp" §4.6: ``Var = 1 / fan_in``      (``lecun_*``)
* Glorot & Bengio 2010, eq. 16:                ``Var = 2 / (fan_in + fan_out)`` (``glorot_*``/``xavier_*``)
* He et al. 2015, "Delving Deep into Rectifiers" §2.2: ``Var = 2 / ((1 + a^2) fan_in)`` with ``a`` the
  negative slope of a leaky/PReLU rectifier (0 for ReLU)   (``he_*``/``kaiming_*``)

Fans follow the kernel layouts of :mod:`cnn_jax.layers.conv` and ``flax.linen.Dense``: the last axis
is the output axis, the one before it the input axis, and every leading (spatial) axis multiplies both
fans by the receptive-field size, so ``fan_in = kH * kW * C_in / groups`` exactly as in torch.

Departures from ``jax.nn.initializers`` (on purpose, so numbers match the papers and torch):

* ``*_normal`` draw from an untruncated Gaussian, as He et al. 2015 and torch's ``kaiming_normal_`` /
  ``xavier_normal_`` do; JAX's versions truncate at two standard deviations. Pass
  ``distribution='truncated_normal'`` to get JAX's behaviour (the variance is the same either way).
* ``uniform(scale)`` is symmetric, ``U[-scale, scale)``; JAX's ``uniform(scale)`` is ``U[0, scale)``.

Not random: ``bilinear``, the kernel with which a transposed convolution of stride ``f`` and
kernel ``2f`` performs bilinear interpolation (Long et al. 2015 §3.3).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Initializer = Callable[..., jax.Array]

# name -> (variance scale, fan mode, distribution) of the variance-scaling schemes.
_VARIANCE_SCALING: dict[str, tuple[float, str, str]] = {
    "lecun_uniform": (1.0, "fan_in", "uniform"),
    "lecun_normal": (1.0, "fan_in", "normal"),
    "glorot_uniform": (1.0, "fan_avg", "uniform"),
    "glorot_normal": (1.0, "fan_avg", "normal"),
    "he_uniform": (2.0, "fan_in", "uniform"),
    "he_normal": (2.0, "fan_in", "normal"),
}

ALIASES: dict[str, str] = {
    "xavier_uniform": "glorot_uniform",
    "xavier_normal": "glorot_normal",
    "kaiming_uniform": "he_uniform",
    "kaiming_normal": "he_normal",
}

INITIALIZER_NAMES: tuple[str, ...] = (
    "zeros",
    "ones",
    "constant",
    "normal",
    "uniform",
    "truncated_normal",
    "bilinear",
    *_VARIANCE_SCALING,
    *ALIASES,
)


def symmetric_uniform(scale: float = 1e-2) -> Initializer:
    """``U[-scale, scale)`` — the classic symmetric uniform initialisation of early CNNs."""

    def init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, minval=-scale, maxval=scale)

    return init


def normal(stddev: float = 1e-2, mean: float = 0.0) -> Initializer:
    """``N(mean, stddev^2)``; AlexNet (Krizhevsky et al. 2012 §5) uses ``stddev=0.01``."""
    base = jax.nn.initializers.normal(stddev)

    def init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
        return base(key, shape, dtype) + jnp.asarray(mean, dtype)

    return init


def bilinear_taps(size: int) -> np.ndarray:
    """The 1-D bilinear interpolation kernel of ``size`` taps: with factor ``f = ceil(size / 2)``
    and centre ``c = f - 1`` (odd size) or ``f - 1/2`` (even size), tap ``i`` is
    ``1 - |i - c| / f`` (size 4: 1/4, 3/4, 3/4, 1/4, the weights of upsampling by 2)."""
    factor = (size + 1) // 2
    centre = factor - 1 if size % 2 else factor - 0.5
    return 1.0 - np.abs(np.arange(size) - centre) / factor


def bilinear_upsampling(
    key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32
) -> jax.Array:
    """Kernel ``(spatial..., C_in, C_out)`` of a transposed convolution that interpolates
    bilinearly (Long et al. 2015 §3.3: in-network upsampling "initialized to bilinear
    interpolation"): the product over spatial axes of :func:`bilinear_taps`, connecting channel c
    to channel c only. ``(..., C, C)`` kernels hold it on the channel diagonal, ``(..., C, 1)``
    kernels (a transposed convolution with ``groups=C``) for every channel. ``key`` is unused.
    With stride ``f``, kernel ``2f`` and a crop of ``f / 2`` on each side the output is ``f``
    times the input's size and sample i of the input sits at output ``f i + (f - 1) / 2``: the
    centre of the ``f`` output pixels it covers."""
    del key
    *spatial, c_in, c_out = shape
    if c_out not in (1, c_in):
        raise ValueError(f"a bilinear upsampling kernel maps each channel to itself: its shape "
                         f"must end in (C, C) or (C, 1), got {tuple(shape)}")
    taps = np.ones(spatial)
    for axis, size in enumerate(spatial):
        along = [-1 if a == axis else 1 for a in range(len(spatial))]
        taps = taps * bilinear_taps(size).reshape(along)
    kernel = np.zeros(shape)
    for c in range(c_in):
        kernel[..., c, 0 if c_out == 1 else c] = taps
    return jnp.asarray(kernel, dtype)


def _variance_scaling(
    name: str,
    *,
    mode: str | None = None,
    distribution: str | None = None,
    negative_slope: float = 0.0,
    in_axis: int | tuple[int, ...] = -2,
    out_axis: int | tuple[int, ...] = -1,
    batch_axis: tuple[int, ...] = (),
) -> Initializer:
    scale, default_mode, default_distribution = _VARIANCE_SCALING[name]
    if negative_slope and not name.startswith("he_"):
        raise ValueError(f"negative_slope only applies to he_* initialisers, not {name!r}")
    # He et al. 2015 eq. 15: a rectifier with negative slope a keeps a fraction (1 + a^2) / 2 of the
    # variance, so the gain 2 becomes 2 / (1 + a^2).
    scale = scale / (1.0 + negative_slope**2)
    return jax.nn.initializers.variance_scaling(
        scale,
        mode or default_mode,
        distribution or default_distribution,
        in_axis=in_axis,
        out_axis=out_axis,
        batch_axis=batch_axis,
    )


def get_initializer(name_or_fn: str | Initializer, **kwargs: Any) -> Initializer:
    """Return the initialiser ``name_or_fn`` names, configured by ``kwargs``; a callable passes through.

    Names (case-insensitive): ``zeros``, ``ones``, ``constant(value)``, ``normal(stddev=0.01, mean=0)``,
    ``uniform(scale=0.01)`` (symmetric), ``truncated_normal(stddev=0.01, lower=-2, upper=2)``,
    ``lecun_uniform``, ``lecun_normal``, ``glorot_uniform``, ``glorot_normal``, ``he_uniform``,
    ``he_normal``, the aliases ``xavier_*`` / ``kaiming_*`` and ``bilinear``
    (:func:`bilinear_upsampling`). The variance-scaling ones accept ``mode`` (``'fan_in'``,
    ``'fan_out'``, ``'fan_avg'``), ``distribution`` (``'normal'``, ``'truncated_normal'``,
    ``'uniform'``), ``in_axis``/``out_axis``/``batch_axis``; the ``he_*`` ones
    also ``negative_slope``. torchvision's ResNet init is ``get_initializer('he_normal', mode='fan_out')``.
    """
    if callable(name_or_fn):
        if kwargs:
            raise TypeError(
                f"keyword arguments {sorted(kwargs)} were given with a callable initialiser"
            )
        return name_or_fn
    if not isinstance(name_or_fn, str):
        raise TypeError(
            f"initialiser must be a name or a callable, got {type(name_or_fn).__name__}"
        )
    name = name_or_fn.lower()
    name = ALIASES.get(name, name)
    if name in ("zeros", "ones"):
        if kwargs:
            raise TypeError(f"initialiser {name!r} takes no arguments, got {sorted(kwargs)}")
        return jax.nn.initializers.zeros if name == "zeros" else jax.nn.initializers.ones
    if name == "constant":
        if "value" not in kwargs:
            raise TypeError(
                "initialiser 'constant' needs a value: get_initializer('constant', value=0.1)"
            )
        return jax.nn.initializers.constant(kwargs.pop("value"), **kwargs)
    if name == "normal":
        return normal(**kwargs)
    if name == "uniform":
        return symmetric_uniform(**kwargs)
    if name == "bilinear":
        if kwargs:
            raise TypeError(f"initialiser 'bilinear' takes no arguments, got {sorted(kwargs)}")
        return bilinear_upsampling
    if name == "truncated_normal":
        kwargs.setdefault("stddev", 1e-2)
        return jax.nn.initializers.truncated_normal(**kwargs)
    if name in _VARIANCE_SCALING:
        return _variance_scaling(name, **kwargs)
    raise ValueError(
        f"unknown initialiser {name_or_fn!r}; choose one of {', '.join(INITIALIZER_NAMES)} "
        "or pass a callable (key, shape, dtype) -> array"
    )
