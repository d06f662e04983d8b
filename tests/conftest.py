"""Shared fixtures.

Every database test runs on SQLite and on PostgreSQL through the ``database_url``
fixture. PostgreSQL comes from ``ZOO_OPS_TEST_DATABASE_URL``; each test gets a schema
of its own (dropped afterwards) so tests can run in parallel on one database. Where
the variable is unset the PostgreSQL half is skipped -- except under CI (or
``ZOO_OPS_REQUIRE_POSTGRES=1``), where that is a failure: CI must never pass by skipping.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from support.envs import REPO
from support.postgres import POSTGRES_ENV_VAR, postgres_base_url, with_search_path

pytest_plugins = [
    "zoo_ops.testing.kube_fixtures",
    "zoo_ops.testing.secret_scan",
    "support.kube",  # the k8s_env fixture
    "support.platform_db",  # the platform_databases fixture (PostgreSQL platform databases)
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``long`` spread over the first half of the run.

    pytest-xdist's load scheduler hands each worker a run of consecutive tests, then the
    rest one by one. In file order the minute-long chains (the kill matrix, the production
    path, the Kubernetes faults) sat together, so one worker ran them back to back while
    the other finished early and waited. Woven in among the short tests from the start,
    every worker gets some, and the run ends with short tests on both workers.
    """
    long = [item for item in items if item.get_closest_marker("long")]
    if not long:
        return
    rest = [item for item in items if not item.get_closest_marker("long")]
    gap = max(1, len(rest) // (2 * len(long)))
    woven: list[pytest.Item] = []
    for n, item in enumerate(long):
        woven += [item, *rest[n * gap : (n + 1) * gap]]
    items[:] = woven + rest[len(long) * gap :]


@pytest.fixture(scope="session", autouse=True)
def zoo_ops_kernel() -> str:
    """Runbooks name the `zoo-ops` kernel; an editable install needs it installed once."""
    from zoo_ops.kernel import ensure_kernel

    return ensure_kernel()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped after the test."""
    base = postgres_base_url()
    schema = f"zt_{secrets.token_hex(6)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # noqa: BLE001 - any connection failure is the same verdict
        admin.dispose()
        pytest.fail(f"PostgreSQL at {POSTGRES_ENV_VAR} does not answer: {exc.__class__.__name__}")
    try:
        yield with_search_path(base, schema)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'platform.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def write_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Path]:
    """Write ``zoo_ops.toml`` text into tmp_path and point ZOO_OPS_CONFIG at it."""

    def write(body: str) -> Path:
        path = tmp_path / "zoo_ops.toml"
        path.write_text(body)
        monkeypatch.setenv("ZOO_OPS_CONFIG", str(path))
        return path

    return write


@pytest.fixture
def local_env_config(
    tmp_path: Path, database_url: str, write_config: Callable[[str], Path]
) -> Path:
    """A `local` environment in tmp_path on the parametrised database, repo truss_models."""
    return write_config(
        f"""
[env.local]
database_url = "{database_url}"
settings = "file:{tmp_path / "state" / "dynamic-settings.yaml"}"
state_dir = "{tmp_path / "state"}"
truss_root = "{REPO / "truss_models"}"
executed_root = "{tmp_path / "executed"}"
"""
    )


@pytest.fixture
def local_env(local_env_config: Path) -> Iterator[object]:
    from zoo_ops.environment import Environment

    env = Environment.load("local")
    yield env
    env.dispose()


@pytest.fixture
def demo_env(local_env: object) -> object:
    """The local environment with the demo built in it (20 applications)."""
    from zoo_ops.commands.demo import build_demo

    build_demo(local_env, apps=20)  # type: ignore[arg-type]
    return local_env
