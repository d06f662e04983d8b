"""`zoo-ops history ORACLE_VERSION_ID`: the journal (SQLite and PostgreSQL) and the trail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from zoo_ops.adapters.platform import schema as s
from zoo_ops.adapters.platform.runs import RunStore
from zoo_ops.commands.history import history, verify_events
from zoo_ops.errors import NotFound
from zoo_ops.trail import TrailEntry


def first_user_version_on(env: Any, zoo_version_id: str) -> str:
    versions = env.platform.user_versions_proxying(zoo_version_id)
    assert versions, f"the demo has no user version on {zoo_version_id}"
    return str(versions[0].id)


def test_forward_and_revert_migrations_are_in_the_history(demo_env: Any, tmp_path: Path) -> None:
    from zoo_ops.migration.engine import forward_migrate, revert_migration

    env = demo_env
    store = env.platform
    iris = store.zoo_model("iris")
    old = iris.current_version_id
    new = store.add_version(iris.id, status=s.ACTIVE).id
    user_version = first_user_version_on(env, old)
    runs = RunStore(store.engine)
    notebook = str(tmp_path / "executed/local/iris/20260101T000000Z-03_migrate.ipynb")
    run = runs.start(
        step="03_migrate",
        model="iris",
        env="local",
        operator="alice",
        dry_run=False,
        parameters={},
        gate_override_reason=None,
        notebook_path=notebook,
    )
    forward = forward_migrate(
        env, "iris", old_version_id=old, new_version_id=new, run_id=run.id, progress=False
    )
    # A revert run outside any notebook: the operator comes from the migration record.
    revert = revert_migration(
        env, "iris", forward_migration_id=forward.migration_id, operator="bob", progress=False
    )

    table = history(env, user_version)
    assert table.oracle_id == store.version(user_version).oracle_id
    moves = [
        (e.action, e.from_version_id, e.to_version_id, e.operator, e.migration_id)
        for e in table.events
    ]
    assert moves == [
        ("forward migration", old, new, "alice", forward.migration_id),
        ("revert migration", new, old, "bob", revert.migration_id),
    ]
    first, second = table.events
    assert first.step == "03_migrate" and first.run_id == run.id
    assert first.notebook == Path(notebook)
    assert second.step == "04_revert" and second.notebook is None
    assert first.at is not None and second.at is not None and first.at <= second.at
    frame = table.to_frame()
    assert list(frame["to_version_id"]) == [new, old]

    untouched = store.add_version(store.zoo_model("sentiment").id, status=s.ACTIVE).id
    assert history(env, untouched).events == []


def test_unknown_version_is_not_found(demo_env: Any) -> None:
    with pytest.raises(NotFound, match="no oracle version 'nosuch'"):
        history(demo_env, "nosuch")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_verify_repoint_and_restore_come_from_the_trail(
    demo_env: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import zoo_ops.cli as cli_module
    from zoo_ops.execute import execute_runbook

    env = demo_env
    copied = execute_runbook("01_copy", model="iris")
    assert copied.exit_code == 0, copied.error
    verified = execute_runbook("02_verify", model="iris")
    assert verified.exit_code == 0, verified.error
    dry = execute_runbook("02_verify", model="iris", parameters={"dry_run": "true"})
    assert dry.outcome == "dry_run"

    from zoo_ops.trail import read_scraps

    scraps = read_scraps(verified.path)
    app = env.platform.application(scraps["oracle_id"])
    table = history(env, app.version_id)
    original, candidate = scraps["original_version_id"], scraps["candidate_version_id"]
    assert [(e.action, e.from_version_id, e.to_version_id) for e in table.events] == [
        ("create", None, original),
        ("repoint", original, candidate),
        ("restore", candidate, original),
    ]
    assert {e.notebook for e in table.events} == {verified.path}
    assert {e.run_id for e in table.events} == {read_scraps(verified.path)["run"]["run_id"]}

    mine = ("zoo_ops.cli.status", "zoo_ops.cli.history", "zoo_ops.cli.report")
    monkeypatch.setattr(
        cli_module, "COMMAND_MODULES", tuple(dict.fromkeys((*cli_module.COMMAND_MODULES, *mine)))
    )
    assert cli_module.main(["history", app.version_id]) == 0
    out = capsys.readouterr().out
    assert "repoint" in out and "restore" in out and verified.path.name in out
    assert cli_module.main(["history", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no oracle version 'nosuch'" in err


def test_verify_without_restore_or_comparison(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    def entry(parameters: dict[str, Any], names: tuple[str, ...]) -> TrailEntry:
        return TrailEntry(
            path=tmp_path / "x.ipynb",
            env="local",
            model="iris",
            step="02_verify",
            stamp=datetime(2026, 1, 1, tzinfo=UTC),
            state="ok",
            run={"outcome": "failed", "operator": "carol", "run_id": "r1"},
            scraps={"oracle_id": "o1", "original_version_id": "a", "candidate_version_id": "b"},
            scrap_names=names,
            parameters=parameters,
        )

    kept = verify_events(entry({"oracle_id": "o1", "restore": False}, ("comparison",)))
    assert [(e.action, e.from_version_id, e.to_version_id) for e in kept] == [("repoint", "a", "b")]
    # Failed before comparing: the version was never repointed.
    assert verify_events(entry({"oracle_id": "o1"}, ("oracle_id",))) == []
