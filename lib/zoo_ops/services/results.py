"""What every step result shares: a table to show, scraps to record, a verdict.

A step returns its result even when its verdict is a failure, so that the runbook
records the evidence (the comparison table, the preflight rows) before the run fails:
``Run.record`` glues ``scraps()`` and then calls ``raise_if_failed()``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from zoo_ops.errors import StepFailed


class StepResult:
    """Base of the procedures' result objects."""

    def to_frame(self) -> pd.DataFrame:
        raise NotImplementedError

    def scraps(self) -> dict[str, Any]:
        return {}

    def failure(self) -> str | None:
        """One line saying why this result fails the run, or None."""
        return None

    def raise_if_failed(self) -> None:
        reason = self.failure()
        if reason:
            raise StepFailed(reason)

    def _repr_html_(self) -> str:
        return str(self.to_frame().to_html(index=False))

    def __repr__(self) -> str:
        with pd.option_context("display.width", 200, "display.max_columns", None):
            return f"{type(self).__name__}\n{self.to_frame().to_string(index=False)}"
