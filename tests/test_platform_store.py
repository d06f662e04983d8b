"""The platform store on SQLite and PostgreSQL (every test runs on both)."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from zoo_ops.adapters.platform import schema as s
from zoo_ops.adapters.platform.engine import make_engine
from zoo_ops.adapters.platform.store import PlatformStore
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
