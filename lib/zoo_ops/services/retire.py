"""Retiring one zoo version through the serving adapter that knows how it is served.

05_retire's writes (DESIGN §5): a version that nothing points at any more stops being
served, as far as zoo-ops serves it, and is marked DELETED (never removed: the trail and
the journal refer to it). What "stops being served" means is the serving adapter's
(:meth:`~zoo_ops.adapters.serving.Serving.retire`):

- ``serving = "local"``: the artifact folder (truss or legacy) is removed;
- ``serving = "kubernetes"``: the Deployment and Service zoo-ops made for the version
  (``automation = "zoo-ops"``) are deleted; a legacy version, or one the platform's
  automation deployed, is served by the platform: zoo-ops removes nothing there, marks
  the row DELETED as the platform expects, and the result says
  ``serving not removed by zoo-ops: <artifact>`` and why.
"""

from __future__ import annotations

from dataclasses import dataclass

from zoo_ops.adapters.platform import schema as s
from zoo_ops.environment import Environment
from zoo_ops.errors import StepFailed

RETIRED_COLUMNS = ["version", "what", "status", "removed", "not_removed", "why"]


@dataclass(frozen=True)
class RetiredVersion:
    """One retired version: its new status, what serving removed and what it left."""

    version: str
    what: str
    status: str
    removed: str = ""
    not_removed: str = ""
    why: str = ""

    def as_row(self) -> dict[str, str]:
        return {c: getattr(self, c) for c in RETIRED_COLUMNS}


def retire_version(env: Environment, version_id: str, *, what: str = "") -> RetiredVersion:
    """Stop serving ``version_id`` through the serving adapter, then mark it DELETED;
    reads the status back. Refused (nothing changed) when a user version points at it."""
    store = env.platform
    if store.count_proxying(version_id):
        raise StepFailed(f"version {version_id} gained references while retiring; nothing deleted")
    version = store.version(version_id)
    removal = env.serving.retire(version)
    store.set_version_status(version_id, s.DELETED)  # reads the status back
    return RetiredVersion(
        version_id, what, s.DELETED, removal.removed, removal.not_removed, removal.why
    )
