"""The platform store on SQLite and PostgreSQL (every test runs on both)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect, select, text, update

from zoo_ops.adapters.platform import schema as s
from zoo_ops.adapters.platform.engine import make_engine
from zoo_ops.adapters.platform.store import ApplicationSpec, PlatformStore
from zoo_ops.errors import NotFound


@pytest.fixture
def store(database_url: str) -> PlatformStore:
    st = PlatformStore(make_engine(database_url))
    st.create_schema()
    yield st
    st.engine.dispose()


def test_schema_creation_twice_is_harmless(store: PlatformStore) -> None:
    org = store.create_organization("zoo", is_admin=True)
    store.create_schema()
    tables = set(inspect(store.engine).get_table_names())
    assert {t.name for t in s.metadata.sorted_tables} <= tables
    assert store.admin_organization() == org


def test_zoo_model_and_current_version(store: PlatformStore) -> None:
    admin = store.create_organization("zoo", is_admin=True)
    iris = store.create_oracle("iris", admin.id, is_model_zoo=True)
    v1 = store.add_version(iris.id, status=s.ACTIVE, artifact="legacy:x")
    store.set_current_version(iris.id, v1.id)
    assert store.zoo_model("iris").current_version_id == v1.id
    assert store.current_version(store.zoo_model("iris")).id == v1.id
    v2 = store.add_version(iris.id, status=s.DEPLOYING, truss_hash="ab" * 32)
    assert [v.id for v in store.versions_of(iris.id)] == [v1.id, v2.id]


def test_a_user_oracle_is_not_a_zoo_model(store: PlatformStore) -> None:
    store.create_organization("zoo", is_admin=True)
    acme = store.create_organization("acme")
    store.create_oracle("iris", acme.id, is_model_zoo=False)
    with pytest.raises(NotFound, match="no model zoo model named 'iris'"):
        store.zoo_model("iris")


def test_create_application_proxies_the_current_zoo_version(store: PlatformStore) -> None:
    admin = store.create_organization("zoo", is_admin=True)
    acme = store.create_organization("acme")
    iris = store.create_oracle("iris", admin.id, is_model_zoo=True)
    v1 = store.add_version(iris.id, status=s.ACTIVE)
    store.set_current_version(iris.id, v1.id)
    app = store.create_application(acme.id, "iris")
    assert app.proxy_model_version_id == v1.id
    assert store.application(app.oracle_id) == app
    assert [v.id for v in store.user_versions_proxying(v1.id)] == [app.version_id]

    v2 = store.add_version(iris.id, status=s.ACTIVE)
    store.set_current_version(iris.id, v2.id)
    app2 = store.create_application(acme.id, "iris")
    assert app2.proxy_model_version_id == v2.id
    assert store.proxy_counts([v1.id, v2.id]) == {v1.id: 1, v2.id: 1}


def test_set_proxy_reads_back(store: PlatformStore) -> None:
    admin = store.create_organization("zoo", is_admin=True)
    acme = store.create_organization("acme")
    iris = store.create_oracle("iris", admin.id, is_model_zoo=True)
    v1 = store.add_version(iris.id, status=s.ACTIVE)
    v2 = store.add_version(iris.id, status=s.ACTIVE)
    store.set_current_version(iris.id, v1.id)
    app = store.create_application(acme.id, "iris")
    store.set_proxy(app.version_id, v2.id)
    assert store.version(app.version_id).proxy_model_version_id == v2.id


def test_unknown_ids_are_not_found(store: PlatformStore) -> None:
    with pytest.raises(NotFound):
        store.version("nope")
    with pytest.raises(NotFound):
        store.user_by_email("nobody@example.com")


def test_secret_names_never_need_values(store: PlatformStore) -> None:
    admin = store.create_organization("zoo", is_admin=True)
    store.set_secret(admin.id, "hf_access_token", "v1")
    store.set_secret(admin.id, "hf_access_token", "v2")
    assert store.secret_names(admin.id) == {"hf_access_token"}
    assert store.secret_values(admin.id) == {"hf_access_token": "v2"}


def test_meta(store: PlatformStore) -> None:
    assert store.get_meta("k") is None
    store.set_meta("k", "a")
    store.set_meta("k", "b")
    assert store.get_meta("k") == "b"


# --- timestamps: aware UTC on both databases ---------------------------------------------


def test_timestamps_read_back_aware_utc(store: PlatformStore) -> None:
    admin = store.create_organization("zoo", is_admin=True)
    iris = store.create_oracle("iris", admin.id, is_model_zoo=True)
    assert store.oracle(iris.id).created_at == iris.created_at
    assert store.oracle(iris.id).created_at.tzinfo is UTC
    # An aware value in another zone is stored as the same instant, read back in UTC.
    tokyo = datetime(2024, 5, 6, 9, 30, tzinfo=timezone(timedelta(hours=9)))
    with store.begin() as conn:
        conn.execute(update(s.oracles).where(s.oracles.c.id == iris.id).values(created_at=tokyo))
    back = store.oracle(iris.id).created_at
    assert back == tokyo and back.tzinfo is UTC and back.hour == 0
    # A naive value is taken to be UTC.
    with store.begin() as conn:
        conn.execute(
            update(s.oracles)
            .where(s.oracles.c.id == iris.id)
            .values(created_at=datetime(2024, 5, 6, 7, 8))
        )
    assert store.oracle(iris.id).created_at == datetime(2024, 5, 6, 7, 8, tzinfo=UTC)
    # Comparisons bind through the same type.
    with store.engine.connect() as conn:
        found = conn.execute(
            select(s.oracles.c.id).where(s.oracles.c.created_at < tokyo + timedelta(hours=8))
        ).all()
    assert [r.id for r in found] == [iris.id]


def test_timestamps_written_by_earlier_versions_read_aware_utc(store: PlatformStore) -> None:
    """Rows as earlier zoo-ops (plain DateTime columns) and `zoo-ops demo` left them."""
    admin = store.create_organization("zoo", is_admin=True)
    iris = store.create_oracle("iris", admin.id, is_model_zoo=True)
    with store.begin() as conn:
        if store.engine.dialect.name == "postgresql":
            # timestamptz answers in the session's zone: not UTC here on purpose.
            conn.execute(text("SET TIME ZONE 'America/New_York'"))
            conn.execute(
                text("UPDATE oracles_oracle SET created_at = '2024-01-02 03:04:05.678901+00'")
            )
        else:
            # SQLite: the UTC wall time as text, no offset (SQLAlchemy's DATETIME format).
            conn.execute(
                text("UPDATE oracles_oracle SET created_at = '2024-01-02 03:04:05.678901'")
            )
        raw = conn.execute(select(s.oracles.c.created_at)).scalar_one()
    expected = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert raw == expected and raw.tzinfo is UTC
    assert store.oracle(iris.id).created_at == expected


def test_applications_in_bulk(store: PlatformStore) -> None:
    admin = store.create_organization("zoo", is_admin=True)
    acme = store.create_organization("acme")
    iris = store.create_oracle("iris", admin.id, is_model_zoo=True)
    v1 = store.add_version(iris.id, status=s.ACTIVE, artifact="legacy:x", version_id="v1fixed")
    assert v1.id == "v1fixed" and store.version("v1fixed").artifact == "legacy:x"
    assert store.create_applications([]) == []
    apps = store.create_applications(
        [ApplicationSpec(f"iris-app-{i}", acme.id, v1.id) for i in range(3)]
    )
    assert store.count_proxying(v1.id) == 3
    assert [store.application(a.oracle_id) for a in apps] == apps
