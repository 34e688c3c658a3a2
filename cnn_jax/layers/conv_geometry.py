"""Convolution geometry: kernel and stride tuples, padding specs and the output-size formula.

Padding specs (``Conv``, ``DepthwiseConv``, ``ConvBNAct``):

* ``'VALID'``: none. ``'SAME'``: output ``ceil(W / S)``, padded as XLA/TensorFlow do, with the odd
  pixel at the end — for stride > 1 that differs from torch, which pads symmetrically.
* ``int P`` / sequence of ints: ``P`` zeros on both sides of each spatial dim (torch's
  ``padding=P``).
* sequence of ``(lo, hi)`` pairs: explicit padding per spatial dim.
* ``None``: torch-style "same", ``((F - 1) // 2) * d`` on both sides (torchvision's convention),
  which keeps the size for odd kernels at stride 1 and matches torch for every stride.

Output size (Dumoulin & Visin 2016, "A guide to convolution arithmetic", relationship 15):
``W_o = floor((W_i + 2P - d (F - 1) - 1) / S) + 1``, i.e. ``floor((W_i - F + 2P) / S) + 1`` when
d = 1; see :func:`conv_output_size`.
"""

from __future__ import annotations

from collections.abc import Sequence

from jax import lax

Padding = str | int | Sequence[int] | Sequence[tuple[int, int]] | None
PadPairs = list[tuple[int, int]]


def ntuple(value: int | Sequence[int], n: int, what: str) -> tuple[int, ...]:
    """``value`` repeated ``n`` times if it is an int, else checked to have ``n`` entries."""
    if isinstance(value, int):
        return (value,) * n
    values = tuple(int(v) for v in value)
    if len(values) != n:
        raise ValueError(
            f"{what}={value!r} has {len(values)} entries but there are {n} spatial dims"
        )
    return values


def kernel_tuple(kernel_size: int | Sequence[int]) -> tuple[int, ...]:
    """The kernel shape as a tuple: an int means a square 2-D kernel."""
    if isinstance(kernel_size, int):
        return (kernel_size, kernel_size)
    return tuple(int(k) for k in kernel_size)


def torch_same_padding(kernel_size: Sequence[int], dilation: Sequence[int]) -> PadPairs:
    """torchvision's "same" padding, ``((F - 1) // 2) * d`` on both sides of each dim."""
    return [((k - 1) // 2 * d,) * 2 for k, d in zip(kernel_size, dilation, strict=True)]


def resolve_padding(
    padding: Padding, kernel_size: Sequence[int], dilation: Sequence[int] | None = None
) -> str | PadPairs:
    """Normalise any accepted padding spec to ``'SAME'``/``'VALID'``/``'CIRCULAR'`` or ``(lo, hi)``
    pairs."""
    n = len(kernel_size)
    if padding is None:
        return torch_same_padding(kernel_size, dilation or (1,) * n)
    if isinstance(padding, str):
        upper = padding.upper()
        if upper not in ("SAME", "VALID", "CIRCULAR"):
            raise ValueError(
                f"padding {padding!r} is not one of 'SAME', 'VALID', 'CIRCULAR', an int or pairs"
            )
        return upper
    if isinstance(padding, int):
        return [(padding, padding)] * n
    entries = list(padding)
    if len(entries) != n:
        raise ValueError(
            f"padding={padding!r} has {len(entries)} entries but there are {n} spatial dims"
        )
    pairs: PadPairs = []
    for entry in entries:
        if isinstance(entry, int):
            pairs.append((entry, entry))
        else:
            lo, hi = entry
            pairs.append((int(lo), int(hi)))
    return pairs


def conv_output_size(
    size: int,
    kernel_size: int,
    stride: int = 1,
    padding: int | tuple[int, int] | str = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Spatial output size of a convolution or pooling window along one dim.

    ``floor((W + 2P - d (F - 1) - 1) / S) + 1`` (== ``floor((W - F + 2P) / S) + 1`` for d = 1).
    ``padding`` is ``P`` on both sides, a ``(lo, hi)`` pair, ``'VALID'`` (0) or ``'SAME'``
    (``ceil(W / S)``). ``ceil_mode`` rounds up instead, as torch's pooling does, but never lets the
    last window start in the right padding: it is dropped if ``(W_o - 1) S >= W + lo``.
    """
    effective = dilation * (kernel_size - 1) + 1
    if isinstance(padding, str):
        if padding.upper() == "SAME":
            return -(-size // stride)
        if padding.upper() != "VALID":
            raise ValueError(
                f"padding {padding!r} is not 'SAME', 'VALID', an int or a (lo, hi) pair"
            )
        lo = hi = 0
    elif isinstance(padding, int):
        lo = hi = padding
    else:
        lo, hi = padding
    span = size + lo + hi - effective
    if span < 0:
        raise ValueError(
            f"a window of effective size {effective} does not fit an input of size {size} "
            f"padded by ({lo}, {hi})"
        )
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + lo:
        out -= 1
    return out




def pad_pairs(
    input_shape: Sequence[int],
    kernel_size: Sequence[int],
    strides: Sequence[int],
    padding: str | PadPairs,
    dilation: Sequence[int],
) -> tuple[tuple[int, int], ...]:
    """``(lo, hi)`` per spatial dim of channels-last ``input_shape`` for ``'SAME'``/``'VALID'`` (as
    XLA pads them) or for given pairs."""
    if isinstance(padding, str):
        effective = [d * (k - 1) + 1 for k, d in zip(kernel_size, dilation, strict=True)]
        padding = lax.padtype_to_pads(input_shape[1:-1], effective, strides, padding)
    return tuple((int(lo), int(hi)) for lo, hi in padding)
