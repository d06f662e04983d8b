"""How the CLI prints tables: plain text, no index, every column."""

from __future__ import annotations

import pandas as pd


def format_frame(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "(no rows)"
    with pd.option_context(
        "display.max_columns", None, "display.width", 200, "display.max_colwidth", 80
    ):
        return frame.to_string(index=False)


def print_frame(frame: pd.DataFrame) -> None:
    print(format_frame(frame))
