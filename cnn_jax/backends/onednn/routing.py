"""Which convolutions go to oneDNN: the choice a layer makes when it traces, and the one each
compiled program makes when it is lowered.

A layer (``cnn_jax.layers.Conv`` and the blocks built on it) with ``conv_impl`` 'auto' or 'onednn'
binds the oneDNN primitives for an :func:`eligible` convolution (:func:`chosen`); 'xla' never does.
When the program is lowered, :func:`choose` picks one of :data:`ROUTES` for each primitive:

* ``'onednn'``: the FFI call, when ``impl='onednn'``, or when ``impl='auto'``, the program is
  compiled for the CPU and partitioned over one device, and the library is available;
* ``'dot'``: on that same route, a kernel of more than one tap that covers its whole unpadded input
  (:func:`covers_input`) runs as XLA's dot;
* ``'padded'``: on that same route, the FFI call on the activation zero-padded beforehand, when
  the padding is what keeps oneDNN from its direct kernels (:func:`onednn_route`);
* ``'blocks'``: on the CPU, the input gradient of a convolution with large strides
  (:func:`by_blocks`; a transposed convolution's forward pass) as a stride-1 convolution of
  stride-sized blocks (:func:`cnn_jax.backends.xla.space_to_depth_conv`);
* ``'shifted'``: otherwise, on the CPU, a depthwise convolution runs as shifted multiply-adds
  (:func:`cnn_jax.backends.xla.shifted_depthwise`);
* ``'xla'``: otherwise XLA's convolution, and always on other platforms; under ``impl='auto'``
  also a pass for which oneDNN has only its reference loops (:func:`onednn_route`).

Every route computes the same convolution to float32 rounding. Several devices: XLA's SPMD
partitioner cannot split a custom call (it would gather the batch and compute all of it on every
device), and under ``shard_map`` the calls of one process's devices would take turns through the
bridge's execution mutex; so 'auto' keeps oneDNN to programs on one device, while 'onednn' runs it
anyway.

oneDNN picks an implementation for each pass when its primitive is created: a direct kernel
(``jit``, ``brgconv``), its gemm-based fallback (im2col and a matrix product, ``x64:gemm:jit``), or
for what nothing else takes its reference loops (``ref``). :func:`onednn_route` asks which, when a
program is lowered, and says so once per convolution when it is not a direct kernel: a warning for
the reference loops, an INFO log line for gemm.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from cnn_jax.backends import xla
from cnn_jax.backends.onednn import build
from cnn_jax.errors import BackendUnavailableError, check_choice

CONV_IMPLS = ("auto", "xla", "onednn")
# The shape parameters of each pass's (first operand, second operand, output).
SHAPES = {"forward": ("x_shape", "w_shape", "y_shape"),
          "backward_data": ("y_shape", "w_shape", "x_shape"),
          "backward_weights": ("x_shape", "y_shape", "w_shape")}

_log = logging.getLogger("cnn_jax.backends.onednn")
_warned: set[str] = set()


def check_impl(impl: str) -> None:
    """A one-line ValueError naming the choices unless ``impl`` is one of :data:`CONV_IMPLS`."""
    check_choice(impl, CONV_IMPLS, "conv_impl")


def chosen(impl: str) -> bool:
    """Whether a layer with ``conv_impl=impl`` binds the oneDNN primitives for its eligible
    convolutions: 'auto' unless ``CNN_JAX_ONEDNN=0``; 'onednn', or an error naming the fix."""
    check_impl(impl)
    if impl == "onednn":
        build.require()
        return True
    return impl == "auto" and not build.disabled()


def eligible(ndim: int, padding: str | Sequence[tuple[int, int]], dtype) -> bool:
    """A 1-D, 2-D or 3-D (``ndim`` 3, 4 or 5, channels-last) float32 convolution with non-negative
    zero padding (``'SAME'``, ``'VALID'`` or ``(lo, hi)`` pairs)."""
    return (ndim in (3, 4, 5) and padding != "CIRCULAR" and jnp.dtype(dtype) == jnp.float32
            and (isinstance(padding, str) or all(p >= 0 for pair in padding for p in pair)))


def covers_input(x_shape, w_shape, padding, groups) -> bool:
    """Whether a kernel of more than one tap spans the whole unpadded input: one output position, a
    matrix product of the flattened input and kernel (LeNet-5's C5, a classifier written as a
    convolution). As XLA's dot it runs forward and both gradients faster than oneDNN's convolution
    for LeNet-5's C5 and most shapes ``python experiments/bench_conv_layer.py --covering`` times.
    A 1x1 kernel on a 1x1 map (MobileNet's last stages on 32x32 inputs) stays a oneDNN pointwise
    convolution: XLA's dot there took different roundings in a K-step program than in a single
    step, which BatchNorm over a one-pixel map amplified past the tolerance of
    tests/training/test_multi_step.py. (With no padding, a kernel as large as the input can only
    be undilated.)"""
    return (groups == 1 and all(p == (0, 0) for p in padding)
            and tuple(x_shape[1:-1]) == tuple(w_shape[:-2]) and math.prod(w_shape[:-2]) > 1)


def conv_params(x_shape: Sequence[int], w_shape: Sequence[int], strides: Sequence[int],
                padding: Sequence[tuple[int, int]], dilation: Sequence[int] | None = None,
                groups: int = 1, precision=None, impl: str = "auto",
                covering_as_dot: bool = True) -> dict:
    """The parameters the three primitives share (:mod:`cnn_jax.backends.onednn.primitives`) for
    the convolution of ``x_shape`` by ``w_shape``: the shapes of ``x``, ``w`` and ``y``, strides,
    ``(lo, hi)`` padding, dilation, groups, precision, ``impl`` and ``covering_as_dot``, as
    hashable ints and tuples."""
    n = len(x_shape) - 2
    strides = tuple(int(s) for s in strides)
    dilation = tuple(int(d) for d in dilation) if dilation is not None else (1,) * n
    padding = tuple((int(lo), int(hi)) for lo, hi in padding)
    x_shape, w_shape = tuple(int(d) for d in x_shape), tuple(int(d) for d in w_shape)
    return dict(x_shape=x_shape, w_shape=w_shape,
                y_shape=xla.output_shape(x_shape, w_shape, strides, padding, dilation),
                strides=strides, padding=padding, dilation=dilation, groups=int(groups),
                precision=precision, impl=impl, covering_as_dot=bool(covering_as_dot))


def _devices(ctx) -> int | None:
    """How many devices the program being lowered is partitioned over (jit: ``num_devices`` of its
    sharding context; shard_map: the size of its mesh)."""
    axis_context = ctx.module_context.axis_context
    count = getattr(axis_context, "num_devices", None)
    if count is None and getattr(axis_context, "mesh", None) is not None:
        count = axis_context.mesh.size
    return count


def _onednn_runs(ctx, impl: str) -> bool:
    if impl == "onednn":
        build.require()
        return True
    if build.disabled() or _devices(ctx) != 1:
        return False
    if build.available():
        return True
    if "auto" not in _warned:
        _warned.add("auto")
        _log.warning("oneDNN convolutions unavailable (%s): using XLA's, slower on CPUs; %s, or "
                     "set conv_impl='xla' or CNN_JAX_ONEDNN=0 to silence this",
                     build.unavailable_reason(), build.INSTALL_HINT)
    return False


# The smallest stride (in every spatial dim) at which :func:`by_blocks` takes a backward-data pass.
BLOCKS_MIN_STRIDE = 16


def by_blocks(pass_: str, p: dict) -> bool:
    """Whether pass ``pass_`` runs as a stride-1 convolution of stride-sized blocks: the
    backward-data pass (a transposed convolution's forward) of an undilated, ungrouped convolution
    with every stride at least :data:`BLOCKS_MIN_STRIDE`. oneDNN runs such passes with a direct
    kernel, yet slowly, and XLA's convolution more slowly still at stride 16:
    ``python experiments/bench_conv_layer.py --upsampling`` times FCN's upsampling layers (kernel
    2S, stride S) each way. Below stride 16 the blocks lose in some of those cases (more
    channels), so those keep their route."""
    return (pass_ == "backward_data" and p["groups"] == 1 and all(d == 1 for d in p["dilation"])
            and all(s >= BLOCKS_MIN_STRIDE for s in p["strides"]))


def choose(ctx, pass_: str, params: dict) -> str:
    """The route (a key of :data:`ROUTES`) of pass ``pass_`` lowered for the CPU in the program
    of lowering context ``ctx`` (module docstring)."""
    return route(pass_, params, onednn=_onednn_runs(ctx, params["impl"]))


def route(pass_: str, params: dict, *, onednn: bool) -> str:
    """The route (a key of :data:`ROUTES`) of pass ``pass_`` on the CPU, given whether the program
    runs oneDNN at all (:func:`choose` decides that from the program)."""
    covering = covers_input(params["x_shape"], params["w_shape"], params["padding"],
                            params["groups"])
    if by_blocks(pass_, params) and not covering:
        return "blocks"
    if onednn:
        if covering and params["covering_as_dot"]:
            return "dot"
        return onednn_route(pass_, params)
    groups = params["groups"]
    return "shifted" if groups > 1 and groups == params["x_shape"][-1] else "xla"


def padded_first(p: dict) -> dict:
    """Parameters ``p`` of the same convolution on its input zero-padded beforehand (no padding
    left; the output is the same)."""
    x_shape = (p["x_shape"][0],
               *(size + lo + hi for size, (lo, hi) in zip(p["x_shape"][1:-1], p["padding"],
                                                         strict=True)),
               p["x_shape"][-1])
    return {**p, "x_shape": x_shape, "padding": ((0, 0),) * len(p["padding"])}


def _case(pass_: str, p: dict) -> str:
    return (f"the {pass_.replace('_', ' ')} pass of the {len(p['x_shape']) - 2}-D convolution of "
            f"{p['x_shape']} by kernel {p['w_shape']} (strides {p['strides']}, padding "
            f"{p['padding']}, dilation {p['dilation']}, groups {p['groups']})")


def _once(level: int, message: str, *args) -> None:
    if message % args not in _warned:
        _warned.add(message % args)
        _log.log(level, message, *args)


def direct(name: str) -> bool:
    """Whether oneDNN's implementation ``name`` is one of its direct kernels (``jit``,
    ``brgconv``), not its gemm-based fallback or its reference loops."""
    return "gemm" not in name and not name.startswith("ref")


def onednn_route(pass_: str, p: dict) -> str:
    """The route of pass ``pass_`` on oneDNN, from the implementation oneDNN picks for it
    (:func:`cnn_jax.backends.onednn.build.implementation`):

    * a direct kernel: ``'onednn'``;
    * the gemm-based fallback or the reference loops where the same convolution on a zero-padded
      input gets a direct kernel: ``'padded'``. Direct kernels take a bounded padding: a causal
      convolution pads ``(F - 1) d`` on one side, and with the TCN's F = 7 from d = 8 its weight
      gradient goes to gemm; an input gradient whose padding reaches past the kernel goes to the
      reference loops;
    * the gemm-based fallback otherwise: ``'onednn'``, said once per convolution (INFO);
    * reference loops, or a convolution oneDNN rejects: one warning per convolution, and XLA's
      convolution under ``impl='auto'`` (``'onednn'`` keeps it, or raises the rejection).
    """
    try:
        name = build.implementation(pass_, bridge_attributes(p))
    except BackendUnavailableError as e:
        if p["impl"] == "onednn":
            raise
        _once(logging.WARNING, "%s: using XLA's convolution for %s", e, _case(pass_, p))
        return "xla"
    if not direct(name) and any(lo or hi for lo, hi in p["padding"]):
        try:
            if direct(build.implementation(pass_, bridge_attributes(padded_first(p)))):
                return "padded"
        except BackendUnavailableError:
            pass  # the padded convolution is rejected: the unpadded one stands
    if name.startswith("ref"):
        if p["impl"] == "auto":
            _once(logging.WARNING, "oneDNN has only its reference implementation (%s) for %s, "
                  "many times slower than its kernels: XLA's convolution runs it", name,
                  _case(pass_, p))
            return "xla"
        _once(logging.WARNING, "oneDNN has only its reference implementation (%s) for %s, many "
              "times slower than its kernels; conv_impl='auto' would run it on XLA", name,
              _case(pass_, p))
    elif "gemm" in name:
        _once(logging.INFO, "oneDNN runs %s with its gemm-based fallback (%s), not a direct "
              "kernel", _case(pass_, p), name)
    return "onednn"


# ------------------------------------------------------------------------------ the routes
# Each computes pass ``pass_`` of the convolution with parameters ``p`` from operands ``a, b``.
def _bridge_shape(shape: Sequence[int], kernel: bool) -> tuple[int, ...]:
    """A shape as the bridge takes it: 2-D and 3-D as they are, 1-D as 2-D with height 1
    (activations ``(N, L, C) -> (N, 1, L, C)``, kernels ``(K, I, O) -> (1, K, I, O)``)."""
    if len(shape) != 3:
        return tuple(shape)
    return (1, *shape) if kernel else (shape[0], 1, *shape[1:])


def bridge_attributes(p: dict) -> dict[str, np.ndarray]:
    """The FFI attributes of the bridge's calls (csrc/onednn_conv.cc) for primitive parameters
    ``p``: shapes of rank 4 or 5 and one stride, ``(lo, hi)`` pad and dilation per spatial dim."""
    one_d = len(p["x_shape"]) == 3
    pad = ((0, 0),) * one_d + p["padding"]
    ints = functools.partial(np.asarray, dtype=np.int64)
    return dict(x_shape=ints(_bridge_shape(p["x_shape"], kernel=False)),
                w_shape=ints(_bridge_shape(p["w_shape"], kernel=True)),
                y_shape=ints(_bridge_shape(p["y_shape"], kernel=False)),
                strides=ints((1,) * one_d + p["strides"]), pad_lo=ints([lo for lo, _ in pad]),
                pad_hi=ints([hi for _, hi in pad]), dilation=ints((1,) * one_d + p["dilation"]),
                groups=np.int64(p["groups"]))


def _onednn(pass_: str, p: dict, a, b):
    """The FFI call of the bridge (csrc/onednn_conv.cc), on 2-D views of 1-D operands
    (:func:`bridge_attributes`)."""
    out_shape = p[SHAPES[pass_][2]]
    call = jax.ffi.ffi_call(build.TARGETS[pass_], jax.ShapeDtypeStruct(
        _bridge_shape(out_shape, kernel=pass_ == "backward_weights"), jnp.float32))
    y = call(a.reshape(_bridge_shape(a.shape, kernel=False)),
             b.reshape(_bridge_shape(b.shape, kernel=pass_ != "backward_weights")),
             **bridge_attributes(p))
    return y.reshape(out_shape)


def _onednn_padded(pass_: str, p: dict, a, b):
    """The FFI call of the convolution on the activation zero-padded beforehand
    (:func:`padded_first`): forward and backward_weights pad their ``x``; backward_data computes
    the gradient of the padded input and crops it."""
    q = padded_first(p)
    if pass_ == "backward_data":
        starts = (0, *(lo for lo, _ in p["padding"]), 0)
        return lax.slice(_onednn(pass_, q, a, b), starts,
                         tuple(start + size for start, size in zip(starts, p["x_shape"],
                                                                    strict=True)))
    return _onednn(pass_, q, jnp.pad(a, [(0, 0), *p["padding"], (0, 0)]), b)


def _by_transposes(forward, pass_: str, p: dict, a, b):
    """Pass ``pass_`` of the bilinear ``forward(x, w)``: itself, or its transpose in x or in w
    (what differentiating ``forward`` computes)."""
    if pass_ == "forward":
        return forward(a, b)
    if pass_ == "backward_data":
        x = jax.ShapeDtypeStruct(p["x_shape"], a.dtype)
        return jax.linear_transpose(lambda x: forward(x, b), x)(a)[0]
    w = jax.ShapeDtypeStruct(p["w_shape"], b.dtype)
    return jax.linear_transpose(lambda w: forward(a, w), w)(b)[0]


def _xla_conv(p: dict):
    return lambda x, w: xla.conv(x, w, p["strides"], p["padding"], p["dilation"], p["groups"],
                                 p["precision"])


def _shifted(p: dict):
    return lambda x, w: xla.shifted_depthwise(x, w, p["strides"], p["padding"], p["dilation"])


def _dot(p: dict):
    def forward(x, w):
        y = x.reshape(x.shape[0], -1) @ w.reshape(-1, w.shape[-1])
        return y.reshape(p["y_shape"])

    return forward


def _blocks(p: dict):
    return lambda x, w: xla.space_to_depth_conv(x, w, p["strides"], p["padding"], p["precision"])


ROUTES = {
    "onednn": _onednn,
    "padded": _onednn_padded,
    "blocks": lambda pass_, p, a, b: _by_transposes(_blocks(p), pass_, p, a, b),
    "dot": lambda pass_, p, a, b: _by_transposes(_dot(p), pass_, p, a, b),
    "shifted": lambda pass_, p, a, b: _by_transposes(_shifted(p), pass_, p, a, b),
    "xla": lambda pass_, p, a, b: _by_transposes(_xla_conv(p), pass_, p, a, b),
}


def xla_equivalent(p: dict, pass_: str = "forward"):
    """Pass ``pass_`` of the convolution with primitive parameters ``p``, ``fn(a, b)`` on the
    primitive's operands, by XLA's convolution (what :mod:`cnn_jax.analysis` reads a oneDNN
    convolution or transposed convolution as)."""
    return functools.partial(ROUTES["xla"], pass_, p)
