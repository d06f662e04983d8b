"""The migration engine's SQL, bound to one database: :class:`MigrationStore`.

``MigrationStore(engine)`` reads the facts a decision needs in one call
(:meth:`MigrationStore.facts`), and acts on a decision: the per-(environment, model)
lock (:mod:`zoo_ops.migration.locks`), migration records, batches
(:mod:`zoo_ops.migration.batches`), the journal. It never decides: the rules are in
:mod:`zoo_ops.migration.plan`, and the loop in :mod:`zoo_ops.migration.engine`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, text, update
from sqlalchemy.engine import Engine
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from zoo_ops.adapters.platform import schema as s
from zoo_ops.adapters.platform.engine import is_postgres
from zoo_ops.adapters.processes import pid_alive
from zoo_ops.domain.ids import new_id
from zoo_ops.errors import LockHeld, StepFailed
from zoo_ops.migration.batches import BatchMover
from zoo_ops.migration.locks import (
    MigrationLock,
    _advisory_holders,
    _advisory_key_for,
    _AdvisoryLock,
    _LockRow,
)
from zoo_ops.migration.plan import (
    ABANDONED,
    BACKWARDS,
    DONE,
    OPEN,
    SCOPE_RECORDED,
    Decision,
    MigrationFacts,
    MigrationPlan,
    MigrationRecord,
    MigrationRequest,
    ZooVersionFacts,
    lock_name,
)
from zoo_ops.migration.sizing import MAX_AUTO_SIZE

LOCK_POLL_S = 0.1
AFFECTED_COLUMNS = (
    "oracle_version_id",
    "oracle_id",
    "organization_id",
    "from_version_id",
    "to_version_id",
)
JOURNAL_COLUMNS = ("migration_id", "oracle_version_id", "previous_proxy", "new_proxy", "batch")


SQLITE_MAX_AUTO_SIZE = 2_000


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- the journal, read through its per-row view ---------------------------------------------

# The journal is zoo_ops_migration_batch (one row per batch, written by
# zoo_ops.migration.batches); these read the view zoo_ops_migration_journal, one row per
# moved user version, in user version order.
_AFFECTED_SQL = """
SELECT j.oracle_version_id, v.oracle_id, o.organization_id, j.previous_proxy, j.new_proxy
FROM zoo_ops_migration_journal AS j
LEFT JOIN oracles_oracleversion AS v ON v.id = j.oracle_version_id
LEFT JOIN oracles_oracle AS o ON o.id = v.oracle_id
WHERE j.migration_id = :mid
ORDER BY j.oracle_version_id
"""

_JOURNAL_SQL = (
    "SELECT migration_id, oracle_version_id, previous_proxy, new_proxy, batch "
    "FROM zoo_ops_migration_journal WHERE migration_id = :mid ORDER BY oracle_version_id"
)

# --- counts and reads ---------------------------------------------------------------------

_PENDING_ALL = """
FROM oracles_oracleversion AS v
WHERE v.proxy_model_version_id = :source
"""

# CROSS JOIN keeps SQLite's join order: the journal's rows first, each user version by
# its primary key (left to itself it walks the proxy index and unnests every batch row
# for each user version: quadratic). PostgreSQL plans a CROSS JOIN as an inner join.
_PENDING_RECORDED = """
FROM zoo_ops_migration_journal AS j
CROSS JOIN oracles_oracleversion AS v
WHERE j.migration_id = :fwd AND v.id = j.oracle_version_id
  AND v.proxy_model_version_id = :source
"""


def _pending_params(plan: MigrationPlan) -> dict[str, Any]:
    return {
        "source": plan.source_version_id,
        "target": plan.target_version_id,
        "fwd": plan.forward_migration_id,
    }


def _stream(
    engine: Engine, sql: str, params: dict[str, Any], chunk_rows: int
) -> Iterator[list[tuple[Any, ...]]]:
    """Rows of ``sql`` in lists of ``chunk_rows``; a server-side cursor on PostgreSQL."""
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=chunk_rows).execute(
            text(sql), params
        )
        for part in result.partitions(chunk_rows):
            yield [tuple(r) for r in part]


# --- the store ------------------------------------------------------------------------------


def _record(row: Any) -> MigrationRecord:
    m = row._mapping
    return MigrationRecord(
        id=m["id"],
        env=m["env"],
        model=m["model"],
        direction=m["direction"],
        source_version_id=m["source_version_id"],
        target_version_id=m["target_version_id"],
        forward_migration_id=m["forward_migration_id"],
        scope=m["scope"],
        status=m["status"],
        run_id=m["run_id"],
        operator=m["operator"],
        moved_count=int(m["moved_count"]),
        batch_count=int(m["batch_count"]),
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        reverted_by=m["reverted_by"],
    )


class MigrationStore:
    """Migration records, journal, locks and batches on one database (``Environment.migrations``).

    Reads: :meth:`facts` (everything a decision needs, one connection), records, counts,
    the journal. Acts: :meth:`acquire_lock`, :meth:`begin` and :meth:`finish` (a
    :class:`~zoo_ops.migration.plan.Decision`'s record writes, each one transaction,
    read back), :meth:`mover` (the batches).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = is_postgres(engine)

    def __repr__(self) -> str:
        return f"MigrationStore({self.engine.url.render_as_string(hide_password=True)!r})"

    # --- facts --------------------------------------------------------------------------------

    def facts(self, request: MigrationRequest) -> MigrationFacts:
        """What :func:`~zoo_ops.migration.plan.decide` needs for ``request``: the versions it
        names (a revert: its forward migration's), the forward migration and the status of
        the revert recorded on it, the model's open migrations."""
        with self.engine.connect() as conn:
            forward, reverted_by_status = None, None
            ids = list(request.version_ids)
            if request.direction == BACKWARDS:
                forward = self._get(conn, request.forward_migration_id)
                if forward is not None:
                    ids += [forward.source_version_id, forward.target_version_id]
                    if forward.reverted_by:
                        revert = self._get(conn, forward.reverted_by)
                        reverted_by_status = None if revert is None else revert.status
            versions = self._versions(conn, ids)
            open_migrations = self._open_migrations(conn, request.env, request.model)
            latest, latest_outcome = None, None
            if request.direction != BACKWARDS and request.adopt:
                latest, latest_outcome = self._latest_same_plan(conn, request)
        return MigrationFacts(
            versions, forward, reverted_by_status, open_migrations, latest, latest_outcome
        )

    @staticmethod
    def _latest_same_plan(
        conn: Connection, request: MigrationRequest
    ) -> tuple[MigrationRecord | None, str | None]:
        """The latest forward migration from the request's old to new version, and the
        outcome its run recorded (None: none, or no run row)."""
        m = s.migrations.c
        row = conn.execute(
            select(s.migrations)
            .where(
                m.env == request.env,
                m.model == request.model,
                m.direction == request.direction,
                m.source_version_id == request.old_version_id,
                m.target_version_id == request.new_version_id,
            )
            .order_by(m.started_at.desc(), m.id.desc())
        ).first()
        if row is None:
            return None, None
        record = _record(row)
        outcome = None
        if record.run_id:
            outcome = conn.execute(
                select(s.runs.c.outcome).where(s.runs.c.id == record.run_id)
            ).scalar()
        return record, None if outcome is None else str(outcome)

    @staticmethod
    def _versions(conn: Connection, ids: list[str]) -> dict[str, ZooVersionFacts]:
        """Status and owner of each version (absent ids are left out)."""
        wanted = sorted({i for i in ids if isinstance(i, str) and i})
        if not wanted:
            return {}
        v, o, org = s.oracle_versions, s.oracles, s.organizations
        rows = conn.execute(
            select(v.c.id, v.c.status, o.c.name, o.c.is_model_zoo, org.c.is_admin)
            .join(o, o.c.id == v.c.oracle_id)
            .join(org, org.c.id == o.c.organization_id)
            .where(v.c.id.in_(wanted))
        ).all()
        return {
            r.id: ZooVersionFacts(r.id, r.status, r.name, bool(r.is_model_zoo and r.is_admin))
            for r in rows
        }

    @staticmethod
    def _get(conn: Connection, migration_id: str) -> MigrationRecord | None:
        row = conn.execute(select(s.migrations).where(s.migrations.c.id == migration_id)).first()
        return None if row is None else _record(row)

    @staticmethod
    def _open_migrations(conn: Connection, env: str, model: str) -> tuple[MigrationRecord, ...]:
        m = s.migrations.c
        rows = conn.execute(
            select(s.migrations)
            .where(m.env == env, m.model == model, m.status == OPEN)
            .order_by(m.started_at.desc(), m.id)
        ).all()
        return tuple(_record(r) for r in rows)

    # --- records ------------------------------------------------------------------------------

    def get(self, migration_id: str) -> MigrationRecord | None:
        with self.engine.connect() as conn:
            return self._get(conn, migration_id)

    def for_run(self, run_id: str, direction: str | None = None) -> list[MigrationRecord]:
        """The migrations a run started (``run_id`` on the record), newest first."""
        m = s.migrations.c
        query = select(s.migrations).where(m.run_id == run_id)
        if direction is not None:
            query = query.where(m.direction == direction)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(m.started_at.desc(), m.id.desc())).all()
        return [_record(r) for r in rows]

    def of_env(self, env: str) -> list[MigrationRecord]:
        """Every migration of ``env``, oldest first (one query: what the report shows)."""
        m = s.migrations.c
        query = select(s.migrations).where(m.env == env).order_by(m.started_at, m.id)
        with self.engine.connect() as conn:
            return [_record(r) for r in conn.execute(query).all()]

    def latest(
        self, env: str, model: str, direction: str, status: str | None = DONE
    ) -> MigrationRecord | None:
        """The most recently started migration of ``model`` in ``env`` in ``direction``."""
        m = s.migrations.c
        query = select(s.migrations).where(m.env == env, m.model == model, m.direction == direction)
        if status is not None:
            query = query.where(m.status == status)
        with self.engine.connect() as conn:
            row = conn.execute(query.order_by(m.started_at.desc(), m.id.desc())).first()
        return None if row is None else _record(row)

    def begin(
        self, decision: Decision, *, env: str, operator: str, run_id: str | None
    ) -> tuple[MigrationRecord, bool]:
        """Start what ``decision`` says, in one transaction: abandon the forward migration
        it replaces, then resume its open record or open a new one. Reads both back;
        returns (the record, whether it was resumed)."""
        plan = decision.plan
        migration_id = decision.resume.id if decision.resume is not None else new_id()
        with self.engine.begin() as conn:
            if decision.reopen and decision.resume is not None:
                # Adopting a finished migration whose run did not succeed: open it again
                # (same id, same journal) so the sweep and the read-back run on it.
                conn.execute(
                    update(s.migrations)
                    .where(s.migrations.c.id == decision.resume.id)
                    .values(status=OPEN, finished_at=None)
                )
            if decision.abandon_id is not None:
                conn.execute(
                    update(s.migrations)
                    .where(s.migrations.c.id == decision.abandon_id)
                    .values(status=ABANDONED, finished_at=utcnow())
                )
            if decision.resume is None:
                conn.execute(
                    insert(s.migrations).values(
                        id=migration_id,
                        env=env,
                        model=plan.model,
                        direction=plan.direction,
                        source_version_id=plan.source_version_id,
                        target_version_id=plan.target_version_id,
                        forward_migration_id=plan.forward_migration_id,
                        scope=plan.scope,
                        status=OPEN,
                        run_id=run_id,
                        operator=operator,
                        moved_count=0,
                        batch_count=0,
                        started_at=utcnow(),
                        finished_at=None,
                        reverted_by=None,
                    )
                )
        if decision.abandon_id is not None:
            self._expect(decision.abandon_id, status=ABANDONED)
        record = self.get(migration_id)
        if record is None or record.status != OPEN:
            raise StepFailed(f"migration record {migration_id} was not written; check the database")
        return record, decision.resume is not None

    def finish(self, migration_id: str, *, reverts: str | None) -> MigrationRecord:
        """Close the record ``done`` and, for a revert, set ``reverted_by`` on the forward
        migration it undid (one transaction); reads both back."""
        with self.engine.begin() as conn:
            conn.execute(
                update(s.migrations)
                .where(s.migrations.c.id == migration_id)
                .values(status=DONE, finished_at=utcnow())
            )
            if reverts is not None:
                conn.execute(
                    update(s.migrations)
                    .where(s.migrations.c.id == reverts)
                    .values(reverted_by=migration_id)
                )
        if reverts is not None:
            self._expect(reverts, reverted_by=migration_id)
        return self._expect(migration_id, status=DONE)

    def set_reverted_by(self, forward_id: str, revert_id: str | None) -> None:
        """Repair: record on ``forward_id`` which revert undid it; read back."""
        with self.engine.begin() as conn:
            conn.execute(
                update(s.migrations)
                .where(s.migrations.c.id == forward_id)
                .values(reverted_by=revert_id)
            )
        self._expect(forward_id, reverted_by=revert_id)

    def _expect(self, migration_id: str, **wanted: str | None) -> MigrationRecord:
        """The record, read back; StepFailed if it lacks a value just written."""
        record = self.get(migration_id)
        for name, value in wanted.items():
            if record is None or getattr(record, name) != value:
                what = f"did not become {value}" if name == "status" else f"{name} was not set"
                raise StepFailed(f"migration {migration_id} {what}; check the database")
        assert record is not None
        return record

    # --- the lock -----------------------------------------------------------------------------

    def acquire_lock(
        self, env: str, model: str, *, holder: str, wait_s: float = 0.0
    ) -> MigrationLock:
        """Take the (env, model) migration lock, polling up to ``wait_s`` seconds; else LockHeld.

        The short wait covers a holder that is dying right now (its session's rollback
        and exit take a moment after SIGKILL); a live holder keeps it and we refuse.
        ``with`` the returned lock releases it.
        """
        take = self._acquire_advisory if self.postgres else self._acquire_lock_row
        poll = Retrying(
            retry=retry_if_exception_type(LockHeld),
            stop=stop_after_delay(max(wait_s, 0.0)),
            wait=wait_fixed(LOCK_POLL_S),
            reraise=True,
        )
        return poll(take, env, model, holder)

    def _acquire_advisory(self, env: str, model: str, holder: str) -> MigrationLock:
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            key = _advisory_key_for(conn, env, model)
            conn.execute(
                text("SELECT set_config('application_name', :n, false)"),
                {"n": f"zoo-ops migrate {env}/{model} {holder}"[:63]},
            )
            if conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                return _AdvisoryLock(conn, key)
            holders = _advisory_holders(conn, key)
        except BaseException:
            conn.invalidate()
            conn.close()
            raise
        conn.invalidate()
        conn.close()
        who = (
            ", ".join(
                f"backend pid {h.pid} ({h.application_name!r} since {h.backend_start:%Y-%m-%d %H:%M:%S})"
                for h in holders
            )
            or "a session that just ended"
        )
        pid_hint = holders[0].pid if holders else "PID"
        raise LockHeld(
            f"another migration of {model!r} in {env!r} holds the lock ({who}); wait for it to "
            f"finish, or if its process is gone run SELECT pg_terminate_backend({pid_hint}) "
            "(zoo_ops.migration.engine.release_lock does this)"
        )

    def _acquire_lock_row(self, env: str, model: str, holder: str) -> MigrationLock:
        name = lock_name(env, model)
        host, pid = socket.gethostname(), os.getpid()
        # A token makes the holder string unique, so release deletes only our own row.
        ours = f"{holder} #{new_id(6)}"
        values = {"holder": ours, "host": host, "pid": pid, "acquired_at": utcnow()}
        with self.engine.begin() as conn:
            row = conn.execute(select(s.locks).where(s.locks.c.name == name)).first()
            if row is None:
                conn.execute(insert(s.locks).values(name=name, **values))
            elif row.host == host and not pid_alive(int(row.pid)):
                # The holder crashed on this host: its lock must not block forever.
                conn.execute(update(s.locks).where(s.locks.c.name == name).values(**values))
            else:
                raise LockHeld(
                    f"another migration of {model!r} in {env!r} holds the lock ({row.holder!r}, "
                    f"pid {row.pid} on {row.host}, since {row.acquired_at}); wait for it, or if "
                    f"that process is gone run: DELETE FROM zoo_ops_lock WHERE name = '{name}' "
                    "(zoo_ops.migration.engine.release_lock does this)"
                )
        return _LockRow(self.engine, name, ours)

    def force_release_lock(self, env: str, model: str) -> str:
        """Recovery: release the (env, model) lock whoever holds it; says what it did.

        SQLite: deletes the lock row. PostgreSQL: an advisory lock belongs to a session,
        so this terminates the holding session (its open transaction rolls back; a
        running migration stops at its next batch and resumes when rerun).
        """
        if self.postgres:
            with self.engine.connect() as conn:
                key = _advisory_key_for(conn, env, model)
                holders = _advisory_holders(conn, key)
                for h in holders:
                    conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": h.pid})
                conn.commit()
            if not holders:
                return f"no session holds the migration lock of {model!r} in {env!r}"
            return "terminated backend " + ", ".join(str(h.pid) for h in holders)
        name = lock_name(env, model)
        with self.engine.begin() as conn:
            row = conn.execute(select(s.locks).where(s.locks.c.name == name)).first()
            conn.execute(delete(s.locks).where(s.locks.c.name == name))
        if row is None:
            return f"no lock row {name!r}"
        return f"deleted lock row {name!r} held by {row.holder!r} (pid {row.pid} on {row.host})"

    # --- batches, counts, journal -------------------------------------------------------------

    @property
    def max_auto_batch_size(self) -> int:
        """The largest batch ``batch_size="auto"`` may choose here.

        SQLite reads a journal row's lists by position (``json_extract(list, '$[i]')``
        walks the list from its start), so the view's cost per row grows with the batch's
        size: 2,000 keeps reading a million journaled rows to a few seconds.
        """
        return MAX_AUTO_SIZE if self.postgres else SQLITE_MAX_AUTO_SIZE

    def mover(self, plan: MigrationPlan, migration_id: str) -> BatchMover:
        """The batch mover of one run (``with`` it: it holds one connection)."""
        return BatchMover(self.engine, plan, migration_id)

    def count_pending(self, plan: MigrationPlan) -> int:
        """How many user versions the plan would still move."""
        body = _PENDING_RECORDED if plan.scope == SCOPE_RECORDED else _PENDING_ALL
        with self.engine.connect() as conn:
            return int(
                conn.execute(text("SELECT count(*) " + body), _pending_params(plan)).scalar_one()
            )

    def iter_pending_affected(
        self, plan: MigrationPlan, chunk_rows: int, limit: int | None = None
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Rows the plan would move, as ``AFFECTED_COLUMNS`` tuples in chunks (dry runs)."""
        body = _PENDING_RECORDED if plan.scope == SCOPE_RECORDED else _PENDING_ALL
        to = "j.previous_proxy" if plan.scope == SCOPE_RECORDED else ":target"
        sql = (
            f"SELECT v.id, v.oracle_id, o.organization_id, v.proxy_model_version_id, {to} "
            + body.replace("WHERE", "JOIN oracles_oracle AS o ON o.id = v.oracle_id WHERE", 1)
            + " ORDER BY v.id"
            + ("" if limit is None else f" LIMIT {int(limit)}")
        )
        yield from _stream(self.engine, sql, _pending_params(plan), chunk_rows)

    def iter_affected(self, migration_id: str, chunk_rows: int) -> Iterator[list[tuple[Any, ...]]]:
        """The migration's journal joined to the platform, ``AFFECTED_COLUMNS`` tuples, chunked."""
        yield from _stream(self.engine, _AFFECTED_SQL, {"mid": migration_id}, chunk_rows)

    def iter_journal(self, migration_id: str, chunk_rows: int) -> Iterator[list[tuple[Any, ...]]]:
        """The migration's raw journal rows (``JOURNAL_COLUMNS``), in key order, chunked."""
        yield from _stream(self.engine, _JOURNAL_SQL, {"mid": migration_id}, chunk_rows)

    # --- history: the journal as seen from one user version -----------------------------------

    def has_journal(self) -> bool:
        """Whether zoo-ops's journal exists here (a database it never migrated may lack it)."""
        from sqlalchemy import inspect

        return bool(inspect(self.engine).has_table(s.migration_journal.name))

    def version_journal(self, oracle_version_id: str) -> list[dict[str, Any]]:
        """Every journal row of one user version, with its migration and run, oldest first."""
        j, m, r = s.migration_journal.c, s.migrations.c, s.runs.c
        query = (
            select(
                j.migration_id,
                j.previous_proxy,
                j.new_proxy,
                m.direction,
                m.operator,
                m.started_at,
                m.run_id,
                r.operator.label("run_operator"),
                r.step,
                r.notebook_path,
            )
            .join(s.migrations, m.id == j.migration_id)
            .outerjoin(s.runs, r.id == m.run_id)
            .where(j.oracle_version_id == oracle_version_id)
            .order_by(m.started_at, m.id)
        )
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query).all()]
