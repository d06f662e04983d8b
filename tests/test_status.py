"""`zoo-ops status` and the trail index: real executed runbooks and synthetic ones.

The index must answer exactly what scrapbook reads from the notebooks, and never show a
stale row: a new run, a rewritten notebook or a deleted one is seen on the next call.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from zoo_ops.commands.status import NOT_RUN, status
from zoo_ops.errors import BadInput
from zoo_ops.trail import INDEX_FILE_NAME, TrailIndex, read_entry, read_scraps

OLD = time.time() - 3600  # an mtime old enough for the index to keep the row


def scrap_output(name: str, data: Any, encoder: str) -> dict[str, Any]:
    """A cell output as ``scrapbook.glue(name, data, encoder=encoder)`` writes it."""
    return {
        "output_type": "display_data",
        "metadata": {"scrapbook": {"name": name, "data": True, "display": False}},
        "data": {
            f"application/scrapbook.scrap.{encoder}+json": {
                "name": name,
                "data": data,
                "encoder": encoder,
                "version": 1,
            }
        },
    }


def run_scrap(step: str, outcome: str, **over: Any) -> dict[str, Any]:
    run = {
        "step": step,
        "model": "iris",
        "env": "local",
        "operator": "alice",
        "dry_run": outcome == "dry_run",
        "started_at": "2026-01-01T00:00:00+00:00",
        "finished_at": "2026-01-01T00:00:05+00:00",
        "outcome": outcome,
        "truss_hash": "ab" * 32,
        "zoo_ops_version": "0.1.0",
        "gate_override_reason": "",
        "run_id": "r" + step[:2],
        "error": None if outcome != "failed" else "it broke",
        "exit_code": 1 if outcome == "failed" else 0,
    }
    run.update(over)
    return run


def write_notebook(
    path: Path,
    outputs: list[dict[str, Any]],
    *,
    parameters: dict[str, Any] | None = None,
    finished: bool = True,
    mtime: float | None = OLD,
) -> Path:
    """A minimal executed notebook (nbformat 4) with ``outputs`` in one code cell."""
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "papermill": {
                "parameters": parameters or {},
                "end_time": "2026-01-01T00:00:06" if finished else None,
                "exception": None,
            }
        },
        "cells": [
            {
                "cell_type": "code",
                "id": "c1",
                "metadata": {},
                "execution_count": 1,
                "source": "run.finish()",
                "outputs": outputs,
            }
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def trail_run(
    root: Path,
    name: str,
    outcome: str,
    *,
    env: str = "local",
    model: str = "iris",
    mtime: float | None = OLD,
    **over: Any,
) -> Path:
    step = name.split("-", 1)[1].removesuffix(".ipynb")
    run = run_scrap(step, outcome, model=model, env=env, **over)
    return write_notebook(
        root / env / model / name, [scrap_output("run", run, "json")], mtime=mtime
    )


def cell(table: Any, step: str, model: str = "iris", env: str = "local") -> Any:
    found = table.cell(env, model, step)
    assert found is not None, f"no row for {env}/{model}/{step}"
    return found


# --- real executed runbooks ----------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_status_follows_real_runs_and_is_never_stale(demo_env: Any) -> None:
    from zoo_ops.execute import execute_runbook

    root = demo_env.config.executed_root_path
    copied = execute_runbook("01_copy", model="iris")
    assert copied.exit_code == 0, copied.error
    table = status(None, None, root)
    row = cell(table, "01_copy")
    assert (row.outcome, row.notebook) == ("succeeded", copied.path)
    assert row.truss_hash == read_scraps(copied.path)["truss_hash"]
    assert cell(table, "02_verify").outcome == NOT_RUN

    broken = execute_runbook("02_verify", model="iris", parameters={"oracle_id": "nosuch"})
    assert broken.exit_code == 2
    # Bad input changes nothing: the run is `refused` (issue 13), noted beside the cell,
    # never the step's outcome.
    refused = cell(status(["local"], "iris", root), "02_verify")
    assert (refused.outcome, refused.refused) == (NOT_RUN, 1)

    verified = execute_runbook("02_verify", model="iris")
    assert verified.exit_code == 0, verified.error
    row = cell(status(["local"], "iris", root), "02_verify")
    assert (row.outcome, row.notebook) == ("succeeded", verified.path), "stale after a new run"

    dry = execute_runbook("01_copy", model="iris", parameters={"dry_run": "true"})
    assert dry.outcome == "dry_run"
    row = cell(status(None, None, root), "01_copy")
    assert row.outcome == "succeeded" and row.notebook == copied.path
    assert row.dry_run_notebook == dry.path and row.dry_run_note.startswith("ok ")

    # The index answers exactly what scrapbook reads, and the next call reads nothing.
    index = TrailIndex(root)
    entries = index.entries()
    assert len(entries) == 4
    for entry in entries:
        full = read_scraps(entry.path)
        assert entry.run == full["run"] == read_entry(entry.path).run
        assert set(entry.scrap_names) == set(full)
        for name, value in entry.scraps.items():
            assert value == full[name] and type(value) is type(full[name]), name
    old_enough = time.time() - 3
    for entry in entries:
        os.utime(entry.path, (old_enough, old_enough))
    index.entries()
    index.entries()
    assert (index.last.read, index.last.cached) == (0, 4)


# --- the matrix rules ----------------------------------------------------------------------


def test_latest_failure_shows_failed_and_dry_runs_never_count(tmp_path: Path) -> None:
    trail_run(tmp_path, "20260101T000000Z-01_copy.ipynb", "succeeded")
    trail_run(tmp_path, "20260102T000000Z-01_copy.ipynb", "failed")
    trail_run(tmp_path, "20260101T000000Z-02_verify.ipynb", "succeeded")
    trail_run(tmp_path, "20260103T000000Z-02_verify.ipynb", "dry_run")
    trail_run(tmp_path, "20260101T000000Z-03_migrate.ipynb", "dry_run")
    trail_run(tmp_path, "20260101T000000Z-01_copy.ipynb", "succeeded", model="bert")
    trail_run(tmp_path, "20260101T000000Z-01_copy.ipynb", "failed", env="staging")

    table = status(None, None, tmp_path)
    assert table.envs() == ["local", "staging"]
    assert cell(table, "01_copy").outcome == "failed"
    verify = cell(table, "02_verify")
    assert verify.outcome == "succeeded" and verify.dry_run_outcome == "dry_run"
    migrate = cell(table, "03_migrate")
    assert migrate.outcome == "dry_run" and not migrate.succeeded
    assert cell(table, "05_retire").outcome == NOT_RUN
    assert cell(table, "01_copy", model="bert").outcome == "succeeded"
    assert cell(table, "01_copy", env="staging").outcome == "failed"

    only_local_bert = status(["local"], "bert", tmp_path)
    assert {(r.env, r.model) for r in only_local_bert.rows} == {("local", "bert")}
    frame = table.to_frame()
    assert list(frame.columns)[:4] == ["env", "model", "step", "outcome"]
    assert len(frame) == 3 * 5 and frame["truss_hash"].str.len().max() == 12


def test_running_and_unreadable_notebooks_are_shown_not_skipped(tmp_path: Path) -> None:
    write_notebook(tmp_path / "local/iris/20260101T000000Z-01_copy.ipynb", [], finished=False)
    write_notebook(tmp_path / "local/iris/20260101T000000Z-02_verify.ipynb", [])
    (tmp_path / "local/iris/20260102T000000Z-02_verify.ipynb").write_text("{not json")
    table = status(None, None, tmp_path)
    assert cell(table, "01_copy").outcome == "running"
    assert cell(table, "02_verify").outcome == "unreadable"
    # ... and each unreadable one is listed with why.
    assert [(u.path.name, u.reason) for u in table.unreadable] == [
        ("20260101T000000Z-02_verify.ipynb", "no run scrap"),
        (
            "20260102T000000Z-02_verify.ipynb",
            "not JSON (Expecting property name enclosed in double quotes at line 1 column 2)",
        ),
    ]


# --- never stale ---------------------------------------------------------------------------


def test_rewritten_deleted_and_added_notebooks_are_seen(tmp_path: Path) -> None:
    path = trail_run(tmp_path, "20260101T000000Z-01_copy.ipynb", "succeeded")
    index = TrailIndex(tmp_path)
    assert [e.outcome for e in index.entries()] == ["succeeded"]
    assert (tmp_path / INDEX_FILE_NAME).exists()

    # Same size, same mtime (a rewrite inside one timestamp tick): still re-read.
    text = path.read_text().replace('"succeeded"', '"failed"\u0020\u0020\u0020')
    stat = path.stat()
    path.write_text(text)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
    assert [e.outcome for e in index.entries()] == ["failed"]

    added = trail_run(tmp_path, "20260102T000000Z-01_copy.ipynb", "succeeded", mtime=None)
    assert cell(status(None, None, tmp_path), "01_copy").notebook == added
    added.unlink()
    assert cell(status(None, None, tmp_path), "01_copy").outcome == "failed"
    assert len(index.entries()) == 1 and index.last.dropped == 0


def test_a_fresh_notebook_is_read_every_time_until_it_settles(tmp_path: Path) -> None:
    trail_run(tmp_path, "20260101T000000Z-01_copy.ipynb", "succeeded", mtime=None)
    index = TrailIndex(tmp_path)
    index.entries()
    index.entries()
    assert index.last.read == 1, "a notebook written just now is not trusted to the cache"


def test_a_corrupt_or_foreign_index_is_rebuilt(tmp_path: Path) -> None:
    trail_run(tmp_path, "20260101T000000Z-01_copy.ipynb", "failed")
    (tmp_path / INDEX_FILE_NAME).write_bytes(b"this is not sqlite" * 100)
    assert cell(status(None, None, tmp_path), "01_copy").outcome == "failed"
    index = TrailIndex(tmp_path)
    index.entries()
    assert index.last.cached == 1


def _entries_outcomes(root: str) -> list[str]:
    outcomes: list[str] = []
    for _ in range(8):
        outcomes = [e.outcome for e in TrailIndex(Path(root)).entries()]
    return outcomes


def test_concurrent_processes_share_the_index(tmp_path: Path) -> None:
    for day in range(1, 30):
        trail_run(tmp_path, f"202601{day:02d}T000000Z-01_copy.ipynb", "succeeded")
    with ProcessPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(_entries_outcomes, str(tmp_path)) for _ in range(4)]
        trail_run(tmp_path, "20260130T000000Z-01_copy.ipynb", "failed")
        results = [f.result(timeout=120) for f in futures]
    assert all(len(r) in (29, 30) for r in results)
    final = TrailIndex(tmp_path).entries()
    assert len(final) == 30 and final[-1].outcome == "failed"
    assert cell(status(None, None, tmp_path), "01_copy").outcome == "failed"


# --- decoding exactly as scrapbook ---------------------------------------------------------


@pytest.mark.parametrize(
    "outputs",
    [
        # A JSON string parsed, as scrapbook does (to 123: a scrap with no type rule).
        [scrap_output("deleted_copy_versions", "123", "json")],
        [scrap_output("truss_hash", "not json", "json")],
        [scrap_output("truss_hash", 42, "text")],  # text of a number becomes a string
        [scrap_output("passed", True, "json"), scrap_output("passed", False, "json")],
        [
            scrap_output("oracle_id", "a", "text"),
            {
                "output_type": "display_data",
                "metadata": {"scrapbook": {"name": "oracle_id", "data": False, "display": True}},
                "data": {"text/plain": "a"},
            },
        ],
    ],
    ids=["json-string", "json-text", "text-number", "last-wins", "display-only"],
)
def test_scraps_decode_as_scrapbook_decodes_them(
    tmp_path: Path, outputs: list[dict[str, Any]]
) -> None:
    path = write_notebook(
        tmp_path / "local/iris/20260101T000000Z-01_copy.ipynb",
        [scrap_output("run", run_scrap("01_copy", "succeeded"), "json"), *outputs],
    )
    (entry,) = TrailIndex(tmp_path).entries()
    full = read_scraps(path)
    assert entry.run == full["run"]
    for name in {o["metadata"]["scrapbook"]["name"] for o in outputs}:
        assert entry.scraps.get(name) == full[name]
        assert type(entry.scraps.get(name)) is type(full[name])


def test_a_payload_scrapbook_refuses_makes_the_notebook_unreadable(tmp_path: Path) -> None:
    bad = scrap_output("run", run_scrap("01_copy", "succeeded"), "json")
    del bad["data"]["application/scrapbook.scrap.json+json"]["version"]
    path = write_notebook(tmp_path / "local/iris/20260101T000000Z-01_copy.ipynb", [bad])
    with pytest.raises(BadInput):
        read_scraps(path)
    assert read_entry(path).run is None
    (entry,) = TrailIndex(tmp_path).entries()
    assert entry.run is None and entry.outcome == "unreadable"


# --- the command ---------------------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Any:
    import zoo_ops.cli as cli_module

    mine = ("zoo_ops.cli.status", "zoo_ops.cli.history", "zoo_ops.cli.report")
    modules = tuple(dict.fromkeys((*cli_module.COMMAND_MODULES, *mine)))
    monkeypatch.setattr(cli_module, "COMMAND_MODULES", modules)
    return cli_module.main


def test_status_command(
    tmp_path: Path,
    cli: Any,
    write_config: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = tmp_path / "trail"
    # The staging database URL names an unset variable: the trail is readable anyway.
    write_config(
        f'[env.local]\nexecuted_root = "{root}"\n'
        f'[env.staging]\ndatabase_url = "${{ZOO_OPS_TEST_UNSET_URL}}"\nexecuted_root = "{root}"\n'
    )
    monkeypatch.delenv("ZOO_OPS_TEST_UNSET_URL", raising=False)
    trail_run(root, "20260101T000000Z-01_copy.ipynb", "succeeded")
    trail_run(root, "20260101T000000Z-01_copy.ipynb", "failed", env="staging")
    assert cli(["status"]) == 0
    out = capsys.readouterr().out
    assert "== local ==" in out and "== staging ==" in out
    assert "succeeded" in out and "failed" in out and "abababababab" in out
    assert cli(["status", "-e", "staging", "-m", "iris"]) == 0
    out = capsys.readouterr().out
    assert "== local ==" not in out and "failed" in out
    assert cli(["status", "-e", "nosuch"]) == 2
    assert "unknown environment 'nosuch'" in capsys.readouterr().err


def test_status_of_an_empty_trail(tmp_path: Path) -> None:
    assert status(None, None, tmp_path / "nothing").rows == []
    assert not (tmp_path / "nothing").exists(), "status never creates a trail"
