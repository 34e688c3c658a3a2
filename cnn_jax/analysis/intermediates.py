"""What a network computes inside: every module's output, named by its module path, and the
learnt convolution kernels — the feature maps and first-layer filters Zeiler & Fergus (2014,
"Visualizing and Understanding Convolutional Networks", Fig. 2) look at.

Outputs are read with ``flax.linen.intercept_methods``: each module's ``__call__`` is wrapped while
the model is applied, so the model's code needs no ``sow`` calls and any registered model works.
A layer is named by its module path joined with ``/`` (``c1``, ``act_c3``, ``layer3_2``,
``layer1_0/conv1``), the names of :func:`cnn_jax.analysis.summarize_model`'s rows; functions
applied between modules (``nn.relu``, pooling done with a function) have no output of their own.
Where a layer runs a Flax module inside its own scope (``cnn_jax.layers.Conv`` around ``nn.Conv``,
``BatchNorm``), the outer module's output is the layer's. A module called twice is read at its
first call.

The same interception can add a tensor to one layer's output (:func:`apply_with_offset`): the
gradient of the model's output with respect to that offset, at zero, is the gradient with respect
to the layer's activations, which Grad-CAM needs (Selvaraju et al. 2017).

A trained run comes into a notebook with ``from cnn_jax.training import load_run``; its
``run.model`` and ``run.variables`` are what these functions take.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def _path(module: nn.Module) -> str:
    return "/".join(module.path)


class _Interceptor:
    """Records the outermost ``__call__`` output of each module path and adds offsets to some."""

    def __init__(self, keep: Sequence[str] | None, offsets: dict[str, jax.Array] | None = None):
        self.keep = None if keep is None else set(keep)
        self.offsets = offsets or {}
        self.outputs: dict[str, Any] = {}
        self._open: set[str] = set()

    def __call__(self, next_fun, args, kwargs, context):
        path = _path(context.module)
        if context.method_name != "__call__" or not path or path in self._open:
            return next_fun(*args, **kwargs)
        self._open.add(path)
        try:
            out = next_fun(*args, **kwargs)
        finally:
            self._open.discard(path)
        if path in self.offsets and path not in self.outputs:
            out = out + self.offsets[path]
        if (self.keep is None or path in self.keep) and path not in self.outputs:
            self.outputs[path] = out
        return out


def _apply(model: nn.Module, variables: dict, images: jax.Array, interceptor: _Interceptor,
           train: bool = False):
    # a fixed 'sample' key, as the trainer evaluates generative models
    with nn.intercept_methods(interceptor):
        return model.apply(variables, images, train=train, rngs={"sample": jax.random.key(0)})


def intermediates(model: nn.Module, variables: dict, images: jax.Array,
                  layers: Sequence[str] | None = None, train: bool = False) -> dict[str, jax.Array]:
    """The output of every module (or of the `layers` named) for a batch of model inputs, by
    module path in forward order.

    `images` are what the model takes (a run's images go through ``run.task.inputs`` first).
    Unknown layer names raise a KeyError that lists the layers there are.
    """
    interceptor = _Interceptor(layers)
    _apply(model, variables, images, interceptor, train)
    if layers is not None:
        missing = [name for name in layers if name not in interceptor.outputs]
        if missing:
            raise KeyError(f"no layer {', '.join(map(repr, missing))} in {type(model).__name__}; "
                           f"layers: {', '.join(layer_names(model, variables, images[:1]))}")
        return {name: interceptor.outputs[name] for name in layers}
    return dict(interceptor.outputs)


def layer_names(model: nn.Module, variables: dict, images: jax.Array) -> list[str]:
    """Module paths of the layers :func:`intermediates` can return, in forward order (abstract:
    nothing is computed, and `variables` and `images` may be ``jax.ShapeDtypeStruct``s)."""
    names: list[str] = []

    def run(variables, x):
        interceptor = _Interceptor(None)
        _apply(model, variables, x, interceptor)
        names.extend(interceptor.outputs)
        return 0

    jax.eval_shape(run, variables, images)
    return names


def feature_maps(model: nn.Module, variables: dict, images: jax.Array,
                 layers: Sequence[str] | None = None) -> dict[str, jax.Array]:
    """The spatial outputs among :func:`intermediates`: arrays of shape (N, H, W, C) with
    H or W above one (the maps a feature-map grid shows)."""
    outputs = intermediates(model, variables, images, layers)
    return {name: out for name, out in outputs.items()
            if isinstance(out, jax.Array) and out.ndim == 4 and max(out.shape[1:3]) > 1}


def apply_with_offset(model: nn.Module, variables: dict, images: jax.Array, layer: str,
                      offset: jax.Array) -> tuple[Any, jax.Array]:
    """The model's outputs when `offset` is added to `layer`'s output, and that (offset) output.

    With ``offset = 0`` the outputs are the model's; ``jax.grad`` with respect to `offset` is the
    gradient with respect to the layer's activations.
    """
    interceptor = _Interceptor([layer], {layer: offset})
    outputs = _apply(model, variables, images, interceptor)
    if layer not in interceptor.outputs:
        raise KeyError(f"no layer {layer!r} in {type(model).__name__}; "
                       f"layers: {', '.join(layer_names(model, variables, images[:1]))}")
    return outputs, interceptor.outputs[layer]


def layer_shape(model: nn.Module, variables: dict, images: jax.Array,
                layer: str) -> tuple[int, ...]:
    """Shape of `layer`'s output for `images` (abstract: nothing is computed)."""
    out = jax.eval_shape(lambda v, x: intermediates(model, v, x, [layer])[layer], variables, images)
    return tuple(out.shape)


def conv_layers(variables: dict) -> list[str]:
    """Module paths of the parameters called ``kernel`` with a 2-D spatial window
    (``(kH, kW, C_in, C_out)``), in the order the parameters are stored."""
    found = []

    def visit(tree, path):
        for key, value in tree.items():
            if isinstance(value, dict):
                visit(value, (*path, key))
            elif key == "kernel" and np.ndim(value) == 4:
                found.append("/".join(path))

    visit(variables["params"], ())
    return found


def filters(variables: dict, layer: str) -> np.ndarray:
    """The kernel of the convolution at module path `layer`, ``(kH, kW, C_in, C_out)``, as numpy."""
    tree = variables["params"]
    for key in layer.split("/"):
        if not isinstance(tree, dict) or key not in tree:
            raise KeyError(f"no convolution {layer!r}; convolutions: "
                           f"{', '.join(conv_layers(variables))}")
        tree = tree[key]
    if "kernel" not in tree or np.ndim(tree["kernel"]) != 4:
        raise KeyError(f"{layer!r} has no 2-D convolution kernel; convolutions: "
                       f"{', '.join(conv_layers(variables))}")
    return np.asarray(jnp.asarray(tree["kernel"], jnp.float32))
