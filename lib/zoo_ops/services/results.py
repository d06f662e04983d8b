"""What every step result shares: a table to show, scraps to record, a verdict.

A step returns its result even when its verdict is a failure, so that the runbook
records the evidence (the comparison table, the preflight rows) before the run fails:
``Run.record`` glues ``scraps()`` and then calls ``raise_if_failed()``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from zoo_ops.errors import StepFailed
from zoo_ops.tables import table_html


class StepResult:
    """Base of the procedures' result objects."""

    def to_frame(self) -> pd.DataFrame:
        raise NotImplementedError

    def display_frame(self) -> pd.DataFrame:
        """The table the notebook shows (the recorded scraps may be shaped for machines)."""
        return self.to_frame()

    def scraps(self) -> dict[str, Any]:
        return {}

    def pictures(self) -> list[Any]:
        """The figures that go with the table (``zoo_ops.plots.Picture``): the runbook
        draws them in a cell of their own, and a failing result shows them with its table,
        since the cells after the failure never run."""
        return []

    def failure(self) -> str | None:
        """One line saying why this result fails the run, or None."""
        return None

    def raise_if_failed(self) -> None:
        reason = self.failure()
        if reason:
            raise StepFailed(reason)

    def _repr_html_(self) -> str:
        return table_html(self.display_frame())

    def __repr__(self) -> str:
        with pd.option_context("display.width", 200, "display.max_columns", None):
            return f"{type(self).__name__}\n{self.display_frame().to_string(index=False)}"
