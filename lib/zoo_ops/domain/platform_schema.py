"""Does a platform database have the tables zoo-ops reads and writes? Pure comparison.

The adapter (:mod:`zoo_ops.adapters.platform.introspect`) describes both sides as plain
:class:`ColumnSpec` values: what zoo-ops's schema module declares and what the database's
inspector reports. :func:`differences` says, one sentence each, where they disagree in a
way that would break a read or a write; ``zoo-ops init`` refuses on any.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# Column kinds, as both sides are described.
STRING = "string"  # bounded text: VARCHAR(n), CHAR(n)
TEXT = "text"  # unbounded text: TEXT, VARCHAR without a length
BOOLEAN = "boolean"
INTEGER = "integer"
TIMESTAMP = "timestamp"
JSON = "json"


@dataclass(frozen=True)
class ColumnSpec:
    """One column, reduced to what decides whether zoo-ops can use it.

    ``timezone`` is None where the database does not say (SQLite); ``has_default`` is a
    server-side default (an insert that omits the column still succeeds).
    """

    kind: str
    length: int | None = None
    nullable: bool = True
    timezone: bool | None = None
    has_default: bool = False

    def describe(self) -> str:
        """``varchar(32)``, ``text``, ``timestamp with time zone``... for a message."""
        if self.kind == STRING:
            return f"varchar({self.length})"
        if self.kind == TIMESTAMP and self.timezone is not None:
            return "timestamp with time zone" if self.timezone else "timestamp without time zone"
        return self.kind


Tables = Mapping[str, Mapping[str, ColumnSpec]]


def type_problem(expected: ColumnSpec, actual: ColumnSpec) -> str | None:
    """Why ``actual`` cannot hold what zoo-ops reads and writes as ``expected``; None if it can.

    Text fits text (a bounded column at least as long as zoo-ops's bound, or an unbounded
    one; unbounded text needs an unbounded column); a timestamp zoo-ops keeps with a
    time zone needs one wherever the database records it; other kinds must be equal.
    """
    if expected.kind in (STRING, TEXT):
        if actual.kind == TEXT:
            return None
        if actual.kind == STRING and expected.kind == STRING:
            if actual.length is None or expected.length is None:
                return None
            if actual.length >= expected.length:
                return None
            return (
                f"is {actual.describe()}, shorter than the {expected.length} characters "
                "zoo-ops writes"
            )
        return f"is {actual.describe()}; zoo-ops needs {expected.describe()}"
    if actual.kind != expected.kind:
        return f"is {actual.describe()}; zoo-ops needs {expected.describe()}"
    if expected.kind == TIMESTAMP and expected.timezone and actual.timezone is False:
        return f"is {actual.describe()}; zoo-ops needs timestamp with time zone"
    return None


def differences(
    expected: Tables, actual: Tables, *, inserted_into: Iterable[str] = ()
) -> list[str]:
    """Every way ``actual`` falls short of ``expected``, one sentence each, in table order.

    Checked: each expected table exists; each expected column exists with a fitting type
    (:func:`type_problem`); a column zoo-ops may leave NULL is nullable; and in the tables
    zoo-ops inserts rows into (``inserted_into``), no other column is NOT NULL without a
    default (the insert would fail). Extra tables and nullable extra columns are fine.
    """
    found: list[str] = []
    inserts = set(inserted_into)
    for table, columns in expected.items():
        have = actual.get(table)
        if have is None:
            found.append(f"table {table} is missing")
            continue
        for name, want in columns.items():
            got = have.get(name)
            if got is None:
                found.append(f"{table}.{name} is missing (zoo-ops uses it as {want.describe()})")
                continue
            problem = type_problem(want, got)
            if problem:
                found.append(f"{table}.{name} {problem}")
            if want.nullable and not got.nullable:
                found.append(f"{table}.{name} is NOT NULL; zoo-ops writes NULL into it")
        if table in inserts:
            for name, got in have.items():
                if name not in columns and not got.nullable and not got.has_default:
                    found.append(
                        f"{table}.{name} is NOT NULL without a default; zoo-ops inserts "
                        "rows without it"
                    )
    return found
