"""Resume adopts, revert from the journal alone, `trail recover`, parquet references.

Crash states are made without signals (the signal tests are test_lifecycle's): a real
03_migrate runs to the end, then the database and the trail are put in the state a crash
leaves -- the run row without an outcome and with no live process, the notebook truncated,
missing or without its `run` scrap, and for a crash mid-migration the journal's last rows
undone and the migration record open again, exactly what an uncommitted tail looks like.
Every test runs on SQLite and PostgreSQL (``demo_env``) with real kernels.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import delete, func, select, update
from support.migration import build_platform, proxies, table_checksum
from support.notebooks import scrap_payloads, tamper
from support.runs import MIGRATE_ALONE

import zoo_ops.cli as cli_module
from zoo_ops.adapters.platform import schema as s
from zoo_ops.errors import Interrupted
from zoo_ops.execute import execute_runbook
from zoo_ops.migration.engine import forward_migrate, revert_migration
from zoo_ops.migration.plan import DONE, OPEN, adoptable, forward_plan
from zoo_ops.trail import read_scraps
from zoo_ops.trail.notebook import read_notebook_scraps

MODEL = "iris"


# --- helpers ------------------------------------------------------------------------------


def version_ids(env: Any) -> set[str]:
    with env.platform.engine.connect() as conn:
        return set(conn.execute(select(s.oracle_versions.c.id)).scalars())


def snapshot(env: Any) -> tuple[set[str], str]:
    """Every oracle version id, and a checksum of every column of every row."""
    return version_ids(env), table_checksum(env.platform.engine)


def assert_restored(env: Any, before: tuple[set[str], str]) -> None:
    """Every row that existed before is exactly as it was (rows created since left out)."""
    ids, checksum = before
    later = version_ids(env) - ids
    assert table_checksum(env.platform.engine, exclude=later) == checksum


def run_ok(step: str, **params: str) -> tuple[Path, dict[str, Any]]:
    if step == "03_migrate":
        params = {**MIGRATE_ALONE, **params}
    result = execute_runbook(step, model=MODEL, parameters=params)
    assert result.exit_code == 0, f"{step}: {result.error}"
    return result.path, read_scraps(result.path)


def forward_migrations(env: Any) -> list[Any]:
    m = s.migrations.c
    with env.platform.engine.connect() as conn:
        return conn.execute(
            select(s.migrations).where(m.model == MODEL, m.direction == "forwards")
        ).all()


def unfinish_run(env: Any, run_id: str) -> None:
    """The run row as a crash leaves it: no outcome, no end, no live process."""
    values: dict[str, Any] = {"outcome": None, "finished_at": None, "error": None}
    for column in ("host", "pid", "pid_start", "kernel_pid", "kernel_pid_start"):
        if column in s.runs.c:
            values[column] = None
    with env.platform.engine.begin() as conn:
        conn.execute(update(s.runs).where(s.runs.c.id == run_id).values(**values))


def reopen_with_tail_undone(env: Any, migration_id: str, keep: int) -> list[str]:
    """The migration as a crash after ``keep`` committed rows leaves it: the later rows back
    on their previous proxy and their batches out of the journal, the record open (a crash
    loses whole batches: ``keep`` must end on a batch boundary). Returns those rows."""
    j = s.migration_journal.c
    with env.platform.engine.begin() as conn:
        rows = conn.execute(
            select(j.oracle_version_id, j.previous_proxy, j.batch)
            .where(j.migration_id == migration_id)
            .order_by(j.batch, j.oracle_version_id)
        ).all()
        tail = rows[keep:]
        lost = {r.batch for r in tail}
        assert not lost & {r.batch for r in rows[:keep]}, "keep splits a batch"
        for ovid, previous, _ in tail:
            conn.execute(
                update(s.oracle_versions)
                .where(s.oracle_versions.c.id == ovid)
                .values(proxy_model_version_id=previous)
            )
        b = s.migration_batches.c
        conn.execute(
            delete(s.migration_batches).where(b.migration_id == migration_id, b.batch.in_(lost))
        )
        conn.execute(
            update(s.migrations)
            .where(s.migrations.c.id == migration_id)
            .values(status=OPEN, finished_at=None, moved_count=keep)
        )
    return [r[0] for r in tail]


def drop_run_scrap(path: Path) -> None:
    """The notebook an orphaned kernel leaves: every cell ran, the `run` scrap never came."""
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        cell["outputs"] = [
            o
            for o in cell.get("outputs", [])
            if not any(
                isinstance(p, dict) and p.get("name") == "run"
                for p in (o.get("data") or {}).values()
            )
        ]
    path.write_text(json.dumps(nb))
    assert "run" not in read_notebook_scraps(path.read_bytes())[0]


# --- the engine: a stop between batches; the adoption rule ----------------------------------


def test_the_engine_checks_for_a_stop_before_every_batch(local_env: Any) -> None:
    p = build_platform(local_env, apps=50)
    calls: list[int] = []

    def stop_after_three() -> None:
        calls.append(1)
        if len(calls) > 3:
            raise Interrupted("run stopped at a safe point: test; rerun to resume")

    with pytest.raises(Interrupted):
        forward_migrate(
            local_env,
            MODEL,
            old_version_id=p.old,
            new_version_id=p.new,
            batch_size=7,
            should_stop=stop_after_three,
        )
    moved = [k for k, v in proxies(p.engine).items() if v == p.new]
    assert len(moved) == 21, "three whole batches, none cut, no fourth"
    record = local_env.migrations.latest(local_env.name, MODEL, "forwards", status=None)
    assert record.status == OPEN and record.moved_count == 21
    resumed = forward_migrate(local_env, MODEL, old_version_id=p.old, new_version_id=p.new)
    assert resumed.migration_id == record.id and resumed.resumed and resumed.moved_count == 50


def test_adopt_continues_a_finished_migration_whose_run_did_not_succeed(local_env: Any) -> None:
    p = build_platform(local_env, apps=30)
    first = forward_migrate(local_env, MODEL, old_version_id=p.old, new_version_id=p.new)
    # Without adopt (the engine's API as before): a new, empty migration.
    again = forward_migrate(local_env, MODEL, old_version_id=p.old, new_version_id=p.new)
    assert again.migration_id != first.migration_id and again.moved_count == 0
    adopted = forward_migrate(
        local_env, MODEL, old_version_id=p.old, new_version_id=p.new, adopt=True
    )
    # The latest of the plan is the empty one (no run: did not succeed): adopted, not new.
    assert adopted.migration_id == again.migration_id and adopted.resumed
    record = local_env.migrations.get(adopted.migration_id)
    assert record.status == DONE and record.finished_at is not None

    plan = forward_plan(MODEL, p.old, p.new)
    done = local_env.migrations.get(first.migration_id)
    assert adoptable(plan, done, None) and adoptable(plan, done, "failed")
    assert adoptable(plan, done, "crashed") and adoptable(plan, done, "interrupted")
    assert not adoptable(plan, done, "succeeded")
    reverted = revert_migration(local_env, MODEL, forward_migration_id=first.migration_id)
    assert not adoptable(plan, local_env.migrations.get(first.migration_id), None)
    assert reverted.moved_count == 30
    assert not adoptable(forward_plan(MODEL, p.old, p.copy), done, None), "another plan"


# --- runbooks: resume adopts --------------------------------------------------------------


def test_rerun_adopts_an_open_migration_and_revert_restores_every_row(demo_env: Any) -> None:
    env = demo_env
    before = snapshot(env)
    path1, s1 = run_ok("03_migrate", batch_size="1")
    mid, run1, moved = s1["migration_id"], s1["run"]["run_id"], s1["affected_count"]
    assert moved >= 4
    undone = reopen_with_tail_undone(env, mid, keep=2)
    unfinish_run(env, run1)
    path1.write_text(path1.read_text()[:1500])  # the trail was cut mid-write

    path2, s2 = run_ok("03_migrate", batch_size="1")
    assert s2["migration_id"] == mid and s2["adopted_run_id"] == run1
    assert s2["affected_count"] == moved and s2["remaining_on_old"] == 0
    affected: pd.DataFrame = s2["affected"]
    assert set(affected["oracle_version_id"]) == set(s1["affected"]["oracle_version_id"])
    assert set(undone) <= set(affected["oracle_version_id"]), "rows moved after the crash"
    assert len(forward_migrations(env)) == 1, "no new migration"

    _, r = run_ok("04_revert", scope="recorded")  # the latest successful forward run: path2
    assert r["forward_run"] == str(path2) and r["reverted_count"] == moved
    assert_restored(env, before)


def test_rerun_adopts_a_migration_an_orphaned_kernel_finished(demo_env: Any) -> None:
    env = demo_env
    before = snapshot(env)
    path1, s1 = run_ok("03_migrate")
    mid, run1, moved = s1["migration_id"], s1["run"]["run_id"], s1["affected_count"]
    unfinish_run(env, run1)
    drop_run_scrap(path1)

    _, s2 = run_ok("03_migrate")
    assert s2["migration_id"] == mid and s2["adopted_run_id"] == run1
    assert s2["affected_count"] == moved, "every row, not the 0 of a new migration"
    assert len(forward_migrations(env)) == 1
    _, r = run_ok("04_revert", scope="recorded")
    assert r["reverted_count"] == moved
    assert_restored(env, before)


# --- revert from the journal alone ----------------------------------------------------------


def test_revert_by_migration_id_or_run_id_with_the_notebook_gone(demo_env: Any) -> None:
    env = demo_env
    before = snapshot(env)
    path1, s1 = run_ok("03_migrate")
    mid, run1, moved = s1["migration_id"], s1["run"]["run_id"], s1["affected_count"]
    path1.unlink()

    # forward_run as a run id: its notebook is gone, so the migration it started.
    _, dry = run_ok("04_revert", forward_run=run1, scope="recorded", dry_run="true")
    assert dry["forward_source"].startswith(f"journal of migration {mid}")
    assert dry["reverted_count"] == moved

    refused = execute_runbook("04_revert", model=MODEL, parameters={"forward_run": "nosuchrun"})
    assert refused.exit_code == 2 and "neither an executed notebook nor a run id" in refused.error

    path4, r = run_ok("04_revert", migration_id=mid, scope="recorded")
    assert r["migration_id"] != mid and r["reverted_count"] == moved
    assert r["forward_source"] == f"journal of migration {mid}"
    assert r["forward_run"] == run1
    assert f"journal of migration {mid}" in path4.read_text(), "the notebook says so"
    assert_restored(env, before)


# --- trail recover ------------------------------------------------------------------------


def test_trail_recover_writes_a_notebook_that_04_accepts(demo_env: Any) -> None:
    env = demo_env
    before = snapshot(env)
    path1, s1 = run_ok("03_migrate", batch_size="1")
    mid, run1 = s1["migration_id"], s1["run"]["run_id"]
    reopen_with_tail_undone(env, mid, keep=2)  # crashed after 2 rows, never resumed
    unfinish_run(env, run1)
    truncated = path1.read_text()[:1500]
    path1.write_text(truncated)

    assert cli_module.main(["trail", "recover", run1]) == 0
    assert path1.with_name(path1.name + ".before-recover").read_text() == truncated
    scraps = read_scraps(path1)  # through scrapbook
    ours, _names, _pm = read_notebook_scraps(path1.read_bytes())  # through the trail decoder
    for got in (scraps, ours):
        assert got["run"]["recovered"] is True and got["run"]["outcome"] == "crashed"
        assert got["run"]["run_id"] == run1 and got["migration_id"] == mid
        assert got["mapping"] == s1["mapping"] and got["affected_count"] == 2
    assert len(scraps["affected"]) == 2
    assert "recovered from the database" in path1.read_text()
    assert not list(path1.parent.glob(".*.tmp")), "no temporary file left"

    _, r = run_ok("04_revert", forward_run=str(path1), scope="recorded")
    assert r["reverted_count"] == 2
    assert_restored(env, before)
    assert env.migrations.get(mid).status == "abandoned", "the open forward is abandoned"


def test_trail_recover_refuses(demo_env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_module.main(["trail", "recover", "nosuchrun"]) == 2
    err = capsys.readouterr().err
    assert "no run 'nosuchrun'" in err and err.count("\n") == 1
    path1, s1 = run_ok("03_migrate")
    run1 = s1["run"]["run_id"]
    assert cli_module.main(["trail", "recover", run1]) == 2
    assert "succeeded and its notebook" in capsys.readouterr().err

    # forward_run as the id of a run whose notebook is readable: that notebook.
    _, dry = run_ok("04_revert", forward_run=run1, dry_run="true")
    assert dry["forward_run"] == str(path1) and dry["forward_source"] == f"notebook {path1}"

    # --force rewrites it from the database; the original is kept beside it.
    original = path1.read_bytes()
    assert cli_module.main(["trail", "recover", run1, "--force"]) == 0
    assert path1.with_name(path1.name + ".before-recover").read_bytes() == original
    recovered = read_scraps(path1)
    assert recovered["run"]["recovered"] is True and recovered["run"]["outcome"] == "succeeded"
    assert recovered["affected_count"] == s1["affected_count"]


def test_trail_recover_on_a_protected_environment_needs_confirm(
    demo_env: Any, local_env_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = demo_env
    path1, s1 = run_ok("03_migrate")
    run1 = s1["run"]["run_id"]
    unfinish_run(env, run1)  # crashed: recover has something to write
    path1.write_text(path1.read_text()[:1500])
    local_env_config.write_text(local_env_config.read_text() + "protected = true\n")

    def runs_table() -> list[tuple[Any, ...]]:
        with env.platform.engine.connect() as conn:
            return sorted(tuple(r) for r in conn.execute(select(s.runs)).all())

    def trail() -> dict[Path, bytes]:
        return {p: p.read_bytes() for p in path1.parent.rglob("*") if p.is_file()}

    rows, files = runs_table(), trail()
    capsys.readouterr()
    for confirm in ([], ["--confirm", "staging"]):
        assert cli_module.main(["trail", "recover", run1, *confirm]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.count("\n") == 1, captured.err
        assert "'local' is protected: pass --confirm local to trail recover" in captured.err
        assert "nothing changed" in captured.err and "--dry-run" not in captured.err
        assert runs_table() == rows and trail() == files, "nothing changed"

    assert cli_module.main(["trail", "recover", run1, "--confirm", "local"]) == 0
    recovered = read_scraps(path1)
    assert recovered["run"]["recovered"] is True and recovered["run"]["run_id"] == run1


# --- parquet references -------------------------------------------------------------------


def test_parquet_reference_is_relative_and_checked(demo_env: Any, tmp_path: Path) -> None:
    env = demo_env
    path1, s1 = run_ok("03_migrate", affected_inline_limit="0")
    reference = s1["affected"]
    assert reference["path"] == path1.stem + "-affected.parquet", "relative to the notebook"
    assert reference["rows"] == s1["affected_count"]

    moved_root = tmp_path / "moved"
    shutil.copytree(path1.parent, moved_root)
    moved = moved_root / path1.name
    (path1.parent / reference["path"]).unlink()  # the old workspace's file is gone
    _, dry = run_ok("04_revert", forward_run=str(moved), dry_run="true")
    assert dry["forward_run"] == str(moved)

    # An older trail's absolute reference still reads (here: beside the moved notebook).
    absolute = tamper(
        moved,
        moved_root / "abs.ipynb",
        "affected",
        {**reference, "path": str(path1.parent / reference["path"])},
    )
    assert scrap_payloads(json.loads(absolute.read_text()), "affected")
    _, dry = run_ok("04_revert", forward_run=str(absolute), dry_run="true")

    parquet = moved_root / reference["path"]
    table = pd.read_parquet(parquet)
    table.iloc[1:].to_parquet(parquet)
    refused = execute_runbook("04_revert", model=MODEL, parameters={"forward_run": str(moved)})
    assert refused.exit_code == 2 and "does not match the sha256" in refused.error
    assert "\n" not in refused.error
    assert env.platform.count_proxying(s1["new_version_id"]) > 0, "nothing reverted"


def test_old_version_rows_unchanged_by_refusal(demo_env: Any) -> None:
    """A journal-only revert of another model's migration id is refused, nothing changes."""
    env = demo_env
    _, s1 = run_ok("03_migrate")
    with env.platform.engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(s.migrations)).scalar_one()
    result = execute_runbook(
        "04_revert", model="resnet50", parameters={"migration_id": s1["migration_id"]}
    )
    assert result.exit_code == 2 and "not 'resnet50'" in result.error
    with env.platform.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(s.migrations)).scalar_one() == n
