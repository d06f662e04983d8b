"""Forward migration and its revert: one mechanism, :func:`run_migration`, two directions.

A :class:`~zoo_ops.migration.plan.MigrationRequest` says what is wanted: forwards (every
user version on the old zoo version goes to the new one) or backwards (undo a forward
migration, ``scope`` all or recorded). :func:`forward_migrate` and
:func:`revert_migration` only build the request; :func:`run_migration` runs either,
straight through, in three phases:

1. **facts** -- ``env.migrations.facts(request)``: one read of everything a decision
   needs (the versions named, the forward migration and its revert, open migrations);
2. **decide** -- :func:`~zoo_ops.migration.plan.check_request` (the plan and its rules;
   before any lock, so a refused request touches nothing) and, under the per-(environment,
   model) lock, on facts read again there, :func:`~zoo_ops.migration.plan.decide`
   (resume the open record of this plan, abandon the interrupted forward migration a
   revert replaces, or open a new record; refuse another open plan);
3. **act** -- the store opens or resumes the record, moves batches (one transaction each:
   pick, repoint, journal, commit) until a batch moves nothing, reads back (rows still
   on the source -- locked by a user, or added meanwhile -- get a few more sweep rounds,
   then the step fails with the record left open: rerunning resumes it), and closes the
   record ``done`` (a revert also sets ``reverted_by`` on its forward migration).

The engine reports progress through a callback (Django's executor ``progress_callback``
is the model): :class:`MigrationProgress` events ``start``, ``batch``, ``end``. It
draws nothing; the runbook steps render the events as a tqdm bar.

A crash anywhere leaves committed batches journaled and the record open; the lock dies
with the process (PostgreSQL) or is taken over from a dead pid (SQLite).
"""

from __future__ import annotations

import getpass
import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple, Protocol

import pandas as pd
from tenacity import Retrying, retry_if_result, stop_after_attempt, wait_fixed

from zoo_ops.errors import NotFound, StepFailed
from zoo_ops.lifecycle import check_stop
from zoo_ops.migration.plan import (
    DONE,
    FORWARDS,
    MigrationPlan,
    MigrationRecord,
    MigrationRequest,
    check_request,
    check_scope,
    decide,
    forward_request,
    revert_request,
)
from zoo_ops.migration.sizing import AUTO, DEFAULT_LOCK_BUDGET_MS, BatchSize, BatchSizing
from zoo_ops.migration.store import (
    AFFECTED_COLUMNS,
    JOURNAL_COLUMNS,
    MigrationLock,
    MigrationStore,
)


class Environment(Protocol):
    """What the engine needs of an environment (:class:`zoo_ops.environment.Environment`
    has it): its name, which keys locks and records, and its migration store. The engine
    depends on this, not on the wiring, so the wiring can hand the engine its store."""

    @property
    def name(self) -> str: ...

    @property
    def migrations(self) -> MigrationStore: ...


__all__ = [
    "MigrationProgress",
    "MigrationRecord",
    "MigrationResult",
    "ProgressCallback",
    "forward_migrate",
    "latest_migration",
    "migrations_of_run",
    "revert_migration",
    "run_migration",
]

DEFAULT_BATCH_SIZE: BatchSize = AUTO
DEFAULT_LOCK_WAIT_S = 2.0
AFFECTED_CHUNK_ROWS = 50_000
DRY_RUN_SAMPLE_ROWS = 20
# Read-back rounds before giving up on rows still on the source (rows a user held
# locked past our batches); between rounds a short pause, then move what it can.
SWEEP_ROUNDS = 3
SWEEP_PAUSE_S = 0.2


@dataclass(frozen=True)
class MigrationProgress:
    """One progress event of a run.

    ``start``: the record is open, ``total`` rows are pending. ``batch``: batch number
    ``batch`` committed ``moved`` rows. ``end``: the batches are over (also when the run
    fails: a renderer closes its bar on it).
    """

    kind: Literal["start", "batch", "end"]
    plan: MigrationPlan
    migration_id: str
    total: int = 0
    batch: int = 0
    moved: int = 0


ProgressCallback = Callable[[MigrationProgress], None]


class BatchTiming(NamedTuple):
    """One committed batch of a run, for the migration-over-time plot: seconds since the
    run's batches began, rows moved by this run so far, and the batch's lock time (its
    first statement to its commit)."""

    seconds: float
    moved_total: int
    lock_seconds: float


StopCheck = Callable[[], None]
"""Called before every batch (between transactions, never inside one): raises -- by default
:class:`~zoo_ops.errors.Interrupted` from :func:`zoo_ops.lifecycle.check_stop` -- when the
run must stop, so a stopped run never starts another batch."""

BatchHook = Callable[[int, int], None]
"""``on_batch(batch number, rows moved)`` after each committed batch: a shorthand for a
progress callback that only looks at ``batch`` events (tests use it to interrupt a run)."""


def _callback(
    progress: ProgressCallback | Literal[False] | None, on_batch: BatchHook | None
) -> ProgressCallback | None:
    """One callback from ``progress`` (False, the old spelling, is None) and ``on_batch``."""
    render = progress if callable(progress) else None
    if on_batch is None:
        return render

    def both(event: MigrationProgress) -> None:
        if render is not None:
            render(event)
        if event.kind == "batch":
            on_batch(event.batch, event.moved)

    return both


@dataclass
class MigrationResult:
    """What a migration (or its dry run) did; ``affected_frame`` reads the journal."""

    env: str
    plan: MigrationPlan
    migration_id: str | None
    moved_count: int
    batch_count: int
    remaining_on_source: int
    status: str  # done | dry_run
    dry_run: bool
    resumed: bool
    would_move: int  # dry run: rows that would move; otherwise rows on the source at start
    seconds: float
    batch_lock_seconds: list[float] = field(default_factory=list, repr=False)
    # One BatchTiming per committed batch of this run (empty for a dry run): the plots' data.
    batch_timings: list[BatchTiming] = field(default_factory=list, repr=False)
    store: MigrationStore | None = field(default=None, repr=False)
    # The run whose migration this one continued (resumed open, or adopted finished).
    adopted_run_id: str | None = None

    @property
    def mapping(self) -> dict[str, str]:
        """``{source: target}``: ``{old: new}`` forwards, ``{new: old}`` backwards."""
        return self.plan.mapping

    @property
    def source_version_id(self) -> str:
        return self.plan.source_version_id

    @property
    def target_version_id(self) -> str:
        return self.plan.target_version_id

    def _store(self) -> MigrationStore:
        if self.store is None:
            raise StepFailed("this MigrationResult has no database attached; reload it")
        return self.store

    def iter_affected_frames(self, chunk_rows: int = AFFECTED_CHUNK_ROWS) -> Iterator[pd.DataFrame]:
        """The affected rows in DataFrames of at most ``chunk_rows`` (memory stays flat).

        After a run: every row the migration journaled (with the platform's oracle and
        organization ids). After a dry run: the rows that would move.
        """
        store = self._store()
        if self.dry_run or self.migration_id is None:
            chunks = store.iter_pending_affected(self.plan, chunk_rows)
        else:
            chunks = store.iter_affected(self.migration_id, chunk_rows)
        for rows in chunks:
            yield pd.DataFrame.from_records(rows, columns=list(AFFECTED_COLUMNS))

    def affected_frame(self) -> pd.DataFrame:
        """Every affected row: oracle_version_id, oracle_id, organization_id,
        from_version_id, to_version_id (ordered by oracle_version_id). For large counts
        prefer :meth:`write_affected_parquet`."""
        frames = list(self.iter_affected_frames())
        if not frames:
            return pd.DataFrame(columns=list(AFFECTED_COLUMNS))
        return pd.concat(frames, ignore_index=True)

    def sample_frame(self, rows: int = DRY_RUN_SAMPLE_ROWS) -> pd.DataFrame:
        """The first ``rows`` affected rows (the dry run's "show")."""
        store = self._store()
        if self.dry_run or self.migration_id is None:
            parts = store.iter_pending_affected(self.plan, rows, limit=rows)
        else:
            parts = store.iter_affected(self.migration_id, rows)
        first = next(iter(parts), [])
        return pd.DataFrame.from_records(first[:rows], columns=list(AFFECTED_COLUMNS))

    def write_affected_parquet(
        self, path: str | Path, chunk_rows: int = AFFECTED_CHUNK_ROWS
    ) -> tuple[int, str]:
        """Stream the affected rows into a parquet file; return (rows, sha256 of the file)."""
        return write_affected_parquet(self.iter_affected_frames(chunk_rows), Path(path))

    def to_frame(self) -> pd.DataFrame:
        """One summary row: what moved where, how much, and what is left."""
        return pd.DataFrame(
            [
                {
                    "migration_id": self.migration_id,
                    "model": self.plan.model,
                    "direction": self.plan.direction,
                    "scope": self.plan.scope,
                    "source_version_id": self.source_version_id,
                    "target_version_id": self.target_version_id,
                    "moved_count": self.moved_count,
                    "batch_count": self.batch_count,
                    "remaining_on_source": self.remaining_on_source,
                    "status": self.status,
                    "resumed": self.resumed,
                    "adopted_run_id": self.adopted_run_id or "",
                    "seconds": round(self.seconds, 3),
                }
            ]
        )


def write_affected_parquet(frames: Iterator[pd.DataFrame], path: Path) -> tuple[int, str]:
    """Write DataFrames (AFFECTED_COLUMNS, all strings) chunk by chunk; (rows, sha256).

    A ParquetWriter appends one row group per chunk, so memory is one chunk whatever the
    row count; the sha256 is of the finished file, for the scrap that names it.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(name, pa.string()) for name in AFFECTED_COLUMNS])
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with pq.ParquetWriter(str(path), schema) as writer:
        for frame in frames:
            writer.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False))
            rows += len(frame)
        if rows == 0:
            writer.write_table(schema.empty_table())
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return rows, digest.hexdigest()


# --- the mechanism: facts, decide, act ------------------------------------------------------


def run_migration(
    env: Environment,
    request: MigrationRequest,
    *,
    batch_size: BatchSize = DEFAULT_BATCH_SIZE,
    lock_budget_ms: int = DEFAULT_LOCK_BUDGET_MS,
    dry_run: bool = False,
    operator: str = "",
    run_id: str | None = None,
    progress: ProgressCallback | None = None,
    lock_wait_s: float = DEFAULT_LOCK_WAIT_S,
    should_stop: StopCheck = check_stop,
) -> MigrationResult:
    """Run ``request`` (either direction) to completion, resuming its open record if any.

    ``batch_size``: rows a transaction, or ``"auto"`` (the default): each batch sized from
    the previous ones' lock times to stay under ``lock_budget_ms``
    (:class:`~zoo_ops.migration.sizing.BatchSizing`).

    ``should_stop`` is called before every batch; whatever it raises ends the run there
    (the record stays open, every committed batch journaled: a rerun resumes it).
    """
    started = time.perf_counter()
    store = env.migrations
    check_scope(request.scope)
    sizing = BatchSizing.of(batch_size, lock_budget_ms)
    # Decide before the lock: a refused request takes no lock and writes nothing.
    plan = check_request(request, store.facts(request))
    if dry_run:
        would = store.count_pending(plan)
        return MigrationResult(
            env=env.name,
            plan=plan,
            migration_id=None,
            moved_count=0,
            batch_count=0,
            remaining_on_source=would,
            status="dry_run",
            dry_run=True,
            resumed=False,
            would_move=would,
            seconds=time.perf_counter() - started,
            store=store,
        )
    who = operator or _os_user()
    with store.acquire_lock(env.name, request.model, holder=who, wait_s=lock_wait_s) as lock:
        # Again under the lock, on fresh facts: a migration that finished or opened
        # meanwhile (a revert that ran, a crashed run to resume) changes the decision.
        decision = decide(request, store.facts(request))
        record, resumed = store.begin(decision, env=env.name, operator=who, run_id=run_id)
        sizing = sizing.limited_to(store.max_auto_batch_size)
        run = _Run(store, lock, decision.plan, record, sizing, progress, should_stop)
        remaining = run.sweep()
        if remaining:
            raise StepFailed(
                f"{remaining} user versions still proxy {decision.plan.source_version_id} "
                f"after migration {record.id} (locked or added while it ran); rerun to resume it"
            )
        closed = store.finish(record.id, reverts=decision.reverts)
    return MigrationResult(
        env=env.name,
        plan=decision.plan,
        migration_id=closed.id,
        moved_count=closed.moved_count,
        batch_count=closed.batch_count,
        remaining_on_source=remaining,
        status=DONE,
        dry_run=False,
        resumed=resumed,
        would_move=run.total,
        seconds=time.perf_counter() - started,
        batch_lock_seconds=run.lock_seconds,
        batch_timings=run.timings,
        store=store,
        adopted_run_id=_adopted(decision.adopted_run_id, run_id),
    )


def _adopted(previous_run_id: str | None, run_id: str | None) -> str | None:
    """The other run whose record this run continued, if any."""
    return previous_run_id if previous_run_id and previous_run_id != run_id else None


class _Run:
    """The act phase of one run: batches until nothing moves, then read back."""

    def __init__(
        self,
        store: MigrationStore,
        lock: MigrationLock,
        plan: MigrationPlan,
        record: MigrationRecord,
        sizing: BatchSizing,
        progress: ProgressCallback | None,
        should_stop: StopCheck = check_stop,
    ) -> None:
        self.store = store
        self.should_stop = should_stop
        self.lock = lock
        self.plan = plan
        self.migration_id = record.id
        self.batch = record.batch_count  # a resumed run numbers on from its last batch
        self.sizing = sizing
        self.progress = progress
        self.total = 0
        self.lock_seconds: list[float] = []
        self.timings: list[BatchTiming] = []
        self.started = time.perf_counter()
        self.moved = 0

    def _emit(self, kind: Literal["start", "batch", "end"], moved: int = 0) -> None:
        if self.progress is not None:
            self.progress(
                MigrationProgress(kind, self.plan, self.migration_id, self.total, self.batch, moved)
            )

    def sweep(self) -> int:
        """Move until empty, read back, and again (up to SWEEP_ROUNDS, paced) while rows
        remain on the source; return how many remain."""
        self.total = self.store.count_pending(self.plan)
        self._emit("start")
        rounds = Retrying(
            stop=stop_after_attempt(SWEEP_ROUNDS),
            wait=wait_fixed(SWEEP_PAUSE_S),
            retry=retry_if_result(lambda remaining: remaining > 0),
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else -1,
        )
        try:
            return int(rounds(self._round))
        finally:
            self._emit("end")

    def _round(self) -> int:
        """Move batches until one moves nothing; return the rows still pending.

        The recorded scope walks the forward journal with a cursor (a forward batch
        number) so a batch never rescans rows it already passed; when the cursor reaches the
        end, one more pass from the start picks up rows that were locked when the
        cursor went by.
        """
        after = 0
        with self.store.mover(self.plan, self.migration_id) as mover:
            while True:
                # Between transactions: a stop asked for now ends the run before this batch.
                self.should_stop()
                self.lock.check()
                outcome = mover.move(self.batch + 1, self.sizing.size, after)
                if outcome.moved == 0:
                    if after == 0:
                        break
                    after = 0
                    continue
                self.batch += 1
                self.sizing = self.sizing.after(outcome.moved, outcome.lock_seconds)
                self.lock_seconds.append(outcome.lock_seconds)
                self.moved += outcome.moved
                self.timings.append(
                    BatchTiming(
                        time.perf_counter() - self.started, self.moved, outcome.lock_seconds
                    )
                )
                after = outcome.cursor
                self._emit("batch", outcome.moved)
        return self.store.count_pending(self.plan)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name is not worth failing a migration
        return "unknown"


# --- the two directions -------------------------------------------------------------------


def forward_migrate(
    env: Environment,
    model: str,
    *,
    old_version_id: str,
    new_version_id: str,
    batch_size: BatchSize = DEFAULT_BATCH_SIZE,
    lock_budget_ms: int = DEFAULT_LOCK_BUDGET_MS,
    dry_run: bool = False,
    operator: str = "",
    run_id: str | None = None,
    progress: ProgressCallback | Literal[False] | None = None,
    lock_wait_s: float = DEFAULT_LOCK_WAIT_S,
    on_batch: BatchHook | None = None,
    should_stop: StopCheck = check_stop,
    adopt: bool = False,
) -> MigrationResult:
    """Point every user version on ``old_version_id`` at ``new_version_id``.

    ``adopt``: continue the latest finished forward migration of the same versions whose
    run did not succeed (:func:`zoo_ops.migration.plan.adoptable`) instead of opening a
    new one; an open one is always resumed.
    """
    return run_migration(
        env,
        forward_request(env.name, model, old_version_id, new_version_id, adopt=adopt),
        batch_size=batch_size,
        lock_budget_ms=lock_budget_ms,
        dry_run=dry_run,
        operator=operator,
        run_id=run_id,
        progress=_callback(progress, on_batch),
        lock_wait_s=lock_wait_s,
        should_stop=should_stop,
    )


def revert_migration(
    env: Environment,
    model: str,
    *,
    forward_migration_id: str,
    scope: str = "all",
    batch_size: BatchSize = DEFAULT_BATCH_SIZE,
    lock_budget_ms: int = DEFAULT_LOCK_BUDGET_MS,
    dry_run: bool = False,
    operator: str = "",
    run_id: str | None = None,
    progress: ProgressCallback | Literal[False] | None = None,
    lock_wait_s: float = DEFAULT_LOCK_WAIT_S,
    on_batch: BatchHook | None = None,
    should_stop: StopCheck = check_stop,
) -> MigrationResult:
    """Undo forward migration ``forward_migration_id``: its reversed plan, same engine.

    ``scope="all"``: every user version on the new version goes to the old one (the
    seed's script; includes applications created after the rollout). ``"recorded"``:
    only the rows the forward run journaled that are still on the new version, each
    back to its recorded previous proxy.
    """
    return run_migration(
        env,
        revert_request(env.name, model, forward_migration_id, scope),
        batch_size=batch_size,
        lock_budget_ms=lock_budget_ms,
        dry_run=dry_run,
        operator=operator,
        run_id=run_id,
        progress=_callback(progress, on_batch),
        lock_wait_s=lock_wait_s,
        should_stop=should_stop,
    )


# --- records, journal, recovery ----------------------------------------------------------


def migration_record(env: Environment, migration_id: str) -> MigrationRecord:
    record = env.migrations.get(migration_id)
    if record is None:
        raise NotFound(f"no migration with id {migration_id!r}; check the migration_id")
    return record


def migrations_of_run(
    env: Environment, run_id: str, direction: str | None = FORWARDS
) -> list[MigrationRecord]:
    """The migrations run ``run_id`` started (newest first); forwards unless told."""
    return env.migrations.for_run(run_id, direction)


def latest_migration(
    env: Environment, model: str, direction: str = FORWARDS, status: str | None = DONE
) -> MigrationRecord | None:
    """The latest migration of ``model`` in ``env`` in ``direction`` (``status=None``: any)."""
    return env.migrations.latest(env.name, model, direction, status)


def journal_for(env: Environment, migration_id: str) -> pd.DataFrame:
    """The migration's journal: migration_id, oracle_version_id, previous_proxy,
    new_proxy, batch (ordered by oracle_version_id)."""
    frames = [
        pd.DataFrame.from_records(rows, columns=list(JOURNAL_COLUMNS))
        for rows in env.migrations.iter_journal(migration_id, AFFECTED_CHUNK_ROWS)
    ]
    if not frames:
        return pd.DataFrame(columns=list(JOURNAL_COLUMNS))
    return pd.concat(frames, ignore_index=True)


def journal_digest(env: Environment, migration_id: str) -> tuple[int, str]:
    """(rows, sha256) over the journal's ``oracle_version_id<TAB>previous<TAB>new`` lines in
    key order: a cheap cross-check of a recorded ``affected`` table against the database."""
    digest = hashlib.sha256()
    rows = 0
    for chunk in env.migrations.iter_journal(migration_id, AFFECTED_CHUNK_ROWS):
        for _mid, ovid, previous, new, _batch in chunk:
            digest.update(f"{ovid}\t{previous or ''}\t{new or ''}\n".encode())
        rows += len(chunk)
    return rows, digest.hexdigest()


def affected_digest(frame: pd.DataFrame) -> tuple[int, str]:
    """:func:`journal_digest`'s digest computed from an ``affected`` DataFrame."""
    digest = hashlib.sha256()
    ordered = frame.sort_values("oracle_version_id", kind="stable")
    for ovid, previous, new in ordered[
        ["oracle_version_id", "from_version_id", "to_version_id"]
    ].itertuples(index=False, name=None):
        digest.update(f"{ovid}\t{previous or ''}\t{new or ''}\n".encode())
    return len(ordered), digest.hexdigest()


def mark_reverted(env: Environment, forward_migration_id: str, revert_migration_id: str) -> None:
    """Record on the forward migration which revert undid it (the engine does this itself
    when a revert completes; this is for repairs)."""
    migration_record(env, forward_migration_id)
    migration_record(env, revert_migration_id)
    env.migrations.set_reverted_by(forward_migration_id, revert_migration_id)


def release_lock(env: Environment, model: str) -> str:
    """Documented recovery for a stuck migration lock of ``model`` in ``env``.

    SQLite: deletes the lock row. PostgreSQL: terminates the session holding the
    advisory lock. Only for a holder whose process is gone; returns what it did.
    """
    return env.migrations.force_release_lock(env.name, model)


def result_for(env: Environment, migration_id: str) -> MigrationResult:
    """A MigrationResult for a migration recorded earlier (e.g. to re-read its journal)."""
    record = migration_record(env, migration_id)
    store = env.migrations
    remaining = store.count_pending(record.plan) if record.status == DONE else -1
    return MigrationResult(
        env=env.name,
        plan=record.plan,
        migration_id=record.id,
        moved_count=record.moved_count,
        batch_count=record.batch_count,
        remaining_on_source=remaining,
        status=record.status,
        dry_run=False,
        resumed=False,
        would_move=record.moved_count,
        seconds=0.0,
        store=store,
    )
