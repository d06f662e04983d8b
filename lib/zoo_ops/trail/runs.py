"""The runs table joined with the trail: the one list of runs every reader counts.

The database's runs table (``zoo_ops_run``) is the authority on which runs exist and how
they ended; an executed notebook is its rendering. :func:`join_runs` pairs each run row
with its notebook -- the trail entry carrying its run id, else the file at the row's
``notebook_path`` (any path: plain ``papermill`` writes wherever it is told) -- and
cross-checks the two: the notebook's ``run`` scrap must name the same environment,
model, step, run id and truss hash, or the run is shown with the disagreement and never
counted by the gate or ``rollout``. A notebook of the trail that no run row claims (a
copied file, another database's run) is a view of outcome ``not recorded``; one that no
row claims and that cannot be read is no view at all (the trail index lists it, with
the reason). Where a notebook sits never makes a run: only a row does. (Trail alone,
:func:`trail_views`, an unreadable notebook is shown as ``unreadable``.)

Without a database (its URL names an unset variable, its file does not exist) the trail
alone is shown: :func:`trail_views`, outcomes as the notebooks say, none of them trusted.

The records are read through a protocol (any object with :class:`RunLike`'s fields): the
trail sits beside the adapters and imports none of them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from zoo_ops.config import trail_cache_path
from zoo_ops.trail.notebook import OK, RUNNING, UNREADABLE, TrailEntry, read_notebook_at
from zoo_ops.trail.stores import is_remote

SUCCEEDED, FAILED, DRY_RUN = "succeeded", "failed", "dry_run"
REFUSED, INTERRUPTED, CRASHED = "refused", "interrupted", "crashed"
TRAIL_UNSAVED, NOT_RECORDED = "trail-unsaved", "not recorded"
# Outcomes that changed, or could have changed, something: what a status cell shows.
CHANGING = frozenset({SUCCEEDED, FAILED, INTERRUPTED, CRASHED, TRAIL_UNSAVED, RUNNING})

# Where a run's notebook stands.
NB_OK, NB_RUNNING, NB_UNREADABLE = OK, RUNNING, UNREADABLE
NB_MISSING = "missing"  # the row names a file that is not there
NB_NONE = "no notebook"  # the row names no file
NB_UNCHECKED = "not read"  # a file outside the trail, present, not opened (status is fast)
NB_OTHER = "overwritten"  # the file holds another run's record


class RunLike(Protocol):
    """The fields of a ``zoo_ops_run`` row that readers use (``RunRecord`` has them)."""

    @property
    def id(self) -> str: ...
    @property
    def step(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def env(self) -> str: ...
    @property
    def operator(self) -> str: ...
    @property
    def dry_run(self) -> bool: ...
    @property
    def parameters(self) -> dict[str, Any]: ...
    @property
    def truss_hash(self) -> str | None: ...
    @property
    def started_at(self) -> datetime: ...
    @property
    def finished_at(self) -> datetime | None: ...
    @property
    def outcome(self) -> str | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def notebook_path(self) -> str | None: ...


def effective_outcome(record: RunLike) -> str:
    """The row's outcome; a row with none is ``running``, or ``crashed`` once its process
    is gone (``RunRecord.effective_outcome``, the runs store's liveness check, where the
    store has it)."""
    computed = getattr(record, "effective_outcome", None)
    if isinstance(computed, str) and computed:
        return computed
    return record.outcome or RUNNING


def parse_time(value: Any) -> datetime | None:
    """An ISO time from a `run` scrap as an aware UTC datetime (naive means UTC)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


@dataclass(frozen=True)
class RunView:
    """One run as the readers see it: its row (if any) joined with its notebook (if any)."""

    env: str
    model: str
    step: str
    run_id: str | None
    outcome: str
    dry_run: bool
    started_at: datetime
    finished_at: datetime | None
    truss_hash: str | None
    operator: str
    error: str | None
    notebook: Path | None
    notebook_state: str
    entry: TrailEntry | None = None
    record: RunLike | None = None
    mismatch: str | None = None  # how the notebook disagrees with the row

    @property
    def at(self) -> datetime:
        return self.finished_at or self.started_at

    @property
    def recorded(self) -> bool:
        return self.record is not None

    @property
    def trusted(self) -> bool:
        """Counted by the gate and rollout: a row, and no notebook contradicting it."""
        return self.record is not None and self.mismatch is None

    @property
    def in_trail(self) -> bool:
        return self.entry is not None and self.notebook_state != NB_UNCHECKED

    @property
    def notebook_note(self) -> str:
        """``""`` for a readable notebook; else what is wrong with it, in a few words."""
        if self.mismatch:
            return f"notebook disagrees: {self.mismatch}"
        if self.notebook_state in (NB_OK, NB_UNCHECKED) or self.outcome == RUNNING:
            return ""  # a run in progress writes its notebook when it ends
        return {
            NB_RUNNING: "notebook unfinished",
            NB_UNREADABLE: "notebook unreadable",
            NB_MISSING: "notebook missing",
            NB_NONE: "no notebook",
            NB_OTHER: "notebook overwritten by another run",
        }.get(self.notebook_state, self.notebook_state)

    def order(self) -> tuple[datetime, str, str]:
        return (self.started_at, self.notebook.name if self.notebook else "", self.run_id or "")


def _norm(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def cross_check(record: RunLike, run: dict[str, Any]) -> str | None:
    """What the ``run`` scrap says differently from the row (None: they agree)."""
    wrong = []
    for name, row_value in (
        ("env", record.env),
        ("model", record.model),
        ("step", record.step),
        ("run_id", record.id),
        ("truss_hash", record.truss_hash),
    ):
        scrap_value = _norm(run.get(name))
        if name == "truss_hash" and scrap_value is None and record.outcome is None:
            continue  # an unfinished run's scrap carries no hash yet
        if _norm(row_value) != scrap_value:
            wrong.append(f"{name} {scrap_value!r} (database {row_value!r})")
    return "; ".join(wrong) or None


def local_path_of(path: Path | str) -> Path:
    """Where a notebook location is read: a path as it is, an object URL (remote trail)
    at its copy in the trail's local cache (kept current by zoo_ops.trail.mirror.sync)."""
    return trail_cache_path(str(path)) if is_remote(path) else Path(path)


def _key(path: Path | str) -> str:
    """A path as a comparable string without touching the disk (absolute, normalised)."""
    return os.path.normpath(os.path.abspath(local_path_of(path)))


def _resolve(path: Path | str) -> str:
    try:
        return os.path.realpath(path)
    except OSError:
        return _key(path)


def view_of_record(
    record: RunLike,
    entry: TrailEntry | None,
    *,
    read_outside: bool,
) -> RunView:
    """The view of one row, with ``entry`` its trail notebook when the trail has it."""
    path = local_path_of(record.notebook_path) if record.notebook_path else None
    state = NB_NONE
    if entry is not None:
        path, state = entry.path, entry.state
    elif path is not None:
        if read_outside:
            entry = read_notebook_at(
                path, env=record.env, model=record.model, step=record.step, stamp=record.started_at
            )
            state = entry.state if path.exists() else NB_MISSING
            if state == NB_MISSING:
                entry = None
        else:
            state = NB_UNCHECKED if path.exists() else NB_MISSING
    mismatch = None
    scrap = entry.run if entry is not None else None
    if isinstance(scrap, dict):
        if _norm(scrap.get("run_id")) not in (None, record.id):
            state, entry = NB_OTHER, None
        else:
            mismatch = cross_check(record, scrap)
    return RunView(
        env=record.env,
        model=record.model,
        step=record.step,
        run_id=record.id,
        outcome=effective_outcome(record),
        dry_run=bool(record.dry_run) or record.outcome == DRY_RUN,
        started_at=parse_time(record.started_at) or record.started_at,
        finished_at=parse_time(record.finished_at),
        truss_hash=record.truss_hash,
        operator=record.operator,
        error=record.error,
        notebook=path,
        notebook_state=state,
        entry=entry,
        record=record,
        mismatch=mismatch,
    )


def checked(view: RunView) -> RunView:
    """``view`` with its notebook opened when it is kept outside the trail and was only
    stat'ed (status reads it for the few runs that crashed or were interrupted)."""
    if view.notebook_state != NB_UNCHECKED or view.record is None:
        return view
    return view_of_record(view.record, None, read_outside=True)


def view_of_entry(entry: TrailEntry, *, database: bool) -> RunView:
    """A trail notebook on its own: ``not recorded`` when a ``database`` was read and has
    no row for it; else (no database at hand) what the notebook says."""
    run = entry.run or {}
    started = parse_time(run.get("started_at")) or entry.stamp
    truss = run.get("truss_hash") or entry.scraps.get("truss_hash")
    return RunView(
        env=entry.env,
        model=entry.model,
        step=entry.step,
        run_id=entry.run_id,
        outcome=NOT_RECORDED if database else entry.outcome,
        dry_run=entry.dry_run,
        started_at=started if database else entry.stamp,
        finished_at=parse_time(run.get("finished_at")),
        truss_hash=str(truss) if truss else None,
        operator=str(run.get("operator") or ""),
        error=_norm(run.get("error")),
        notebook=entry.path,
        notebook_state=entry.state,
        entry=entry,
    )


def join_runs(
    records: Iterable[RunLike],
    entries: Sequence[TrailEntry],
    *,
    read_outside: bool = False,
) -> list[RunView]:
    """Every row of ``records`` joined with its notebook, then every trail notebook no row
    claims (``not recorded``); oldest first. ``read_outside``: open notebooks kept outside
    the trail to cross-check them (the gate does; ``status`` only stats them)."""
    by_id: dict[str, TrailEntry] = {}
    by_path: dict[str, TrailEntry] = {}
    for e in entries:
        if e.run_id:
            by_id.setdefault(e.run_id, e)
        by_path[_key(e.path)] = e
    by_real: dict[str, TrailEntry] | None = None  # built only when a symlink is in play
    entry: TrailEntry | None
    claimed: set[int] = set()
    views = []
    for record in records:
        # The row's path names its notebook (one holding another run's id is that run's:
        # see view_of_record); a row without a path (older versions) by its run id. A
        # copy of a run's notebook elsewhere in the trail is claimed by no row.
        if record.notebook_path:
            key = _key(record.notebook_path)
            entry = by_path.get(key)
            if entry is None and _resolve(key) != key:
                if by_real is None:
                    by_real = {_resolve(e.path): e for e in entries}
                entry = by_real.get(_resolve(key))
        else:
            entry = by_id.get(record.id)
        view = view_of_record(record, entry, read_outside=read_outside)
        if view.entry is not None:
            claimed.add(id(view.entry))
        views.append(view)
    for e in entries:
        # An unreadable notebook no row claims is no run: it is listed with its reason
        # (TrailIndex.unreadable), not counted.
        if id(e) not in claimed and e.state != UNREADABLE:
            views.append(view_of_entry(e, database=True))
    return sorted(views, key=RunView.order)


def trail_views(entries: Iterable[TrailEntry]) -> list[RunView]:
    """The trail alone (no database at hand), oldest first by file name. With no record
    to go by, an unreadable notebook is shown as such (``unreadable``, never a success);
    TrailIndex.unreadable says why."""
    return sorted((view_of_entry(e, database=False) for e in entries), key=RunView.order)
