"""Variants of a generated dataset, named by their options: 'digit_scenes/canvas=96,max_digits=6'.

The parameters of a generated dataset are a frozen dataclass of numbers with defaults (the
default variant), deriving from `Variant`. `parse_options` reads the 'key=value,...' text of a
variant into one (the type of a field's default decides whether its value is read as an int or
a float), `options_text` writes the fields that differ from the defaults back, and `config_name`
names the variant's folder in the data_dir.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, TypeVar

P = TypeVar("P")


def parse_options(cls: type[P], text: str, what: str, fixed: dict[str, Any]) -> P:
    """'key=value,key=value' (any fields of the dataclass `cls`; '' for the defaults) -> params;
    `fixed` fields keep their value (a variant that fixes one). ValueError (one line, naming
    `what`: 'digit scene') for an unknown key, a value that is not a number or a fixed field."""
    values: dict[str, Any] = {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or key not in fields:
            raise ValueError(f"{what} option {item!r} is not key=value with a key among "
                             f"{', '.join(k for k in fields if k not in fixed)}")
        try:
            values[key] = float(value) if isinstance(fields[key].default, float) else int(value)
        except ValueError:
            raise ValueError(f"{what} option {item!r} needs a number") from None
        if key in fixed and values[key] != fixed[key]:
            raise ValueError(f"{what} option {item!r}: this variant has {key}={fixed[key]}")
    return cls(**{**values, **fixed})


def options_text(params: Any, skip: tuple[str, ...] = ()) -> str:
    """The 'key=value,...' text of the fields of `params` that differ from the defaults (but
    `skip`)."""
    default = type(params)()
    return ",".join(f"{f.name}={getattr(params, f.name)}" for f in dataclasses.fields(params)
                    if f.name not in skip and getattr(params, f.name) != getattr(default, f.name))


def config_name(params: Any) -> str:
    """The folder of a variant in the data_dir, every field spelt out ('frames20_canvas64_...'): a
    tfds config name (letters, digits, -_.)."""
    return "_".join(f"{f.name}{getattr(params, f.name):g}" for f in dataclasses.fields(params))


class Variant:
    """The methods of a generated dataset's parameter dataclass; `KIND` names it in errors."""

    KIND: ClassVar[str] = "dataset"

    @classmethod
    def parse(cls, text: str, **fixed: Any):
        """'key=value,key=value' (any of the fields; '' for the defaults) -> params; `fixed`
        fields keep their value (a variant that fixes one)."""
        return parse_options(cls, text, cls.KIND, fixed)

    def options(self, skip: tuple[str, ...] = ()) -> str:
        """The 'key=value,...' text of the fields that differ from the defaults (but `skip`)."""
        return options_text(self, skip)

    def config_name(self) -> str:
        return config_name(self)

    def require(self, needs: list[str]) -> None:
        """ValueError (one line) naming the variant and what its parameters must have, unless
        `needs` is empty (for `__post_init__`)."""
        if needs:
            raise ValueError(f"{self.KIND} parameters {self.options() or 'defaults'} must have "
                             f"{'; '.join(needs)}")
