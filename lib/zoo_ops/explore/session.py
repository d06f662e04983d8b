"""What ``%load_ext zoo_ops`` preloads, and the banner that lists it.

The environment is ``$ZOO_OPS_ENV`` (default ``local``), loaded as every command loads
it (``ZOO_OPS_CONFIG`` or ``zoo_ops.toml`` in the working directory). Its platform store
is built over a read-only engine (:func:`zoo_ops.adapters.platform.engine.make_engine`
with ``read_only``): the database refuses writes from ``env.platform``, ``env.runs``,
the tables and ``%%sql`` alike -- writes go through the runbooks. Nothing here touches
the secret store, so no secret is loaded.

Names pushed: ``env``, ``engine``, every platform table except ``secrets_secret`` and
zoo-ops's own tables as SQLAlchemy ``Table`` objects by their database names,
``select``/``func`` to query them, ``pd``, and the DataFrame helpers of
:mod:`zoo_ops.adapters.platform.overview` bound to the engine.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Engine

from zoo_ops.adapters.platform import overview
from zoo_ops.adapters.platform import schema as s
from zoo_ops.adapters.platform.engine import make_engine
from zoo_ops.adapters.platform.store import PlatformStore
from zoo_ops.config import LOCAL
from zoo_ops.environment import Environment

ENV_VAR = "ZOO_OPS_ENV"

HELPERS: dict[str, tuple[Callable[..., Any], str]] = {
    "zoo_models": (overview.zoo_models, "zoo models, current version, application counts"),
    "versions": (overview.zoo_versions, "versions(model=None): zoo versions + applications"),
    "applications": (overview.applications, "applications(version_id): apps on a version"),
    "runs": (overview.runs, "runs(model=None): the runs table, newest first"),
    "journal": (overview.journal, "journal(migration_id): the rows a migration moved"),
}


def session_tables() -> dict[str, Table]:
    """The tables (and the journal view) a session may read, by database name: never the
    secrets table."""
    tables = (*s.PLATFORM_TABLES, *s.ZOO_OPS_TABLES, *s.ZOO_OPS_VIEWS)
    return {t.name: t for t in tables if t is not s.secrets_table}


@dataclass(frozen=True)
class Session:
    env: Environment
    engine: Engine
    namespace: dict[str, Any]

    def banner(self) -> str:
        """What was loaded, in a few lines; the URL redacted (never a password)."""
        tables = ", ".join(session_tables())
        helpers = "\n".join(f"  {name:<13} {text}" for name, (_, text) in HELPERS.items())
        return (
            f"zoo-ops session: env {self.env.name!r}, database "
            f"{self.env.config.database_url_redacted} (read-only)\n"
            f"tables: {tables}\n"
            f"helpers (DataFrames):\n{helpers}\n"
            "also: env, engine, select, func, pd; %%sql runs SQL on the same read-only engine"
        )


def open_session(name: str | None = None) -> Session:
    """The session of environment ``name`` (default ``$ZOO_OPS_ENV``, else ``local``)."""
    import pandas as pd
    from sqlalchemy import func, select

    env = Environment.load(name or os.environ.get(ENV_VAR, "").strip() or LOCAL)
    engine = make_engine(env.config.database_url_resolved, read_only=True)
    # Seed the cached property: every store the environment builds (runs, migrations,
    # deploys) then shares the read-only engine.
    env.__dict__["platform"] = PlatformStore(engine)
    namespace: dict[str, Any] = {
        "env": env,
        "engine": engine,
        "select": select,
        "func": func,
        "pd": pd,
        **session_tables(),
        **{name: partial(fn, engine) for name, (fn, _) in HELPERS.items()},
    }
    return Session(env=env, engine=engine, namespace=namespace)
