"""The CLI's one table printer and one error printer.

Tables: plain text, left-aligned columns, every column, no index. :func:`format_table`
takes headers and rows and needs nothing else, so commands that answer without pandas
(``status``, ``history``, ``run --help``) stay fast; :func:`format_frame` prints a step's
or service's DataFrame through the same function. pandas is imported only when a frame
is printed.

Errors: :func:`print_error` writes ``zoo-ops: error: MESSAGE`` as one line on stderr.

Every cell and every error goes through :func:`safe_text`: the secret values the process
knows are scrubbed and credentials redacted (:mod:`zoo_ops.adapters.known_secrets`), so a
model's error that quotes a secret, or a URL with ``?password=``, is never printed.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from zoo_ops.adapters import known_secrets

if TYPE_CHECKING:
    import pandas as pd

NO_ROWS = "(no rows)"


def safe_text(text: str) -> str:
    """``text`` as it may be printed: known secrets scrubbed, credentials redacted."""
    return known_secrets.redact(text)


def print_error(message: str) -> None:
    """``zoo-ops: error: MESSAGE`` on stderr: one line, nothing secret."""
    sys.stderr.write(f"zoo-ops: error: {safe_text(' '.join(message.split()))}\n")


def cell_text(value: Any) -> str:
    """One cell as text: on one line, nothing secret; a missing value (None, NaN) is empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return safe_text(" ".join(str(value).splitlines()))


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
