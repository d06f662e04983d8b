"""The per-(environment, model) migration lock.

The lock: PostgreSQL takes ``pg_try_advisory_lock`` on a key derived from (database,
schema, environment, model) on a connection held for the whole migration; it dies with
the session, so a crashed holder never blocks. SQLite writes a row in ``zoo_ops_lock``
with holder, host and pid; a row whose pid is dead on this host is taken over, any other
is refused with a message saying how to release it.
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol, Self

from sqlalchemy import Connection, and_, delete, select, text
from sqlalchemy.engine import Engine

from zoo_ops.adapters.platform import schema as s
from zoo_ops.errors import StepFailed


class MigrationLock(Protocol):
    def check(self) -> None:
        """Raise StepFailed if the lock was lost (its session died, it was released)."""

    def release(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


class _Held:
    """``with lock:`` releases it on the way out, whatever happened inside."""

    def release(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def advisory_key(database: str, schema: str, env: str, model: str) -> int:
    """A signed 64-bit advisory-lock key: blake2b-64 of (database, schema, env, model).

    The schema is part of the key because several zoo-ops databases (test schemas, a
    staging copy) may share one PostgreSQL database, and advisory locks are per database.
    """
    raw = "\0".join(("zoo-ops-migrate", database, schema, env, model)).encode()
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big", signed=True)


def _advisory_key_for(conn: Connection, env: str, model: str) -> int:
    database, schema = conn.execute(text("SELECT current_database(), current_schema()")).one()
    return advisory_key(str(database), str(schema or ""), env, model)


def _advisory_holders(conn: Connection, key: int) -> list[Any]:
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return list(
        conn.execute(
            text(
                "SELECT a.pid, a.application_name, a.backend_start "
                "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND l.classid = CAST(:hi AS oid) AND l.objid = CAST(:lo AS oid)"
            ),
            {"hi": unsigned >> 32, "lo": unsigned & 0xFFFFFFFF},
        ).all()
    )


class _AdvisoryLock(_Held):
    def __init__(self, conn: Connection, key: int) -> None:
        self.conn = conn
        self.key = key

    def check(self) -> None:
        try:
            self.conn.exec_driver_sql("SELECT 1")
        except Exception as exc:  # noqa: BLE001 - any failure means the session is gone
            raise StepFailed(
                "lost the migration lock (its PostgreSQL session ended); rerun to resume"
            ) from exc

    def release(self) -> None:
        try:
            self.conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
        except Exception:  # noqa: BLE001 - a dead session holds no lock any more
            # The session was terminated (that is usually why we are unwinding): its
            # advisory lock ended with it. Raising here would hide the real error.
            pass
        finally:
            # Invalidate rather than return it to the pool: ending the session is what
            # guarantees the lock is gone, and the application_name stays with it.
            self.conn.invalidate()
            self.conn.close()


class _LockRow(_Held):
    def __init__(self, engine: Engine, name: str, holder: str) -> None:
        self.engine = engine
        self.name = name
        self.holder = holder

    def _is_ours(self, conn: Connection) -> bool:
        current = conn.execute(select(s.locks.c.holder).where(s.locks.c.name == self.name)).scalar()
        return bool(current == self.holder)

    def check(self) -> None:
        with self.engine.connect() as conn:
            ours = self._is_ours(conn)
        if not ours:
            raise StepFailed(
                f"lost the migration lock {self.name!r} (it was released by someone else); "
                "rerun to resume"
            )

    def release(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                delete(s.locks).where(
                    and_(s.locks.c.name == self.name, s.locks.c.holder == self.holder)
                )
            )
