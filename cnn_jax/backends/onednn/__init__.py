"""Convolutions on the CPU by oneDNN, the library PyTorch's CPU convolutions use, called from
compiled JAX code as XLA FFI custom calls.

Why: XLA:CPU's own convolutions (YNNPACK and Eigen kernels, plus the NHWC -> CHWN transposes it
inserts for weight gradients) run several times slower than oneDNN on the same cores, and that gap
is what keeps a CPU train step behind PyTorch's (``experiments/bench_conv_layer.py``,
``experiments/profile_train_step.py``).

What: three JAX primitives (:mod:`~cnn_jax.backends.onednn.primitives`): forward, backward-data and
backward-weights convolutions of 1-D, 2-D or 3-D channels-last float32 operands (any strides,
``(lo, hi)`` zero padding, dilation and groups), each bilinear and each the others' transpose, so
every JAX transformation (``grad`` to any order, ``jvp``, ``hessian``, ``linearize``, ``vmap``)
works and stays on them. :func:`conv` binds the forward one, :func:`conv_transpose` (a transposed
convolution is the input gradient of a convolution) the backward-data one. Layers choose them
through their ``conv_impl`` field ('auto' | 'xla' | 'onednn', :data:`CONV_IMPLS`), which models thread to every
convolution and the trainer sets from ``config.conv_impl``:

* ``'auto'`` (the default): oneDNN where a program is compiled for one CPU device and the library
  is available; XLA's convolution on GPUs and TPUs, over several devices, and with one warning
  naming the fix when oneDNN cannot be built. Decided per compiled program
  (:mod:`~cnn_jax.backends.onednn.routing`), so jit caches, meshes and platforms are respected.
* ``'xla'``: XLA's convolution everywhere (the layer binds ``lax.conv_general_dilated``).
* ``'onednn'``: oneDNN for every program on the CPU (over several devices each computes the whole
  batch: XLA cannot split the calls), or a one-line error naming the fix when it cannot be built.

Both create the same parameters and agree to float32 rounding. Calls that XLA schedules
concurrently execute one at a time: each calling thread gets its own OpenMP team, and oneDNN's
kernels, which synchronise their team's threads, could wait forever with several teams in flight
(``tests/backends/test_onednn.py``, ``test_independent_calls_in_one_program_finish_and_match_xla``).

Install and build: ``pip install 'cnn-jax[onednn]'`` (Linux x86-64; the ``onednn-cpu-gomp`` and
``onednn-devel-cpu-gomp`` wheels, about 164 MB because wheels cannot hold the library's symlinks;
GPU and TPU users skip it) and a C++ compiler. The bridge (``csrc/onednn_conv.cc``) is compiled on
first use (:mod:`~cnn_jax.backends.onednn.build`) into ``$CNN_JAX_CACHE_DIR`` (default
``~/.cache/cnn_jax``). ``CNN_JAX_ONEDNN=0`` switches the backend off: nothing is built or loaded,
'auto' means XLA's convolution without a warning, and 'onednn' is an error.
"""

from cnn_jax.backends.onednn.build import (
    INSTALL_HINT,
    available,
    cache_dir,
    disabled,
    require,
    unavailable_reason,
)
from cnn_jax.backends.onednn.primitives import (
    PRIMITIVES,
    backward_data_p,
    backward_weights_p,
    conv,
    conv_transpose,
    forward_p,
)
from cnn_jax.backends.onednn.routing import (
    CONV_IMPLS,
    check_impl,
    chosen,
    covers_input,
    eligible,
    xla_equivalent,
)

__all__ = [
    "CONV_IMPLS",
    "INSTALL_HINT",
    "PRIMITIVES",
    "available",
    "backward_data_p",
    "backward_weights_p",
    "cache_dir",
    "check_impl",
    "chosen",
    "conv",
    "conv_transpose",
    "covers_input",
    "disabled",
    "eligible",
    "forward_p",
    "require",
    "unavailable_reason",
    "xla_equivalent",
]
