"""03_migrate / 04_revert's picture: applications moved over time and lock time per batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from matplotlib.figure import Figure

from zoo_ops.plots.picture import Picture, nothing_to_draw

if TYPE_CHECKING:  # the data's types only: plots import no step or engine
    from zoo_ops.migration.engine import BatchTiming


def migration_over_time(timings: Sequence[BatchTiming], *, dry_run: bool = False) -> Picture:
    """Left: cumulative applications moved against seconds since the batches began.
    Right: each batch's lock time (its transaction, first statement to commit).
    A dry run, or a run that moved nothing, gives a figure that says so."""
    fig = Figure(figsize=(9, 3.5))
    moved_ax, lock_ax = fig.subplots(1, 2)
    moved_ax.set_title("Applications moved over time")
    lock_ax.set_title("Lock time per batch")
    if not timings:
        why = "dry run: nothing moved" if dry_run else "nothing to move: no batches ran"
        for ax in (moved_ax, lock_ax):
            nothing_to_draw(ax, why)
        return Picture(fig)
    moved_ax.step(
        [0.0, *(t.seconds for t in timings)], [0, *(t.moved_total for t in timings)], where="post"
    )
    moved_ax.set_xlabel("seconds since start")
    moved_ax.set_ylabel("applications moved")
    batches = range(1, len(timings) + 1)
    lock_ax.bar(batches, [t.lock_seconds * 1000 for t in timings], color="tab:orange")
    lock_ax.set_xlabel("batch")
    lock_ax.set_ylabel("lock time (ms)")
    fig.tight_layout()
    return Picture(fig)
