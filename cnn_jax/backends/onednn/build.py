"""Builds, loads and registers the oneDNN convolution library (``csrc/onednn_conv.cc``) with XLA.

On first use the C++ source is compiled with the system C++ compiler against jaxlib's FFI headers
and the oneDNN of the ``onednn-cpu-gomp`` / ``onednn-devel-cpu-gomp`` wheels (the ``onednn`` extra
of cnn-jax), into ``$CNN_JAX_CACHE_DIR`` (default ``~/.cache/cnn_jax``) under a hash of the source,
jax's version, the library and the compiler; then it is loaded and its three handlers registered
as XLA FFI targets for the CPU. :func:`available` says whether that worked,
:func:`unavailable_reason` why not, and :func:`require` turns a failure into a one-line error naming
the fix. With ``CNN_JAX_ONEDNN=0`` in the environment nothing is built and :func:`available` is
False.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import jax
import numpy as np

from cnn_jax.errors import BackendUnavailableError

SOURCE = Path(__file__).with_name("csrc") / "onednn_conv.cc"
# One FFI handler per pass of a convolution (see csrc/onednn_conv.cc).
TARGETS = {
    "forward": "cnn_jax_onednn_conv_forward",
    "backward_data": "cnn_jax_onednn_conv_backward_data",
    "backward_weights": "cnn_jax_onednn_conv_backward_weights",
}
# The C function naming the implementation oneDNN chose for a pass (:func:`implementation`).
IMPLEMENTATION_QUERY = "cnn_jax_onednn_conv_implementation"
PASSES = ("forward", "backward_data", "backward_weights")  # the bridge's numbering
RUNTIME_DIST, HEADERS_DIST = "onednn-cpu-gomp", "onednn-devel-cpu-gomp"
INSTALL_HINT = "pip install 'cnn-jax[onednn]' and a C++ compiler (g++)"
DISABLE_VARIABLE = "CNN_JAX_ONEDNN"

_lock = threading.Lock()
_state: dict[str, object] = {}  # "ok": bool, "reason": str, "library": ctypes.CDLL


def disabled() -> bool:
    """Whether ``CNN_JAX_ONEDNN=0`` switches the backend off (nothing is built or loaded)."""
    return os.environ.get(DISABLE_VARIABLE, "").strip() == "0"


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
        raise BackendUnavailableError(f"the {dist} package is not installed") from None
    for f in files:
        path = Path(f.locate()).resolve()
        if path.as_posix().endswith(suffix):
            return path
    raise BackendUnavailableError(f"the {dist} package has no {suffix}")


def build() -> Path:
    """Compiles ``csrc/onednn_conv.cc`` (once per source and versions) and returns the library."""
    if not sys.platform.startswith("linux"):
        raise BackendUnavailableError(
            f"the oneDNN convolutions are built for Linux, not {sys.platform}")
    library = _dist_file(RUNTIME_DIST, "lib/libdnnl.so.3")
    include = _dist_file(HEADERS_DIST, "include/oneapi/dnnl/dnnl.hpp").parents[2]
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not compiler:
        raise BackendUnavailableError("no C++ compiler found (set CXX or install g++)")
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
               f"-I{jax.ffi.include_dir()}", f"-I{include}", f"-L{library.parent}",
               f"-l:{library.name}", f"-Wl,-rpath,{library.parent}"]
    try:
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            last = (done.stderr.strip().splitlines() or ["?"])[-1]
            raise BackendUnavailableError(f"compiling {SOURCE.name} failed: {last}")
        os.replace(partial, target)  # atomic: concurrent processes each build, one file wins
    finally:
        partial.unlink(missing_ok=True)
    return target


def _load() -> None:
    try:
        library = ctypes.CDLL(str(build()))
        for name in TARGETS.values():
            capsule = jax.ffi.pycapsule(getattr(library, name))
            jax.ffi.register_ffi_target(name, capsule, platform="cpu")
        query = getattr(library, IMPLEMENTATION_QUERY)
        query.restype = ctypes.c_int
        _state.update(ok=True, reason="", library=library, query=query)
    except (BackendUnavailableError, OSError) as e:
        _state.update(ok=False, reason=str(e))


def available() -> bool:
    """Whether the oneDNN convolutions are built and registered (builds them on the first call)."""
    if disabled():
        return False
    with _lock:
        if "ok" not in _state:
            _load()
    return bool(_state["ok"])


def unavailable_reason() -> str:
    """Why :func:`available` is False, as a clause ('' when it is True)."""
    if disabled():
        return f"{DISABLE_VARIABLE}=0 switches it off"
    available()
    return str(_state["reason"])


def require() -> None:
    """Raises a one-line error naming the fix when the oneDNN convolutions cannot be used."""
    if not available():
        fix = f"unset {DISABLE_VARIABLE}" if disabled() else INSTALL_HINT
        raise BackendUnavailableError(f"conv_impl='onednn' needs oneDNN: {unavailable_reason()}; "
                                      f"{fix}, or use conv_impl='auto' or 'xla'")


def implementation(pass_: str, attributes: dict) -> str:
    """The name oneDNN gives the implementation it runs for pass ``pass_`` of the convolution with
    the bridge's FFI ``attributes`` (int64 arrays and ``groups``; ``routing.bridge_attributes``),
    as its verbose mode prints it: ``'brgconv:avx512_core'``, ``'x64:gemm:jit'``, ``'ref:any'``.
    Creates and caches that pass's primitive, as its first call would. Raises
    BackendUnavailableError when the library is not available or oneDNN rejects the attributes."""
    require()
    arrays = [np.ascontiguousarray(attributes[key], np.int64) for key in
              ("x_shape", "w_shape", "y_shape", "strides", "pad_lo", "pad_hi", "dilation")]
    pointer = ctypes.POINTER(ctypes.c_int64)
    name = ctypes.create_string_buffer(256)
    status = _state["query"](
        ctypes.c_int(PASSES.index(pass_)), ctypes.c_int64(arrays[0].size),
        *(a.ctypes.data_as(pointer) for a in arrays), ctypes.c_int64(int(attributes["groups"])),
        name, ctypes.c_int64(len(name)))
    if status:
        raise BackendUnavailableError(f"oneDNN rejects the convolution: {name.value.decode()}")
    return name.value.decode()
