"""`zoo-ops history ORACLE_VERSION_ID`: every change zoo-ops made to one user version.

Two sources, merged in time order:

- the migration journal: one row per migration that moved the version (forwards or
  backwards), joined to ``zoo_ops_migration`` (direction, operator, start) and to
  ``zoo_ops_run`` (the executed notebook, the run's operator). A migration run outside a
  notebook has no run; its notebook is then looked up in the trail by ``migration_id``;
- the trail: runs of ``02_verify`` whose ``oracle_id`` scrap is the version's
  application. Such a run created the application when it was given no ``oracle_id``
  (``create``); once it compared (its ``comparison`` scrap exists) it had pointed the
  version at the candidate (``repoint``) and, unless run with ``restore=False``, back at
  the original (``restore``). Dry runs change nothing and are left out.

The journal records where each row pointed before and after, so its rows are exact;
verify's rows are what the runbook does, reconstructed from its scraps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo_ops.commands.status import format_at, parse_time
from zoo_ops.environment import Environment
from zoo_ops.errors import BadInput, NotFound
from zoo_ops.trail import TrailEntry, TrailIndex

if TYPE_CHECKING:
    import pandas as pd

    from zoo_ops.migration.store import MigrationStore

VERIFY_STEP = "02_verify"
COLUMNS = (
    "at",
    "step",
    "action",
    "from_version_id",
    "to_version_id",
    "operator",
    "run_id",
    "migration_id",
    "notebook",
)
_STEP_OF_DIRECTION = {"forwards": "03_migrate", "backwards": "04_revert"}


@dataclass(frozen=True)
class HistoryEvent:
    """One change to the user version."""

    at: datetime | None
    step: str
    action: str  # forward migration | revert migration | create | repoint | restore
    from_version_id: str | None
    to_version_id: str | None
    operator: str
    run_id: str | None
    migration_id: str | None
    notebook: Path | None
    source: str  # journal | trail

    def as_row(self) -> dict[str, Any]:
        return {
            "at": format_at(self.at),
            "step": self.step,
            "action": self.action,
            "from_version_id": self.from_version_id or "",
            "to_version_id": self.to_version_id or "",
            "operator": self.operator,
            "run_id": self.run_id or "",
            "migration_id": self.migration_id or "",
            "notebook": "" if self.notebook is None else str(self.notebook),
        }


@dataclass
class HistoryTable:
    """Every recorded change to ``oracle_version_id``, oldest first."""

    env: str
    oracle_version_id: str
    oracle_id: str | None
    events: list[HistoryEvent] = field(default_factory=list)

    def as_rows(self) -> list[dict[str, Any]]:
        return [e.as_row() for e in self.events]

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.as_rows(), columns=list(COLUMNS))

    def _repr_html_(self) -> str:
        return str(self.to_frame().to_html(index=False))


def journal_events(
    migrations: MigrationStore, oracle_version_id: str, notebook_of_migration: dict[str, Path]
) -> list[HistoryEvent]:
    """The version's journal rows, one per migration that moved it (see module doc)."""
    events = []
    for row in migrations.version_journal(oracle_version_id):
        notebook = (
            Path(row["notebook_path"])
            if row["notebook_path"]
            else notebook_of_migration.get(row["migration_id"])
        )
        direction = row["direction"]
        events.append(
            HistoryEvent(
                at=row["started_at"],
                step=row["step"] or _STEP_OF_DIRECTION.get(direction, direction),
                action=f"{'revert' if direction == 'backwards' else 'forward'} migration",
                from_version_id=row["previous_proxy"],
                to_version_id=row["new_proxy"],
                operator=row["run_operator"] or row["operator"],
                run_id=row["run_id"],
                migration_id=row["migration_id"],
                notebook=notebook,
                source="journal",
            )
        )
    return events


def verify_events(entry: TrailEntry) -> list[HistoryEvent]:
    """What one 02_verify run did to its application's version (see module doc)."""
    run = entry.run or {}
    original = _text(entry.scraps.get("original_version_id"))
    candidate = _text(entry.scraps.get("candidate_version_id"))
    started = parse_time(run.get("started_at")) or entry.stamp
    finished = parse_time(run.get("finished_at")) or started

    def event(at: datetime, action: str, before: str | None, after: str | None) -> HistoryEvent:
        return HistoryEvent(
            at=at,
            step=entry.step,
            action=action,
            from_version_id=before,
            to_version_id=after,
            operator=str(run.get("operator") or ""),
            run_id=entry.run_id,
            migration_id=None,
            notebook=entry.path,
            source="trail",
        )

    events = []
    if not entry.parameters.get("oracle_id"):
        events.append(event(started, "create", None, original))
    if "comparison" in entry.scrap_names:
        events.append(event(started, "repoint", original, candidate))
        if entry.parameters.get("restore", True) is not False:
            events.append(event(finished, "restore", candidate, original))
    return events


def _text(value: Any) -> str | None:
    return str(value) if value else None


def history(env: Environment, oracle_version_id: str) -> HistoryTable:
    """Every change zoo-ops made to ``oracle_version_id`` in ``env``, oldest first.

    Raises NotFound for an id that neither the platform nor the journal knows.
    """
    if not isinstance(oracle_version_id, str) or not oracle_version_id.strip():
        raise BadInput("an oracle version id is required; pass ORACLE_VERSION_ID")
    version_id = oracle_version_id.strip()
    if not env.platform.has_schema():
        raise NotFound(
            f"environment {env.name!r} has no platform tables; for the local environment "
            "run `zoo-ops demo`"
        )
    found = env.platform.find_version(version_id)
    oracle_id = found.oracle_id if found else None
    trail = TrailIndex(env.config.executed_root_path).entries(env.name)
    notebook_of_migration = {
        str(e.scraps["migration_id"]): e.path for e in trail if e.scraps.get("migration_id")
    }
    # Read-only: a database where zoo-ops never migrated may lack its own tables.
    migrations = env.migrations
    has_journal = migrations.has_journal()
    events = journal_events(migrations, version_id, notebook_of_migration) if has_journal else []
    if oracle_id is None and not events:
        raise NotFound(
            f"no oracle version {version_id!r} in environment {env.name!r}; "
            "check the id (a user version's id, as in oracles_oracleversion)"
        )
    if oracle_id is not None:
        for entry in trail:
            if (
                entry.step == VERIFY_STEP
                and not entry.dry_run
                and entry.scraps.get("oracle_id") == oracle_id
            ):
                events.extend(verify_events(entry))
    order = {"create": 0, "repoint": 1, "restore": 2}
    events.sort(
        key=lambda e: (
            e.at or datetime.min.replace(tzinfo=UTC),
            str(e.notebook or ""),
            order.get(e.action, 1),
        )
    )
    return HistoryTable(
        env=env.name, oracle_version_id=version_id, oracle_id=oracle_id, events=events
    )
