"""`%load_ext zoo_ops` in a real IPython shell, on SQLite and PostgreSQL: the preloaded
names, the DataFrame helpers against the platform's own counts, and the read-only
session -- the database refuses a write from `%%sql`, the engine and `env` alike."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from sqlalchemy import select, text, update

from zoo_ops.adapters.platform import schema as s

REFUSED = ("attempt to write a readonly database", "read-only transaction")


@pytest.fixture
def shell(demo_env: object, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    monkeypatch.setenv("ZOO_OPS_ENV", "local")
    ip = InteractiveShell.instance()
    try:
        yield ip
    finally:
        from sql.connection import ConnectionManager

        ConnectionManager.close_all()
        ip.user_ns.get("engine") and ip.user_ns["engine"].dispose()
        InteractiveShell.clear_instance()


def _names(env) -> dict[str, str]:
    with env.platform.engine.connect() as conn:
        return dict(conn.execute(select(s.oracles.c.id, s.oracles.c.name)).all())


def test_the_extension_preloads_env_tables_and_helpers_with_the_platforms_counts(
    shell: InteractiveShell, demo_env, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.run_line_magic("load_ext", "zoo_ops")
    banner = capsys.readouterr().out
    assert "zoo-ops session: env 'local'" in banner and "(read-only)" in banner
    ns = shell.user_ns
    assert ns["env"].name == "local"
    assert ns["oracles_oracle"] is s.oracles and ns["oracles_oracleversion"] is s.oracle_versions
    assert "secrets_secret" not in ns
    # The journal stays readable one row per moved user version: a view over the batches.
    assert ns["zoo_ops_migration_journal"] is s.migration_journal
    assert "zoo_ops_migration_batch" in ns
    models = ns["zoo_models"]()
    platform = demo_env.platform
    expected = {}
    for zoo in platform.zoo_models():
        current = platform.current_version(zoo).id
        expected[zoo.name] = (current, platform.count_proxying(current))
    got = {r.model: (r.current_version, r.on_current) for r in models.itertuples()}
    assert got == expected and sum(n for _, n in expected.values()) == 20
    iris_current = expected["iris"][0]
    apps = ns["applications"](iris_current)
    assert len(apps) == expected["iris"][1]
    assert {v.id for v in platform.user_versions_proxying(iris_current)} == set(
        apps["user_version_id"]
    )
    assert list(ns["versions"]("iris")["version_id"]) == [
        v.id for v in platform.versions_of(platform.zoo_model("iris").id)
    ]
    assert ns["runs"]().empty  # the demo has run nothing yet
    result = shell.run_cell("%sql SELECT count(*) AS n FROM oracles_oracle WHERE is_model_zoo")
    assert result.success
    assert list(result.result.DataFrame()["n"]) == [4]


def test_every_write_from_the_session_is_refused_by_the_database(
    shell: InteractiveShell, demo_env
) -> None:
    before = _names(demo_env)
    shell.run_line_magic("load_ext", "zoo_ops")
    result = shell.run_cell("%%sql\nUPDATE oracles_oracle SET name = 'hijacked'")
    assert not result.success
    assert any(r in str(result.error_in_exec) for r in REFUSED), result.error_in_exec
    engine = shell.user_ns["engine"]
    with pytest.raises(Exception) as refused, engine.begin() as conn:
        conn.execute(update(s.oracles).values(name="hijacked"))
    assert any(r in str(refused.value) for r in REFUSED)
    env = shell.user_ns["env"]
    app = env.platform.user_versions_proxying(
        env.platform.current_version(env.platform.zoo_model("iris")).id
    )[0]
    with pytest.raises(Exception) as refused:
        env.platform.set_proxy(app.id, "somewhere")
    assert any(r in str(refused.value) for r in REFUSED)
    assert _names(demo_env) == before


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_the_banner_and_sql_connections_never_show_the_password(
    database_url: str, tmp_path: Path, write_config, monkeypatch, capsys
) -> None:
    """A password in the database URL (the trust server ignores it): not in the banner,
    not in jupysql's connection list, not in a refused write's error."""
    from zoo_ops.adapters.platform.engine import make_engine

    password = "pw-Zq81xk"
    url = database_url.replace("postgres@", f"postgres:{password}@", 1)
    assert password in url
    make_engine(database_url).dispose()
    from zoo_ops.commands.demo import build_demo
    from zoo_ops.environment import Environment

    write_config(
        f'[env.local]\ndatabase_url = "{url}"\nstate_dir = "{tmp_path / "st"}"\n'
        f'settings = "file:{tmp_path / "st" / "s.yaml"}"\n'
    )
    env = Environment.load("local")
    build_demo(env, apps=4)
    env.dispose()
    monkeypatch.setenv("ZOO_OPS_ENV", "local")
    ip = InteractiveShell.instance()
    try:
        ip.run_line_magic("load_ext", "zoo_ops")
        ip.run_line_magic("sql", "--connections")
        ip.run_cell("%sql UPDATE oracles_oracle SET name = 'x'")
        shown = capsys.readouterr()
        assert "zoo-ops session" in shown.out and "***" in shown.out
        assert password not in shown.out + shown.err
        assert password not in repr(ip.user_ns["engine"].url)
    finally:
        from sql.connection import ConnectionManager

        ConnectionManager.close_all()
        ip.user_ns["engine"].dispose()
        InteractiveShell.clear_instance()
    with make_engine(database_url).connect() as conn:
        assert "x" not in set(conn.execute(text("SELECT name FROM oracles_oracle")).scalars())
