"""Model registry: every architecture is registered by name and built with `create_model`.

A family module decorates one factory per variant::

    @register_model("lenet5", family="lenet", input_shape=(28, 28, 1), num_classes=10)
    def lenet5(num_classes: int, **kw) -> nn.Module: ...

and users, configs and tests only ever call `create_model(name, num_classes=..., **kw)`. Keyword
arguments set fields of the family's module; every registered model takes `dtype` and `conv_impl`
('auto' | 'xla' | 'onednn', how its convolutions run: `cnn_jax.layers.conv`), and threads them to
its layers. ``task`` says what the output is, and which task of cnn_jax.tasks trains the model:
``'classification'`` logits ``(N, num_classes)``; ``'segmentation'`` per-pixel logits
``(N, H, W, num_classes)`` at the input's resolution; ``'localization'`` ``{'logits', 'box'}`` and a
``loss(outputs, batch)`` method; ``'detection'`` a dict of named outputs with ``loss`` and a
fixed-shape ``detect(outputs)``; ``'saliency'`` one logit per pixel ``(N, H, W)``; the generative
models define their own outputs (``'reconstruction'``, ``'vae'``, ``'gan'``: cnn_jax.tasks).
``input_shape`` is ``(H, W, C)`` for images and ``(T, H, W, C)`` for clips; ``num_classes`` 0 means
the model has no class head.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable

import flax.linen as nn

Factory = Callable[..., nn.Module]


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one named model."""

    name: str
    factory: Factory
    family: str
    input_shape: tuple[int, int, int]
    """(H, W, C) the paper uses; what `summary` and the configs default to."""
    test_input_shape: tuple[int, int, int]
    """A small input the architecture still accepts, for forward/backward tests on CPU."""
    num_classes: int
    description: str = ""
    task: str = "classification"
    """What the model's output is and which task trains it (module docstring)."""


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    *,
    family: str,
    input_shape: tuple[int, int, int],
    test_input_shape: tuple[int, int, int] | None = None,
    num_classes: int = 1000,
    description: str = "",
    task: str = "classification",
) -> Callable[[Factory], Factory]:
    """Decorator registering `factory(num_classes, **kw) -> nn.Module` under `name`."""

    def decorate(factory: Factory) -> Factory:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelSpec(
            name=name,
            factory=factory,
            family=family,
            input_shape=tuple(input_shape),
            test_input_shape=tuple(test_input_shape or input_shape),
            num_classes=num_classes,
            description=description or (factory.__doc__ or "").strip().split("\n")[0],
            task=task,
        )
        return factory

    return decorate


def get_model_spec(name: str) -> ModelSpec:
    """The registry entry for `name`; unknown names fail with the closest registered ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"unknown model {name!r}{hint} (`cnn-jax models` lists all {len(_REGISTRY)})"
        ) from None


def create_model(name: str, num_classes: int | None = None, **kwargs) -> nn.Module:
    """Builds the registered model `name` with a `num_classes`-way head (default: the paper's)."""
    spec = get_model_spec(name)
    return spec.factory(num_classes=spec.num_classes if num_classes is None else num_classes, **kwargs)


def list_models(family: str | None = None) -> list[str]:
    """Registered model names, sorted; only one family's when `family` is given."""
    return sorted(n for n, s in _REGISTRY.items() if family is None or s.family == family)
