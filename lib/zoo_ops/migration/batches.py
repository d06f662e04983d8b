"""A migration batch: one transaction, server-side, on PostgreSQL or SQLite.

A batch is one transaction that picks up to ``batch_size`` user versions still on the
source, points them at the target and writes one journal row each (migration id, user
version id, previous proxy, new proxy, batch number), then commits. The work is done
server-side: no user version id travels through Python, because at a million rows the
round trips and the per-row parameter binding cost more than the writes themselves.

- PostgreSQL: one statement of data-modifying CTEs. ``picked`` locks the rows
  (``FOR UPDATE SKIP LOCKED``: a row a user is editing right now is left for a later
  batch instead of blocking the migration), ``moved`` updates them by ``ctid`` (already
  locked by us, so the tuple cannot move under us; no second primary-key descent),
  ``journaled`` appends the journal rows in id order (sorted keys make the B-tree
  inserts walk the index left to right instead of hopping between random pages) and
  ``counted`` bumps the migration record's counters in the same transaction.
- SQLite: ``INSERT INTO journal SELECT ... LIMIT n`` then ``UPDATE ... WHERE id IN
  (this batch's journal rows, found by rowid)`` in one ``BEGIN IMMEDIATE`` transaction. SQLite has one
  writer at a time, so there is nothing to skip.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from zoo_ops.adapters.platform.engine import is_postgres
from zoo_ops.errors import StepFailed
from zoo_ops.migration.plan import (
    SCOPE_RECORDED,
    MigrationPlan,
)

_PG_JOURNAL_AND_COUNT = """), journaled AS (
    INSERT INTO zoo_ops_migration_journal
        (migration_id, oracle_version_id, previous_proxy, new_proxy, batch)
    SELECT :mid, id, previous, new_proxy, :batch FROM moved ORDER BY id
    RETURNING oracle_version_id
), counted AS (
    UPDATE zoo_ops_migration
    SET moved_count = moved_count + (SELECT count(*) FROM journaled), batch_count = :batch
    WHERE id = :mid AND EXISTS (SELECT 1 FROM journaled)
)
SELECT count(*), max(oracle_version_id) FROM journaled
"""


_PG_MOVE_ALL = (
    """
WITH picked AS (
    SELECT ctid AS tid, id, proxy_model_version_id AS previous
    FROM oracles_oracleversion
    WHERE proxy_model_version_id = :source
    LIMIT :n
    FOR UPDATE SKIP LOCKED
), moved AS (
    UPDATE oracles_oracleversion AS v SET proxy_model_version_id = :target
    FROM picked WHERE v.ctid = picked.tid
    RETURNING v.id, picked.previous, v.proxy_model_version_id AS new_proxy
"""
    + _PG_JOURNAL_AND_COUNT
)


_PG_MOVE_RECORDED = (
    """
WITH picked AS (
    SELECT v.ctid AS tid, v.id, v.proxy_model_version_id AS previous, j.previous_proxy AS restore
    FROM zoo_ops_migration_journal AS j
    JOIN oracles_oracleversion AS v ON v.id = j.oracle_version_id
    WHERE j.migration_id = :fwd AND j.oracle_version_id > :after
      AND v.proxy_model_version_id = :source
    ORDER BY j.oracle_version_id
    LIMIT :n
    FOR UPDATE OF v SKIP LOCKED
), moved AS (
    UPDATE oracles_oracleversion AS v SET proxy_model_version_id = picked.restore
    FROM picked WHERE v.ctid = picked.tid
    RETURNING v.id, picked.previous, v.proxy_model_version_id AS new_proxy
"""
    + _PG_JOURNAL_AND_COUNT
)


_SQLITE_JOURNAL_ALL = """
INSERT INTO zoo_ops_migration_journal
    (migration_id, oracle_version_id, previous_proxy, new_proxy, batch)
SELECT :mid, id, proxy_model_version_id, :target, :batch
FROM oracles_oracleversion
WHERE proxy_model_version_id = :source
LIMIT :n
"""


_SQLITE_JOURNAL_RECORDED = """
INSERT INTO zoo_ops_migration_journal
    (migration_id, oracle_version_id, previous_proxy, new_proxy, batch)
SELECT :mid, v.id, v.proxy_model_version_id, j.previous_proxy, :batch
FROM zoo_ops_migration_journal AS j
JOIN oracles_oracleversion AS v ON v.id = j.oracle_version_id
WHERE j.migration_id = :fwd AND j.oracle_version_id > :after
  AND v.proxy_model_version_id = :source
ORDER BY j.oracle_version_id
LIMIT :n
"""


_SQLITE_ROWID = "SELECT coalesce(max(rowid), 0) FROM zoo_ops_migration_journal"


_SQLITE_APPLY = """
UPDATE oracles_oracleversion
SET proxy_model_version_id = (
    SELECT r.new_proxy FROM zoo_ops_migration_journal AS r
    WHERE r.migration_id = :mid AND r.oracle_version_id = oracles_oracleversion.id
)
WHERE id IN (SELECT oracle_version_id FROM zoo_ops_migration_journal WHERE rowid > :rowid)
"""


_SQLITE_BATCH_TAIL = """
SELECT count(*), max(oracle_version_id) FROM zoo_ops_migration_journal WHERE rowid > :rowid
"""


@dataclass(frozen=True)
class BatchOutcome:
    moved: int
    last_id: str | None  # the highest user version id moved: the recorded scope's cursor
    lock_seconds: float  # from the batch's first statement to its commit


class BatchMover:
    """Moves batches for one migration over one connection held for the whole loop.

    One connection, not a pool checkout per batch: the pool's pre-ping would add a
    round trip to every batch.
    """

    def __init__(self, engine: Engine, plan: MigrationPlan, migration_id: str) -> None:
        self.engine = engine
        self.plan = plan
        self.migration_id = migration_id
        self.postgres = is_postgres(engine)
        self.conn: Connection | None = None

    def __enter__(self) -> BatchMover:
        self.conn = self.engine.connect()
        if self.postgres:
            # Pick rows through the proxy index even when most of the table is on the
            # source: a sequential scan with LIMIT restarts at the table's head every
            # batch and re-reads every page already migrated (quadratic), and a bitmap
            # scan builds the whole source set before returning the first row.
            self.conn.exec_driver_sql("SET enable_seqscan = off")
            self.conn.exec_driver_sql("SET enable_bitmapscan = off")
            self.conn.commit()
        return self

    def __exit__(self, *exc: object) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        try:
            if conn.in_transaction():
                conn.rollback()
            if self.postgres:
                conn.exec_driver_sql("RESET enable_seqscan")
                conn.exec_driver_sql("RESET enable_bitmapscan")
                conn.commit()
        except Exception:  # noqa: BLE001 - a broken connection must not go back to the pool
            conn.invalidate()
        finally:
            conn.close()

    def move(self, batch: int, batch_size: int, after: str = "") -> BatchOutcome:
        """Move one batch in one transaction; commit; say how many rows moved."""
        if self.conn is None:
            raise RuntimeError("BatchMover used outside its with block")
        conn = self.conn
        recorded = self.plan.scope == SCOPE_RECORDED
        params: dict[str, Any] = {
            "mid": self.migration_id,
            "source": self.plan.source_version_id,
            "target": self.plan.target_version_id,
            "fwd": self.plan.forward_migration_id,
            "after": after,
            "n": batch_size,
            "batch": batch,
        }
        started = time.perf_counter()
        try:
            if self.postgres:
                sql = _PG_MOVE_RECORDED if recorded else _PG_MOVE_ALL
                moved, last_id = conn.execute(text(sql), params).one()
            else:
                sql = _SQLITE_JOURNAL_RECORDED if recorded else _SQLITE_JOURNAL_ALL
                params["rowid"] = conn.execute(text(_SQLITE_ROWID)).scalar_one()
                conn.execute(text(sql), params)
                conn.execute(text(_SQLITE_APPLY), params)
                moved, last_id = conn.execute(text(_SQLITE_BATCH_TAIL), params).one()
                if moved:
                    conn.execute(
                        text(
                            "UPDATE zoo_ops_migration SET moved_count = moved_count + :moved, "
                            "batch_count = :batch WHERE id = :mid"
                        ),
                        {**params, "moved": moved},
                    )
            conn.commit()
        except BaseException as exc:
            if conn.in_transaction():
                try:
                    conn.rollback()
                except Exception:  # noqa: BLE001 - the original error is what matters
                    pass
            if isinstance(exc, DBAPIError):
                # A lost connection, a terminated backend, a deadlock: the batch rolled
                # back as a whole, the journal agrees with the table, a rerun resumes.
                first_line = str(exc.orig).strip().splitlines()[0] if exc.orig else ""
                raise StepFailed(
                    f"batch {batch} of migration {self.migration_id} failed and was rolled "
                    f"back ({type(exc.orig).__name__}: {first_line}); rerun to resume it"
                ) from exc
            raise
        return BatchOutcome(int(moved), last_id, time.perf_counter() - started)
