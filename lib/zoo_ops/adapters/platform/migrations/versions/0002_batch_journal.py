"""The migration journal: one row per batch, read through a per-row view.

Revision ID: 0002_batch_journal
Revises: 0001_baseline
Create Date: 2026-11-28

Before: ``zoo_ops_migration_journal`` was a table with one row per moved user version,
two B-tree entries each (the primary key and the version index) -- most of a
migration's cost beyond the UPDATE itself. After: ``zoo_ops_migration_batch`` holds one
row per batch with three parallel lists (user version ids, previous proxies, new
proxies), and ``zoo_ops_migration_journal`` is a view that unnests them into the same
per-row columns, so every reader (revert, history, recovery) reads what it read before.

Upgrade, in the one transaction :func:`zoo_ops.adapters.platform.versioning.upgrade`
holds: create the batch table; fold every existing journal row into its batch's row
(ids in key order); drop the table; create the view. Downgrade is the inverse: the view's
rows are written back into a table of the old shape. No row is lost either way.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_batch_journal"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None

ID = sa.String(32)
JOURNAL = "zoo_ops_migration_journal"
BATCH = "zoo_ops_migration_batch"
OLD_TABLE = "zoo_ops_migration_journal_0001"

VIEW = {
    # unnest with several arrays walks them in step: the i-th id with the i-th proxies.
    "postgresql": f"""
CREATE VIEW {JOURNAL} AS
SELECT b.migration_id, u.oracle_version_id, u.previous_proxy, u.new_proxy, b.batch
FROM {BATCH} AS b
CROSS JOIN LATERAL unnest(b.oracle_version_ids, b.previous_proxies, b.new_proxies)
    AS u(oracle_version_id, previous_proxy, new_proxy)
""",
    # json_each walks the ids; the proxies at the same index come from json_extract
    # (SQLite 3.40 has no lateral zip; a join of three json_each on key is quadratic).
    # MATERIALIZED: a query that probes the view per row (NOT EXISTS ... WHERE
    # j.oracle_version_id = v.id) unnests it once and searches it through an automatic
    # index, instead of unnesting every batch row again for each probe (quadratic: 16 s
    # at 20,000 rows); a filter on migration_id is still pushed down into it.
    "sqlite": f"""
CREATE VIEW {JOURNAL} AS
WITH unnested AS MATERIALIZED (
    SELECT b.migration_id, i.value AS oracle_version_id,
        json_extract(b.previous_proxies, '$[' || i.key || ']') AS previous_proxy,
        json_extract(b.new_proxies, '$[' || i.key || ']') AS new_proxy,
        b.batch
    FROM {BATCH} AS b, json_each(b.oracle_version_ids) AS i
)
SELECT migration_id, oracle_version_id, previous_proxy, new_proxy, batch FROM unnested
""",
}

FOLD = {
    "postgresql": f"""
INSERT INTO {BATCH}
    (migration_id, batch, size, oracle_version_ids, previous_proxies, new_proxies)
SELECT migration_id, batch, count(*),
    array_agg(oracle_version_id ORDER BY oracle_version_id),
    array_agg(previous_proxy ORDER BY oracle_version_id),
    array_agg(new_proxy ORDER BY oracle_version_id)
FROM {OLD_TABLE} GROUP BY migration_id, batch
""",
    "sqlite": f"""
INSERT INTO {BATCH}
    (migration_id, batch, size, oracle_version_ids, previous_proxies, new_proxies)
SELECT migration_id, batch, count(*), json_group_array(oracle_version_id),
    json_group_array(previous_proxy), json_group_array(new_proxy)
FROM (SELECT * FROM {OLD_TABLE} ORDER BY migration_id, batch, oracle_version_id)
GROUP BY migration_id, batch
""",
}


def _id_array() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.ARRAY(ID), "postgresql")


def _dialect() -> str:
    name = op.get_bind().dialect.name
    if name not in VIEW:
        raise RuntimeError(f"zoo-ops's journal has no view for {name}")
    return name


def _count(table: str) -> int:
    return int(op.get_bind().execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def upgrade() -> None:
    dialect = _dialect()
    op.create_table(
        BATCH,
        sa.Column("migration_id", ID, primary_key=True),
        sa.Column("batch", sa.Integer(), primary_key=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("oracle_version_ids", _id_array(), nullable=False),
        sa.Column("previous_proxies", _id_array(), nullable=False),
        sa.Column("new_proxies", _id_array(), nullable=False),
    )
    op.drop_index("zoo_ops_journal_version_idx", table_name=JOURNAL)
    op.rename_table(JOURNAL, OLD_TABLE)
    before = _count(OLD_TABLE)
    op.execute(FOLD[dialect])
    op.execute(VIEW[dialect])
    after = _count(JOURNAL)
    if after != before:  # read back: the view must show every row the table held
        raise RuntimeError(f"journal fold lost rows: {before} before, {after} after")
    op.drop_table(OLD_TABLE)


def downgrade() -> None:
    _dialect()
    op.create_table(
        OLD_TABLE,
        sa.Column("migration_id", ID, primary_key=True),
        sa.Column("oracle_version_id", ID, primary_key=True),
        sa.Column("previous_proxy", ID, nullable=True),
        sa.Column("new_proxy", ID, nullable=True),
        sa.Column("batch", sa.Integer(), nullable=False),
    )
    op.execute(
        f"INSERT INTO {OLD_TABLE} (migration_id, oracle_version_id, previous_proxy, new_proxy, "
        f"batch) SELECT migration_id, oracle_version_id, previous_proxy, new_proxy, batch "
        f"FROM {JOURNAL}"
    )
    before = _count(JOURNAL)
    op.execute(f"DROP VIEW {JOURNAL}")
    op.drop_table(BATCH)
    op.rename_table(OLD_TABLE, JOURNAL)
    if _count(JOURNAL) != before:
        raise RuntimeError("journal unfold lost rows")
    op.create_index("zoo_ops_journal_version_idx", JOURNAL, ["oracle_version_id"])
