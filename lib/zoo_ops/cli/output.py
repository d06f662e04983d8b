"""The CLI's one table printer: plain text, left-aligned columns, every column, no index.

:func:`format_table` takes headers and rows and needs nothing else, so commands that
answer without pandas (``status``, ``history``, ``run --help``) stay fast;
:func:`format_frame` prints a step's or service's DataFrame through the same function.
pandas is imported only when a frame is printed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

NO_ROWS = "(no rows)"


def cell_text(value: Any) -> str:
    """One cell as text: on one line; a missing value (None, NaN) is empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return " ".join(str(value).splitlines())


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned plain-text columns, two spaces apart; ``(no rows)`` for none."""
    if not rows:
        return NO_ROWS
    texts = [[cell_text(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in texts)) for i, h in enumerate(headers)]
    lines = [_line(headers, widths)]
    lines.extend(_line(row, widths) for row in texts)
    return "\n".join(lines)


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()


def format_frame(frame: pd.DataFrame) -> str:
    """A DataFrame through :func:`format_table`."""
    if frame.empty:
        return NO_ROWS
    headers = [str(c) for c in frame.columns]
    return format_table(headers, [list(row) for row in frame.itertuples(index=False, name=None)])


def print_frame(frame: pd.DataFrame) -> None:
    print(format_frame(frame))
