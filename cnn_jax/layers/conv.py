"""Convolution layers shared by the model zoo: padding modes, dilation, groups, depthwise-separable,
causal 1-D, 3-D, transposed ("deconvolution") and the conv-BN-activation block.

Layout is channels-last: ``(N, L, C)`` for 1-D, ``(N, H, W, C)`` for 2-D, ``(N, D, H, W, C)`` for 3-D;
an ``int`` ``kernel_size`` means a square 2-D kernel, a tuple's length gives the number of spatial
dims. Kernels are ``(spatial..., C_in / groups, C_out)`` (Flax's HWIO); a torch ``Conv2d`` weight
``(C_out, C_in / groups, kH, kW)`` converts with ``w.transpose(2, 3, 1, 0)``. Like every deep-learning
"convolution", these layers compute a cross-correlation (the kernel is not flipped). Padding specs
and the output-size formula: :mod:`cnn_jax.layers.conv_geometry`.

Implementation: every layer here has a field ``conv_impl`` (``'auto'`` | ``'xla'`` | ``'onednn'``),
which models thread to their convolutions like ``dtype``. With ``'auto'`` (the default) or
``'onednn'``, 1-D, 2-D and 3-D float32 zero-padded convolutions (and transposed ones, as the
backward-data pass of the convolution they are the adjoint of) bind the oneDNN primitives
(:mod:`cnn_jax.backends.onednn`: on one CPU device oneDNN computes them, elsewhere XLA's
convolution, decided per compiled program); ``'xla'`` binds XLA's convolution directly.
bfloat16/float64 and circular padding always use XLA's. Depthwise convolutions follow
``depthwise_impl`` (:mod:`cnn_jax.layers.depthwise`): ``'xla'`` and ``'shifted'`` bypass oneDNN.
Every choice creates the same parameters, so checkpoints move between them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax.backends import onednn
from cnn_jax.errors import check_choice
from cnn_jax.layers.activations import (
    PARAMETRIC_ACTIVATIONS,
    Activation,
    ActivationFn,
    get_activation,
)
from cnn_jax.layers.conv_geometry import (
    Padding,
    PadPairs,
    kernel_tuple,
    ntuple,
    pad_pairs,
    resolve_padding,
)
from cnn_jax.layers.depthwise import DEPTHWISE_IMPLS, depthwise_conv, is_depthwise
from cnn_jax.layers.initializers import Initializer, get_initializer
from cnn_jax.layers.norm import BatchNorm


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


def _conv_layer(
    module: nn.Module, x: jax.Array, *, groups: int, depthwise_impl: str, conv_impl: str, **kwargs
) -> jax.Array:
    """A 1-D/2-D/3-D float32 convolution by the oneDNN primitives when ``conv_impl`` chooses them
    (depthwise ones too, unless ``depthwise_impl`` forces 'xla' or 'shifted'), any other depthwise
    one by :func:`depthwise_conv`, the rest by ``nn.Conv``."""
    padding = kwargs["padding"]
    check_choice(depthwise_impl, DEPTHWISE_IMPLS, "depthwise_impl")
    to_onednn = onednn.chosen(conv_impl)  # checks the name; 'onednn' raises if it cannot run
    depthwise = is_depthwise(x.shape[-1], groups, padding)
    if depthwise and depthwise_impl == "xla":
        return _flax_conv(module, x, groups=groups, **kwargs)
    dtype, param_dtype = kwargs["dtype"], kwargs["param_dtype"]
    compute = jnp.dtype(dtype) if dtype is not None else jnp.result_type(x.dtype, param_dtype)
    if (to_onednn and not (depthwise and depthwise_impl == "shifted")
            and onednn.eligible(x.ndim, padding, compute)):
        kwargs["padding"] = pad_pairs(
            x.shape, kwargs["kernel_size"], kwargs["strides"], padding, kwargs["dilation"]
        )
        conv_fn = functools.partial(onednn.conv, groups=groups, impl=conv_impl)
        return _direct_layer(module, x, conv_fn, groups=groups, **kwargs)
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
    ``(spatial..., C_in / groups, features)`` and ``'bias'`` ``(features,)``. ``conv_impl`` picks
    oneDNN or XLA (module docstring); a depthwise convolution that oneDNN does not take runs as
    ``depthwise_impl`` says (:func:`depthwise_conv`). Same parameters either way.
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
    conv_impl: str = "auto"

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
            conv_impl=self.conv_impl,
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
    conv_impl: str = "auto"

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
            conv_impl=self.conv_impl,
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
    conv_impl: str = "auto"

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
            conv_impl=self.conv_impl,
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
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        common = dict(
            use_bias=self.use_bias,
            conv_impl=self.conv_impl,
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

    ``conv_impl`` as for :class:`Conv`: with 'auto' or 'onednn' a 1-D/2-D/3-D float32 transposed
    convolution binds oneDNN's backward-data pass of the convolution it is the adjoint of
    (:func:`cnn_jax.backends.onednn.conv_transpose`; XLA:CPU runs transposed convolutions as
    convolutions of a zero-interleaved input, mostly multiplying zeros); 'xla' and other dtypes
    run :func:`cnn_jax.backends.xla.conv_transpose`. Same parameters either way.
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
    conv_impl: str = "auto"

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
        to_onednn = onednn.chosen(self.conv_impl)  # checks the name; 'onednn' raises if it cannot

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
        geometry = dict(strides=strides, crops=crops, output_padding=output_padding,
                        dilation=dilation, groups=self.groups, precision=self.precision)
        # Any crops will do (negative ones are padded after the pass): only rank and dtype matter.
        if to_onednn and onednn.eligible(x.ndim, "VALID", x.dtype):
            y = onednn.conv_transpose(x, kernel, impl=self.conv_impl, **geometry)
        else:
            y = onednn.conv_transpose(x, kernel, impl="xla", **geometry)
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
    conv_impl: str = "auto"

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
            conv_impl=self.conv_impl,
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
    "CausalConv1D",
    "Conv",
    "ConvBNAct",
    "ConvTranspose",
    "DepthwiseConv",
    "DepthwiseSeparableConv",
]
