"""One way to draw a table as HTML, for the notebooks, their report pages and the
result objects alike."""

from __future__ import annotations

from typing import Any

import pandas as pd

MAX_ROWS = 500


def table_html(frame: pd.DataFrame) -> str:
    """``frame`` as an HTML table: every column whole (no ``...`` in a hash or an error),
    no pandas row numbers (a default index means nothing to a reader), up to
    :data:`MAX_ROWS` rows."""
    plain_index = isinstance(frame.index, pd.RangeIndex) and frame.index.name is None
    return str(frame.to_html(index=not plain_index, max_rows=MAX_ROWS, show_dimensions=False))


def show_tables_whole(ipython: Any) -> None:
    """Every DataFrame a cell of ``ipython`` shows is drawn by :func:`table_html`."""
    if ipython is not None:
        ipython.display_formatter.formatters["text/html"].for_type(pd.DataFrame, table_html)
