"""Describe tables for :mod:`zoo_ops.domain.platform_schema`: declared and as they are.

:func:`declared` reads zoo-ops's SQLAlchemy tables; :func:`reflected` asks the
database's inspector (SQLAlchemy's, no SQL of our own). Both reduce a column to a
:class:`~zoo_ops.domain.platform_schema.ColumnSpec` by the same rule (:func:`column_spec`),
so the comparison is between like and like.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Integer, String, Table, Text, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.types import TypeDecorator, TypeEngine

from zoo_ops.domain import platform_schema as ps


def column_spec(
    type_: TypeEngine[Any],
    *,
    nullable: bool,
    has_default: bool = False,
    timezone_known: bool = True,
) -> ps.ColumnSpec:
    """A SQLAlchemy type reduced to its kind: the type decorator's implementation, then
    the first of text (``TEXT``, or a string without a length), string, boolean, integer,
    timestamp, JSON that it is an instance of; anything else is its own name."""
    if isinstance(type_, TypeDecorator):
        type_ = type_.impl_instance
    if isinstance(type_, Text) or (isinstance(type_, String) and type_.length is None):
        return ps.ColumnSpec(ps.TEXT, nullable=nullable, has_default=has_default)
    if isinstance(type_, String):
        return ps.ColumnSpec(
            ps.STRING, length=type_.length, nullable=nullable, has_default=has_default
        )
    if isinstance(type_, Boolean):
        return ps.ColumnSpec(ps.BOOLEAN, nullable=nullable, has_default=has_default)
    if isinstance(type_, Integer):
        return ps.ColumnSpec(ps.INTEGER, nullable=nullable, has_default=has_default)
    if isinstance(type_, DateTime):
        return ps.ColumnSpec(
            ps.TIMESTAMP,
            nullable=nullable,
            has_default=has_default,
            timezone=bool(type_.timezone) if timezone_known else None,
        )
    if isinstance(type_, JSON):
        return ps.ColumnSpec(ps.JSON, nullable=nullable, has_default=has_default)
    return ps.ColumnSpec(str(type_).lower(), nullable=nullable, has_default=has_default)


def declared(tables: Iterable[Table]) -> dict[str, dict[str, ps.ColumnSpec]]:
    """The columns zoo-ops's schema module declares for ``tables``."""
    return {
        t.name: {c.name: column_spec(c.type, nullable=bool(c.nullable)) for c in t.columns}
        for t in tables
    }


def reflected(engine: Engine, names: Iterable[str]) -> dict[str, dict[str, ps.ColumnSpec]]:
    """The columns the database has for those of ``names`` that exist (in the connection's
    default schema: PostgreSQL's ``search_path``). Reads only."""
    with engine.connect() as conn:
        inspector = inspect(conn)
        present = set(inspector.get_table_names())
        timezone_known = conn.dialect.name != "sqlite"  # SQLite keeps no time zone flag
        return {
            name: {
                c["name"]: column_spec(
                    c["type"],
                    nullable=bool(c["nullable"]),
                    has_default=c.get("default") is not None
                    or bool(c.get("autoincrement") is True)
                    or c.get("identity") is not None
                    or c.get("computed") is not None,
                    timezone_known=timezone_known,
                )
                for c in inspector.get_columns(name)
            }
            for name in names
            if name in present
        }
