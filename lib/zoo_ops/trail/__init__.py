"""The audit trail: executed runbooks under ``executed/ENV/MODEL/`` and their scraps.

``names`` says where a run is kept; ``notebook`` reads one executed runbook (the one
reader: :class:`TrailEntry`); ``index`` caches those reads for ``status``, ``history``
and ``report``.
"""

from zoo_ops.trail.index import INDEX_FILE_NAME, TrailIndex, trail_entries
from zoo_ops.trail.names import (
    STEPS,
    canonical_step,
    executed_path,
    parse_trail_name,
    trail_notebooks,
)
from zoo_ops.trail.notebook import TrailEntry, read_entry, read_scraps

__all__ = [
    "INDEX_FILE_NAME",
    "STEPS",
    "TrailEntry",
    "TrailIndex",
    "canonical_step",
    "executed_path",
    "parse_trail_name",
    "read_entry",
    "read_scraps",
    "trail_entries",
    "trail_notebooks",
]
