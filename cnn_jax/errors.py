"""The errors a user can fix, and the two helpers that keep their messages to one line.

Every error here carries a one-line message that says what was wrong and what to do; `cnn-jax`
prints it as `error: <message>` and exits 2. This module imports nothing of the project, so every
layer of the package can raise these.
"""

from __future__ import annotations

from collections.abc import Collection


class ConfigError(ValueError):
    """A configuration that cannot run."""


class DataNotPreparedError(RuntimeError):
    """A dataset is not in the data_dir and cannot be fetched from here."""


class DataImportError(DataNotPreparedError, ValueError):
    """A local copy of a dataset that cannot be imported (missing files, wrong shapes, bad checksums)."""


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the last good checkpoint is left as it was."""


class BackendUnavailableError(RuntimeError):
    """An implementation asked for by name (e.g. conv_impl='onednn') cannot run on this machine."""


def one_line(e: BaseException) -> str:
    """The first line of an exception's message (its type's name when the message is empty)."""
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def check_choice(value, choices: Collection, key: str) -> None:
    """Raises ConfigError unless `value` is one of `choices`: `key='x' is not one of a, b, c`."""
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not one of {', '.join(map(str, choices))}")
