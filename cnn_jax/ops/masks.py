"""Instance masks from instance maps.

A batch's ``instances`` map (cnn_jax.data.targets) marks the pixels of the object of box row i
with the id i + 1 and the rest with 0; this is the one place that reads that convention back into
one binary mask per box row.
"""

from __future__ import annotations

from typing import Any


def instance_masks(instances: Any, rows: Any) -> Any:
    """The binary masks of box rows ``rows`` (R,) in ``instances`` (..., H, W): bool
    (..., R, H, W), True on the pixels of the object of that row. Broadcasting only, so it takes
    numpy arrays (host-side evaluation) and jax arrays (under jit) alike and returns the same kind."""
    return instances[..., None, :, :] == (rows + 1)[:, None, None]
