"""Forward migration and its revert: one mechanism, :func:`run_migration`, two directions.

``forward_migrate`` moves every user version on the old zoo version to the new one;
``revert_migration`` builds the forward plan's :meth:`~MigrationPlan.reversed` plan and
runs the same loop. The loop:

1. validate the plan against the platform (same zoo model or its copy, target ACTIVE,
   versions differ and exist);
2. take the per-(environment, model) lock;
3. resume the open migration of the same plan if a crash left one, else open a record;
4. move batches (one transaction each: pick, repoint, journal, commit) until a batch
   moves nothing; a tqdm bar counts rows;
5. read back: nothing the plan covers may be left on the source. If something is (a
   row locked by a user the whole time, a row that arrived meanwhile), the record stays
   open and the step fails: rerunning resumes it. Otherwise the record is closed
   ``done`` and, for a revert, the forward migration gets ``reverted_by``;
6. release the lock.

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

import pandas as pd
from sqlalchemy.engine import Engine

from zoo_ops.environment import Environment
from zoo_ops.errors import NotFound, StepFailed
from zoo_ops.migration import store as sql
from zoo_ops.migration.plan import (
    ABANDONED,
    BACKWARDS,
    DONE,
    FORWARDS,
    MigrationFacts,
    MigrationPlan,
    check_batch_size,
    check_plan,
    check_resumable,
    check_revertible,
    check_scope,
    forward_plan,
)
from zoo_ops.migration.store import MigrationRecord

DEFAULT_BATCH_SIZE = 1000
DEFAULT_LOCK_WAIT_S = 2.0
AFFECTED_CHUNK_ROWS = 50_000
DRY_RUN_SAMPLE_ROWS = 20
# Read-back rounds before giving up on rows still on the source (rows a user held
# locked past our batches); each round sleeps a little and moves what it can.
SWEEP_ROUNDS = 3
SWEEP_PAUSE_S = 0.2

BatchHook = Callable[[int, int], None]
"""Called after each committed batch with (batch number, rows moved). Tests use it to
interrupt a run; a notebook could use it to report."""


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
    engine: Engine | None = field(default=None, repr=False)

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

    def _engine(self) -> Engine:
        if self.engine is None:
            raise StepFailed("this MigrationResult has no database attached; reload it")
        return self.engine

    def iter_affected_frames(self, chunk_rows: int = AFFECTED_CHUNK_ROWS) -> Iterator[pd.DataFrame]:
        """The affected rows in DataFrames of at most ``chunk_rows`` (memory stays flat).

        After a run: every row the migration journaled (with the platform's oracle and
        organization ids). After a dry run: the rows that would move.
        """
        engine = self._engine()
        if self.dry_run or self.migration_id is None:
            chunks = sql.iter_pending_affected(engine, self.plan, chunk_rows)
        else:
            chunks = sql.iter_affected(engine, self.migration_id, chunk_rows)
        for rows in chunks:
            yield pd.DataFrame.from_records(rows, columns=list(sql.AFFECTED_COLUMNS))

    def affected_frame(self) -> pd.DataFrame:
        """Every affected row: oracle_version_id, oracle_id, organization_id,
        from_version_id, to_version_id (ordered by oracle_version_id). For large counts
        prefer :meth:`write_affected_parquet`."""
        frames = list(self.iter_affected_frames())
        if not frames:
            return pd.DataFrame(columns=list(sql.AFFECTED_COLUMNS))
        return pd.concat(frames, ignore_index=True)

    def sample_frame(self, rows: int = DRY_RUN_SAMPLE_ROWS) -> pd.DataFrame:
        """The first ``rows`` affected rows (the dry run's "show")."""
        engine = self._engine()
        if self.dry_run or self.migration_id is None:
            parts = sql.iter_pending_affected(engine, self.plan, rows, limit=rows)
        else:
            parts = sql.iter_affected(engine, self.migration_id, rows)
        first = next(iter(parts), [])
        return pd.DataFrame.from_records(first[:rows], columns=list(sql.AFFECTED_COLUMNS))

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

    schema = pa.schema([(name, pa.string()) for name in sql.AFFECTED_COLUMNS])
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


# --- the mechanism ----------------------------------------------------------------------


def validate_plan(env: Environment, plan: MigrationPlan) -> None:
    """The plan rules over facts read from the platform (BadInput when they fail)."""
    engine = env.platform.engine
    check_plan(
        plan,
        sql.zoo_version_facts(engine, plan.source_version_id),
        sql.zoo_version_facts(engine, plan.target_version_id),
    )


def run_migration(
    env: Environment,
    plan: MigrationPlan,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
    operator: str = "",
    run_id: str | None = None,
    progress: bool = True,
    lock_wait_s: float = DEFAULT_LOCK_WAIT_S,
    on_batch: BatchHook | None = None,
) -> MigrationResult:
    """Run ``plan`` (either direction) to completion, resuming its open record if any."""
    started = time.perf_counter()
    batch_size = check_batch_size(batch_size)
    check_scope(plan.scope)
    validate_plan(env, plan)
    engine = env.platform.engine
    if plan.direction == BACKWARDS and plan.forward_migration_id is not None:
        _check_forward(env, plan.model, plan.forward_migration_id)
    if dry_run:
        would = sql.count_pending(engine, plan)
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
            engine=engine,
        )

    who = operator or _os_user()
    lock = sql.acquire_lock(engine, env.name, plan.model, holder=who, wait_s=lock_wait_s)
    try:
        if plan.direction == BACKWARDS and plan.forward_migration_id is not None:
            # Again under the lock: a revert that finished meanwhile must not run twice.
            _check_forward(env, plan.model, plan.forward_migration_id)
        record, resumed = _open_or_resume(env, plan, who, run_id)
        total = sql.count_pending(engine, plan) if progress else 0
        lock_seconds: list[float] = []
        batch = record.batch_count
        for _round in range(SWEEP_ROUNDS):
            batch = _move_until_empty(
                _Loop(engine, plan, record.id, batch_size, lock, lock_seconds, on_batch),
                batch,
                total,
                progress,
            )
            remaining = sql.count_pending(engine, plan)
            if remaining == 0:
                break
            time.sleep(SWEEP_PAUSE_S)
        if remaining:
            raise StepFailed(
                f"{remaining} user versions still proxy {plan.source_version_id} after "
                f"migration {record.id} (locked or added while it ran); rerun to resume it"
            )
        closed = sql.set_migration_status(engine, record.id, DONE)
        if plan.direction == BACKWARDS and plan.forward_migration_id is not None:
            sql.set_reverted_by(engine, plan.forward_migration_id, record.id)
    finally:
        lock.release()
    return MigrationResult(
        env=env.name,
        plan=plan,
        migration_id=closed.id,
        moved_count=closed.moved_count,
        batch_count=closed.batch_count,
        remaining_on_source=remaining,
        status=DONE,
        dry_run=False,
        resumed=resumed,
        would_move=total,
        seconds=time.perf_counter() - started,
        batch_lock_seconds=lock_seconds,
        engine=engine,
    )


@dataclass(frozen=True)
class _Loop:
    """What every batch of one run shares."""

    engine: Engine
    plan: MigrationPlan
    migration_id: str
    batch_size: int
    lock: sql.MigrationLock
    lock_seconds: list[float]
    on_batch: BatchHook | None


def _move_until_empty(loop: _Loop, batch: int, total: int, progress: bool) -> int:
    """Move batches until one moves nothing; return the last batch number used.

    The recorded scope walks the forward journal with a cursor (the last id moved) so a
    batch never rescans rows it already passed; when the cursor reaches the end, one
    more pass from the start picks up rows that were locked when the cursor went by.
    """
    import warnings

    from tqdm import TqdmWarning

    with warnings.catch_warnings():
        # Without ipywidgets tqdm.auto falls back to its text bar, which is what the
        # executed notebook should keep; its warning about that is noise in the trail.
        warnings.simplefilter("ignore", TqdmWarning)
        from tqdm.auto import tqdm

    after = ""
    plan = loop.plan
    bar = tqdm(
        total=total or None,
        unit="rows",
        desc=f"{plan.direction} {plan.source_version_id}->{plan.target_version_id}",
        disable=not progress,
    )
    try:
        with sql.BatchMover(loop.engine, plan, loop.migration_id) as mover:
            while True:
                loop.lock.check()
                outcome = mover.move(batch + 1, loop.batch_size, after)
                if outcome.moved == 0:
                    if after == "":
                        return batch
                    after = ""
                    continue
                batch += 1
                loop.lock_seconds.append(outcome.lock_seconds)
                bar.update(outcome.moved)
                after = outcome.last_id or ""
                if loop.on_batch is not None:
                    loop.on_batch(batch, outcome.moved)
    finally:
        bar.close()


def _open_or_resume(
    env: Environment, plan: MigrationPlan, operator: str, run_id: str | None
) -> tuple[MigrationRecord, bool]:
    """The open record of this plan (resume), else a new one.

    An open record of another plan is refused -- except the interrupted forward
    migration this plan reverts: it becomes ``abandoned`` so that it is never resumed
    on top of its revert.
    """
    engine = env.platform.engine
    open_record = sql.find_open_migration(engine, env.name, plan.model)
    reverting = plan.direction == BACKWARDS and plan.forward_migration_id is not None
    if open_record is not None and reverting and open_record.id == plan.forward_migration_id:
        sql.set_migration_status(engine, open_record.id, ABANDONED)
        open_record = sql.find_open_migration(engine, env.name, plan.model)
    if open_record is not None and check_resumable(plan, open_record.plan, open_record.id):
        return open_record, True
    return sql.insert_migration(engine, plan, env=env.name, operator=operator, run_id=run_id), False


def _facts(engine: Engine, record: MigrationRecord | None) -> MigrationFacts | None:
    if record is None:
        return None
    revert = sql.get_migration(engine, record.reverted_by) if record.reverted_by else None
    return MigrationFacts(
        id=record.id,
        env=record.env,
        model=record.model,
        direction=record.direction,
        status=record.status,
        source_version_id=record.source_version_id,
        target_version_id=record.target_version_id,
        reverted_by=record.reverted_by,
        reverted_by_status=None if revert is None else revert.status,
    )


def _check_forward(env: Environment, model: str, forward_id: str) -> MigrationRecord:
    engine = env.platform.engine
    forward = sql.get_migration(engine, forward_id)
    check_revertible(_facts(engine, forward), forward_id, env.name, model)
    assert forward is not None  # check_revertible refused None
    return forward


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
    batch_size: int = DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
    operator: str = "",
    run_id: str | None = None,
    progress: bool = True,
    lock_wait_s: float = DEFAULT_LOCK_WAIT_S,
    on_batch: BatchHook | None = None,
) -> MigrationResult:
    """Point every user version on ``old_version_id`` at ``new_version_id``."""
    return run_migration(
        env,
        forward_plan(model, old_version_id, new_version_id),
        batch_size=batch_size,
        dry_run=dry_run,
        operator=operator,
        run_id=run_id,
        progress=progress,
        lock_wait_s=lock_wait_s,
        on_batch=on_batch,
    )


def revert_migration(
    env: Environment,
    model: str,
    *,
    forward_migration_id: str,
    scope: str = "all",
    batch_size: int = DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
    operator: str = "",
    run_id: str | None = None,
    progress: bool = True,
    lock_wait_s: float = DEFAULT_LOCK_WAIT_S,
    on_batch: BatchHook | None = None,
) -> MigrationResult:
    """Undo forward migration ``forward_migration_id``: its reversed plan, same engine.

    ``scope="all"``: every user version on the new version goes to the old one (the
    seed's script; includes applications created after the rollout). ``"recorded"``:
    only the rows the forward run journaled that are still on the new version, each
    back to its recorded previous proxy.
    """
    checked_scope = check_scope(scope)
    check_batch_size(batch_size)
    forward = _check_forward(env, model, forward_migration_id)
    plan = forward.plan.reversed(forward_migration_id=forward.id, scope=checked_scope)
    return run_migration(
        env,
        plan,
        batch_size=batch_size,
        dry_run=dry_run,
        operator=operator,
        run_id=run_id,
        progress=progress,
        lock_wait_s=lock_wait_s,
        on_batch=on_batch,
    )


# --- records, journal, recovery ----------------------------------------------------------


def migration_record(env: Environment, migration_id: str) -> MigrationRecord:
    record = sql.get_migration(env.platform.engine, migration_id)
    if record is None:
        raise NotFound(f"no migration with id {migration_id!r}; check the migration_id")
    return record


def latest_migration(
    env: Environment, model: str, direction: str = FORWARDS, status: str | None = DONE
) -> MigrationRecord | None:
    """The latest migration of ``model`` in ``env`` in ``direction`` (``status=None``: any)."""
    return sql.latest_migration(env.platform.engine, env.name, model, direction, status)


def journal_for(env: Environment, migration_id: str) -> pd.DataFrame:
    """The migration's journal: migration_id, oracle_version_id, previous_proxy,
    new_proxy, batch (ordered by oracle_version_id)."""
    frames = [
        pd.DataFrame.from_records(rows, columns=list(sql.JOURNAL_COLUMNS))
        for rows in sql.iter_journal(env.platform.engine, migration_id, AFFECTED_CHUNK_ROWS)
    ]
    if not frames:
        return pd.DataFrame(columns=list(sql.JOURNAL_COLUMNS))
    return pd.concat(frames, ignore_index=True)


def journal_digest(env: Environment, migration_id: str) -> tuple[int, str]:
    """(rows, sha256) over the journal's ``oracle_version_id<TAB>previous<TAB>new`` lines in
    key order: a cheap cross-check of a recorded ``affected`` table against the database."""
    digest = hashlib.sha256()
    rows = 0
    for chunk in sql.iter_journal(env.platform.engine, migration_id, AFFECTED_CHUNK_ROWS):
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
    sql.set_reverted_by(env.platform.engine, forward_migration_id, revert_migration_id)


def release_lock(env: Environment, model: str) -> str:
    """Documented recovery for a stuck migration lock of ``model`` in ``env``.

    SQLite: deletes the lock row. PostgreSQL: terminates the session holding the
    advisory lock. Only for a holder whose process is gone; returns what it did.
    """
    return sql.force_release_lock(env.platform.engine, env.name, model)


def result_for(env: Environment, migration_id: str) -> MigrationResult:
    """A MigrationResult for a migration recorded earlier (e.g. to re-read its journal)."""
    record = migration_record(env, migration_id)
    engine = env.platform.engine
    remaining = sql.count_pending(engine, record.plan) if record.status == DONE else -1
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
        engine=engine,
    )
