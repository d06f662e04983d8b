"""02_verify's picture: per example, baseline vs candidate answers and the tolerance band."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from matplotlib.figure import Figure

from zoo_ops.plots.picture import Picture

if TYPE_CHECKING:  # the data's types only: plots import no step or engine
    from zoo_ops.steps.s02_verify import Comparison


def numeric_leaves(shown: str) -> list[float]:
    """The numbers in a recorded answer (JSON text), depth first; [] for an error text."""
    try:
        value = json.loads(shown)
    except (TypeError, ValueError):
        return []
    return list(_leaves(value))


def _leaves(value: Any) -> Iterator[float]:
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield float(value)
    elif isinstance(value, dict):
        for key in sorted(value):
            yield from _leaves(value[key])
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _leaves(item)


def answers_with_tolerance(comparison: Comparison) -> Picture:
    """Example i at x = i: every number of the baseline answer (dot) with its band
    ``± rtol·|baseline|``, the candidate's numbers (cross) beside it; an example whose
    answers differ is shaded red. No rows, or no numbers, gives a figure that says so."""
    fig = Figure(figsize=(8, 3.5))
    ax = fig.add_subplot()
    ax.set_title(f"Baseline vs candidate answers (rtol = {comparison.rtol:g})")
    rows = comparison.rows
    plotted = False
    for i, row in enumerate(rows):
        if not row["match"]:
            ax.axvspan(i - 0.45, i + 0.45, color="tab:red", alpha=0.15)
        expected, actual = numeric_leaves(row["expected"]), numeric_leaves(row["actual"])
        for value in expected:
            band = comparison.rtol * abs(value)
            ax.errorbar(i - 0.1, value, yerr=band, fmt="o", color="tab:blue", capsize=4)
            plotted = True
        for value in actual:
            ax.plot(i + 0.1, value, "x", color="tab:orange" if row["match"] else "tab:red")
            plotted = True
    if not plotted:
        ax.text(0.5, 0.5, "no numeric answers to compare", ha="center", transform=ax.transAxes)
    ax.set_xticks(range(len(rows)), [str(r["input"]) for r in rows], rotation=30, ha="right")
    ax.set_xlabel("example (red: answers differ)")
    ax.set_ylabel("answer value")
    ax.plot([], [], "o", color="tab:blue", label="baseline ± tolerance")
    ax.plot([], [], "x", color="tab:orange", label="candidate")
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return Picture(fig)
