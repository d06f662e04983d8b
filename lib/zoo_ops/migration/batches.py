"""A migration batch: one transaction, server-side, on PostgreSQL or SQLite.

A batch is one transaction that picks up to ``batch_size`` user versions still on the
source, points them at the target, writes **one** journal row for the whole batch
(``zoo_ops_migration_batch``: migration id, batch number, and three parallel lists --
user version ids, previous proxies, new proxies) and bumps the migration record's
counters, then commits. A batch is journaled exactly when it is committed. The
per-row journal is the view ``zoo_ops_migration_journal`` over those lists.

The work is done server-side: no user version id travels through Python on
PostgreSQL, because at a million rows the round trips and per-row parameter binding
cost more than the writes themselves.

- PostgreSQL: one statement of data-modifying CTEs. ``picked`` locks the rows
  (``FOR UPDATE SKIP LOCKED``: a row a user is editing right now is left for a later
  batch instead of blocking the migration), ``moved`` updates them by ``ctid`` (already
  locked by us, so the tuple cannot move under us; no second primary-key descent),
  ``journaled`` aggregates the moved rows into the batch's one journal row and
  ``counted`` bumps the migration record's counters.
- SQLite (one writer at a time, under ``BEGIN IMMEDIATE``: nothing to skip): the
  batch's picks aggregated into JSON lists (and id/new-proxy pairs), the batch row
  inserted, the user versions updated from the pairs (``UPDATE ... FROM json_each``), the
  update's row count checked against the row's size, the counters bumped.

The recorded scope walks the forward migration's batch rows in batch order from a
cursor (a forward batch number): each batch resumes at the forward batch its
predecessor stopped in, so no batch rescans what earlier ones passed.
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

# Each pick yields (ctid on PostgreSQL, id, previous proxy, new proxy, forward batch).
_PG_PICK_ALL = """
    SELECT ctid AS tid, id, proxy_model_version_id AS previous, CAST(:target AS varchar(32))
        AS restore, 0 AS fwd_batch
    FROM oracles_oracleversion
    WHERE proxy_model_version_id = :source
    LIMIT :n
    FOR UPDATE SKIP LOCKED
"""

# The forward migration's batch rows in batch order (its primary key), unnested, joined
# to the user versions still on the source; each gets back its recorded previous proxy.
_PG_PICK_RECORDED = """
    SELECT v.ctid AS tid, v.id, v.proxy_model_version_id AS previous, f.restore,
        f.batch AS fwd_batch
    FROM (
        SELECT b.batch, u.id, u.restore
        FROM zoo_ops_migration_batch AS b
        CROSS JOIN LATERAL unnest(b.oracle_version_ids, b.previous_proxies) AS u(id, restore)
        WHERE b.migration_id = :fwd AND b.batch > :after
        ORDER BY b.batch
    ) AS f
    JOIN oracles_oracleversion AS v ON v.id = f.id
    WHERE v.proxy_model_version_id = :source
    ORDER BY f.batch
    LIMIT :n
    FOR UPDATE OF v SKIP LOCKED
"""

_PG_MOVE = """
WITH picked AS ({pick}
), moved AS (
    UPDATE oracles_oracleversion AS v SET proxy_model_version_id = picked.restore
    FROM picked WHERE v.ctid = picked.tid
    RETURNING v.id, picked.previous, v.proxy_model_version_id AS new_proxy, picked.fwd_batch
), journaled AS (
    INSERT INTO zoo_ops_migration_batch
        (migration_id, batch, size, oracle_version_ids, previous_proxies, new_proxies)
    SELECT :mid, :batch, count(*), array_agg(id), array_agg(previous), array_agg(new_proxy)
    FROM moved
    HAVING count(*) > 0
    RETURNING size
), counted AS (
    UPDATE zoo_ops_migration
    SET moved_count = moved_count + (SELECT size FROM journaled), batch_count = :batch
    WHERE id = :mid AND EXISTS (SELECT 1 FROM journaled)
)
SELECT coalesce((SELECT size FROM journaled), 0), (SELECT max(fwd_batch) FROM moved)
"""


def pg_statement(recorded: bool) -> str:
    """PostgreSQL's one statement for a batch of the all or the recorded scope."""
    return _PG_MOVE.format(pick=_PG_PICK_RECORDED if recorded else _PG_PICK_ALL)


# Each pick yields (rowid, id, previous proxy, new proxy, forward batch); the update finds
# its rows by rowid (the table's own B-tree, in order) rather than through the id index.
_SQLITE_PICK_ALL = """
    SELECT rowid AS rid, id, proxy_model_version_id AS previous, :target AS restore,
        0 AS fwd_batch
    FROM oracles_oracleversion
    WHERE proxy_model_version_id = :source
    LIMIT :n
"""

# CROSS JOIN fixes SQLite's join order: the forward batches by primary key, their ids,
# then each user version by its primary key. Left to itself the planner walks the proxy
# index and unnests every batch row for each user version (quadratic: 60 s at 20,000).
_SQLITE_PICK_RECORDED = """
    SELECT v.rowid AS rid, v.id, v.proxy_model_version_id AS previous,
        json_extract(b.previous_proxies, '$[' || i.key || ']') AS restore, b.batch AS fwd_batch
    FROM zoo_ops_migration_batch AS b
    CROSS JOIN json_each(b.oracle_version_ids) AS i
    CROSS JOIN oracles_oracleversion AS v
    WHERE b.migration_id = :fwd AND b.batch > :after
      AND v.id = i.value AND v.proxy_model_version_id = :source
    ORDER BY b.batch
    LIMIT :n
"""

# The batch's lists for its journal row, and the (rowid, new proxy) pairs to apply.
_SQLITE_GATHER = """
SELECT count(*), json_group_array(id), json_group_array(previous), json_group_array(restore),
    json_group_array(json_array(rid, restore)), max(fwd_batch)
FROM ({pick})
"""

_SQLITE_JOURNAL = """
INSERT INTO zoo_ops_migration_batch
    (migration_id, batch, size, oracle_version_ids, previous_proxies, new_proxies)
VALUES (:mid, :batch, :size, :ids, :previous, :new)
"""

# Each picked row gets its new proxy: one walk of the (rowid, new proxy) pairs (indexing
# the journal row's parallel lists by position would re-scan a list for every row).
_SQLITE_APPLY = """
UPDATE oracles_oracleversion SET proxy_model_version_id = x.new_proxy
FROM (
    SELECT p.value ->> 0 AS rid, p.value ->> 1 AS new_proxy FROM json_each(:pairs) AS p
) AS x
WHERE oracles_oracleversion.rowid = x.rid
"""

_COUNT = (
    "UPDATE zoo_ops_migration SET moved_count = moved_count + :size, batch_count = :batch "
    "WHERE id = :mid"
)


@dataclass(frozen=True)
class BatchOutcome:
    moved: int
    # The recorded scope's cursor: the next batch starts after this forward batch (the
    # one before the last it took rows from, which may still hold rows to move).
    cursor: int
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

    def move(self, batch: int, batch_size: int, after: int = 0) -> BatchOutcome:
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
                moved, last = conn.execute(text(pg_statement(recorded)), params).one()
            else:
                moved, last = self._move_sqlite(conn, params, recorded)
            if moved:
                conn.commit()
            else:
                conn.rollback()
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
        cursor = max(int(last or 0) - 1, 0)
        return BatchOutcome(int(moved), cursor, time.perf_counter() - started)

    def _move_sqlite(
        self, conn: Connection, params: dict[str, Any], recorded: bool
    ) -> tuple[int, int | None]:
        pick = _SQLITE_PICK_RECORDED if recorded else _SQLITE_PICK_ALL
        size, ids, previous, new, pairs, last = conn.execute(
            text(_SQLITE_GATHER.format(pick=pick)), params
        ).one()
        if not size:
            return 0, None
        journal = {**params, "size": size, "ids": ids, "previous": previous, "new": new}
        conn.execute(text(_SQLITE_JOURNAL), journal)
        applied = conn.execute(text(_SQLITE_APPLY), {"pairs": pairs}).rowcount
        if applied != size:  # read back: the journal row and the update must agree
            raise StepFailed(
                f"batch {params['batch']} of migration {self.migration_id} journaled {size} "
                f"rows but updated {applied}; it was rolled back, rerun to resume it"
            )
        conn.execute(text(_COUNT), journal)
        return int(size), last
