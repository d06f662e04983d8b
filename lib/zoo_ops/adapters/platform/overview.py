"""Read-only views of the platform as DataFrames: what the interactive session shows.

Each function is one SQLAlchemy Core query over :mod:`schema`, read with
:func:`pandas.read_sql` on the caller's engine (the session's read-only engine), with
no index column. An *application* of a zoo version is a user oracle version whose
``proxy_model_version_id`` names it -- the count :meth:`PlatformStore.count_proxying`
makes. Secrets are never selected.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Select, and_, select
from sqlalchemy.engine import Engine

from zoo_ops.adapters.platform import queries
from zoo_ops.adapters.platform import schema as s

_USER_VERSION = s.oracle_versions.alias("user_version")


def _frame(engine: Engine, query: Select) -> pd.DataFrame:  # type: ignore[type-arg]
    with engine.connect() as conn:
        return pd.read_sql(query, conn)


def zoo_versions(engine: Engine, model: str | None = None) -> pd.DataFrame:
    """Every version of every zoo model (or of ``model``), oldest first, with its
    applications: ``model, version_id, status, kind, truss_hash, current, applications,
    created_at`` (:func:`queries.zoo_versions_query`)."""
    frame = _frame(engine, queries.zoo_versions_query(model))
    frame["current"] = frame["current"].astype(bool)
    return frame


def zoo_models(engine: Engine) -> pd.DataFrame:
    """One row per zoo model, by name: ``model, current_version, kind, truss_hash,
    status, applications`` (user versions proxying any of its versions) and
    ``on_current`` (those proxying the current one)."""
    versions = zoo_versions(engine)
    rows = []
    for model, group in versions.groupby("model", sort=True):
        current = group[group["current"]]
        first = current.iloc[0] if len(current) else None
        rows.append(
            {
                "model": model,
                "current_version": None if first is None else first["version_id"],
                "kind": None if first is None else first["kind"],
                "truss_hash": None if first is None else first["truss_hash"],
                "status": None if first is None else first["status"],
                "applications": int(group["applications"].sum()),
                "on_current": 0 if first is None else int(first["applications"]),
            }
        )
    columns = [
        "model",
        "current_version",
        "kind",
        "truss_hash",
        "status",
        "applications",
        "on_current",
    ]
    return pd.DataFrame(rows, columns=columns)


def applications(engine: Engine, version_id: str) -> pd.DataFrame:
    """The user applications on zoo version ``version_id``: ``application_id, name,
    organization, user_version_id, current`` (the user version is the application's
    current one), by name."""
    query = (
        select(
            s.oracles.c.id.label("application_id"),
            s.oracles.c.name,
            s.organizations.c.name.label("organization"),
            _USER_VERSION.c.id.label("user_version_id"),
            (_USER_VERSION.c.id == s.oracles.c.current_version_id).label("current"),
        )
        .join(s.oracles, s.oracles.c.id == _USER_VERSION.c.oracle_id)
        .join(s.organizations, s.organizations.c.id == s.oracles.c.organization_id)
        .where(_USER_VERSION.c.proxy_model_version_id == version_id)
        .order_by(s.oracles.c.name, _USER_VERSION.c.id)
    )
    frame = _frame(engine, query)
    frame["current"] = frame["current"].astype(bool)
    return frame


RUN_COLUMNS = (
    "id",
    "step",
    "model",
    "env",
    "outcome",
    "dry_run",
    "started_at",
    "finished_at",
    "operator",
    "truss_hash",
    "error",
    "notebook_path",
)


def runs(engine: Engine, model: str | None = None) -> pd.DataFrame:
    """The runs table (``zoo_ops_run``), newest first; ``outcome`` is empty for a run
    in progress or crashed (``zoo-ops status`` tells them apart)."""
    query = select(*(s.runs.c[name] for name in RUN_COLUMNS)).order_by(
        s.runs.c.started_at.desc(), s.runs.c.id
    )
    if model is not None:
        query = query.where(s.runs.c.model == model)
    return _frame(engine, query)


def journal(engine: Engine, migration_id: str) -> pd.DataFrame:
    """A migration's journal: every user version it moved, by batch: ``batch,
    oracle_version_id, previous_proxy, new_proxy``."""
    j = s.migration_journal
    query = (
        select(j.c.batch, j.c.oracle_version_id, j.c.previous_proxy, j.c.new_proxy)
        .where(and_(j.c.migration_id == migration_id))
        .order_by(j.c.batch, j.c.oracle_version_id)
    )
    return _frame(engine, query)
