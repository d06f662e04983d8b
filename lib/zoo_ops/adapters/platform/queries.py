"""Queries over the platform's tables that more than one reader runs: the interactive
session's DataFrames (:mod:`overview`) and the store's rows (:class:`PlatformStore`)."""

from __future__ import annotations

from sqlalchemy import Select, case, func, select

from zoo_ops.adapters.platform import schema as s

_ZOO = s.oracles.alias("zoo")
_ZOO_VERSION = s.oracle_versions.alias("zoo_version")
_USER_VERSION = s.oracle_versions.alias("user_version")


def zoo_models_query() -> Select:  # type: ignore[type-arg]
    """The admin organization's model zoo oracles: ``id, name, current_version_id``."""
    return (
        select(_ZOO.c.id, _ZOO.c.name, _ZOO.c.current_version_id)
        .join(s.organizations, s.organizations.c.id == _ZOO.c.organization_id)
        .where(_ZOO.c.is_model_zoo.is_(True), s.organizations.c.is_admin.is_(True))
    )


def zoo_versions_query(model: str | None = None) -> Select:  # type: ignore[type-arg]
    """Every version of every zoo model (or of ``model``), oldest first, with the user
    versions proxying it: ``model, version_id, status, kind, truss_hash, current,
    applications, created_at``. ``kind`` is ``truss`` for a version with a truss hash,
    else ``legacy``. One statement."""
    zoo = zoo_models_query().subquery()
    apps = (
        select(_USER_VERSION.c.proxy_model_version_id.label("vid"), func.count().label("n"))
        .where(_USER_VERSION.c.proxy_model_version_id.is_not(None))
        .group_by(_USER_VERSION.c.proxy_model_version_id)
        .subquery()
    )
    query = (
        select(
            zoo.c.name.label("model"),
            _ZOO_VERSION.c.id.label("version_id"),
            _ZOO_VERSION.c.status,
            case((_ZOO_VERSION.c.truss_hash.is_(None), "legacy"), else_="truss").label("kind"),
            _ZOO_VERSION.c.truss_hash,
            (_ZOO_VERSION.c.id == zoo.c.current_version_id).label("current"),
            func.coalesce(apps.c.n, 0).label("applications"),
            _ZOO_VERSION.c.created_at,
        )
        .join(zoo, zoo.c.id == _ZOO_VERSION.c.oracle_id)
        .outerjoin(apps, apps.c.vid == _ZOO_VERSION.c.id)
        .order_by(zoo.c.name, _ZOO_VERSION.c.created_at, _ZOO_VERSION.c.id)
    )
    if model is not None:
        query = query.where(zoo.c.name == model)
    return query
