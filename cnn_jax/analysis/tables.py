"""Plain-text tables of the analysis: shapes written as the lecture tables write them, and
columns aligned to their widest cell."""

from __future__ import annotations

from collections.abc import Sequence


def format_shape(shape: Sequence[int]) -> str:
    """``224x224x64`` like the lecture tables; a vector is just its length."""
    return "x".join(str(int(d)) for d in shape) if len(shape) else "scalar"


def align_columns(header: Sequence[str], rows: Sequence[Sequence[str]], right_from: int) -> list[str]:
    """Columns padded to their widest cell; numeric columns (index >= right_from) right-aligned."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(
            str(c).rjust(w) if i >= right_from else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "-" * len(fmt(header))
    return [fmt(header), rule, *(fmt(r) for r in rows), rule]
