"""How the CLI prints tables: plain text, no index, every column.

pandas is imported when a table is printed, not when the CLI starts: most commands'
start-up time would otherwise be pandas's import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def format_frame(frame: pd.DataFrame) -> str:
    import pandas as pd

    if frame.empty:
        return "(no rows)"
    with pd.option_context(
        "display.max_columns", None, "display.width", 200, "display.max_colwidth", 80
    ):
        return str(frame.to_string(index=False))


def print_frame(frame: pd.DataFrame) -> None:
    print(format_frame(frame))
