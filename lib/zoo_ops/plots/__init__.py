"""Figures drawn into the executed runbooks (PNG through matplotlib's Agg backend).

Each function takes a step's result and returns a :class:`Picture` of a Figure built with
the object API (no pyplot state), so a notebook cell shows it exactly once and the HTML
report carries it as an inline PNG that works offline.
"""

from zoo_ops.plots.migration import migration_over_time
from zoo_ops.plots.verify import answers_with_tolerance

__all__ = ["answers_with_tolerance", "migration_over_time"]
