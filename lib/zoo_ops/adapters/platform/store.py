"""PlatformStore: the queries zoo-ops makes of the platform's database.

Every write reads back what it wrote (DESIGN §7) and raises when the effect is not
there. The platform's SQL lives here; zoo-ops's own tables have theirs in
``platform/runs.py``, ``platform/deploys.py`` and ``migration/store.py``. Nothing above
the adapters and the migration store writes SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Executable, and_, func, insert, inspect, select, update
from sqlalchemy.engine import Engine

from zoo_ops.adapters.platform import introspect, queries, versioning
from zoo_ops.adapters.platform import schema as s
from zoo_ops.adapters.platform.schema import utcnow
from zoo_ops.domain.ids import new_id
from zoo_ops.domain.platform_schema import ColumnSpec
from zoo_ops.errors import NotFound, StepFailed

__all__ = [
    "Application",
    "ApplicationSpec",
    "Oracle",
    "OracleVersion",
    "Organization",
    "PlatformStore",
    "User",
    "utcnow",
]


@dataclass(frozen=True)
class Organization:
    id: str
    name: str
    is_admin: bool


@dataclass(frozen=True)
class User:
    id: str
    email: str
    organization_id: str


@dataclass(frozen=True)
class Oracle:
    id: str
    name: str
    organization_id: str
    is_model_zoo: bool
    current_version_id: str | None
    created_at: datetime


@dataclass(frozen=True)
class OracleVersion:
    id: str
    oracle_id: str
    proxy_model_version_id: str | None
    truss_hash: str | None
    status: str
    artifact: str | None
    created_at: datetime


@dataclass(frozen=True)
class Application:
    """A user application's model: the user oracle and its current, proxying version."""

    oracle_id: str
    version_id: str
    proxy_model_version_id: str


@dataclass(frozen=True)
class ApplicationSpec:
    """A user application to create in bulk: its name, owner and the zoo version it proxies."""

    name: str
    organization_id: str
    proxy_model_version_id: str


class PlatformStore:
    """Queries over the platform tables of one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- plumbing -------------------------------------------------------------------

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def _execute(self, stmt: Executable, conn: Connection | None) -> None:
        """Run ``stmt`` in the caller's transaction, or in one of its own."""
        if conn is not None:
            conn.execute(stmt)
        else:
            with self.begin() as c:
                c.execute(stmt)

    def create_schema(self) -> None:
        """The platform's tables and zoo-ops's own (``zoo-ops demo`` and tests only; an
        existing platform database is attached with ``zoo-ops init``)."""
        versioning.create_schema(self.engine)

    def drop_schema(self) -> None:
        """Drop every table zoo-ops knows, platform's and its own (the demo's ``--reset``)."""
        versioning.drop_schema(self.engine)

    def zoo_ops_schema(self) -> versioning.SchemaState:
        """The revision of zoo-ops's own tables and which of them exist (reads only)."""
        return versioning.state(self.engine)

    def upgrade_zoo_ops_schema(self) -> versioning.Upgrade:
        """Bring zoo-ops's own tables to head (a no-op at head); the read-back either way."""
        return versioning.upgrade(self.engine)

    def has_table(self, name: str) -> bool:
        """Whether the database has a table ``name``."""
        return bool(inspect(self.engine).has_table(name))

    def reflected(self, names: Iterable[str]) -> dict[str, dict[str, ColumnSpec]]:
        """The columns of those of ``names`` the database has, as the platform made them."""
        return introspect.reflected(self.engine, names)

    # --- organizations and users ----------------------------------------------------

    def create_organization(self, name: str, *, is_admin: bool = False) -> Organization:
        org = Organization(new_id(), name, is_admin)
        with self.begin() as conn:
            conn.execute(insert(s.organizations).values(id=org.id, name=name, is_admin=is_admin))
        return org

    def admin_organization(self) -> Organization:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(s.organizations).where(s.organizations.c.is_admin.is_(True))
            ).first()
        if row is None:
            raise NotFound("no admin organization in this database; run `zoo-ops demo` locally")
        return Organization(row.id, row.name, row.is_admin)

    def create_user(self, email: str, organization_id: str) -> User:
        user = User(new_id(), email, organization_id)
        with self.begin() as conn:
            conn.execute(
                insert(s.users).values(id=user.id, email=email, organization_id=organization_id)
            )
        return user

    def user_by_email(self, email: str) -> User:
        with self.engine.connect() as conn:
            row = conn.execute(select(s.users).where(s.users.c.email == email)).first()
        if row is None:
            raise NotFound(f"no user with email {email!r}; pass user_email of an existing user")
        return User(row.id, row.email, row.organization_id)

    # --- oracles and versions -------------------------------------------------------

    def zoo_model(self, name: str) -> Oracle:
        found = self.find_zoo_model(name)
        if found is None:
            raise NotFound(f"no model zoo model named {name!r}; check the model parameter")
        return found

    def find_zoo_model(self, name: str) -> Oracle | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(s.oracles)
                .join(s.organizations, s.organizations.c.id == s.oracles.c.organization_id)
                .where(
                    s.oracles.c.name == name,
                    s.oracles.c.is_model_zoo.is_(True),
                    s.organizations.c.is_admin.is_(True),
                )
            ).first()
        return None if row is None else _oracle(row)

    def any_zoo_model(self) -> Oracle | None:
        models = self.zoo_models()
        return models[0] if models else None

    def zoo_models(self) -> list[Oracle]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(s.oracles)
                .join(s.organizations, s.organizations.c.id == s.oracles.c.organization_id)
                .where(s.oracles.c.is_model_zoo.is_(True), s.organizations.c.is_admin.is_(True))
                .order_by(s.oracles.c.name)
            ).all()
        return [_oracle(r) for r in rows]

    def oracle(self, oracle_id: str) -> Oracle:
        with self.engine.connect() as conn:
            row = conn.execute(select(s.oracles).where(s.oracles.c.id == oracle_id)).first()
        if row is None:
            raise NotFound(f"no oracle with id {oracle_id!r}")
        return _oracle(row)

    def create_oracle(
        self, name: str, organization_id: str, *, is_model_zoo: bool, conn: Connection | None = None
    ) -> Oracle:
        oracle = Oracle(new_id(), name, organization_id, is_model_zoo, None, utcnow())
        stmt = insert(s.oracles).values(
            id=oracle.id,
            name=name,
            organization_id=organization_id,
            is_model_zoo=is_model_zoo,
            current_version_id=None,
            created_at=oracle.created_at,
        )
        self._execute(stmt, conn)
        return oracle

    def version(self, version_id: str) -> OracleVersion:
        found = self.find_version(version_id)
        if found is None:
            raise NotFound(f"no oracle version with id {version_id!r}; check the id")
        return found

    def find_version(self, version_id: str) -> OracleVersion | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(s.oracle_versions).where(s.oracle_versions.c.id == version_id)
            ).first()
        return None if row is None else _version(row)

    def versions_of(self, oracle_id: str) -> list[OracleVersion]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(s.oracle_versions)
                .where(s.oracle_versions.c.oracle_id == oracle_id)
                .order_by(s.oracle_versions.c.created_at, s.oracle_versions.c.id)
            ).all()
        return [_version(r) for r in rows]

    def current_version(self, oracle: Oracle) -> OracleVersion:
        fresh = self.oracle(oracle.id)
        if fresh.current_version_id is None:
            raise NotFound(f"model {oracle.name!r} has no current version; deploy one first")
        return self.version(fresh.current_version_id)

    def add_version(
        self,
        oracle_id: str,
        *,
        status: str,
        truss_hash: str | None = None,
        artifact: str | None = None,
        proxy_model_version_id: str | None = None,
        conn: Connection | None = None,
        version_id: str | None = None,
    ) -> OracleVersion:
        """A new version of the oracle. ``version_id``: one chosen beforehand (e.g. when
        the artifact is named after it); a new id otherwise."""
        if status not in s.VERSION_STATUSES:
            raise ValueError(f"unknown version status {status!r}")
        version = OracleVersion(
            version_id or new_id(),
            oracle_id,
            proxy_model_version_id,
            truss_hash,
            status,
            artifact,
            utcnow(),
        )
        stmt = insert(s.oracle_versions).values(
            id=version.id,
            oracle_id=oracle_id,
            proxy_model_version_id=proxy_model_version_id,
            truss_hash=truss_hash,
            status=status,
            artifact=artifact,
            created_at=version.created_at,
        )
        self._execute(stmt, conn)
        return version

    def set_version_status(
        self, version_id: str, status: str, *, artifact: str | None = None
    ) -> None:
        values: dict[str, object] = {"status": status}
        if artifact is not None:
            values["artifact"] = artifact
        with self.begin() as conn:
            conn.execute(
                update(s.oracle_versions)
                .where(s.oracle_versions.c.id == version_id)
                .values(**values)
            )
        if self.version(version_id).status != status:
            raise StepFailed(
                f"version {version_id} status did not become {status}; check the database"
            )

    def set_current_version(self, oracle_id: str, version_id: str) -> None:
        with self.begin() as conn:
            conn.execute(
                update(s.oracles)
                .where(s.oracles.c.id == oracle_id)
                .values(current_version_id=version_id)
            )
        if self.oracle(oracle_id).current_version_id != version_id:
            raise StepFailed(f"oracle {oracle_id} current version did not become {version_id}")

    def set_proxy(self, user_version_id: str, proxy_version_id: str) -> None:
        """Point one user version at a zoo version (the seed's shell_plus edit)."""
        with self.begin() as conn:
            conn.execute(
                update(s.oracle_versions)
                .where(s.oracle_versions.c.id == user_version_id)
                .values(proxy_model_version_id=proxy_version_id)
            )
        if self.version(user_version_id).proxy_model_version_id != proxy_version_id:
            raise StepFailed(
                f"user version {user_version_id} does not proxy {proxy_version_id} after the write"
            )

    def count_proxying(self, version_id: str) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(s.oracle_versions)
                    .where(s.oracle_versions.c.proxy_model_version_id == version_id)
                ).scalar_one()
            )

    def user_versions_proxying(self, version_id: str) -> list[OracleVersion]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(s.oracle_versions)
                .where(s.oracle_versions.c.proxy_model_version_id == version_id)
                .order_by(s.oracle_versions.c.id)
            ).all()
        return [_version(r) for r in rows]

    def zoo_version_applications(
        self, model: str | None = None
    ) -> list[tuple[str, str, int, bool]]:
        """``(model, version_id, applications, current)`` of every zoo version (of
        ``model``), oldest first: one statement (:func:`queries.zoo_versions_query`)."""
        with self.engine.connect() as conn:
            rows = conn.execute(queries.zoo_versions_query(model)).all()
        return [(r.model, r.version_id, int(r.applications), bool(r.current)) for r in rows]

    def proxy_counts(self, version_ids: Iterable[str]) -> dict[str, int]:
        ids = list(version_ids)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(s.oracle_versions.c.proxy_model_version_id, func.count())
                .where(s.oracle_versions.c.proxy_model_version_id.in_(ids))
                .group_by(s.oracle_versions.c.proxy_model_version_id)
            ).all()
        counts = dict.fromkeys(ids, 0)
        counts.update({r[0]: int(r[1]) for r in rows})
        return counts

    def create_application(
        self, organization_id: str, zoo_model_name: str, *, name: str | None = None
    ) -> Application:
        """A new user oracle whose current version proxies the zoo model's current version."""
        zoo = self.zoo_model(zoo_model_name)
        zoo_current = self.current_version(zoo)
        app_name = name or f"{zoo_model_name}-{new_id(6)}"
        with self.begin() as conn:
            oracle = self.create_oracle(app_name, organization_id, is_model_zoo=False, conn=conn)
            version = self.add_version(
                oracle.id, status=s.ACTIVE, proxy_model_version_id=zoo_current.id, conn=conn
            )
            conn.execute(
                update(s.oracles)
                .where(s.oracles.c.id == oracle.id)
                .values(current_version_id=version.id)
            )
        app = Application(oracle.id, version.id, zoo_current.id)
        if self.version(version.id).proxy_model_version_id != zoo_current.id:
            raise StepFailed(f"application {oracle.id} was not created proxying {zoo_current.id}")
        return app

    def create_applications(self, specs: Sequence[ApplicationSpec]) -> list[Application]:
        """Many user applications in one transaction (bulk inserts): each a new user oracle
        whose current, ACTIVE version proxies the given zoo version. For building
        environments (the demo); nothing is read back row by row."""
        if not specs:
            return []
        now = utcnow()
        oracle_rows, version_rows, apps = [], [], []
        for spec in specs:
            oracle_id, version_id = new_id(), new_id()
            oracle_rows.append(
                {
                    "id": oracle_id,
                    "name": spec.name,
                    "organization_id": spec.organization_id,
                    "is_model_zoo": False,
                    "current_version_id": version_id,
                    "created_at": now,
                }
            )
            version_rows.append(
                {
                    "id": version_id,
                    "oracle_id": oracle_id,
                    "proxy_model_version_id": spec.proxy_model_version_id,
                    "truss_hash": None,
                    "status": s.ACTIVE,
                    "artifact": None,
                    "created_at": now,
                }
            )
            apps.append(Application(oracle_id, version_id, spec.proxy_model_version_id))
        with self.begin() as conn:
            conn.execute(insert(s.oracles), oracle_rows)
            conn.execute(insert(s.oracle_versions), version_rows)
        return apps

    def application(self, oracle_id: str) -> Application:
        oracle = self.oracle(oracle_id)
        if oracle.is_model_zoo:
            raise NotFound(f"oracle {oracle_id!r} is a model zoo model, not a user application")
        if oracle.current_version_id is None:
            raise NotFound(f"application {oracle_id!r} has no current version")
        version = self.version(oracle.current_version_id)
        if version.proxy_model_version_id is None:
            raise NotFound(f"application {oracle_id!r} does not proxy a model zoo model")
        return Application(oracle.id, version.id, version.proxy_model_version_id)

    # --- zoo-ops metadata ------------------------------------------------------------

    def set_meta(self, key: str, value: str) -> None:
        with self.begin() as conn:
            conn.execute(s.meta.delete().where(s.meta.c.key == key))
            conn.execute(insert(s.meta).values(key=key, value=value))

    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(s.meta.c.value).where(s.meta.c.key == key)).scalar()

    def has_schema(self) -> bool:
        from sqlalchemy import inspect

        return inspect(self.engine).has_table(s.organizations.name)

    # --- secrets --------------------------------------------------------------------

    def set_secret(self, organization_id: str, name: str, value: str) -> None:
        with self.begin() as conn:
            conn.execute(
                s.secrets_table.delete().where(
                    and_(
                        s.secrets_table.c.organization_id == organization_id,
                        s.secrets_table.c.name == name,
                    )
                )
            )
            conn.execute(
                insert(s.secrets_table).values(
                    organization_id=organization_id, name=name, value=value
                )
            )

    def secret_names(self, organization_id: str) -> set[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(s.secrets_table.c.name).where(
                    s.secrets_table.c.organization_id == organization_id
                )
            ).all()
        return {r[0] for r in rows}

    def secret_values(self, organization_id: str) -> dict[str, str]:
        """Secret values, for handing to a model at load time only; never display them."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(s.secrets_table.c.name, s.secrets_table.c.value).where(
                    s.secrets_table.c.organization_id == organization_id
                )
            ).all()
        return {r[0]: r[1] for r in rows}


def _oracle(row: object) -> Oracle:
    m = row._mapping  # type: ignore[attr-defined]
    return Oracle(
        m["id"],
        m["name"],
        m["organization_id"],
        bool(m["is_model_zoo"]),
        m["current_version_id"],
        m["created_at"],
    )


def _version(row: object) -> OracleVersion:
    m = row._mapping  # type: ignore[attr-defined]
    return OracleVersion(
        m["id"],
        m["oracle_id"],
        m["proxy_model_version_id"],
        m["truss_hash"],
        m["status"],
        m["artifact"],
        m["created_at"],
    )
