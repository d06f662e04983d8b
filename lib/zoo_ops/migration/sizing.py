"""How many user versions the next batch takes: a fixed number, or sized to a lock budget.

A batch holds its rows' locks from its first statement to its commit; a user editing
one of those applications waits that long. ``batch_size="auto"`` keeps that wait under
``lock_budget_ms``:

1. the first batch takes ``FIRST_AUTO_SIZE`` rows;
2. after each batch that moved ``n`` rows holding its locks ``t`` seconds, the cost of
   a row is ``t / n``; the estimate is its exponentially weighted mean (``SMOOTHING`` on
   the newest batch), but never below the newest batch's own cost, so one slow batch
   (a checkpoint, a busy server) shrinks the next one at once;
3. the next size is ``HEADROOM`` of the budget divided by the estimate -- aiming below
   the budget so that the slow tail of batches still lands under it -- at most twice
   the previous size (grow gently: a batch's cost is not linear far from what was
   measured), within ``MIN_AUTO_SIZE`` and ``max_size`` (``MAX_AUTO_SIZE``, or less where the
   database says so).

A fixed size is taken as given, batch after batch. Pure: no clock, no database.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

from zoo_ops.errors import BadInput

AUTO = "auto"
MAX_BATCH_SIZE = 1_000_000
MAX_AUTO_SIZE = 100_000
DEFAULT_LOCK_BUDGET_MS = 50
MAX_LOCK_BUDGET_MS = 60_000
FIRST_AUTO_SIZE = 500
MIN_AUTO_SIZE = 50
HEADROOM = 0.6
SMOOTHING = 0.3
MAX_GROWTH = 2.0

BatchSize = int | str
"""A ``batch_size`` parameter: a whole number of rows, or ``"auto"``."""


class Batching(NamedTuple):
    """The two batch parameters as a step passes them down (checked by the engine)."""

    batch_size: BatchSize = AUTO
    lock_budget_ms: int = DEFAULT_LOCK_BUDGET_MS


def check_batch_size(batch_size: object) -> BatchSize:
    """``batch_size`` as given if it is 1..MAX_BATCH_SIZE or "auto", else BadInput."""
    if isinstance(batch_size, str) and batch_size.strip().lower() == AUTO:
        return AUTO
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise BadInput(
            f"batch_size {batch_size!r} is neither a whole number nor 'auto'; pass e.g. 1000 "
            "or 'auto'"
        )
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise BadInput(f"batch_size {batch_size} is out of range; pass 1 to {MAX_BATCH_SIZE}")
    return batch_size


def check_lock_budget_ms(lock_budget_ms: object) -> int:
    """``lock_budget_ms`` as given if it is a whole number 1..MAX_LOCK_BUDGET_MS."""
    if isinstance(lock_budget_ms, bool) or not isinstance(lock_budget_ms, int):
        raise BadInput(f"lock_budget_ms {lock_budget_ms!r} is not a whole number; pass e.g. 50")
    if not 1 <= lock_budget_ms <= MAX_LOCK_BUDGET_MS:
        raise BadInput(
            f"lock_budget_ms {lock_budget_ms} is out of range; pass 1 to {MAX_LOCK_BUDGET_MS}"
        )
    return lock_budget_ms


@dataclass(frozen=True)
class BatchSizing:
    """The size of the next batch, and (auto) what the batches so far cost per row."""

    size: int
    budget_s: float | None = None  # None: a fixed size
    seconds_per_row: float | None = None  # auto: the estimate after the batches so far
    max_size: int = MAX_AUTO_SIZE  # auto: the database's limit (SQLite's is lower)

    @classmethod
    def of(cls, batch_size: object, lock_budget_ms: object = DEFAULT_LOCK_BUDGET_MS) -> BatchSizing:
        """Sizing for a checked ``batch_size`` parameter and ``lock_budget_ms``."""
        size = check_batch_size(batch_size)
        budget = check_lock_budget_ms(lock_budget_ms)
        if size == AUTO:
            return cls(size=FIRST_AUTO_SIZE, budget_s=budget / 1000)
        assert isinstance(size, int)
        return cls(size=size)

    def limited_to(self, max_size: int) -> BatchSizing:
        """Auto sizing that never chooses more than ``max_size`` rows; a fixed size as is."""
        if self.budget_s is None:
            return self
        return replace(self, size=min(self.size, max_size), max_size=max_size)

    @property
    def auto(self) -> bool:
        return self.budget_s is not None

    def after(self, moved: int, lock_seconds: float) -> BatchSizing:
        """The sizing for the next batch, once a batch moved ``moved`` rows in ``lock_seconds``."""
        if self.budget_s is None or moved <= 0 or lock_seconds <= 0:
            return self
        newest = lock_seconds / moved
        if self.seconds_per_row is None:
            estimate = newest
        else:
            smoothed = SMOOTHING * newest + (1 - SMOOTHING) * self.seconds_per_row
            estimate = max(smoothed, newest)
        # A cost too small to measure (it rounds to zero) leaves only the growth limit.
        wanted = HEADROOM * self.budget_s / estimate if estimate > 0 else float("inf")
        size = int(min(wanted, self.size * MAX_GROWTH, self.max_size))
        return replace(self, size=max(size, MIN_AUTO_SIZE), seconds_per_row=estimate)
