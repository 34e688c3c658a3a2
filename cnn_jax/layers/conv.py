"""Convolution layers shared by the model zoo: padding modes, dilation, groups, depthwise-separable,
causal 1-D, 3-D, transposed ("deconvolution") and the conv-BN-activation block.

Layout is channels-last: ``(N, L, C)`` for 1-D, ``(N, H, W, C)`` for 2-D, ``(N, D, H, W, C)`` for 3-D;
an ``int`` ``kernel_size`` means a square 2-D kernel, a tuple's length gives the number of spatial
dims. Kernels are ``(spatial..., C_in / groups, C_out)`` (Flax's HWIO); a torch ``Conv2d`` weight
``(C_out, C_in / groups, kH, kW)`` converts with ``w.transpose(2, 3, 1, 0)``. Like every deep-learning
"convolution", these layers compute a cross-correlation (the kernel is not flipped).

Padding (``Conv``, ``DepthwiseConv``, ``ConvBNAct``):

* ``'VALID'``: none. ``'SAME'``: output ``ceil(W / S)``, padded as XLA/TensorFlow do, with the odd pixel
  at the end — for stride > 1 that differs from torch, which pads symmetrically.
* ``int P`` / sequence of ints: ``P`` zeros on both sides of each spatial dim (torch's ``padding=P``).
* sequence of ``(lo, hi)`` pairs: explicit padding per spatial dim.
* ``None``: torch-style "same", ``((F - 1) // 2) * d`` on both sides (torchvision's convention), which
  keeps the size for odd kernels at stride 1 and matches torch for every stride.

Output size (Dumoulin & Visin 2016, "A guide to convolution arithmetic", relationship 15):
``W_o = floor((W_i + 2P - d (F - 1) - 1) / S) + 1``, i.e. ``floor((W_i - F + 2P) / S) + 1`` when d = 1;
see :func:`conv_output_size`.

Implementation (:func:`set_conv_impl`, the trainer's ``config.conv_impl``): with ``'auto'`` (the
default), 1-D and 2-D float32 convolutions compiled for a single CPU device run on oneDNN through
XLA FFI custom calls (:mod:`cnn_jax.layers.onednn`: forward and both gradients 2-3x faster than
XLA:CPU's own convolutions, depthwise ones included); GPUs, TPUs, several devices, other dtypes,
3-D and circular padding use XLA's convolution; on the oneDNN route a convolution whose kernel
covers its whole unpadded input (LeNet-5's C5) runs as one matrix product instead (XLA's dot;
see ``_onednn_conv`` for the measurements). ``'xla'`` uses XLA's everywhere (it supports
forward-mode autodiff, which the oneDNN calls do not). Both create the same parameters, so
checkpoints move between them. The model analysis (:mod:`cnn_jax.analysis`) always traces XLA's
convolutions.

Depthwise convolutions (``groups == C_in``: :class:`DepthwiseConv`, and :class:`Conv` /
:class:`ConvBNAct` with ``groups`` equal to the input channels, as MobileNet uses them) that oneDNN
does not take (or with ``depthwise_impl`` ``'xla'``/``'shifted'``, which bypass it) go through
:func:`depthwise_conv`. XLA:CPU runs a grouped convolution with one channel per group as a slow
generic loop; written as ``k * k`` shifted multiply-adds (one strided slice of the padded input per
kernel tap) the same layer runs forward and backward 10-30x faster on a CPU and gives the same
output to float rounding. With ``depthwise_impl='auto'`` (the default) the forward pass is XLA's
grouped convolution, and under differentiation (training) the CPU computes forward and backward
with the shifted multiply-adds while GPUs and TPUs keep the grouped convolution (their libraries
have fast depthwise kernels); ``'xla'`` and ``'shifted'`` force one implementation. Measured in
experiments/bench_train_step.py and README "Performance".
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import math
import os
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from cnn_jax.layers import onednn
from cnn_jax.layers.activations import (
    PARAMETRIC_ACTIVATIONS,
    Activation,
    ActivationFn,
    get_activation,
)
from cnn_jax.layers.initializers import Initializer, get_initializer
from cnn_jax.layers.norm import BatchNorm

Padding = str | int | Sequence[int] | Sequence[tuple[int, int]] | None
PadPairs = list[tuple[int, int]]

# Letters for the spatial dims of lax dimension-number strings, by number of spatial dims.
_SPATIAL_LETTERS = {1: "H", 2: "HW", 3: "DHW"}


def ntuple(value: int | Sequence[int], n: int, what: str) -> tuple[int, ...]:
    """``value`` repeated ``n`` times if it is an int, else checked to have ``n`` entries."""
    if isinstance(value, int):
        return (value,) * n
    values = tuple(int(v) for v in value)
    if len(values) != n:
        raise ValueError(
            f"{what}={value!r} has {len(values)} entries but there are {n} spatial dims"
        )
    return values


def kernel_tuple(kernel_size: int | Sequence[int]) -> tuple[int, ...]:
    """The kernel shape as a tuple: an int means a square 2-D kernel."""
    if isinstance(kernel_size, int):
        return (kernel_size, kernel_size)
    return tuple(int(k) for k in kernel_size)


def torch_same_padding(kernel_size: Sequence[int], dilation: Sequence[int]) -> PadPairs:
    """torchvision's "same" padding, ``((F - 1) // 2) * d`` on both sides of each dim."""
    return [((k - 1) // 2 * d,) * 2 for k, d in zip(kernel_size, dilation, strict=True)]


def resolve_padding(
    padding: Padding, kernel_size: Sequence[int], dilation: Sequence[int] | None = None
) -> str | PadPairs:
    """Normalise any accepted padding spec to ``'SAME'``/``'VALID'``/``'CIRCULAR'`` or ``(lo, hi)`` pairs."""
    n = len(kernel_size)
    if padding is None:
        return torch_same_padding(kernel_size, dilation or (1,) * n)
    if isinstance(padding, str):
        upper = padding.upper()
        if upper not in ("SAME", "VALID", "CIRCULAR"):
            raise ValueError(
                f"padding {padding!r} is not one of 'SAME', 'VALID', 'CIRCULAR', an int or pairs"
            )
        return upper
    if isinstance(padding, int):
        return [(padding, padding)] * n
    entries = list(padding)
    if len(entries) != n:
        raise ValueError(
            f"padding={padding!r} has {len(entries)} entries but there are {n} spatial dims"
        )
    pairs: PadPairs = []
    for entry in entries:
        if isinstance(entry, int):
            pairs.append((entry, entry))
        else:
            lo, hi = entry
            pairs.append((int(lo), int(hi)))
    return pairs


def conv_output_size(
    size: int,
    kernel_size: int,
    stride: int = 1,
    padding: int | tuple[int, int] | str = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Spatial output size of a convolution or pooling window along one dim.

    ``floor((W + 2P - d (F - 1) - 1) / S) + 1`` (== ``floor((W - F + 2P) / S) + 1`` for d = 1).
    ``padding`` is ``P`` on both sides, a ``(lo, hi)`` pair, ``'VALID'`` (0) or ``'SAME'``
    (``ceil(W / S)``). ``ceil_mode`` rounds up instead, as torch's pooling does, but never lets the
    last window start in the right padding: it is dropped if ``(W_o - 1) S >= W + lo``.
    """
    effective = dilation * (kernel_size - 1) + 1
    if isinstance(padding, str):
        if padding.upper() == "SAME":
            return -(-size // stride)
        if padding.upper() != "VALID":
            raise ValueError(
                f"padding {padding!r} is not 'SAME', 'VALID', an int or a (lo, hi) pair"
            )
        lo = hi = 0
    elif isinstance(padding, int):
        lo = hi = padding
    else:
        lo, hi = padding
    span = size + lo + hi - effective
    if span < 0:
        raise ValueError(
            f"a window of effective size {effective} does not fit an input of size {size} "
            f"padded by ({lo}, {hi})"
        )
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + lo:
        out -= 1
    return out


def _check_input(x: jax.Array, n_spatial: int, layer: str, kernel: tuple[int, ...]) -> None:
    if x.ndim != n_spatial + 2:
        raise ValueError(
            f"{layer} with the {n_spatial}-D kernel {kernel} expects batched channels-last input with "
            f"{n_spatial + 2} dims (N, {', '.join(['spatial'] * n_spatial)}, C), got shape {x.shape}; "
            "pass kernel_size as a tuple whose length is the number of spatial dims"
        )


def _check_groups(in_features: int, features: int, groups: int, layer: str) -> None:
    if groups < 1 or in_features % groups or features % groups:
        raise ValueError(
            f"{layer}: groups={groups} must divide both the input channels ({in_features}) "
            f"and the output channels ({features})"
        )


def _flax_conv(
    module: nn.Module,
    x: jax.Array,
    *,
    features: int,
    kernel_size: tuple[int, ...],
    strides: tuple[int, ...],
    padding: str | PadPairs,
    dilation: tuple[int, ...],
    groups: int,
    use_bias: bool,
    kernel_init: str | Initializer,
    bias_init: str | Initializer,
    dtype: Any,
    param_dtype: Any,
    precision: Any,
) -> jax.Array:
    """Run an ``nn.Conv`` that shares ``module``'s scope, so its 'kernel'/'bias' live directly in it."""
    conv = nn.Conv(
        features=features,
        kernel_size=kernel_size,
        strides=strides,
        padding=padding,
        kernel_dilation=dilation,
        feature_group_count=groups,
        use_bias=use_bias,
        dtype=dtype,
        param_dtype=param_dtype,
        precision=precision,
        kernel_init=get_initializer(kernel_init),
        bias_init=get_initializer(bias_init),
    )
    nn.share_scope(module, conv)
    return conv(x)


DEPTHWISE_IMPLS = ("auto", "xla", "shifted")


def _is_depthwise(in_features: int, groups: int, n_spatial: int, padding: str | PadPairs) -> bool:
    """A grouped conv with one input channel per group that :func:`depthwise_conv` can take."""
    return groups > 1 and groups == in_features and padding != "CIRCULAR" and n_spatial >= 1


def _grouped_depthwise(x, kernel, strides, padding, dilation, precision):
    """XLA's grouped convolution (``feature_group_count = C_in``); kernel ``(k..., 1, C_in * m)``."""
    spatial = _SPATIAL_LETTERS[x.ndim - 2]
    return lax.conv_general_dilated(
        x,
        kernel,
        window_strides=strides,
        padding=padding,
        rhs_dilation=dilation,
        dimension_numbers=(f"N{spatial}C", f"{spatial}IO", f"N{spatial}C"),
        feature_group_count=x.shape[-1],
        precision=precision,
    )


def _shifted_depthwise(x, kernel, strides, padding, dilation, precision):
    """The depthwise convolution as ``prod(k)`` shifted multiply-adds: for each kernel tap, a strided
    slice of the zero-padded input times that tap's per-channel weights. Elementwise work that XLA
    fuses into a few loops, forward and backward (its gradient is pads and reductions)."""
    del precision  # elementwise products in the input dtype
    kernel_shape = kernel.shape[:-2]
    multiplier = kernel.shape[-1] // x.shape[-1]
    if multiplier > 1:  # output channel c * m + j is kernel j of input channel c (torch's order)
        x = jnp.repeat(x, multiplier, axis=-1)
    x = jnp.pad(x, [(0, 0), *padding, (0, 0)])
    out_shape = [
        (size - d * (k - 1) - 1) // s + 1
        for size, k, s, d in zip(x.shape[1:-1], kernel_shape, strides, dilation, strict=True)
    ]
    out = None
    for tap in itertools.product(*(range(k) for k in kernel_shape)):
        start = [t * d for t, d in zip(tap, dilation, strict=True)]
        limit = [b + (o - 1) * s + 1 for b, o, s in zip(start, out_shape, strides, strict=True)]
        window = lax.slice(x, (0, *start, 0), (x.shape[0], *limit, x.shape[-1]), (1, *strides, 1))
        term = window * kernel[tap][0]
        out = term if out is None else out + term
    return out


def _platform_depthwise(x, kernel, strides, padding, dilation, precision):
    """Shifted multiply-adds when compiled for the CPU, XLA's grouped convolution elsewhere
    (decided when the computation is lowered for its device)."""
    args = (strides, padding, dilation, precision)
    return lax.platform_dependent(
        x,
        kernel,
        cpu=lambda x, k: _shifted_depthwise(x, k, *args),
        default=lambda x, k: _grouped_depthwise(x, k, *args),
    )


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4, 5))
def _auto_depthwise(x, kernel, strides, padding, dilation, precision):
    # Undifferentiated (evaluation, and what `cnn-jax summary` traces): the grouped convolution.
    return _grouped_depthwise(x, kernel, strides, padding, dilation, precision)


@_auto_depthwise.defjvp
def _auto_depthwise_jvp(strides, padding, dilation, precision, primals, tangents):
    # Differentiated (training): forward and backward by the platform's fast implementation.
    fn = functools.partial(_platform_depthwise, strides=strides, padding=padding,
                           dilation=dilation, precision=precision)
    return jax.jvp(lambda x, k: fn(x, k), primals, tangents)


def depthwise_conv(
    x: jax.Array,
    kernel: jax.Array,
    *,
    strides: Sequence[int],
    padding: str | PadPairs,
    dilation: Sequence[int],
    precision: Any = None,
    impl: str = "auto",
) -> jax.Array:
    """Depthwise convolution of channels-last ``x`` with ``kernel`` ``(k..., 1, C_in * m)``.

    Output channel ``c * m + j`` is kernel ``j`` of input channel ``c``; ``padding`` is ``'SAME'``,
    ``'VALID'`` or ``(lo, hi)`` pairs. ``impl``: ``'xla'`` (grouped convolution), ``'shifted'``
    (``prod(k)`` shifted multiply-adds) or ``'auto'`` (module doc: the grouped convolution forward,
    shifted multiply-adds for training on a CPU). All three agree to float rounding.
    """
    if impl not in DEPTHWISE_IMPLS:
        raise ValueError(f"depthwise impl {impl!r} is not one of {', '.join(DEPTHWISE_IMPLS)}")
    strides, dilation = tuple(strides), tuple(dilation)
    padding = _pad_pairs(x, kernel.shape[:-2], strides, padding, dilation)
    fn = {"auto": _auto_depthwise, "xla": _grouped_depthwise, "shifted": _shifted_depthwise}[impl]
    return fn(x, kernel, strides, padding, dilation, precision)


def _direct_layer(
    module: nn.Module,
    x: jax.Array,
    conv_fn,
    *,
    features: int,
    kernel_size: tuple[int, ...],
    groups: int,
    use_bias: bool,
    kernel_init: str | Initializer,
    bias_init: str | Initializer,
    dtype: Any,
    param_dtype: Any,
    **conv_kwargs,
) -> jax.Array:
    """The parameters ``nn.Conv`` would create in ``module`` (same names, shapes, initialisers and
    random streams), applied by ``conv_fn(x, kernel, strides=, padding=, dilation=, precision=)``."""
    kernel = module.param(
        "kernel", get_initializer(kernel_init), (*kernel_size, x.shape[-1] // groups, features), param_dtype
    )
    bias = (
        module.param("bias", get_initializer(bias_init), (features,), param_dtype)
        if use_bias
        else None
    )
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=dtype)
    y = conv_fn(x, kernel, **conv_kwargs)
    if bias is not None:
        y = y + bias
    return y


# --------------------------------------------------------------------------------------------
# Which implementation runs an ordinary (not depthwise) convolution
# --------------------------------------------------------------------------------------------
CONV_IMPLS = ("auto", "xla", "onednn")
_conv_impl = {"name": os.environ.get("CNN_JAX_CONV_IMPL", "auto")}
_warned: set[str] = set()


def set_conv_impl(name: str) -> str:
    """Chooses how 1-D and 2-D float32 convolutions run from now on (for everything traced later);
    returns the previous choice. ``'auto'`` (the default, or ``$CNN_JAX_CONV_IMPL``): oneDNN when
    the backend is one CPU device and oneDNN builds (:mod:`cnn_jax.layers.onednn`), else XLA's;
    ``'xla'``: XLA's everywhere; ``'onednn'``: oneDNN on the CPU, with an error naming the fix if it
    cannot be built (with several devices each computes the whole batch: XLA cannot split the calls).
    Depthwise convolutions follow ``depthwise_impl`` instead."""
    if name not in CONV_IMPLS:
        raise ValueError(f"conv_impl {name!r} is not one of {', '.join(CONV_IMPLS)}")
    if name == "onednn":
        onednn.require()
    previous, _conv_impl["name"] = _conv_impl["name"], name
    return previous


def get_conv_impl() -> str:
    return _conv_impl["name"]


@contextlib.contextmanager
def using_conv_impl(name: str):
    """:func:`set_conv_impl` for the ``with`` block (what is traced inside it)."""
    previous = set_conv_impl(name)
    try:
        yield
    finally:
        _conv_impl["name"] = previous


def _onednn_chosen() -> bool:
    """Whether ``set_conv_impl``'s choice sends eligible convolutions to oneDNN."""
    name = _conv_impl["name"]
    if name not in CONV_IMPLS:
        raise ValueError(f"CNN_JAX_CONV_IMPL={name!r} is not one of {', '.join(CONV_IMPLS)}")
    if name == "xla" or (name == "auto" and (jax.default_backend() != "cpu" or jax.device_count() > 1)):
        # XLA's SPMD partitioner cannot split a custom call over devices: it would gather the batch
        # and compute it whole on every device. So 'auto' keeps oneDNN to single-device runs.
        return False
    if name == "onednn":
        onednn.require()
        return True
    if onednn.available():
        return True
    if "onednn" not in _warned:
        _warned.add("onednn")
        logging.getLogger(__name__).warning(
            "oneDNN convolutions unavailable (%s): using XLA's, 2-3x slower on CPUs; %s, or set "
            "conv_impl='xla' to silence this", onednn.unavailable_reason(), onednn.INSTALL_HINT)
    return False


def _covers_input(x, kernel, padding, groups) -> bool:
    """Whether a kernel of more than one tap spans the whole unpadded input (one output position:
    a matrix product). A 1x1 kernel on a 1x1 map stays a oneDNN pointwise convolution."""
    # (With no padding, a kernel as large as the input can only be undilated.)
    return (groups == 1 and all(p == (0, 0) for p in padding)
            and tuple(x.shape[1:-1]) == tuple(kernel.shape[:-2]) and math.prod(kernel.shape[:-2]) > 1)


def _onednn_conv(x, kernel, *, strides, padding, dilation, precision, groups):
    """:func:`cnn_jax.layers.onednn.conv2d` for 1-D (as height 1) and 2-D convolutions.

    A convolution whose kernel (of more than one tap) covers its whole input (LeNet-5's C5, a
    classifier written as a convolution) is one matrix product of the flattened input and kernel,
    and runs as XLA's dot:
    ``python experiments/bench_conv_layer.py --covering`` (forward and both gradients) measured it
    2.2-2.8x faster than oneDNN's convolution for three of its four shapes, LeNet-5's C5 at batch
    256 included, and 15% slower for the fourth (6x6x256 to 512 channels). A 1x1 kernel on a 1x1
    map (MobileNet's last stages on 32x32 inputs) stays on oneDNN: XLA's dot there took different
    roundings in a K-step program than in a single step, which BatchNorm over a one-pixel map
    amplified past tests/training/test_multi_step.py's tolerance.
    """
    del precision  # float32 arithmetic either way
    if _covers_input(x, kernel, padding, groups):
        y = x.reshape(x.shape[0], -1) @ kernel.reshape(-1, kernel.shape[-1])
        return y.reshape(x.shape[0], *(1,) * (x.ndim - 2), kernel.shape[-1])
    if x.ndim == 3:
        y = onednn.conv2d(x[:, None], kernel[None], strides=(1, *strides), padding=((0, 0), *padding),
                          dilation=(1, *dilation), groups=groups)
        return y[:, 0]
    return onednn.conv2d(x, kernel, strides=strides, padding=padding, dilation=dilation, groups=groups)


def _onednn_eligible(x, padding, dtype, param_dtype) -> bool:
    """A 1-D or 2-D float32 convolution with non-negative zero padding."""
    compute = jnp.dtype(dtype) if dtype is not None else jnp.result_type(x.dtype, param_dtype)
    return (x.ndim in (3, 4) and padding != "CIRCULAR" and compute == jnp.float32
            and (isinstance(padding, str) or all(p >= 0 for pair in padding for p in pair)))


def _pad_pairs(x, kernel_size, strides, padding, dilation) -> tuple[tuple[int, int], ...]:
    if isinstance(padding, str):
        effective = [d * (k - 1) + 1 for k, d in zip(kernel_size, dilation, strict=True)]
        padding = lax.padtype_to_pads(x.shape[1:-1], effective, strides, padding)
    return tuple((int(lo), int(hi)) for lo, hi in padding)


def _conv_layer(module: nn.Module, x: jax.Array, *, groups: int, depthwise_impl: str, **kwargs) -> jax.Array:
    """A 1-D/2-D float32 convolution by oneDNN when :func:`set_conv_impl` says so (depthwise ones
    too, unless ``depthwise_impl`` forces 'xla' or 'shifted'), any other depthwise one by
    :func:`depthwise_conv`, the rest by ``nn.Conv``."""
    padding = kwargs["padding"]
    if depthwise_impl not in DEPTHWISE_IMPLS:
        raise ValueError(f"depthwise_impl={depthwise_impl!r} is not one of {', '.join(DEPTHWISE_IMPLS)}")
    depthwise = _is_depthwise(x.shape[-1], groups, x.ndim - 2, padding)
    if depthwise and depthwise_impl == "xla":
        return _flax_conv(module, x, groups=groups, **kwargs)
    if (not (depthwise and depthwise_impl == "shifted")
            and _onednn_eligible(x, padding, kwargs["dtype"], kwargs["param_dtype"]) and _onednn_chosen()):
        kwargs["padding"] = _pad_pairs(x, kwargs["kernel_size"], kwargs["strides"], padding, kwargs["dilation"])
        return _direct_layer(module, x, functools.partial(_onednn_conv, groups=groups), groups=groups, **kwargs)
    if depthwise:
        return _direct_layer(module, x, functools.partial(depthwise_conv, impl=depthwise_impl),
                             groups=groups, **kwargs)
    return _flax_conv(module, x, groups=groups, **kwargs)


class Conv(nn.Module):
    """N-D convolution (cross-correlation) with any padding mode, dilation and groups.

    ``groups=g`` splits the channels into ``g`` independent convolutions (Krizhevsky et al. 2012 ran
    AlexNet's two GPU halves this way), dividing the parameters by ``g``; ``groups=C_in`` with
    ``features = m * C_in`` is a depthwise convolution. ``dilation=d`` spreads the taps ``d`` apart,
    an effective kernel of ``d (F - 1) + 1`` (Yu & Koltun 2016). Parameters: ``'kernel'`` of shape
    ``(spatial..., C_in / groups, features)`` and ``'bias'`` ``(features,)``. A depthwise
    convolution runs as ``depthwise_impl`` says (:func:`depthwise_conv`; same parameters either way).
    """

    features: int
    kernel_size: int | Sequence[int] = 3
    strides: int | Sequence[int] = 1
    padding: Padding = "SAME"
    dilation: int | Sequence[int] = 1
    groups: int = 1
    use_bias: bool = True
    kernel_init: str | Initializer = "lecun_normal"
    bias_init: str | Initializer = "zeros"
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: Any = None
    depthwise_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = kernel_tuple(self.kernel_size)
        n = len(kernel)
        _check_input(x, n, "Conv", kernel)
        _check_groups(x.shape[-1], self.features, self.groups, "Conv")
        dilation = ntuple(self.dilation, n, "dilation")
        return _conv_layer(
            self,
            x,
            features=self.features,
            kernel_size=kernel,
            strides=ntuple(self.strides, n, "strides"),
            padding=resolve_padding(self.padding, kernel, dilation),
            dilation=dilation,
            groups=self.groups,
            depthwise_impl=self.depthwise_impl,
            use_bias=self.use_bias,
            kernel_init=self.kernel_init,
            bias_init=self.bias_init,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            precision=self.precision,
        )


class CausalConv1D(nn.Module):
    """1-D convolution whose output at step t sees only inputs at steps <= t (WaveNet, van den Oord
    et al. 2016, §2.1).

    The sequence is padded with ``(F - 1) d`` zeros on the left only, so the output has the input's
    length and stacking layers with dilations 1, 2, 4, ... grows the receptive field exponentially.
    Input ``(N, L, C)``; parameters ``'kernel'`` ``(F, C_in, features)`` and ``'bias'``.
    """

    features: int
    kernel_size: int = 2
    dilation: int = 1
    use_bias: bool = True
    kernel_init: str | Initializer = "lecun_normal"
    bias_init: str | Initializer = "zeros"
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: Any = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = (self.kernel_size,)
        _check_input(x, 1, "CausalConv1D", kernel)
        return _conv_layer(
            self,
            x,
            features=self.features,
            kernel_size=kernel,
            strides=(1,),
            padding=[((self.kernel_size - 1) * self.dilation, 0)],
            dilation=(self.dilation,),
            groups=1,
            depthwise_impl="auto",
            use_bias=self.use_bias,
            kernel_init=self.kernel_init,
            bias_init=self.bias_init,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            precision=self.precision,
        )


class DepthwiseConv(nn.Module):
    """Depthwise convolution: each input channel filtered on its own by ``depth_multiplier`` kernels.

    A grouped convolution with ``groups = C_in`` (Chollet 2017; Howard et al. 2017, MobileNet §3.1):
    ``k * k * C_in * depth_multiplier`` weights instead of ``k * k * C_in * C_out``. Output channel
    ``c * depth_multiplier + j`` is kernel ``j`` of input channel ``c`` (torch's ordering). Parameters
    ``'kernel'`` ``(k, k, 1, C_in * depth_multiplier)`` and, if ``use_bias``, ``'bias'``.
    ``depthwise_impl`` picks the implementation (:func:`depthwise_conv`).
    """

    kernel_size: int | Sequence[int] = 3
    strides: int | Sequence[int] = 1
    padding: Padding = "SAME"
    depth_multiplier: int = 1
    use_bias: bool = False
    dilation: int | Sequence[int] = 1
    kernel_init: str | Initializer = "lecun_normal"
    bias_init: str | Initializer = "zeros"
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: Any = None
    depthwise_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = kernel_tuple(self.kernel_size)
        n = len(kernel)
        _check_input(x, n, "DepthwiseConv", kernel)
        channels = x.shape[-1]
        dilation = ntuple(self.dilation, n, "dilation")
        return _conv_layer(
            self,
            x,
            features=channels * self.depth_multiplier,
            kernel_size=kernel,
            strides=ntuple(self.strides, n, "strides"),
            padding=resolve_padding(self.padding, kernel, dilation),
            dilation=dilation,
            groups=channels,
            depthwise_impl=self.depthwise_impl,
            use_bias=self.use_bias,
            kernel_init=self.kernel_init,
            bias_init=self.bias_init,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            precision=self.precision,
        )


class DepthwiseSeparableConv(nn.Module):
    """Depthwise convolution followed by a 1x1 pointwise convolution (Chollet 2017, Xception;
    Howard et al. 2017, MobileNet §3.1).

    Parameters: submodule ``'depthwise'`` has ``k*k*C_in`` weights (+ ``C_in`` biases) and
    ``'pointwise'`` ``C_in*C_out`` (+ ``C_out``), against ``k*k*C_in*C_out`` for a standard
    convolution — about ``1/C_out + 1/k^2`` of the cost. No normalisation or activation sits between
    the two; models that want them (MobileNet does) compose :class:`ConvBNAct` with ``groups``.
    """

    features: int
    kernel_size: int | Sequence[int] = 3
    strides: int | Sequence[int] = 1
    padding: Padding = "SAME"
    use_bias: bool = True
    depth_multiplier: int = 1
    dilation: int | Sequence[int] = 1
    kernel_init: str | Initializer = "lecun_normal"
    bias_init: str | Initializer = "zeros"
    dtype: Any = None
    param_dtype: Any = jnp.float32
    depthwise_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        common = dict(
            use_bias=self.use_bias,
            kernel_init=self.kernel_init,
            bias_init=self.bias_init,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )
        x = DepthwiseConv(
            kernel_size=self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            depth_multiplier=self.depth_multiplier,
            dilation=self.dilation,
            depthwise_impl=self.depthwise_impl,
            name="depthwise",
            **common,
        )(x)
        ones = (1,) * len(kernel_tuple(self.kernel_size))
        return Conv(self.features, ones, padding="VALID", name="pointwise", **common)(x)


class ConvTranspose(nn.Module):
    """Transposed convolution ("deconvolution", fractionally strided convolution) with torch semantics.

    Output size per spatial dim (Dumoulin & Visin 2016, relationship 14; torch ``ConvTranspose*d``):
    ``W_o = (W_i - 1) S - (lo + hi) + d (F - 1) + 1 + output_padding`` — with ``padding=P`` that is
    ``(W_i - 1) S - 2P + F (+ output_padding)``. It is the adjoint (the input gradient) of a ``Conv``
    with the same kernel, stride, padding and dilation: it upsamples by spreading each input pixel,
    weighted by the kernel, over the output.

    ``padding``: ``int P`` / ints / ``(lo, hi)`` pairs crop that much from the full output (torch's
    ``padding``); ``'VALID'`` means ``P = 0``; ``'SAME'`` crops to exactly ``W_i * S``.

    Kernel layout: ``'kernel'`` is ``(spatial..., C_in, features / groups)``, so a torch
    ``ConvTranspose2d.weight`` of shape ``(C_in, C_out / groups, kH, kW)`` converts with
    ``w.transpose(2, 3, 0, 1)`` — no flip; the flip a transposed convolution needs is done here.
    """

    features: int
    kernel_size: int | Sequence[int] = 2
    strides: int | Sequence[int] = 1
    padding: str | int | Sequence[int] | Sequence[tuple[int, int]] = 0
    output_padding: int | Sequence[int] = 0
    dilation: int | Sequence[int] = 1
    groups: int = 1
    use_bias: bool = True
    kernel_init: str | Initializer = "lecun_normal"
    bias_init: str | Initializer = "zeros"
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: Any = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel_shape = kernel_tuple(self.kernel_size)
        n = len(kernel_shape)
        _check_input(x, n, "ConvTranspose", kernel_shape)
        in_features = x.shape[-1]
        _check_groups(in_features, self.features, self.groups, "ConvTranspose")
        strides = ntuple(self.strides, n, "strides")
        dilation = ntuple(self.dilation, n, "dilation")
        output_padding = ntuple(self.output_padding, n, "output_padding")
        for op, s, d in zip(output_padding, strides, dilation, strict=True):
            if not 0 <= op < max(s, d):
                raise ValueError(
                    f"output_padding {output_padding} must be smaller than the stride or the dilation"
                )
        effective = [d * (k - 1) + 1 for k, d in zip(kernel_shape, dilation, strict=True)]
        crops = self._crops(effective, strides)

        kernel = self.param(
            "kernel",
            get_initializer(self.kernel_init),
            (*kernel_shape, in_features, self.features // self.groups),
            self.param_dtype,
        )
        bias = (
            self.param("bias", get_initializer(self.bias_init), (self.features,), self.param_dtype)
            if self.use_bias
            else None
        )
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)

        # A transposed conv is the gradient of a strided conv: put S - 1 zeros between input pixels
        # (lhs_dilation), pad each side by F_eff - 1 minus the crop, and correlate with the kernel
        # flipped in space with its in/out roles swapped (Dumoulin & Visin 2016, §4).
        rhs = jnp.flip(kernel, axis=tuple(range(n)))
        g = self.groups
        # Group j maps inputs j*C_in/g... to outputs j*C_out/g...; lax wants (spatial, C_in/g, C_out).
        rhs = rhs.reshape(*kernel_shape, g, in_features // g, self.features // g)
        rhs = jnp.swapaxes(rhs, n, n + 1).reshape(*kernel_shape, in_features // g, self.features)
        pads = [
            (f - 1 - lo, f - 1 - hi + op)
            for f, (lo, hi), op in zip(effective, crops, output_padding, strict=True)
        ]
        spatial = _SPATIAL_LETTERS[n]
        y = lax.conv_general_dilated(
            x,
            rhs,
            window_strides=(1,) * n,
            padding=pads,
            lhs_dilation=strides,
            rhs_dilation=dilation,
            dimension_numbers=(f"N{spatial}C", f"{spatial}IO", f"N{spatial}C"),
            feature_group_count=g,
            precision=self.precision,
        )
        if bias is not None:
            y = y + bias
        return y

    def _crops(self, effective: list[int], strides: tuple[int, ...]) -> PadPairs:
        n = len(effective)
        if isinstance(self.padding, str):
            mode = self.padding.upper()
            if mode == "VALID":
                return [(0, 0)] * n
            if mode == "SAME":
                crops = []
                for f, s in zip(effective, strides, strict=True):
                    total = f - s  # (W - 1) S + F - total == W S
                    lo = max(total, 0) // 2
                    crops.append((lo, total - lo))
                return crops
            raise ValueError(
                f"ConvTranspose padding {self.padding!r} is not 'SAME', 'VALID', an int or pairs"
            )
        pairs = resolve_padding(self.padding, effective)
        assert not isinstance(pairs, str)
        return pairs


class ConvBNAct(nn.Module):
    """Convolution -> BatchNorm -> activation: the block most of the zoo is built from
    (Ioffe & Szegedy 2015 put BN between the linear map and the nonlinearity).

    Submodules ``'conv'`` (a :class:`Conv`, no bias by default since BN's shift replaces it) and
    ``'bn'`` (a :class:`~cnn_jax.layers.norm.BatchNorm`, momentum 0.9 == torch's 0.1); ``act`` is a
    name, a callable, ``'prelu'`` (a learned submodule ``'act'``, one slope per channel) or ``None``. ``padding=None`` (the
    default) is torchvision's symmetric ``((F - 1) // 2) * d``, so strided blocks match torch;
    ``norm=False`` drops BN (then a bias is usually wanted). ``bn_scale_init='zeros'`` gives the
    zero-initialised last BN of a residual branch (Goyal et al. 2017).
    """

    features: int
    kernel_size: int | Sequence[int] = 3
    strides: int | Sequence[int] = 1
    padding: Padding = None
    groups: int = 1
    dilation: int | Sequence[int] = 1
    act: str | ActivationFn | None = "relu"
    use_bias: bool = False
    norm: bool = True
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    bn_scale_init: str | Initializer = "ones"
    kernel_init: str | Initializer = "he_normal"
    bias_init: str | Initializer = "zeros"
    dtype: Any = None
    param_dtype: Any = jnp.float32
    depthwise_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        x = Conv(
            self.features,
            self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            depthwise_impl=self.depthwise_impl,
            use_bias=self.use_bias,
            kernel_init=self.kernel_init,
            bias_init=self.bias_init,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="conv",
        )(x)
        if self.norm:
            x = BatchNorm(
                momentum=self.bn_momentum,
                epsilon=self.bn_epsilon,
                scale_init=self.bn_scale_init,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                name="bn",
            )(x, train=train)
        if isinstance(self.act, str) and self.act.lower() in PARAMETRIC_ACTIVATIONS:
            return Activation(self.act, num_parameters=self.features, name="act")(x)
        return get_activation(self.act)(x)


__all__ = [
    "Conv",
    "CausalConv1D",
    "ConvBNAct",
    "ConvTranspose",
    "DepthwiseConv",
    "DepthwiseSeparableConv",
    "Padding",
    "CONV_IMPLS",
    "DEPTHWISE_IMPLS",
    "conv_output_size",
    "depthwise_conv",
    "get_conv_impl",
    "kernel_tuple",
    "ntuple",
    "resolve_padding",
    "set_conv_impl",
    "using_conv_impl",
    "torch_same_padding",
]
