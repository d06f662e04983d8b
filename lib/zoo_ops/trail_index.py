"""Temporary: the old import path of the trail index (integration removes it)."""

from zoo_ops.trail.index import *  # noqa: F403
from zoo_ops.trail.index import INDEX_FILE_NAME, TrailIndex, trail_entries  # noqa: F401
from zoo_ops.trail.notebook import *  # noqa: F403
from zoo_ops.trail.notebook import IndexedNotebook, TrailEntry, read_indexed  # noqa: F401
