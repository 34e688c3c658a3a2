"""Convolutions on the CPU by oneDNN, the library PyTorch's CPU convolutions use, called from
compiled JAX code as XLA FFI custom calls.

Why: XLA:CPU's own convolutions (YNNPACK and Eigen kernels, plus the NHWC -> CHWN transposes it
inserts for weight gradients) ran 2-3x slower than oneDNN on the same 2 cores, and that gap, not
dispatch or the input pipeline, was what kept cnn_jax's train step behind PyTorch's (README
"Performance"; `experiments/bench_conv_layer.py`, `experiments/profile_train_step.py`).

What: :func:`conv2d` is a 2-D convolution of NHWC float32 ``x`` with an HWIO kernel (``I = C_in /
groups``), any strides, ``(lo, hi)`` zero padding, kernel dilation and groups, computed by three
oneDNN primitives (forward, backward data, backward weights) from ``csrc/onednn_conv.cc``. The three
passes are each other's adjoints, so ``jax.grad`` works to any order; forward-mode (``jax.jvp``)
does not (XLA's convolution does: ``conv_impl='xla'``). Under ``jax.vmap`` the calls run one after
another. Calls that XLA schedules concurrently also execute one at a time: each calling thread gets
its own OpenMP team, and oneDNN's kernels, which synchronise their team's threads, could wait
forever with several teams in flight (``tests/layers/test_onednn.py``,
``test_independent_calls_in_one_program_finish_and_match_xla``). On other platforms (GPU, TPU)
the same function lowers to XLA's convolution.

How it is built: on first use the C++ source is compiled with the system C++ compiler against
jaxlib's FFI headers and the oneDNN of the ``onednn-cpu-gomp`` / ``onednn-devel-cpu-gomp`` wheels
(dependencies of cnn_jax on Linux x86-64), into ``$CNN_JAX_CACHE_DIR`` (default
``~/.cache/cnn_jax``) under a hash of the source and the versions, then loaded and registered with
XLA. :func:`available` says whether that worked and :func:`unavailable_reason` why not;
``cnn_jax.layers.conv`` falls back to XLA's convolution with one warning when it did not.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import importlib.metadata
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import jax
import numpy as np
from jax import lax

SOURCE = Path(__file__).with_name("csrc") / "onednn_conv.cc"
TARGETS = {
    "forward": "cnn_jax_onednn_conv_forward",
    "backward_data": "cnn_jax_onednn_conv_backward_data",
    "backward_weights": "cnn_jax_onednn_conv_backward_weights",
}
RUNTIME_DIST, HEADERS_DIST = "onednn-cpu-gomp", "onednn-devel-cpu-gomp"
INSTALL_HINT = f"pip install {RUNTIME_DIST} {HEADERS_DIST} and a C++ compiler (g++)"

_log = logging.getLogger(__name__)
_lock = threading.Lock()
_state: dict[str, object] = {}  # "ok": bool, "reason": str, "library": ctypes.CDLL


class OneDNNUnavailableError(RuntimeError):
    pass


def cache_dir() -> Path:
    """Where the compiled library goes: ``$CNN_JAX_CACHE_DIR`` or ``$XDG_CACHE_HOME/cnn_jax``."""
    if os.environ.get("CNN_JAX_CACHE_DIR"):
        return Path(os.environ["CNN_JAX_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cnn_jax"


def _dist_file(dist: str, suffix: str) -> Path:
    """The installed file of distribution ``dist`` whose path ends with ``suffix``."""
    try:
        files = importlib.metadata.distribution(dist).files or []
    except importlib.metadata.PackageNotFoundError:
        raise OneDNNUnavailableError(f"the {dist} package is not installed") from None
    for f in files:
        path = Path(f.locate()).resolve()
        if path.as_posix().endswith(suffix):
            return path
    raise OneDNNUnavailableError(f"the {dist} package has no {suffix}")


def _build() -> Path:
    """Compiles ``csrc/onednn_conv.cc`` (once per source and versions) and returns the library."""
    if not sys.platform.startswith("linux"):
        raise OneDNNUnavailableError(f"the oneDNN convolutions are built for Linux, not {sys.platform}")
    library = _dist_file(RUNTIME_DIST, "lib/libdnnl.so.3")
    include = _dist_file(HEADERS_DIST, "include/oneapi/dnnl/dnnl.hpp").parents[2]
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not compiler:
        raise OneDNNUnavailableError("no C++ compiler found (set CXX or install g++)")
    source = SOURCE.read_bytes()
    key = hashlib.sha256(b"\0".join([source, jax.__version__.encode(), str(library).encode(),
                                      compiler.encode()])).hexdigest()[:16]
    target = cache_dir() / "native" / f"onednn_conv_{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".so", delete=False) as tmp:
        partial = Path(tmp.name)
    command = [compiler, "-O2", "-std=c++17", "-shared", "-fPIC", str(SOURCE), "-o", str(partial),
               f"-I{jax.ffi.include_dir()}", f"-I{include}", f"-L{library.parent}", f"-l:{library.name}",
               f"-Wl,-rpath,{library.parent}"]
    try:
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            last = (done.stderr.strip().splitlines() or ["?"])[-1]
            raise OneDNNUnavailableError(f"compiling {SOURCE.name} failed: {last}")
        os.replace(partial, target)  # atomic: concurrent processes each build, one file wins
    finally:
        partial.unlink(missing_ok=True)
    return target


def _load() -> None:
    try:
        library = ctypes.CDLL(str(_build()))
        for name in TARGETS.values():
            jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(library, name)), platform="cpu")
        _state.update(ok=True, reason="", library=library)
    except (OneDNNUnavailableError, OSError) as e:
        _state.update(ok=False, reason=str(e))


def available() -> bool:
    """Whether the oneDNN convolutions are built and registered (builds them on the first call)."""
    with _lock:
        if "ok" not in _state:
            _load()
    return bool(_state["ok"])


def unavailable_reason() -> str:
    """Why :func:`available` is False, as a clause ('' when it is True)."""
    available()
    return str(_state["reason"])


def require() -> None:
    """Raises a one-line error naming the fix when the oneDNN convolutions cannot be used."""
    if not available():
        raise OneDNNUnavailableError(f"conv_impl='onednn' needs oneDNN: {unavailable_reason()}; "
                                     f"{INSTALL_HINT}, or use conv_impl='auto' or 'xla'")


def output_shape(x_shape, kernel_shape, strides, padding, dilation) -> tuple[int, ...]:
    """NHWC output shape of the convolution (floor rounding, as XLA and oneDNN)."""
    spatial = tuple((size + lo + hi - d * (k - 1) - 1) // s + 1
                    for size, k, s, (lo, hi), d in zip(x_shape[1:3], kernel_shape[:2], strides, padding,
                                                       dilation, strict=True))
    return (x_shape[0], *spatial, kernel_shape[3])


def _call(target: str, out_shape, a, b, x_shape, kernel_shape, y_shape, strides, padding, dilation, groups):
    ints = functools.partial(np.asarray, dtype=np.int64)
    return jax.ffi.ffi_call(TARGETS[target], jax.ShapeDtypeStruct(out_shape, a.dtype),
                            vmap_method="sequential")(
        a, b, x_shape=ints(x_shape), w_shape=ints(kernel_shape), y_shape=ints(y_shape),
        strides=ints(strides), pad_lo=ints([lo for lo, _ in padding]),
        pad_hi=ints([hi for _, hi in padding]), dilation=ints(dilation), groups=np.int64(groups))


def xla_conv2d(x, kernel, strides, padding, dilation, groups):
    """The same convolution by XLA (what other platforms run)."""
    return lax.conv_general_dilated(x, kernel, strides, padding, rhs_dilation=dilation,
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=groups)


# The three passes as differentiable functions of their two arguments. With <a, b> the sum of
# elementwise products, forward(x, w) = y, backward_data(dy, w) = d<dy, y>/dx and
# backward_weights(x, dy) = d<dy, y>/dw; each is bilinear, and each one's vector-Jacobian product is
# made of the other two, so gradients of gradients stay on oneDNN.
@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _forward(x, w, strides, padding, dilation, groups):
    y_shape = output_shape(x.shape, w.shape, strides, padding, dilation)
    return _call("forward", y_shape, x, w, x.shape, w.shape, y_shape, strides, padding, dilation, groups)


def _forward_fwd(x, w, *static):
    return _forward(x, w, *static), (x, w)


def _forward_bwd(strides, padding, dilation, groups, residuals, dy):
    x, w = residuals
    static = (strides, padding, dilation, groups)
    return _backward_data(dy, w, x.shape, *static), _backward_weights(x, dy, w.shape, *static)


_forward.defvjp(_forward_fwd, _forward_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5, 6))
def _backward_data(dy, w, x_shape, strides, padding, dilation, groups):
    return _call("backward_data", x_shape, dy, w, x_shape, w.shape, dy.shape, strides, padding,
                 dilation, groups)


def _backward_data_fwd(dy, w, *static):
    return _backward_data(dy, w, *static), (dy, w)


def _backward_data_bwd(x_shape, strides, padding, dilation, groups, residuals, h):
    dy, w = residuals
    static = (strides, padding, dilation, groups)
    return _forward(h, w, *static), _backward_weights(h, dy, w.shape, *static)


_backward_data.defvjp(_backward_data_fwd, _backward_data_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5, 6))
def _backward_weights(x, dy, w_shape, strides, padding, dilation, groups):
    return _call("backward_weights", w_shape, x, dy, x.shape, w_shape, dy.shape, strides, padding,
                 dilation, groups)


def _backward_weights_fwd(x, dy, *static):
    return _backward_weights(x, dy, *static), (x, dy)


def _backward_weights_bwd(w_shape, strides, padding, dilation, groups, residuals, k):
    x, dy = residuals
    static = (strides, padding, dilation, groups)
    return _backward_data(dy, k, x.shape, *static), _forward(x, k, *static)


_backward_weights.defvjp(_backward_weights_fwd, _backward_weights_bwd)


def conv2d(x, kernel, *, strides, padding, dilation=(1, 1), groups=1):
    """2-D convolution of NHWC float32 ``x`` with HWIO ``kernel`` by oneDNN when compiled for the
    CPU, by XLA elsewhere. ``padding``: ``(lo, hi)`` pairs of non-negative ints. Call
    :func:`available` (or :func:`require`) first: it registers the custom calls."""
    strides, dilation = tuple(int(s) for s in strides), tuple(int(d) for d in dilation)
    padding = tuple((int(lo), int(hi)) for lo, hi in padding)
    static = (strides, padding, dilation, int(groups))
    return lax.platform_dependent(x, kernel, cpu=lambda x, w: _forward(x, w, *static),
                                  default=lambda x, w: xla_conv2d(x, w, *static))


__all__ = ["OneDNNUnavailableError", "available", "cache_dir", "conv2d", "require", "unavailable_reason",
           "xla_conv2d"]
