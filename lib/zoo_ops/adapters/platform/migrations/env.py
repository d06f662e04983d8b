"""Alembic's environment for zoo-ops's own tables: online only, on the caller's connection.

:mod:`zoo_ops.adapters.platform.versioning` builds the :class:`alembic.config.Config` in
code and passes the open connection (inside its transaction) and the version table's
name as ``config.attributes``. Only tables named ``zoo_ops_*`` are ever compared, so the
platform's tables in the same database are invisible to zoo-ops's migrations.
"""

from __future__ import annotations

from typing import Any

from alembic import context

PREFIX = "zoo_ops_"


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Only zoo-ops's tables (and what belongs to them) take part in a comparison."""
    return type_ != "table" or bool(name and name.startswith(PREFIX))


def run_migrations_online() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "zoo-ops migrations run through zoo_ops.adapters.platform.versioning, "
            "which passes the connection"
        )
    context.configure(
        connection=connection,
        target_metadata=config.attributes.get("target_metadata"),
        version_table=config.attributes["version_table"],
        include_name=include_name,
        render_as_batch=True,  # SQLite alters a table by copying it
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("zoo-ops migrations run online only (zoo-ops init -e ENV)")
run_migrations_online()
