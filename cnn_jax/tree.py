"""Parameter paths: how the optimizer, the sharding rules and initialisation name and select leaves.

A parameter's path is its "/"-joined key path, e.g. 'layer1_0/conv1/kernel'. Config options that
select parameters (`optimizer.decay_regex`, `freeze_regex`, `lr_multipliers`, `sharding.rules`,
`init.exclude_regex`) are regular expressions searched anywhere in that path (anchor with ^ and $);
an empty regex selects nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import jax


def path_of(keypath) -> str:
    """'a/b/kernel' for a JAX key path such as (DictKey('a'), DictKey('b'), DictKey('kernel'))."""
    return "/".join(_key_name(k) for k in keypath)


def param_paths(tree) -> list[str]:
    """The path of every leaf of `tree`, in leaf order."""
    return [path_of(p) for p, _ in jax.tree_util.tree_leaves_with_path(tree)]


def matcher(regex: str) -> Callable[[str], bool]:
    """`path -> bool`: whether `regex` is found in the path; the empty regex matches nothing."""
    if not regex:
        return lambda path: False
    pattern = re.compile(regex)
    return lambda path: pattern.search(path) is not None


def regex_mask(tree, regex: str):
    """A tree of bools like `tree`: True where the leaf's path matches `regex`."""
    matches = matcher(regex)
    return jax.tree_util.tree_map_with_path(lambda p, _: matches(path_of(p)), tree)


def _key_name(key) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)
