"""zoo-ops's own tables, versioned with Alembic; the platform's are never created here.

The migrations live in the package :mod:`zoo_ops.adapters.platform.migrations` (shipped
as package data) and run in code: a :class:`alembic.config.Config` built here, the
caller's engine's connection passed in, no ``alembic.ini``. The revision is recorded in
:data:`VERSION_TABLE` (``zoo_ops_alembic_version``) so that it never collides with a
platform's own ``alembic_version``.

Algorithm of :func:`upgrade`: one transaction; a lock first (PostgreSQL: a
transaction-scoped advisory lock for the database and schema; SQLite: the engine's
``BEGIN IMMEDIATE``), so of two ``zoo-ops init`` at once the second waits, then finds
head; the state is read under the lock; unless it is already head with every table,
Alembic upgrades from the recorded revision to head (no recorded revision: from nothing,
where the baseline adopts tables an earlier zoo-ops made with ``create_all``). Then the
result is read back (:func:`state`): the revision is head and every zoo-ops table exists,
else :class:`ZooOpsSchemaError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from zoo_ops.adapters.platform import schema as s
from zoo_ops.errors import StepFailed

VERSION_TABLE = "zoo_ops_alembic_version"
MIGRATIONS_DIR = Path(__file__).with_name("migrations")

# PostgreSQL: one advisory lock per database and schema (the search_path's first), so
# upgrades of zoo-ops's tables in different schemas of one database do not wait on each other.
_PG_LOCK = (
    "SELECT pg_advisory_xact_lock(hashtextextended("
    "'zoo-ops-schema:' || current_database() || '.' || coalesce(current_schema(), ''), 0))"
)


class ZooOpsSchemaError(StepFailed):
    """The upgrade ran but its effect is not there (a revision or table missing after it)."""


@dataclass(frozen=True)
class SchemaState:
    """What a database holds of zoo-ops's own schema."""

    revision: str | None  # recorded in zoo_ops_alembic_version; None: never versioned
    head: str
    present: tuple[str, ...]  # zoo-ops tables that exist
    missing: tuple[str, ...]  # zoo-ops tables that do not

    @property
    def current(self) -> bool:
        """At head with every table there: nothing for ``zoo-ops init`` to do."""
        return self.revision == self.head and not self.missing


def _config() -> Config:
    """Alembic's configuration, in code: where the scripts are, which version table."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["version_table"] = VERSION_TABLE
    return config


@cache
def head_revision() -> str:
    """The newest revision shipped with this zoo-ops (one head: the history is linear)."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:  # pragma: no cover - the baseline ships with the package
        raise RuntimeError(f"no Alembic revision under {MIGRATIONS_DIR}")
    return head


def is_known(revision: str) -> bool:
    """Whether ``revision`` is one this zoo-ops ships (else a newer zoo-ops wrote it)."""
    script = ScriptDirectory.from_config(_config())
    return any(r.revision == revision for r in script.walk_revisions())


def zoo_ops_table_names() -> tuple[str, ...]:
    """The tables and views zoo-ops owns, as the current revision makes them."""
    return tuple(t.name for t in (*s.ZOO_OPS_TABLES, *s.ZOO_OPS_VIEWS))


def state(engine: Engine) -> SchemaState:
    """Read, without writing, the recorded revision and which zoo-ops tables exist."""
    with engine.connect() as conn:
        return _state(conn)


def _state(conn: Connection) -> SchemaState:
    revision = MigrationContext.configure(
        conn, opts={"version_table": VERSION_TABLE}
    ).get_current_revision()
    inspector = inspect(conn)
    tables = {*inspector.get_table_names(), *inspector.get_view_names()}
    names = zoo_ops_table_names()
    return SchemaState(
        revision=revision,
        head=head_revision(),
        present=tuple(n for n in names if n in tables),
        missing=tuple(n for n in names if n not in tables),
    )


@dataclass(frozen=True)
class Upgrade:
    """One :func:`upgrade`: the state it found (under its lock) and the state it left."""

    before: SchemaState
    after: SchemaState

    @property
    def created(self) -> tuple[str, ...]:
        return tuple(n for n in self.after.present if n not in self.before.present)


def upgrade(engine: Engine) -> Upgrade:
    """Upgrade zoo-ops's tables to head in one transaction; read back what it left.

    Never touches a table that is not ``zoo_ops_*``. The state before is read under the
    lock, so of two concurrent upgrades only the one that created a table says so.
    Raises :class:`ZooOpsSchemaError` when the read-back does not show head with every
    table.
    """
    config = _config()
    with engine.begin() as conn:
        _lock(conn)
        before = _state(conn)
        if not before.current:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    after = state(engine)
    if after.revision == after.head and after.missing:
        raise ZooOpsSchemaError(
            f"zoo-ops's tables {', '.join(after.missing)} are missing although the database "
            f"records revision {after.revision}: they were dropped outside zoo-ops; restore "
            f"them, or drop {VERSION_TABLE} and run `zoo-ops init` again (it recreates only "
            "the missing ones)"
        )
    if not after.current:
        raise ZooOpsSchemaError(
            f"zoo-ops's tables were upgraded but the database shows revision "
            f"{after.revision or 'none'} (head {after.head}); check that the database user "
            "may create tables and run `zoo-ops init` again"
        )
    return Upgrade(before, after)


def _lock(conn: Connection) -> None:
    """Serialise concurrent upgrades (SQLite's BEGIN IMMEDIATE already does)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(_PG_LOCK))


def create_schema(engine: Engine) -> None:
    """The platform's tables (only for ``zoo-ops demo`` and tests) and zoo-ops's own.

    An attached platform database never comes here: ``zoo-ops init`` upgrades only
    zoo-ops's tables (:func:`upgrade`).
    """
    s.create_platform_tables(engine)
    upgrade(engine)


def drop_schema(engine: Engine) -> None:
    """Drop every table and view zoo-ops knows and its version table (``zoo-ops demo --reset``)."""
    with engine.begin() as conn:
        for view in s.ZOO_OPS_VIEWS:  # first: a view depends on its tables
            conn.execute(text(f"DROP VIEW IF EXISTS {view.name}"))
    s.metadata.drop_all(engine, checkfirst=True)
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {VERSION_TABLE}"))
