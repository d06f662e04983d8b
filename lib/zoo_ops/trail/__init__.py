"""The audit trail: executed runbooks under ``executed/ENV/MODEL/`` and their scraps.

``names`` says where a run is kept; ``notebook`` reads one executed runbook (the one
reader: :class:`TrailEntry`); ``index`` caches those reads for ``status``, ``history``
and ``report``; ``runs`` joins the database's runs table (the authority) with them.
"""

from zoo_ops.trail.index import INDEX_FILE_NAME, TrailIndex, UnreadableFile, trail_entries
from zoo_ops.trail.names import (
    STEPS,
    canonical_step,
    executed_path,
    notebook_names,
    parse_trail_name,
    trail_notebooks,
)
from zoo_ops.trail.notebook import (
    TrailEntry,
    UnreadableNotebook,
    read_entry,
    read_notebook_at,
    read_scraps,
    read_trail_bytes,
)
from zoo_ops.trail.runs import (
    NOT_RECORDED,
    RunLike,
    RunView,
    effective_outcome,
    join_runs,
    trail_views,
)

__all__ = [
    "INDEX_FILE_NAME",
    "NOT_RECORDED",
    "STEPS",
    "TrailEntry",
    "RunLike",
    "RunView",
    "TrailIndex",
    "UnreadableFile",
    "UnreadableNotebook",
    "canonical_step",
    "effective_outcome",
    "executed_path",
    "join_runs",
    "notebook_names",
    "parse_trail_name",
    "read_entry",
    "read_notebook_at",
    "read_scraps",
    "read_trail_bytes",
    "trail_entries",
    "trail_notebooks",
    "trail_views",
]
