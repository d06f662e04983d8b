"""`zoo-ops status`: models x steps per environment, from the runs table and the trail.

Sources: each environment's runs table (``zoo_ops_run``, the authority: one indexed query
per environment) joined with its executed notebooks through the trail index
(:func:`zoo_ops.trail.join_runs`); a run made by plain papermill to any path is a row like
any other, a notebook of the trail no row claims is ``not recorded``. Where an
environment's database is not at hand (its URL names an unset variable, its SQLite file
does not exist) the trail alone is shown, as the notebooks say, and the table says so.

Per (env, model, step), runs ordered by their start:

- refusals (outcome ``refused``: bad input, nothing changed) are set aside: they never
  hide a success; the refusals since the shown run are a note (``refused x2, latest ..``);
- notebooks no row claims are set aside likewise (``not recorded xN``); alone in a cell,
  the cell shows ``not recorded`` -- never ``succeeded``;
- the *counted* run is the latest remaining run that is not a dry run: succeeded, failed,
  interrupted, crashed (no outcome and its process gone), trail-unsaved or running. Its
  outcome is the step's outcome -- a failed latest run shows ``failed`` even after an
  earlier success. A crashed or interrupted 03/04 names the migration it left and that
  migration's status; any run whose notebook is unreadable, missing or absent says so;
- the latest dry run newer than the counted run is shown beside it: a dry run never
  counts as the step's success.

A model gets a row for every step (``not run`` where it has none), so the table reads as
a matrix -- except a model whose only runs are refusals and that is no model zoo model of
the environment's platform (a typo): it gets no row. Nothing here imports pandas or
scrapbook unless a frame is asked for, and no notebook is opened beyond the index's
cache: the command must answer in well under two seconds over a thousand notebooks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo_ops.errors import DatabaseUnreachable, NotFound
from zoo_ops.trail import (
    NOT_RECORDED,
    STEPS,
    RunLike,
    RunView,
    TrailEntry,
    TrailIndex,
    UnreadableFile,
    join_runs,
    trail_views,
)
from zoo_ops.trail.runs import (
    CRASHED,
    DRY_RUN,
    INTERRUPTED,
    REFUSED,
    TRAIL_UNSAVED,
    checked,
    parse_time,
)

if TYPE_CHECKING:
    import pandas as pd

    from zoo_ops.environment import Environment

NOT_RUN = "not run"
SHORT_HASH = 12
MIGRATING_STEPS = ("03_migrate", "04_revert")
COLUMNS = (
    "env",
    "model",
    "step",
    "outcome",
    "at",
    "truss_hash",
    "notebook",
    "dry_run",
    "runs",
    "run_id",
    "refused",
    "note",
)

MigrationLookup = Callable[[RunView], "tuple[str, str] | None"]


@dataclass(frozen=True)
class StepStatus:
    """One cell of the matrix: a step of a model in an environment."""

    env: str
    model: str
    step: str
    # succeeded | failed | interrupted | crashed | trail-unsaved | running | unreadable
    # | dry_run (dry runs only) | not recorded | not run
    outcome: str
    at: datetime | None
    truss_hash: str | None
    notebook: Path | None
    runs: int = 0  # runs of this step, dry runs and refusals included
    dry_run_outcome: str | None = None  # the latest dry run newer than the counted run
    dry_run_at: datetime | None = None
    dry_run_notebook: Path | None = None
    run_id: str | None = None
    refused: int = 0  # refusals since the shown run
    refused_at: datetime | None = None
    refused_error: str | None = None
    unrecorded: int = 0  # trail notebooks no run row claims, besides the shown run
    notebook_note: str = ""  # unreadable, missing, no notebook, disagrees with the row
    migration_id: str | None = None  # the migration a crashed/interrupted 03/04 left
    migration_status: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.outcome == "succeeded"

    @property
    def short_hash(self) -> str:
        return (self.truss_hash or "")[:SHORT_HASH]

    @property
    def dry_run_note(self) -> str:
        if self.dry_run_outcome is None:
            return ""
        word = "ok" if self.dry_run_outcome == DRY_RUN else self.dry_run_outcome
        return f"{word} {format_at(self.dry_run_at)}"

    @property
    def refused_note(self) -> str:
        if not self.refused:
            return ""
        return f"refused x{self.refused}, latest {format_at(self.refused_at)}"

    @property
    def note(self) -> str:
        """What else the cell must say: the notebook's state, the migration left, refusals."""
        parts = []
        if self.notebook_note:
            parts.append(self.notebook_note)
        if self.migration_id:
            parts.append(f"migration {self.migration_id} {self.migration_status or ''}".strip())
        elif self.outcome in (CRASHED, INTERRUPTED, TRAIL_UNSAVED) and self.step in MIGRATING_STEPS:
            parts.append("no migration recorded")
        if self.unrecorded:
            parts.append(f"{NOT_RECORDED} x{self.unrecorded}")
        if self.refused:
            parts.append(self.refused_note)
        return "; ".join(parts)

    def as_row(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "model": self.model,
            "step": self.step,
            "outcome": self.outcome,
            "at": format_at(self.at),
            "truss_hash": self.short_hash,
            "notebook": "" if self.notebook is None else str(self.notebook),
            "dry_run": self.dry_run_note,
            "runs": self.runs,
            "run_id": self.run_id or "",
            "refused": self.refused_note,
            "note": self.note,
        }


@dataclass
class StatusTable:
    """The status of every (env, model, step) asked for, plus every run and notebook read."""

    rows: list[StepStatus] = field(default_factory=list)
    notebooks: list[TrailEntry] = field(default_factory=list, repr=False)
    runs: list[RunView] = field(default_factory=list, repr=False)
    # Environments shown from the trail alone, and why (their database was not read).
    trail_only: dict[str, str] = field(default_factory=dict)
    # Files of the trail that no reader uses (a bad name, a bad notebook), with the reason.
    unreadable: list[UnreadableFile] = field(default_factory=list)
    # What each 03/04 run moved, by (env, run id); the applications per zoo version, by env.
    movements: dict[tuple[str, str], Movement] = field(default_factory=dict, repr=False)
    versions: dict[str, list[VersionApplications]] = field(default_factory=dict, repr=False)

    def movement(self, view: RunView) -> Movement | None:
        return self.movements.get((view.env, view.run_id or ""))

    def envs(self) -> list[str]:
        return sorted({r.env for r in self.rows})

    def models(self, env: str) -> list[str]:
        return sorted({r.model for r in self.rows if r.env == env})

    def cell(self, env: str, model: str, step: str) -> StepStatus | None:
        for row in self.rows:
            if (row.env, row.model, row.step) == (env, model, step):
                return row
        return None

    def matrix(self, env: str) -> dict[str, dict[str, StepStatus]]:
        """``{model: {step: StepStatus}}`` of one environment, every step present."""
        out: dict[str, dict[str, StepStatus]] = {}
        for row in self.rows:
            if row.env == env:
                out.setdefault(row.model, {})[row.step] = row
        return out

    def refusals(self, env: str | None = None) -> list[RunView]:
        """Every refused run (of ``env``), oldest first -- also of models with no row."""
        return [r for r in self.runs if r.outcome == REFUSED and env in (None, r.env)]

    def as_rows(self) -> list[dict[str, Any]]:
        return [r.as_row() for r in self.rows]

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.as_rows(), columns=list(COLUMNS))

    def _repr_html_(self) -> str:
        from zoo_ops.tables import table_html

        return table_html(self.to_frame())


def format_at(at: datetime | None) -> str:
    return "" if at is None else at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def run_time(entry: TrailEntry) -> datetime:
    """When the run ended (else started; else the stamp in its file name)."""
    run = entry.run or {}
    return parse_time(run.get("finished_at")) or parse_time(run.get("started_at")) or entry.stamp


def run_truss_hash(entry: TrailEntry) -> str | None:
    value = (entry.run or {}).get("truss_hash") or entry.scraps.get("truss_hash")
    return str(value) if value else None


def view_time(view: RunView) -> datetime:
    if view.record is None and view.entry is not None:
        return run_time(view.entry)
    return view.at


def step_status(
    env: str,
    model: str,
    step: str,
    runs: Sequence[RunView],
    migration_of: MigrationLookup | None = None,
) -> StepStatus:
    """The matrix cell of ``runs`` (one env/model/step, oldest first); see module doc."""
    if not runs:
        return StepStatus(env, model, step, NOT_RUN, None, None, None)
    refused = [r for r in runs if r.outcome == REFUSED]
    unrecorded = [r for r in runs if r.outcome == NOT_RECORDED]
    rest = [r for r in runs if r.outcome not in (REFUSED, NOT_RECORDED)]
    real = [r for r in rest if not r.dry_run]
    dry = [r for r in rest if r.dry_run]
    counted = real[-1] if real else None
    newer_dry = [d for d in dry if counted is None or d.order() > counted.order()]
    last_dry = newer_dry[-1] if newer_dry else None
    shown = counted or last_dry or (unrecorded[-1] if unrecorded else None)
    if shown is None:
        outcome = NOT_RUN
    elif counted is not None:
        outcome = counted.outcome
    elif last_dry is not None:
        outcome = DRY_RUN
    else:
        outcome = NOT_RECORDED
    since = [r for r in refused if shown is None or r.order() > shown.order()]
    migration = None
    if counted is not None and counted.outcome in (CRASHED, INTERRUPTED, TRAIL_UNSAVED):
        # Say what it left: its notebook (opened, if kept outside the trail) and migration.
        counted = checked(counted)
        shown = counted
        if migration_of is not None:
            migration = migration_of(counted)
    return StepStatus(
        env=env,
        model=model,
        step=step,
        outcome=outcome,
        at=None if shown is None else view_time(shown),
        truss_hash=None if shown is None else shown.truss_hash,
        notebook=None if shown is None else shown.notebook,
        runs=len(runs),
        dry_run_outcome=None if last_dry is None else last_dry.outcome,
        dry_run_at=None if last_dry is None else view_time(last_dry),
        dry_run_notebook=None if last_dry is None else last_dry.notebook,
        run_id=None if shown is None else shown.run_id,
        refused=len(since),
        refused_at=since[-1].at if since else None,
        refused_error=since[-1].error if since else None,
        unrecorded=len(unrecorded) - (1 if any(shown is u for u in unrecorded) else 0),
        notebook_note="" if shown is None or outcome == NOT_RECORDED else shown.notebook_note,
        migration_id=migration[0] if migration else None,
        migration_status=migration[1] if migration else None,
    )


@dataclass(frozen=True)
class Movement:
    """What a 03/04 run moved: its migration, from which version to which, how many rows."""

    migration_id: str
    source_version_id: str
    target_version_id: str
    moved: int
    status: str

    @property
    def versions(self) -> str:
        return f"{self.source_version_id}\u2192{self.target_version_id}"


@dataclass(frozen=True)
class VersionApplications:
    """A zoo model's version and the user applications on it now."""

    model: str
    version_id: str
    applications: int
    current: bool


@dataclass
class EnvRuns:
    """One environment's runs table as read for ``status`` (``records`` None: not read)."""

    env: str
    records: list[RunLike] | None
    problem: str | None = None
    known_models: frozenset[str] | None = None  # the platform's model zoo models
    migration_of: MigrationLookup | None = None
    # With ``detail`` (the report): what each 03/04 run moved, by run id, and the
    # applications on every zoo version now.
    movements: dict[str, Movement] = field(default_factory=dict)
    versions: list[VersionApplications] = field(default_factory=list)


def status_rows(
    runs: Iterable[RunView],
    known_models: Mapping[str, frozenset[str] | None] | None = None,
    migration_of: Mapping[str, MigrationLookup | None] | None = None,
) -> list[StepStatus]:
    """Every (env, model, step) of the models present, sorted; see :func:`step_status`.

    A model whose only runs are refusals gets rows only when ``known_models[env]`` names
    it (a model zoo model of that environment)."""
    groups: dict[tuple[str, str, str], list[RunView]] = {}
    models: set[tuple[str, str]] = set()
    refused_only: set[tuple[str, str]] = set()
    for run in runs:
        groups.setdefault((run.env, run.model, run.step), []).append(run)
        if run.outcome == REFUSED:
            refused_only.add((run.env, run.model))
        else:
            models.add((run.env, run.model))
    for env, model in refused_only - models:
        known = (known_models or {}).get(env)
        if known is not None and model in known:
            models.add((env, model))
    rows: list[StepStatus] = []
    for env, model in sorted(models):
        lookup = (migration_of or {}).get(env)
        extra = sorted(s for (e, m, s) in groups if (e, m) == (env, model) and s not in STEPS)
        for step in (*STEPS, *extra):
            cell_runs = sorted(groups.get((env, model, step), []), key=RunView.order)
            rows.append(step_status(env, model, step, cell_runs, lookup))
    return rows


def trail_envs(executed_root: Path) -> list[str]:
    """Environment folders present in the trail (none when the root cannot be listed)."""
    try:
        return sorted(p.name for p in executed_root.iterdir() if p.is_dir() and p.name[0] != ".")
    except OSError:
        return []


def status(
    env_names: Sequence[str] | None,
    model: str | None,
    executed_root: Path | Sequence[Path],
    runs: Mapping[str, EnvRuns] | None = None,
) -> StatusTable:
    """The status matrix of ``env_names`` (None: every env in the trail or in ``runs``),
    one model or all.

    ``runs``: each environment's runs table (:func:`database_runs`); an environment with
    none there (or whose records are None) is shown from its trail alone.
    ``executed_root`` may be several roots (environments configured with different
    ``executed_root``); an environment's notebooks are taken from the first root that has
    its folder.
    """
    roots = [Path(executed_root)] if isinstance(executed_root, str | Path) else executed_root
    runs = runs or {}
    entries: dict[str, list[TrailEntry]] = {}
    unreadable: list[UnreadableFile] = []
    for root in map(Path, roots):
        present = trail_envs(root)
        wanted = present if env_names is None else [e for e in env_names if e in present]
        index = TrailIndex(root)
        for env in wanted:
            if env not in entries:
                entries[env] = index.entries(env, model)
                unreadable.extend(index.unreadable)
    envs = set(entries)
    envs |= {
        e for e, source in runs.items() if source.records and (env_names is None or e in env_names)
    }
    views: list[RunView] = []
    trail_only: dict[str, str] = {}
    for env in sorted(envs):
        source = runs.get(env)
        env_entries = entries.get(env, [])
        if source is None or source.records is None:
            views.extend(trail_views(env_entries))
            if source is not None:
                trail_only[env] = source.problem or "database not read"
            continue
        records = [r for r in source.records if model is None or r.model == model]
        views.extend(join_runs(records, env_entries))
    rows = status_rows(
        views,
        known_models={e: s.known_models for e, s in runs.items()},
        migration_of={e: s.migration_of for e, s in runs.items()},
    )
    notebooks = [e for env in sorted(entries) for e in entries[env]]
    return StatusTable(
        rows=rows,
        notebooks=notebooks,
        runs=views,
        trail_only=trail_only,
        unreadable=unreadable,
        movements={(e, rid): m for e, src in runs.items() for rid, m in src.movements.items()},
        versions={e: src.versions for e, src in runs.items() if src.versions},
    )


# --- reading each environment's runs table ----------------------------------------------


def migration_lookup(env: Environment) -> MigrationLookup:
    """The migration a run of 03/04 left: (migration id, status), from the migration
    record that names the run (else the one the run's notebook names)."""
    direction = {"03_migrate": "forwards", "04_revert": "backwards"}

    def lookup(view: RunView) -> tuple[str, str] | None:
        if view.step not in direction or not view.run_id:
            return None
        store = env.migrations
        try:
            started = store.for_run(view.run_id, direction[view.step])
            if started:
                return started[0].id, started[0].status
            named = view.entry.scraps.get("migration_id") if view.entry else None
            found = store.get(str(named)) if named else None
        except Exception:  # noqa: BLE001 - a status line never fails on a missing table
            return None
        return (found.id, found.status) if found is not None else None

    return lookup


def _unattached(env: Environment) -> str | None:
    """Why ``env``'s runs table is missing when zoo-ops was never attached (the fix is
    ``zoo-ops init``), else None."""
    from zoo_ops.services.attached import require_attached

    try:
        require_attached(env)
    except NotFound as exc:
        return str(exc)
    except Exception:  # noqa: BLE001 - the caller names the original failure
        return None
    return None


def movements(env: Environment) -> dict[str, Movement]:
    """What each run of ``env`` moved, by run id: the newest migration the run started."""
    out: dict[str, Movement] = {}
    for m in env.migrations.of_env(env.name):  # oldest first: a run's newest wins
        if m.run_id:
            out[m.run_id] = Movement(
                m.id, m.source_version_id, m.target_version_id, m.moved_count, m.status
            )
    return out


def version_applications(env: Environment, model: str | None = None) -> list[VersionApplications]:
    """Every version of every zoo model (or ``model``), oldest first, with the user
    applications proxying it now (one query)."""
    return [VersionApplications(*row) for row in env.platform.zoo_version_applications(model)]


def env_runs(env: Environment, model: str | None = None, *, detail: bool = False) -> EnvRuns:
    """``env``'s runs table (one query) and its model zoo's names, for :func:`status`;
    with ``detail``, also what each run moved and the applications per version."""
    from zoo_ops.adapters.platform.engine import database_missing

    missing = database_missing(env.config.database_url_resolved)
    if missing:
        return EnvRuns(env.name, None, problem=missing)
    try:
        records: list[RunLike] = list(env.runs.find(env=env.name, model=model))
    except DatabaseUnreachable as exc:  # one line naming the redacted URL
        return EnvRuns(env.name, None, problem=str(exc))
    except Exception as exc:  # noqa: BLE001 - no runs table, no server: show the trail
        return EnvRuns(
            env.name,
            None,
            problem=_unattached(env) or f"runs table not read ({exc.__class__.__name__})",
        )
    try:
        known: frozenset[str] | None = frozenset(m.name for m in env.platform.zoo_models())
    except Exception:  # noqa: BLE001 - no platform tables: no model is known
        known = None
    moved: dict[str, Movement] = {}
    versions: list[VersionApplications] = []
    if detail:
        try:
            moved = movements(env)
            versions = version_applications(env, model)
        except Exception:  # noqa: BLE001 - the report still shows the runs without them
            pass
    return EnvRuns(
        env.name,
        records,
        known_models=known,
        migration_of=migration_lookup(env),
        movements=moved,
        versions=versions,
    )


@contextmanager
def database_runs(
    env_names: Sequence[str], model: str | None = None, *, detail: bool = False
) -> Iterator[dict[str, EnvRuns]]:
    """Each named environment's runs (:func:`env_runs`); an environment that cannot be
    loaded (a URL naming an unset variable) is read from its trail alone."""
    from zoo_ops.environment import Environment
    from zoo_ops.errors import ZooOpsError

    opened: list[Environment] = []
    out: dict[str, EnvRuns] = {}
    try:
        for name in env_names:
            try:
                env = Environment.load(name)
            except ZooOpsError as exc:
                out[name] = EnvRuns(name, None, problem=f"database not read: {exc}")
                continue
            opened.append(env)
            out[name] = env_runs(env, model, detail=detail)
        yield out
    finally:
        for env in opened:
            env.dispose()
