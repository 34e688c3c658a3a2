"""Bring PyTorch (torchvision, timm) weights into cnn_jax models: ``from_torch(name, weights)``.

Every zoo model that has a torchvision twin names its Flax submodules after torchvision's module
tree, ``.`` before a child replaced by ``_`` (``layer1.0.conv1`` is ``layer1_0/conv1``; see each model
file's docstring). The converter therefore needs no per-layer code: it builds the model's abstract
variables (``jax.eval_shape`` of ``init``, nothing is computed), spells each Flax leaf as the torch
key it must come from, and pairs the two key sets exactly. Per leaf kind:

=======================  ===========================  ==========================================
torch                    Flax                         layout
=======================  ===========================  ==========================================
Conv weight              ``params/.../kernel``        (O, I/groups, kH, kW) -> (kH, kW, I/groups, O)
Linear weight            ``params/.../kernel``        (O, I) -> (I, O)
Conv / Linear bias       ``params/.../bias``          unchanged
BatchNorm weight, bias   ``params/.../scale, bias``   unchanged
BN running_mean, _var    ``batch_stats/.../mean, var``  unchanged
BN num_batches_tracked   (none)                       ignored: Flax BN keeps no counter
=======================  ===========================  ==========================================

A linear layer after a flatten needs care: torch flattens an NCHW map in (C, H, W) order, an NHWC
map flattens in (H, W, C) order. AlexNet and VGG transpose to channel-major before flattening (see
their docstrings), so their ``classifier`` weights port by the plain transpose; GoogLeNet's
auxiliary heads flatten NHWC directly, so ``aux1.fc1`` / ``aux2.fc1`` rows are permuted
(``CHW_FLATTENED_LINEARS``). Where torchvision's names cannot be made to line up (MobileNetV2's
``Conv2dNormActivation`` is a ``Sequential`` indexed 0/1, our ``ConvBNAct`` names its children
``conv``/``bn``; torchvision's released DenseNet files use the legacy ``norm.1`` spelling) a
per-family table of key rewrites, ``TORCH_KEY_RENAMES``, says so as data.

Nothing is dropped silently: torch keys left over, Flax leaves not filled and shape mismatches
all fail in one ``ValueError`` line that names them.

Pretrained ImageNet weights
---------------------------
On a machine with internet, save torchvision's weights (``safetensors`` needs no pickle to read,
and reading it needs no torch)::

    import torchvision
    from safetensors.torch import save_file
    model = torchvision.models.resnet50(weights="IMAGENET1K_V2")
    save_file(model.state_dict(), "resnet50.safetensors")
    # or copy ~/.cache/torch/hub/checkpoints/resnet50-*.pth: read with weights_only=True below

then, anywhere::

    from cnn_jax.convert import from_torch
    from cnn_jax.models import create_model

    variables = from_torch("resnet50", "resnet50.safetensors")   # {"params", "batch_stats"}
    logits = create_model("resnet50").apply(variables, images, train=False)

``images`` are NHWC float32: RGB in [0, 1], normalised with ImageNet's mean (0.485, 0.456, 0.406)
and std (0.229, 0.224, 0.225), resized and centre-cropped as the weights' torchvision entry says
(e.g. 232 -> 224 for ``IMAGENET1K_V2``). torchvision's pretrained GoogLeNet expects
``create_model("googlenet", transform_input=True)`` and its file holds the auxiliary heads:
convert with ``aux_logits=True`` (model keyword arguments pass through) or ``ignore=(r"^aux",)``.

torchvision's segmentation models ``fcn_resnet50`` and ``deeplabv3_resnet50`` convert the same
way (their ``backbone.*`` and ``classifier.*`` names line up; pass ``aux_loss=True`` for a file
with ``aux_classifier.*``). The FCNs of Long et al. (``fcn32s``, ``fcn16s``, ``fcn8s``) have no
torchvision twin: :func:`fcn_from_vgg16` builds them from torchvision's ImageNet VGG16, its fully
connected fc6/fc7 reshaped into convolutions.

torchvision's video ``r3d_18`` converts the same way (its Conv3d weights ``(O, I, kT, kH, kW)``
transpose to ``(kT, kH, kW, I, O)``; ``TORCH_KEY_RENAMES['r3d']`` maps its Sequential children);
its clips are ``(N, T, H, W, C)``, torch's ``(N, C, T, H, W)`` permuted.

To fine-tune on another label set, use the converted weights as the initialisation and give the
new head fresh parameters::

    pretrained = from_torch("resnet50", "resnet50.safetensors")
    fresh = create_model("resnet50", num_classes=10).init(key, images[:1])
    params = {**pretrained["params"], "fc": fresh["params"]["fc"]}
    variables = {"params": params, "batch_stats": pretrained["batch_stats"]}

timm's ResNets (``resnet18`` ... ``resnet152`` with the torchvision architecture, e.g.
``timm/resnet50.a1_in1k``) use torchvision's parameter names (``conv1``, ``bn1``,
``layer1.0.downsample.0``, ``fc``), so their ``model.safetensors`` converts the same way. Other
timm families rename modules and are not covered by these tables.

``.pth`` / ``.pt`` files are read with ``torch.load(path, map_location="cpu", weights_only=True)``:
only tensors and plain containers are unpickled, never code. Checkpoints that wrap the weights
under ``state_dict`` / ``model`` / ``model_state_dict``, or prefix them with ``module.``
(DataParallel) or ``_orig_mod.`` (``torch.compile``), are unwrapped.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from cnn_jax.models import create_model, get_model_spec

# Flax leaf name -> the torch parameter or buffer name it is read from.
FLAX_TO_TORCH_LEAF: dict[str, str] = {
    "kernel": "weight",
    "scale": "weight",
    "bias": "bias",
    "mean": "running_mean",
    "var": "running_var",
    "alpha": "weight",  # PReLU
}

# torch buffers with no Flax counterpart (Flax BatchNorm keeps no step counter; the momentum is a
# constant of the module).
IGNORED_TORCH_LEAVES: tuple[str, ...] = ("num_batches_tracked",)

# Per family: (pattern, replacement) rewrites applied in order to torch keys (`re.sub`) before
# they are paired with Flax paths.
TORCH_KEY_RENAMES: dict[str, tuple[tuple[str, str], ...]] = {
    # torchvision's Conv2dNormActivation is a Sequential (0 = conv, 1 = BN, 2 = activation); our
    # ConvBNAct names them 'conv' and 'bn'. Stem/head: features.0.0, features.18.1; inside an
    # inverted residual: features.2.conv.0.0 (expand), features.2.conv.1.1 (depthwise BN).
    "mobilenet": (
        (r"^(features\.\d+)\.0\.", r"\1.conv."),
        (r"^(features\.\d+)\.1\.", r"\1.bn."),
        (r"(\.conv\.\d+)\.0\.", r"\1.conv."),
        (r"(\.conv\.\d+)\.1\.", r"\1.bn."),
    ),
    # torchvision's released DenseNet checkpoints predate the renaming of `norm.1` to `norm1`
    # (torchvision rewrites them the same way when it loads them); state_dict() of a fresh model
    # already has the new names, which this leaves alone.
    "densenet": ((r"(denselayer\d+\.(?:norm|relu|conv))\.([12])\.", r"\1\2."),),
    # torchvision's video ResNets hold each convolution and its BatchNorm in a Sequential (stem.0,
    # stem.1; layer1.0.conv1.0, .conv1.1; downsample.0, .1); ours are ConvBNAct 'conv' and 'bn'.
    "r3d": (
        (r"^stem\.0\.", "stem.conv."),
        (r"^stem\.1\.", "stem.bn."),
        (r"\.(conv[12]|downsample)\.0\.", r".\1.conv."),
        (r"\.(conv[12]|downsample)\.1\.", r".\1.bn."),
    ),
}

# Per family: torch Linear weights whose input is a (C, H, W) map flattened in torch's order while
# the Flax model flattens (H, W, C). Value: (C, H, W).
CHW_FLATTENED_LINEARS: dict[str, dict[str, tuple[int, int, int]]] = {
    # GoogLeNet auxiliary heads: adaptive pool to 4x4, 1x1 conv to 128, flatten, fc1 (2048 -> 1024).
    "googlenet": {r"^aux[12]\.fc1\.weight$": (128, 4, 4)},
}

# Per family: torch ConvTranspose weights, stored (I, O, *spatial); layers.ConvTranspose's kernel
# is (*spatial, I, O).
TRANSPOSED_CONV_WEIGHTS: dict[str, tuple[str, ...]] = {
    "rcnn": (r"\.conv5_mask\.weight$",),  # Mask R-CNN's 2x2 stride-2 mask upsampling
}

# Keys under which training scripts commonly nest the state dict, and prefixes wrappers add.
WRAPPER_KEYS: tuple[str, ...] = ("state_dict", "model", "model_state_dict")
WRAPPER_PREFIXES: tuple[str, ...] = ("module.", "_orig_mod.")
TORCH_SUFFIXES: tuple[str, ...] = (".pth", ".pt", ".bin", ".ckpt")

_MAX_NAMED = 8  # keys named per category in an error line before "(+N more)"


def _canonical(module_path: str) -> str:
    """One spelling for a module path on both sides: '.', '/' and '_' all become '.'."""
    return re.sub(r"[./_]", ".", module_path)


def _to_numpy(value: Any) -> np.ndarray:
    """A torch tensor (any dtype, any device), numpy array or jax array as a numpy array."""
    if hasattr(value, "detach"):  # torch.Tensor, recognised without importing torch
        value = value.detach().cpu()
        if value.is_floating_point():
            value = value.float()  # bfloat16 / float16 have no (or a lossy) numpy route
        return value.numpy()
    return np.asarray(value)


def _unwrap(state: Mapping[str, Any]) -> dict[str, Any]:
    """The tensor dict inside a checkpoint: descend wrapper keys, strip wrapper prefixes."""
    while not any(hasattr(v, "shape") for v in state.values()):
        inner = next((state[k] for k in WRAPPER_KEYS if isinstance(state.get(k), Mapping)), None)
        if inner is None:
            raise ValueError(
                f"no tensors found: top-level keys are {sorted(state)[:_MAX_NAMED]}; pass the "
                f"state dict itself (or a checkpoint nesting it under one of {list(WRAPPER_KEYS)})"
            )
        state = inner
    state = dict(state)
    for prefix in WRAPPER_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def load_torch_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a ``.safetensors`` or ``.pth``/``.pt`` file into a flat dict of numpy arrays.

    ``.pth`` files are unpickled by ``torch.load(..., weights_only=True)``, which admits tensors and
    plain containers only: a file holding any other object is refused and none of its code runs.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no weights file at {path}")
    if path.endswith(".safetensors"):
        import safetensors.numpy

        try:
            state: Mapping[str, Any] = safetensors.numpy.load_file(path)
        except KeyError:  # a dtype numpy lacks (bfloat16): let torch read it
            import safetensors.torch

            state = safetensors.torch.load_file(path)
    elif path.endswith(TORCH_SUFFIXES):
        try:
            import torch
        except ImportError:
            raise ImportError(
                f"reading {path} needs torch (`pip install torch`); or save the weights as "
                ".safetensors, which cnn_jax reads without torch"
            ) from None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            raise ValueError(
                f"refusing to load {path}: it pickles objects other than tensors and containers, and "
                "weights are only read with torch.load(weights_only=True) so that no code runs; "
                "re-save only the weights (torch.save(model.state_dict(), path)) or as .safetensors "
                f"({str(err).splitlines()[0]})"
            ) from None
        if not isinstance(state, Mapping):
            raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict")
    else:
        raise ValueError(
            f"unknown weights file type {path!r}: expected .safetensors or one of {list(TORCH_SUFFIXES)}"
        )
    return {k: _to_numpy(v) for k, v in _unwrap(state).items()}


def _torch_layout(array: np.ndarray, flax_leaf: str, chw: tuple[int, int, int] | None) -> np.ndarray:
    """Re-lays a torch parameter out as the Flax leaf expects (see the module docstring's table)."""
    if flax_leaf != "kernel" or array.ndim < 2:
        return array
    if chw is not None and array.ndim == 2 and array.shape[1] == np.prod(chw):
        # Rows of torch's (O, C*H*W) are in (C, H, W) order; the Flax kernel's rows are (H, W, C).
        out = array.shape[0]
        return array.reshape(out, *chw).transpose(2, 3, 1, 0).reshape(-1, out)
    # (O, I, *spatial) -> (*spatial, I, O); for a Linear (O, I) -> (I, O). (A torch ConvTranspose
    # stores (I, O, *spatial): TRANSPOSED_CONV_WEIGHTS.)
    return array.transpose(*range(2, array.ndim), 1, 0)


def _torch_shape(flax_shape: tuple[int, ...], flax_leaf: str) -> tuple[int, ...]:
    """The torch shape that converts to ``flax_shape`` (inverse of `_torch_layout`'s shapes)."""
    if flax_leaf != "kernel" or len(flax_shape) < 2:
        return flax_shape
    return (flax_shape[-1], flax_shape[-2], *flax_shape[:-2])


def _name_some(items: Sequence[str]) -> str:
    named = ", ".join(items[:_MAX_NAMED])
    return named + (f" (+{len(items) - _MAX_NAMED} more)" if len(items) > _MAX_NAMED else "")


def from_torch(
    model_name: str,
    state_dict_or_path: Mapping[str, Any] | str | os.PathLike,
    *,
    num_classes: int | None = None,
    ignore: Sequence[str] = (),
    **model_kwargs: Any,
) -> dict[str, dict]:
    """Converts a torchvision-style state dict into variables of ``create_model(model_name)``.

    Args:
      model_name: a registered zoo model with a torchvision twin (``resnet50``, ``vgg16_bn``...).
      state_dict_or_path: a dict of torch tensors / numpy arrays, or a path to a ``.safetensors``
        or ``.pth``/``.pt`` file (read with ``weights_only=True``).
      num_classes: classes of the head (None: the registry's default, 1000 for ImageNet models).
      ignore: regexes of torch keys to drop on purpose (e.g. ``r"^aux"`` for GoogLeNet's auxiliary
        heads when the model is built without them); anything else unmatched is an error.
      **model_kwargs: passed to ``create_model`` (options that change the parameter tree, such as
        GoogLeNet's ``aux_logits``).

    Returns:
      ``{"params": ..., "batch_stats": ...}`` (nested dicts of float32 jax arrays, ``batch_stats``
      empty for models without BatchNorm), ready for ``model.apply(variables, x, train=False)``.

    Raises:
      ValueError: in one line naming every torch key left over, Flax leaf not filled and shape
        mismatch.
    """
    if isinstance(state_dict_or_path, (str, os.PathLike)):
        state = load_torch_weights(state_dict_or_path)
    else:
        state = {k: _to_numpy(v) for k, v in _unwrap(state_dict_or_path).items()}

    spec = get_model_spec(model_name)
    model = create_model(model_name, num_classes=num_classes, **model_kwargs)
    images = jax.ShapeDtypeStruct((1, *spec.input_shape), jnp.float32)
    rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
    abstract = jax.eval_shape(lambda x: model.init(rngs, x, train=False), images)  # traced, not run
    flax_leaves = traverse_util.flatten_dict(dict(abstract))  # (collection, *path) -> ShapeDtypeStruct

    # The torch key each Flax leaf must come from, in canonical spelling.
    wanted: dict[str, tuple[str, ...]] = {}
    for path in flax_leaves:
        _, *modules, leaf = path  # (collection, *module names, leaf name)
        if leaf not in FLAX_TO_TORCH_LEAF:
            raise ValueError(f"cannot convert {model_name!r}: no torch counterpart known for Flax "
                             f"leaf {'/'.join(path)} (known: {sorted(FLAX_TO_TORCH_LEAF)})")
        key = _canonical("/".join(modules)) + "." + FLAX_TO_TORCH_LEAF[leaf]
        if key in wanted:
            raise ValueError(f"cannot convert {model_name!r}: Flax leaves {'/'.join(wanted[key])} and "
                             f"{'/'.join(path)} both spell torch key {key}")
        wanted[key] = path

    renames = TORCH_KEY_RENAMES.get(spec.family, ())
    chw_linears = CHW_FLATTENED_LINEARS.get(spec.family, {})
    converted: dict[tuple[str, ...], jax.Array] = {}
    leftover: list[str] = []
    mismatched: dict[tuple[str, ...], str] = {}
    for torch_key, array in state.items():
        module_path, _, leaf = torch_key.rpartition(".")
        if leaf in IGNORED_TORCH_LEAVES or any(re.search(p, torch_key) for p in ignore):
            continue
        renamed = torch_key
        for pattern, replacement in renames:
            renamed = re.sub(pattern, replacement, renamed)
        module_path, _, leaf = renamed.rpartition(".")
        path = wanted.get(_canonical(module_path) + "." + leaf)
        if path is None:
            leftover.append(torch_key)
            continue
        chw = next((v for p, v in chw_linears.items() if re.search(p, torch_key)), None)
        target = flax_leaves[path]
        value = _torch_layout(array, path[-1], chw)
        if any(re.search(p, torch_key) for p in TRANSPOSED_CONV_WEIGHTS.get(spec.family, ())):
            value = array.transpose(*range(2, array.ndim), 0, 1)
        if value.shape != tuple(target.shape):
            expected = _torch_shape(tuple(target.shape), path[-1])
            mismatched[path] = f"{torch_key} is {tuple(array.shape)}, expected {expected}"
            continue
        converted[path] = jnp.asarray(value, dtype=target.dtype)

    missing = [f"{'/'.join(p)} (torch {k})" for k, p in wanted.items()
               if p not in converted and p not in mismatched]
    if leftover or missing or mismatched:
        problems = []
        if leftover:
            problems.append(f"{len(leftover)} torch keys with no Flax leaf: {_name_some(leftover)}")
        if missing:
            problems.append(f"{len(missing)} Flax leaves not filled: {_name_some(missing)}")
        if mismatched:
            hint = " (another head size? pass num_classes=)" if num_classes is None else ""
            problems.append(f"{len(mismatched)} shape mismatches{hint}: "
                            f"{_name_some(list(mismatched.values()))}")
        hint = " (drop torch keys on purpose with ignore=[regex])" if leftover and not missing else ""
        raise ValueError(f"cannot convert the state dict to {model_name!r}: " + "; ".join(problems) + hint)

    variables = traverse_util.unflatten_dict(converted)
    return {"params": variables.get("params", {}), "batch_stats": variables.get("batch_stats", {})}


def fcn_from_vgg16(
    model_name: str,
    vgg16_weights: Mapping[str, Any] | str | os.PathLike,
    *,
    num_classes: int | None = None,
    **model_kwargs: Any,
) -> dict[str, dict]:
    """Variables of ``fcn32s``, ``fcn16s`` or ``fcn8s`` initialised from torchvision's ImageNet
    VGG16, the way Long et al. 2015 start (§3.1, §4.1): the classifier "convolutionalised".

    * ``features.*`` (the 13 convolutions) load into the same-named layers;
    * ``classifier.0`` (25088 -> 4096, reading pool5 flattened in torch's (C, H, W) order) becomes
      fc6's 7x7x512x4096 kernel: row ``c * 49 + h * 7 + w`` is tap ``(h, w)`` of input channel
      ``c``, so fc6 over a 7x7 pool5 computes exactly classifier.0 on its flattening, and slides
      over larger maps;
    * ``classifier.3`` (4096 -> 4096) becomes fc7's 1x1 kernel;
    * ``classifier.6``, ImageNet's 1000-way layer, is discarded ("we decapitate each net by
      discarding the final classifier layer", §4.1); the score layers start at zero and the
      upsampling at bilinear interpolation, as the model initialises them.

    ``vgg16_weights``: a state dict or file as for :func:`from_torch` (``from_torch("vgg16", ...)``
    checks every key). ``model_kwargs`` go to ``create_model`` (the model must have VGG16's full
    width). Returns ``{"params": ..., "batch_stats": {}}``.
    """
    spec = get_model_spec(model_name)
    if spec.family != "fcn":
        raise ValueError(f"fcn_from_vgg16 builds fcn32s, fcn16s or fcn8s, not {model_name!r}")
    vgg = from_torch("vgg16", vgg16_weights)["params"]
    model = create_model(model_name, num_classes=num_classes, **model_kwargs)
    images = jnp.zeros((1, 32, 32, 3), jnp.float32)
    shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), images)["params"]
    fc6_in = vgg["classifier_0"]["kernel"].shape[0] // 49
    fc6 = vgg["classifier_0"]["kernel"].reshape(fc6_in, 7, 7, -1).transpose(1, 2, 0, 3)
    fc7 = vgg["classifier_3"]["kernel"][None, None]
    loaded = {name: value for name, value in vgg.items() if name.startswith("features_")}
    loaded["fc6"] = {"kernel": fc6, "bias": vgg["classifier_0"]["bias"]}
    loaded["fc7"] = {"kernel": fc7, "bias": vgg["classifier_3"]["bias"]}
    mismatched = [f"{name}/{leaf} {tuple(shapes[name][leaf].shape)} != VGG16's {tuple(v.shape)}"
                  for name, tree in loaded.items() for leaf, v in tree.items()
                  if tuple(shapes[name][leaf].shape) != tuple(v.shape)]
    if mismatched:
        raise ValueError(f"cannot load VGG16 into {model_name!r} built with {model_kwargs}: "
                         f"{_name_some(mismatched)} (VGG16's weights need width=1)")

    def rest(key):  # jitted, XLA drops the unused initialisers of the large layers
        params = model.init(key, images)["params"]
        return {name: tree for name, tree in params.items() if name not in loaded}

    return {"params": {**jax.jit(rest)(jax.random.key(0)), **loaded}, "batch_stats": {}}
