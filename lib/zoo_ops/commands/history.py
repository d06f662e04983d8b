"""`zoo-ops history ORACLE_VERSION_ID`: every change zoo-ops made to one user version.

Two sources, merged in time order:

- the migration journal: one row per migration that moved the version (forwards or
  backwards), joined to ``zoo_ops_migration`` (direction, operator, start) and to
  ``zoo_ops_run`` (the executed notebook, the run's operator). A migration run outside a
  notebook has no run; its notebook is then looked up in the trail by ``migration_id``;
- the runs of ``02_verify`` (the runs table, joined with their notebooks wherever they
  are kept: plain papermill writes anywhere) whose ``oracle_id`` scrap is the version's
  application; a notebook of the trail no run row claims is shown too, noted
  ``not recorded``; a run whose notebook is missing or unreadable but whose parameters
  name the application is shown as such. Such a run created the application when it was given no ``oracle_id``
  (``create``); once it compared (its ``comparison`` scrap exists) it had pointed the
  version at the candidate (``repoint``) and, unless run with ``restore=False``, back at
  the original (``restore``). Dry runs change nothing and are left out.

The journal records where each row pointed before and after, so its rows are exact;
verify's rows are what the runbook does, reconstructed from its scraps. Every event
carries its run's outcome from the runs table (``crashed``: no outcome and its process
gone; ``interrupted``) and what is wrong with its notebook, if anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo_ops.commands.status import format_at, parse_time
from zoo_ops.environment import Environment
from zoo_ops.errors import BadInput, NotFound
from zoo_ops.services.attached import require_platform_tables
from zoo_ops.trail import (
    NOT_RECORDED,
    RunLike,
    TrailEntry,
    TrailIndex,
    UnreadableFile,
    effective_outcome,
    join_runs,
)
from zoo_ops.trail.runs import local_path_of

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
    "outcome",
    "note",
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
    outcome: str = ""  # the run's outcome (runs table); "" when no run is known
    note: str = ""  # notebook missing / unreadable / not recorded

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
            "outcome": self.outcome,
            "note": self.note,
        }


@dataclass
class HistoryTable:
    """Every recorded change to ``oracle_version_id``, oldest first."""

    env: str
    oracle_version_id: str
    oracle_id: str | None
    events: list[HistoryEvent] = field(default_factory=list)
    # Files of the trail no reader used (a bad name, a bad notebook), with the reason.
    unreadable: list[UnreadableFile] = field(default_factory=list)

    def as_rows(self) -> list[dict[str, Any]]:
        return [e.as_row() for e in self.events]

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.as_rows(), columns=list(COLUMNS))

    def _repr_html_(self) -> str:
        from zoo_ops.tables import table_html

        return table_html(self.to_frame())


def journal_events(
    migrations: MigrationStore,
    oracle_version_id: str,
    notebook_of_migration: dict[str, Path],
    run_of: Callable[[str], RunLike | None] | None = None,
) -> list[HistoryEvent]:
    """The version's journal rows, one per migration that moved it (see module doc)."""
    events = []
    for row in migrations.version_journal(oracle_version_id):
        record = run_of(row["run_id"]) if run_of and row["run_id"] else None
        notebook = (
            local_path_of(row["notebook_path"])
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
                outcome=effective_outcome(record) if record else "",
                note=_notebook_note(notebook),
            )
        )
    return events


def _notebook_note(notebook: Path | None) -> str:
    if notebook is None:
        return "no notebook"
    return "" if notebook.exists() else "notebook missing"


def verify_events(entry: TrailEntry, outcome: str = "", note: str = "") -> list[HistoryEvent]:
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
            outcome=outcome or entry.outcome,
            note=note,
        )

    events = []
    if not entry.parameters.get("oracle_id"):
        events.append(event(started, "create", None, original))
    if "comparison" in entry.scrap_names:
        events.append(event(started, "repoint", original, candidate))
        if entry.parameters.get("restore", True) is not False:
            events.append(event(finished, "restore", candidate, original))
    return events


def _run_getter(env: Environment) -> Callable[[str], RunLike | None]:
    def get(run_id: str) -> RunLike | None:
        try:
            return env.runs.get(run_id)
        except Exception:  # noqa: BLE001 - a journal row whose run is gone: no outcome
            return None

    return get


def _verify_runs(env: Environment, oracle_id: str, trail: list[TrailEntry]) -> list[HistoryEvent]:
    """The 02_verify runs that touched ``oracle_id``'s version: every run row of the step
    joined with its notebook wherever it is (see module doc)."""
    try:
        records: list[RunLike] = list(env.runs.find(step=VERIFY_STEP, env=env.name))
    except Exception:  # noqa: BLE001 - no runs table: the trail alone
        records = []
    events: list[HistoryEvent] = []
    for view in join_runs(records, trail, read_outside=True):
        if view.dry_run:
            continue
        entry = view.entry
        note = NOT_RECORDED if view.record is None else view.notebook_note
        if entry is not None and entry.run is not None:
            if entry.scraps.get("oracle_id") == oracle_id:
                events.extend(verify_events(entry, view.outcome, note))
            continue
        given = (view.record.parameters or {}).get("oracle_id") if view.record else None
        if given == oracle_id:
            # Its notebook is missing or unreadable: what the run row says, no more.
            events.append(
                HistoryEvent(
                    at=view.started_at,
                    step=VERIFY_STEP,
                    action="verify",
                    from_version_id=None,
                    to_version_id=None,
                    operator=view.operator,
                    run_id=view.run_id,
                    migration_id=None,
                    notebook=view.notebook,
                    source="runs",
                    outcome=view.outcome,
                    note=view.notebook_note or "notebook unreadable",
                )
            )
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
    require_platform_tables(env)
    found = env.platform.find_version(version_id)
    oracle_id = found.oracle_id if found else None
    index = TrailIndex.of(env.config)
    trail = index.entries(env.name)
    notebook_of_migration = {
        str(e.scraps["migration_id"]): e.path for e in trail if e.scraps.get("migration_id")
    }
    # Read-only: a database where zoo-ops never migrated may lack its own tables.
    migrations = env.migrations
    has_journal = migrations.has_journal()
    events = (
        journal_events(migrations, version_id, notebook_of_migration, _run_getter(env))
        if has_journal
        else []
    )
    if oracle_id is None and not events:
        raise NotFound(
            f"no oracle version {version_id!r} in environment {env.name!r}; "
            "check the id (a user version's id, as in oracles_oracleversion)"
        )
    if oracle_id is not None:
        events.extend(_verify_runs(env, oracle_id, [e for e in trail if e.step == VERIFY_STEP]))
    order = {"create": 0, "repoint": 1, "restore": 2}
    events.sort(
        key=lambda e: (
            e.at or datetime.min.replace(tzinfo=UTC),
            str(e.notebook or ""),
            order.get(e.action, 1),
        )
    )
    return HistoryTable(
        env=env.name,
        oracle_version_id=version_id,
        oracle_id=oracle_id,
        events=events,
        unreadable=index.unreadable,
    )
