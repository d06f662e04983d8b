"""`zoo-ops init -e ENV`: attach zoo-ops to an existing platform database (DESIGN §8).

Gathers facts (the platform tables zoo-ops reads and writes, as the database's inspector
reports them; the revision of zoo-ops's own tables), decides in pure code
(:func:`zoo_ops.domain.platform_schema.differences`), then acts: upgrades zoo-ops's own
tables to the shipped Alembic head and reads the result back. Never creates, alters or
drops a platform table (only ``zoo-ops demo`` creates those, for the local environment).
A database that differs is refused with every difference and nothing created.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zoo_ops.adapters.platform import introspect, versioning
from zoo_ops.adapters.platform import schema as s
from zoo_ops.config import EnvironmentConfig
from zoo_ops.domain.platform_schema import differences
from zoo_ops.errors import BadInput, GateClosed

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Table

    from zoo_ops.environment import Environment

# The platform tables zoo-ops inserts rows into (test applications, zoo versions).
INSERTED_INTO = (s.oracles.name, s.oracle_versions.name)


class PlatformSchemaMismatch(BadInput):
    """The platform's tables are not what zoo-ops reads and writes; ``differences`` says how."""

    def __init__(self, message: str, differences: Sequence[str]) -> None:
        super().__init__(message)
        self.differences = tuple(differences)


@dataclass(frozen=True)
class InitResult:
    env: str
    database: str  # redacted
    platform_tables: tuple[str, ...]  # checked
    revision_before: str | None
    revision: str
    created: tuple[str, ...]  # zoo-ops tables this run created
    present: tuple[str, ...]  # every zoo-ops table, read back

    @property
    def changed(self) -> bool:
        return self.revision_before != self.revision or bool(self.created)

    def summary(self) -> str:
        where = f"environment {self.env!r} ({self.database})"
        checked = f"platform tables match ({', '.join(self.platform_tables)})"
        if not self.changed:
            return f"{where}: {checked}; zoo-ops's tables already at revision {self.revision}"
        before = self.revision_before or "none"
        return (
            f"{where}: {checked}; zoo-ops's tables upgraded from revision {before} to "
            f"{self.revision} ({len(self.created)} created)"
        )

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(
            [
                {"table": name, "owner": "zoo-ops", "state": _state(name, self.created)}
                for name in self.present
            ]
        )


def _state(name: str, created: tuple[str, ...]) -> str:
    return "created" if name in created else "present"


def platform_tables_for(config: EnvironmentConfig) -> tuple[Table, ...]:
    """The platform tables zoo-ops reads and writes in this environment: organizations,
    users, oracles and versions always; the secrets table where serving is local (the
    database secret store, :mod:`zoo_ops.adapters.secrets.local`)."""
    tables = [s.organizations, s.users, s.oracles, s.oracle_versions]
    if config.serving == "local":
        tables.append(s.secrets_table)
    return tuple(tables)


def platform_differences(env: Environment) -> tuple[list[str], bool]:
    """Where the environment's platform tables differ from what zoo-ops reads and writes,
    and whether the database has none of them at all."""
    tables = platform_tables_for(env.config)
    actual = env.platform.reflected([t.name for t in tables])
    found = differences(introspect.declared(tables), actual, inserted_into=INSERTED_INTO)
    return found, not actual


def init(env: Environment, *, confirm: str = "") -> InitResult:
    """Check the platform tables, then bring zoo-ops's own to head; idempotent.

    Raises :class:`GateClosed` on a protected environment without ``confirm`` equal to its
    name, :class:`PlatformSchemaMismatch` (nothing created) when the platform tables
    differ, :class:`BadInput` when zoo-ops's tables are at a revision this zoo-ops does
    not know (a newer zoo-ops wrote them).
    """
    cfg = env.config
    if cfg.protected and confirm != env.name:
        raise GateClosed(
            f"environment {env.name!r} is protected: pass --confirm {env.name} to attach "
            "zoo-ops to its database"
        )
    database = cfg.database_url_redacted
    found, empty = platform_differences(env)
    if found:
        demo = " (for the local environment run `zoo-ops demo` instead)" if empty else ""
        raise PlatformSchemaMismatch(
            f"environment {env.name!r} ({database}): the platform tables differ from what "
            f"zoo-ops reads and writes in {len(found)} place{'s' if len(found) != 1 else ''}; "
            "nothing was created. Point database_url at the platform's database (or fix it), "
            f"then rerun `zoo-ops init -e {env.name}`{demo}",
            found,
        )
    before = env.platform.zoo_ops_schema()
    if before.revision is not None and not versioning.is_known(before.revision):
        raise BadInput(
            f"environment {env.name!r} ({database}): zoo-ops's tables are at revision "
            f"{before.revision}, which this zoo-ops does not know (head {before.head}); "
            "a newer zoo-ops wrote them: upgrade zoo-ops"
        )
    done = env.platform.upgrade_zoo_ops_schema()  # a no-op at head; the read-back either way
    return InitResult(
        env=env.name,
        database=database,
        platform_tables=tuple(t.name for t in platform_tables_for(cfg)),
        revision_before=done.before.revision,
        revision=done.after.head,
        created=done.created,
        present=done.after.present,
    )
