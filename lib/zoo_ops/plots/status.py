"""The report index's pictures, per environment: when each model's steps ran and how they
ended, and the applications on each zoo version now."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from zoo_ops.plots.picture import Picture, nothing_to_draw

if TYPE_CHECKING:  # the data's type only: plots import no command
    from zoo_ops.commands.status import VersionApplications

# Outcome -> (colour, marker). Crashed and interrupted runs are marked apart from failures:
# they may have left a migration half done, a failure did not get that far or rolled back.
OUTCOME_STYLE: dict[str, tuple[str, str]] = {
    "succeeded": ("tab:green", "o"),
    "failed": ("tab:red", "X"),
    "crashed": ("black", "s"),
    "interrupted": ("tab:purple", "s"),
    "trail-unsaved": ("tab:orange", "D"),
    "running": ("gold", ">"),
    "dry_run": ("tab:gray", "o"),
    "refused": ("lightgray", "x"),
    "not recorded": ("tab:brown", "^"),
}
_OTHER = ("tab:gray", ".")


@dataclass(frozen=True)
class RunMark:
    """One run on the timeline."""

    model: str
    step: str
    at: datetime
    outcome: str


def runs_timeline(env: str, marks: Sequence[RunMark], steps: Sequence[str]) -> Picture:
    """One row per (model, step) that has runs, models in name order and steps in procedure
    order; each run a mark at its time, coloured and shaped by its outcome (legend: the
    outcomes present). No runs gives a figure that says so."""
    rows = sorted({(m.model, m.step) for m in marks}, key=lambda r: (r[0], _order(r[1], steps)))
    fig = Figure(figsize=(9, max(2.2, 0.32 * len(rows) + 1.4)))
    ax = fig.add_subplot()
    ax.set_title(f"{env}: runs by model and step")
    if not rows:
        nothing_to_draw(ax, "no runs")
        return Picture(fig)
    y_of = {row: i for i, row in enumerate(rows)}
    present: dict[str, tuple[str, str]] = {}
    for mark in marks:
        colour, marker = OUTCOME_STYLE.get(mark.outcome, _OTHER)
        present[mark.outcome] = (colour, marker)
        ax.scatter(date2num(mark.at), y_of[(mark.model, mark.step)], c=colour, marker=marker, s=45)
    ax.set_yticks(range(len(rows)), [f"{m} {s}" for m, s in rows])
    ax.invert_yaxis()
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.grid(axis="x", alpha=0.3)
    ax.legend(
        handles=[
            Line2D([], [], color=c, marker=mk, linestyle="", label=outcome)
            for outcome, (c, mk) in sorted(present.items())
        ],
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize="small",
    )
    fig.tight_layout()
    return Picture(fig)


def _order(step: str, steps: Sequence[str]) -> int:
    return steps.index(step) if step in steps else len(steps)


def applications_per_version(env: str, versions: Sequence[VersionApplications]) -> Picture:
    """Per model, one bar per version (oldest first) of the user applications proxying it
    now; the current version's bar is filled, the others hatched."""
    fig = Figure(figsize=(9, 3.2))
    ax = fig.add_subplot()
    ax.set_title(f"{env}: applications on each zoo version")
    if not versions:
        nothing_to_draw(ax, "no zoo versions")
        return Picture(fig)
    labels, heights = [], []
    for i, v in enumerate(versions):
        labels.append(f"{v.model}\n{v.version_id}{' (current)' if v.current else ''}")
        heights.append(v.applications)
        ax.bar(
            i,
            v.applications,
            color="tab:blue" if v.current else "white",
            edgecolor="tab:blue",
            hatch="" if v.current else "//",
        )
        ax.annotate(str(v.applications), (i, v.applications), ha="center", va="bottom")
    ax.set_xticks(range(len(labels)), labels, fontsize="x-small")
    ax.set_ylabel("applications")
    ax.set_ylim(0, max(heights) * 1.15 + 1)
    fig.tight_layout()
    return Picture(fig)
