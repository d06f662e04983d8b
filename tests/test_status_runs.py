"""The runs table is the index (issue 13): status, history, the gate and rollout read each
environment's runs table, joined with the trail.

Real runbooks (plain ``papermill`` to a path outside ``executed/``, ``execute_runbook``)
on SQLite and PostgreSQL; the matrix rules also on synthetic rows.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.envs import env_table

from zoo_ops.commands.status import NOT_RUN, EnvRuns, database_runs, status
from zoo_ops.trail import NOT_RECORDED, read_scraps

REPO = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def cell(table: Any, step: str, model: str = "iris", env: str = "staging") -> Any:
    found = table.cell(env, model, step)
    assert found is not None, f"no row for {env}/{model}/{step}"
    return found


def record_path(env: Any, run_id: str, path: Path) -> None:
    """Record a run's notebook path in its row, as `zoo-ops run` does (plain papermill
    gives the kernel no output path; the issue's "when papermill reports one")."""
    from sqlalchemy import update

    from zoo_ops.adapters.platform import schema as s

    with env.platform.engine.begin() as conn:
        conn.execute(update(s.runs).where(s.runs.c.id == run_id).values(notebook_path=str(path)))


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def rewrite_run_scrap(source: Path, target: Path, **changes: Any) -> Path:
    """A copy of ``source`` whose `run` scrap has ``changes`` (a copied, edited notebook)."""
    nb = json.loads(source.read_text())
    for c in nb["cells"]:
        for output in c.get("outputs", []):
            for mime, payload in output.get("data", {}).items():
                if mime.startswith("application/scrapbook.scrap.") and payload["name"] == "run":
                    data = payload["data"]
                    data = json.loads(data) if isinstance(data, str) else data
                    data.update(changes)
                    payload["data"] = data
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(nb))
    return target


@pytest.fixture
def staged(tmp_path: Path, database_url: str, write_config: Any) -> Any:
    """`staging` on the parametrised database (demo built) and `prod`, which requires it."""
    from zoo_ops.commands.demo import build_demo
    from zoo_ops.environment import Environment

    shutil.copytree(REPO / "truss_models", tmp_path / "truss_models")
    write_config(
        env_table(tmp_path, "staging", database_url)
        + env_table(tmp_path, "prod", f"sqlite:///{tmp_path / 'prod.db'}", requires="staging")
    )
    staging = Environment.load("staging")
    build_demo(staging, apps=6)
    prod = Environment.load("prod")
    yield staging, prod
    staging.dispose()
    prod.dispose()


def current_status(model: str | None = None) -> Any:
    from zoo_ops.cli.status import executed_roots

    with database_runs(["staging"], model) as runs:
        return status(["staging"], model, executed_roots(["staging"]), runs)


def test_the_runs_table_is_the_index(staged: Any, tmp_path: Path, capsys: Any) -> None:
    from zoo_ops.adapters.platform import schema as s
    from zoo_ops.adapters.processes import ProcessId, hostname
    from zoo_ops.commands.history import history
    from zoo_ops.execute import execute_runbook
    from zoo_ops.migration.engine import forward_migrate
    from zoo_ops.services.gate import check_gate, succeeded_hashes

    staging, prod = staged

    # 1. 01_copy by plain papermill, to a path outside executed/: first-class.
    out = tmp_path / "elsewhere" / "copy.ipynb"
    out.parent.mkdir()
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "papermill"),
            str(REPO / "runbooks" / "01_copy.ipynb"),
            str(out),
            "-p",
            "model",
            "iris",
            "-p",
            "env",
            "staging",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    run = read_scraps(out)["run"]
    truss_hash = run["truss_hash"]
    row = cell(current_status(), "01_copy")
    assert (row.outcome, row.run_id, row.truss_hash) == ("succeeded", run["run_id"], truss_hash)
    # The kernel cannot know papermill's output path: the row has none until it is told.
    assert row.notebook is None and row.notebook_note == "no notebook"
    record_path(staging, run["run_id"], out)
    row = cell(current_status(), "01_copy")
    assert row.notebook == out and row.notebook_note == ""
    hashes, evidence = succeeded_hashes(staging, "01_copy", "iris")
    assert hashes == {truss_hash}, evidence
    gate = check_gate(prod, step="01_copy", model="iris", truss_hash=truss_hash)
    assert gate.verdict.open, gate.verdict.detail

    # 2. A refusal after the success does not hide it: noted beside it.
    refused = execute_runbook(
        "01_copy", model="iris", env="staging", parameters={"wait_timeout_s": "0"}
    )
    assert refused.exit_code == 2
    row = cell(current_status(), "01_copy")
    assert (row.outcome, row.run_id, row.refused) == ("succeeded", run["run_id"], 1)
    assert "refused x1" in row.note

    # 3. A refused run for a model the zoo does not have leaves no row in the matrix.
    typo = execute_runbook("02_verify", model="irsi", env="staging")
    assert typo.exit_code == 2
    table = current_status()
    assert "irsi" not in table.models("staging")
    assert [r.model for r in table.refusals("staging")] == ["iris", "irsi"]

    # 4. A notebook in executed/ whose run id the database does not know: `not recorded`,
    #    and never passes the gate -- nor does a copy of a real run edited to a new hash.
    stranger = rewrite_run_scrap(
        out,
        tmp_path / "executed/staging/sentiment/20260101T000000Z-01_copy.ipynb",
        model="sentiment",
        run_id="nosuchrun",
        truss_hash="f" * 64,
    )
    rewrite_run_scrap(
        out,
        tmp_path / "executed/staging/iris/20260101T000000Z-01_copy.ipynb",
        truss_hash="e" * 64,
    )
    table = current_status()
    assert cell(table, "01_copy", model="sentiment").outcome == NOT_RECORDED
    assert cell(table, "01_copy", model="sentiment").notebook == stranger
    iris_copy = cell(table, "01_copy")
    assert iris_copy.outcome == "succeeded" and iris_copy.unrecorded == 1
    for model, h in (("sentiment", "f" * 64), ("iris", "e" * 64)):
        closed = check_gate(prod, step="01_copy", model=model, truss_hash=h)
        assert not closed.verdict.open, (model, closed.evidence)

    # 5. A run row with no outcome whose process is gone: crashed, with its notebook and
    #    the migration it left.
    store = staging.platform
    iris = store.zoo_model("iris")
    old = iris.current_version_id
    new = store.add_version(iris.id, status=s.ACTIVE).id
    lost = tmp_path / "lost" / "migrate.ipynb"
    crashed_run = staging.runs.start(
        step="03_migrate",
        model="iris",
        env="staging",
        operator="alice",
        dry_run=False,
        parameters={},
        gate_override_reason=None,
        notebook_path=str(lost),
        owner=ProcessId(hostname(), dead_pid(), None),
    )
    moved = forward_migrate(
        staging, "iris", old_version_id=old, new_version_id=new, run_id=crashed_run.id
    )
    row = cell(current_status(), "03_migrate")
    assert (row.outcome, row.run_id) == ("crashed", crashed_run.id)
    assert row.notebook == lost and "notebook missing" in row.note
    assert (row.migration_id, row.migration_status) == (moved.migration_id, "done")
    assert f"migration {moved.migration_id} done" in row.note

    # Rollout counts runs from the table: the plain-papermill copy and the crashed
    # migration, not the refusal, not the notebooks no row (or a disagreeing row) claims.
    from zoo_ops.commands.rollout import _real_runs

    assert [(v.step, v.run_id) for v in _real_runs(staging, "iris")] == [
        ("01_copy", run["run_id"]),
        ("03_migrate", crashed_run.id),
    ]
    assert _real_runs(staging, "sentiment") == []

    # ...and in history, with the run's outcome.
    user_version = staging.platform.user_versions_proxying(new)[0].id
    events = history(staging, user_version).events
    assert [(e.action, e.outcome, e.note) for e in events] == [
        ("forward migration", "crashed", "notebook missing")
    ]

    # The command shows all of it.
    import zoo_ops.cli as cli_module

    assert cli_module.main(["status", "-e", "staging"]) == 0
    shown = capsys.readouterr().out
    assert "crashed" in shown and NOT_RECORDED in shown and "refused x1" in shown
    assert "refused irsi 02_verify" in shown and "copy.ipynb" in shown


def test_history_shows_verify_runs_outside_the_trail(staged: Any, tmp_path: Path) -> None:
    from zoo_ops.commands.history import history

    staging, _prod = staged
    out = tmp_path / "elsewhere" / "verify.ipynb"
    out.parent.mkdir()
    copy = subprocess.run(
        [
            str(Path(sys.executable).parent / "papermill"),
            str(REPO / "runbooks" / "01_copy.ipynb"),
            str(tmp_path / "elsewhere" / "copy.ipynb"),
            "-p",
            "model",
            "iris",
            "-p",
            "env",
            "staging",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert copy.returncode == 0, copy.stderr[-2000:]
    verify = subprocess.run(
        [
            str(Path(sys.executable).parent / "papermill"),
            str(REPO / "runbooks" / "02_verify.ipynb"),
            str(out),
            "-p",
            "model",
            "iris",
            "-p",
            "env",
            "staging",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert verify.returncode == 0, verify.stderr[-2000:]
    scraps = read_scraps(out)
    record_path(staging, scraps["run"]["run_id"], out)
    app = staging.platform.application(scraps["oracle_id"])
    table = history(staging, app.version_id)
    assert [e.action for e in table.events] == ["create", "repoint", "restore"]
    assert {e.notebook for e in table.events} == {out}
    assert {e.outcome for e in table.events} == {"succeeded"}

    out.unlink()  # the notebook is lost: the run row still tells that the run happened
    missing = history(staging, app.version_id).events
    assert missing == [] or all("missing" in e.note for e in missing)


# --- the matrix rules on synthetic rows (no database) ----------------------------------------


@dataclass(frozen=True)
class Row:
    id: str
    step: str
    outcome: str | None
    model: str = "iris"
    env: str = "local"
    operator: str = "alice"
    dry_run: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)
    truss_hash: str | None = "ab" * 32
    started_at: datetime = T0
    finished_at: datetime | None = None
    error: str | None = None
    notebook_path: str | None = None
    effective_outcome: str | None = None


def rows(*specs: tuple[str, str | None], **common: Any) -> list[Row]:
    return [
        Row(id=f"r{i}", step=step, outcome=outcome, started_at=T0 + timedelta(minutes=i), **common)
        for i, (step, outcome) in enumerate(specs)
    ]


def synthetic(records: list[Any], known: frozenset[str] = frozenset({"iris"})) -> Any:
    runs = {"local": EnvRuns("local", records, known_models=known)}
    return status(["local"], None, Path("/nonexistent-trail"), runs)


def test_refusals_never_hide_a_success_nor_make_a_row() -> None:
    table = synthetic(
        [
            *rows(("01_copy", "succeeded"), ("01_copy", "refused"), ("01_copy", "refused")),
            Row(id="t1", step="02_verify", outcome="refused", model="irsi"),
        ]
    )
    copy = cell(table, "01_copy", env="local")
    assert (copy.outcome, copy.run_id, copy.refused) == ("succeeded", "r0", 2)
    assert copy.refused_note.startswith("refused x2")
    assert table.models("local") == ["iris"]
    # A refusal older than the shown run is not noted; a failure after a success shows.
    later = synthetic(rows(("01_copy", "refused"), ("01_copy", "succeeded"), ("01_copy", "failed")))
    copy = cell(later, "01_copy", env="local")
    assert (copy.outcome, copy.refused) == ("failed", 0)
    # A known model refused at its first step keeps its row: not run, refusal noted.
    first = cell(synthetic(rows(("01_copy", "refused"))), "01_copy", env="local")
    assert (first.outcome, first.refused) == (NOT_RUN, 1)


def test_open_runs_are_running_or_crashed_by_the_stores_liveness_check(tmp_path: Path) -> None:
    truncated = tmp_path / "out" / "copy.ipynb"
    truncated.parent.mkdir()
    truncated.write_text('{"cells": [')  # a full disk cut it short
    table = synthetic(
        [
            *rows(("03_migrate", None)),
            Row(id="x", step="04_revert", outcome=None, effective_outcome="crashed"),
            Row(
                id="y",
                step="01_copy",
                outcome="interrupted",
                notebook_path=str(truncated),
                finished_at=T0,
            ),
        ]
    )
    assert cell(table, "03_migrate", env="local").outcome == "running"
    revert = cell(table, "04_revert", env="local")
    assert revert.outcome == "crashed" and "no notebook" in revert.note
    assert "no migration recorded" in revert.note
    copy = cell(table, "01_copy", env="local")
    assert (copy.outcome, copy.notebook, copy.note) == (
        "interrupted",
        truncated,
        "notebook unreadable",
    )


def test_a_database_that_cannot_be_read_shows_the_trail_alone(
    tmp_path: Path, write_config: Any
) -> None:
    write_config(f'[env.local]\nexecuted_root = "{tmp_path / "executed"}"\n')
    with database_runs(["local"]) as runs:
        assert runs["local"].records is None and runs["local"].problem == "no database yet"
    assert not (tmp_path / ".zoo").exists(), "status never creates a database"
