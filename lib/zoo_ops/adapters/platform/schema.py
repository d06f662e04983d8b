"""The platform's tables (DESIGN §3) and zoo-ops's own, in SQLAlchemy Core.

This module is the one place that knows table and column names. The platform's
tables are named as Django names them; zoo-ops's own carry the ``zoo_ops_`` prefix
so that they can live in the platform's database without colliding. Who creates them
differs: the platform's tables are the platform's (:func:`create_platform_tables` is for
``zoo-ops demo`` and tests only), zoo-ops's own (:data:`ZOO_OPS_TABLES`) are created and
upgraded only by Alembic (:mod:`zoo_ops.adapters.platform.versioning`, ``zoo-ops init``).

Every timestamp column is :class:`UTCDateTime`: written as UTC, read back as an aware
UTC ``datetime`` on SQLite (which stores no offset) and on PostgreSQL (``timestamptz``,
which answers in the session's time zone) alike, so no caller repairs naive values.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.types import TypeDecorator

metadata = MetaData()


def utcnow() -> datetime:
    """Now, as the aware UTC datetime every timestamp column stores."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and read back as an aware UTC datetime.

    The column is ``DateTime(timezone=True)`` as before (``TIMESTAMP WITH TIME ZONE`` on
    PostgreSQL, ``DATETIME`` text on SQLite), so existing databases read unchanged.
    Writing: an aware value is converted to UTC; a naive one is taken to be UTC already
    (zoo-ops has only ever written UTC). SQLite keeps no offset, so the UTC wall time is
    stored without one, exactly as earlier versions stored it. Reading: a naive value
    (SQLite) is marked UTC; an aware one (PostgreSQL) is converted to UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"UTCDateTime takes a datetime, not {type(value).__name__}")
        at = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return at.replace(tzinfo=None) if dialect.name == "sqlite" else at

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


ID = String(32)

# Version statuses, as the platform spells them.
DEPLOYING = "DEPLOYING"
ACTIVE = "ACTIVE"
FAILED = "FAILED"
DELETED = "DELETED"
VERSION_STATUSES = (DEPLOYING, ACTIVE, FAILED, DELETED)

organizations = Table(
    "organizations_organization",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("is_admin", Boolean, nullable=False, default=False),
)

users = Table(
    "users_user",
    metadata,
    Column("id", ID, primary_key=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("organization_id", ID, ForeignKey("organizations_organization.id"), nullable=False),
)

oracles = Table(
    "oracles_oracle",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("organization_id", ID, ForeignKey("organizations_organization.id"), nullable=False),
    Column("is_model_zoo", Boolean, nullable=False, default=False),
    # No FK to versions: the two tables point at each other, as the platform's do.
    Column("current_version_id", ID, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("organization_id", "name", name="oracles_oracle_org_name_uniq"),
)

oracle_versions = Table(
    "oracles_oracleversion",
    metadata,
    Column("id", ID, primary_key=True),
    Column("oracle_id", ID, ForeignKey("oracles_oracle.id"), nullable=False),
    Column("proxy_model_version_id", ID, nullable=True),
    Column("truss_hash", String(64), nullable=True),
    Column("status", String(16), nullable=False),
    Column("artifact", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Index("oracles_oracleversion_proxy_idx", "proxy_model_version_id"),
    Index("oracles_oracleversion_oracle_idx", "oracle_id"),
)

secrets_table = Table(
    "secrets_secret",
    metadata,
    Column("organization_id", ID, ForeignKey("organizations_organization.id"), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("value", Text, nullable=False),
)

# --- zoo-ops's own tables -------------------------------------------------------------

runs = Table(
    "zoo_ops_run",
    metadata,
    Column("id", ID, primary_key=True),
    Column("step", String(32), nullable=False),
    Column("model", String(200), nullable=False),
    Column("env", String(64), nullable=False),
    Column("operator", String(200), nullable=False),
    Column("dry_run", Boolean, nullable=False, default=False),
    Column("parameters", JSON, nullable=False),
    Column("truss_hash", String(64), nullable=True),
    Column("gate_override_reason", Text, nullable=True),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    # succeeded | failed | dry_run | refused | interrupted | crashed | trail-unsaved;
    # NULL: running, or crashed when its processes are gone (runs.effective_outcome)
    Column("outcome", String(32), nullable=True),
    Column("error", Text, nullable=True),
    Column("notebook_path", Text, nullable=True),
    # The process that owns the run (`zoo-ops run`, or the kernel under plain papermill)
    # and the kernel that executes it: host + pid + /proc start time (clock ticks).
    Column("host", String(255), nullable=True),
    Column("pid", Integer, nullable=True),
    Column("pid_start", BigInteger, nullable=True),
    Column("kernel_pid", Integer, nullable=True),
    Column("kernel_pid_start", BigInteger, nullable=True),
    Index("zoo_ops_run_model_env_idx", "model", "env", "step"),
    # One run per notebook: the reservation of an executed notebook's path is atomic.
    Index("zoo_ops_run_notebook_path_key", "notebook_path", unique=True),
)

# Columns added to zoo_ops_run after its first release: the Alembic baseline adds them to
# an existing (pre-Alembic) table when missing.
RUN_COLUMNS_ADDED = ("host", "pid", "pid_start", "kernel_pid", "kernel_pid_start")

deploy_log = Table(
    "zoo_ops_deploy",
    metadata,
    Column("version_id", ID, primary_key=True),
    Column("zoo_model", String(200), nullable=False),
    Column("truss_name", String(200), nullable=False),
    Column("truss_hash", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=True),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
)

migrations = Table(
    "zoo_ops_migration",
    metadata,
    Column("id", ID, primary_key=True),
    Column("env", String(64), nullable=False),
    Column("model", String(200), nullable=False),
    Column("direction", String(16), nullable=False),  # forwards | backwards
    Column("source_version_id", ID, nullable=False),
    Column("target_version_id", ID, nullable=False),
    Column("forward_migration_id", ID, nullable=True),  # for a revert: the migration it undoes
    Column("scope", String(16), nullable=False),  # all | recorded
    Column("status", String(16), nullable=False),  # open | done | failed
    Column("run_id", ID, nullable=True),
    Column("operator", String(200), nullable=False),
    Column("moved_count", Integer, nullable=False, default=0),
    Column("batch_count", Integer, nullable=False, default=0),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("reverted_by", ID, nullable=True),
    Index("zoo_ops_migration_model_idx", "env", "model", "status"),
)

IdArray = JSON().with_variant(postgresql.ARRAY(ID), "postgresql")
"""A list of ids in one column: ``varchar(32)[]`` on PostgreSQL, a JSON array on SQLite."""

migration_batches = Table(
    "zoo_ops_migration_batch",
    metadata,
    Column("migration_id", ID, primary_key=True),
    Column("batch", Integer, primary_key=True),
    Column("size", Integer, nullable=False),
    # Three parallel lists: the i-th user version moved from the i-th previous proxy to
    # the i-th new one. One row per batch: journaling a batch costs one insert, not one
    # per moved row (the per-row B-tree inserts were most of a migration's overhead).
    Column("oracle_version_ids", IdArray, nullable=False),
    Column("previous_proxies", IdArray, nullable=False),
    Column("new_proxies", IdArray, nullable=False),
)

views = MetaData()
"""Views over zoo-ops's tables (created by Alembic; never by ``create_all``)."""

migration_journal = Table(
    "zoo_ops_migration_journal",
    views,
    # The batch rows unnested: one row per moved user version, as the journal was a
    # table of before revision 0002. Every reader (revert, history, affected tables,
    # recovery) reads this; only the batch mover writes, to zoo_ops_migration_batch.
    Column("migration_id", ID),
    Column("oracle_version_id", ID),
    Column("previous_proxy", ID),
    Column("new_proxy", ID),
    Column("batch", Integer),
)

locks = Table(
    "zoo_ops_lock",
    metadata,
    Column("name", String(300), primary_key=True),
    Column("holder", String(300), nullable=False),
    Column("host", String(300), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("acquired_at", UTCDateTime, nullable=False),
)


meta = Table(
    "zoo_ops_meta",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("value", Text, nullable=False),
)


PLATFORM_TABLES = (organizations, users, oracles, oracle_versions, secrets_table)
"""The platform's tables: zoo-ops reads and writes them, and creates them only in the demo."""

ZOO_OPS_PREFIX = "zoo_ops_"
ZOO_OPS_TABLES = (runs, deploy_log, migrations, migration_batches, locks, meta)
"""zoo-ops's own tables, created and upgraded only by Alembic
(:mod:`zoo_ops.adapters.platform.versioning`)."""

ZOO_OPS_VIEWS = (migration_journal,)
"""zoo-ops's own views, created by Alembic beside its tables."""


def create_platform_tables(engine: Engine) -> None:
    """Create the platform's tables that are missing: ``zoo-ops demo`` and tests only.

    An existing platform database is attached with ``zoo-ops init``, which never creates
    a platform table.
    """
    metadata.create_all(engine, tables=list(PLATFORM_TABLES), checkfirst=True)
