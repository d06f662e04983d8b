"""The migration tests' shared platform: build it, checksum it, count zoo-ops's rows.

Used by test_migration_engine, test_migration_kill, test_pg_terminate, test_crash_points
and test_concurrency; ``postgres_base_url`` is the PostgreSQL URL the fixtures use.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Engine
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from support.postgres import postgres_base_url
from zoo_ops.adapters.platform import schema as s
from zoo_ops.environment import Environment

__all__ = [
    "Platform",
    "build_platform",
    "bulk_user_versions",
    "poll_until",
    "postgres_base_url",
    "proxies",
    "table_checksum",
    "zoo_ops_state",
]


@dataclass(frozen=True)
class Platform:
    """A small platform: zoo model iris (old, new, copy versions), bert, user apps."""

    env: Environment
    engine: Engine
    old: str
    new: str
    copy: str
    bert: str
    org_ids: tuple[str, ...]


def bulk_user_versions(
    engine: Engine, proxy: str, count: int, org_ids: tuple[str, ...], prefix: str
) -> list[str]:
    """``count`` user applications (oracle + current version) proxying ``proxy``."""
    now = datetime.now(UTC)
    oracles = [
        {
            "id": f"{prefix}o{i:06d}",
            "name": f"app-{prefix}{i}",
            "organization_id": org_ids[i % len(org_ids)],
            "is_model_zoo": False,
            "current_version_id": f"{prefix}v{i:06d}",
            "created_at": now,
        }
        for i in range(count)
    ]
    versions = [
        {
            "id": f"{prefix}v{i:06d}",
            "oracle_id": f"{prefix}o{i:06d}",
            "proxy_model_version_id": proxy,
            "truss_hash": None,
            "status": s.ACTIVE,
            "artifact": None,
            "created_at": now,
        }
        for i in range(count)
    ]
    with engine.begin() as conn:
        if oracles:
            conn.execute(insert(s.oracles), oracles)
            conn.execute(insert(s.oracle_versions), versions)
    return [v["id"] for v in versions]


def build_platform(env: Environment, apps: int = 120, new_status: str = s.ACTIVE) -> Platform:
    store = env.platform
    store.create_schema()
    admin = store.create_organization("zoo", is_admin=True)
    orgs = tuple(store.create_organization(f"org{i}").id for i in range(3))
    iris = store.create_oracle("iris", admin.id, is_model_zoo=True)
    old = store.add_version(iris.id, status=s.ACTIVE)
    new = store.add_version(iris.id, status=new_status)
    iris_copy = store.create_oracle("iris_copy", admin.id, is_model_zoo=True)
    copy = store.add_version(iris_copy.id, status=s.ACTIVE)
    bert = store.create_oracle("bert", admin.id, is_model_zoo=True)
    bert_v = store.add_version(bert.id, status=s.ACTIVE)
    store.set_current_version(iris.id, old.id)
    store.set_current_version(bert.id, bert_v.id)
    bulk_user_versions(store.engine, old.id, apps, orgs, "a")
    bulk_user_versions(store.engine, bert_v.id, 7, orgs, "b")  # must never move
    return Platform(env, store.engine, old.id, new.id, copy.id, bert_v.id, orgs)


def table_checksum(engine: Engine, exclude: set[str] | None = None) -> str:
    """sha256 over every user-versions row (every column), in id order."""
    digest = hashlib.sha256()
    with engine.connect() as conn:
        rows = conn.execute(select(s.oracle_versions).order_by(s.oracle_versions.c.id)).all()
    for row in rows:
        if exclude and row.id in exclude:
            continue
        digest.update(repr(tuple(str(v) for v in row)).encode())
    return digest.hexdigest()


def zoo_ops_state(engine: Engine) -> tuple[int, int, int]:
    """Row counts of the migration, journal and lock tables."""
    with engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in (s.migrations, s.migration_journal, s.locks)
        )


def proxies(engine: Engine, version_ids: list[str] | None = None) -> dict[str, str]:
    v = s.oracle_versions.c
    query = select(v.id, v.proxy_model_version_id)
    if version_ids is not None:
        query = query.where(v.id.in_(version_ids))
    with engine.connect() as conn:
        return {r[0]: r[1] for r in conn.execute(query).all()}


def poll_until(
    done: Callable[[], bool],
    *,
    timeout_s: float,
    interval_s: float,
    message: str,
    each: Callable[[], None] | None = None,
) -> None:
    """Poll ``done()`` every ``interval_s`` until it is true; after ``timeout_s`` fail with
    ``message``. ``each()`` runs before every poll: an assertion there (a child that
    ended early) stops the polling at once."""

    def attempt() -> bool:
        if each is not None:
            each()
        return done()

    def timed_out(_state: object) -> bool:
        raise AssertionError(message)

    Retrying(
        stop=stop_after_delay(timeout_s),
        wait=wait_fixed(interval_s),
        retry=retry_if_result(lambda ok: not ok),
        retry_error_callback=timed_out,
    )(attempt)
