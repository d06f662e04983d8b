"""Baseline: zoo-ops's own tables as zoo-ops 0.1 made them with ``create_all``.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-11-28

Adopts what an earlier zoo-ops made without Alembic: a table that already exists is
kept as it is (its rows are the record of every run) and only the tables that are
missing are created. An early ``zoo_ops_run`` gets the columns added after its first
release, and its unique notebook-path index unless old rows already share a path (an
older version's same-second collision; the reservation's O_EXCL file still holds then).
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.String(32)
TIMESTAMP = sa.DateTime(timezone=True)

# Columns zoo_ops_run gained after its first release, in the order they were added.
RUN_COLUMNS_ADDED = (
    ("host", sa.String(255)),
    ("pid", sa.Integer()),
    ("pid_start", sa.BigInteger()),
    ("kernel_pid", sa.Integer()),
    ("kernel_pid_start", sa.BigInteger()),
)


def _run() -> None:
    op.create_table(
        "zoo_ops_run",
        sa.Column("id", ID, primary_key=True),
        sa.Column("step", sa.String(32), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("env", sa.String(64), nullable=False),
        sa.Column("operator", sa.String(200), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("truss_hash", sa.String(64), nullable=True),
        sa.Column("gate_override_reason", sa.Text(), nullable=True),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("outcome", sa.String(32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("notebook_path", sa.Text(), nullable=True),
        *(sa.Column(name, type_, nullable=True) for name, type_ in RUN_COLUMNS_ADDED),
    )
    op.create_index("zoo_ops_run_model_env_idx", "zoo_ops_run", ["model", "env", "step"])
    op.create_index("zoo_ops_run_notebook_path_key", "zoo_ops_run", ["notebook_path"], unique=True)


def _deploy() -> None:
    op.create_table(
        "zoo_ops_deploy",
        sa.Column("version_id", ID, primary_key=True),
        sa.Column("zoo_model", sa.String(200), nullable=False),
        sa.Column("truss_name", sa.String(200), nullable=False),
        sa.Column("truss_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
    )


def _migration() -> None:
    op.create_table(
        "zoo_ops_migration",
        sa.Column("id", ID, primary_key=True),
        sa.Column("env", sa.String(64), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("source_version_id", ID, nullable=False),
        sa.Column("target_version_id", ID, nullable=False),
        sa.Column("forward_migration_id", ID, nullable=True),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("run_id", ID, nullable=True),
        sa.Column("operator", sa.String(200), nullable=False),
        sa.Column("moved_count", sa.Integer(), nullable=False),
        sa.Column("batch_count", sa.Integer(), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("reverted_by", ID, nullable=True),
    )
    op.create_index("zoo_ops_migration_model_idx", "zoo_ops_migration", ["env", "model", "status"])


def _journal() -> None:
    op.create_table(
        "zoo_ops_migration_journal",
        sa.Column("migration_id", ID, primary_key=True),
        sa.Column("oracle_version_id", ID, primary_key=True),
        sa.Column("previous_proxy", ID, nullable=True),
        sa.Column("new_proxy", ID, nullable=True),
        sa.Column("batch", sa.Integer(), nullable=False),
    )
    op.create_index(
        "zoo_ops_journal_version_idx", "zoo_ops_migration_journal", ["oracle_version_id"]
    )


def _lock() -> None:
    op.create_table(
        "zoo_ops_lock",
        sa.Column("name", sa.String(300), primary_key=True),
        sa.Column("holder", sa.String(300), nullable=False),
        sa.Column("host", sa.String(300), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("acquired_at", TIMESTAMP, nullable=False),
    )


def _meta() -> None:
    op.create_table(
        "zoo_ops_meta",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )


TABLES: dict[str, Callable[[], None]] = {
    "zoo_ops_run": _run,
    "zoo_ops_deploy": _deploy,
    "zoo_ops_migration": _migration,
    "zoo_ops_migration_journal": _journal,
    "zoo_ops_lock": _lock,
    "zoo_ops_meta": _meta,
}


def _adopt_early_runs_table() -> None:
    """Bring a ``zoo_ops_run`` made before its later columns and index up to date."""
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    present = {c["name"] for c in inspector.get_columns("zoo_ops_run")}
    for name, type_ in RUN_COLUMNS_ADDED:
        if name not in present:
            op.add_column("zoo_ops_run", sa.Column(name, type_, nullable=True))
    indexes = {i["name"] for i in inspector.get_indexes("zoo_ops_run")}
    if "zoo_ops_run_model_env_idx" not in indexes:
        op.create_index("zoo_ops_run_model_env_idx", "zoo_ops_run", ["model", "env", "step"])
    if "zoo_ops_run_notebook_path_key" in indexes:
        return
    shared = bind.execute(
        sa.text(
            "SELECT notebook_path FROM zoo_ops_run WHERE notebook_path IS NOT NULL "
            "GROUP BY notebook_path HAVING COUNT(*) > 1"
        )
    ).first()
    if shared is None:
        op.create_index(
            "zoo_ops_run_notebook_path_key", "zoo_ops_run", ["notebook_path"], unique=True
        )


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    for name, create in TABLES.items():
        if name not in existing:
            create()
    if "zoo_ops_run" in existing:
        _adopt_early_runs_table()


def downgrade() -> None:
    for name in reversed(TABLES):
        op.drop_table(name)
