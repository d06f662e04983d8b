"""Readers that cannot be crashed or hung, and gates that read the record (issue 14).

The trail is a folder anyone can write to. Every kind of hostile file below is put in
``executed/staging/iris/``; ``status``, ``history``, ``report`` and ``rollout`` must exit
normally, list each file as unreadable with its reason -- one line each -- and use none
of them. A notebook filed (or copied) under another environment's folder grants nothing
at that environment's gate: only a run row does. A FIFO given as ``forward_run`` is
refused at once, never read.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from support.envs import env_table

from zoo_ops.cli import main
from zoo_ops.trail import notebook as trail_notebook
from zoo_ops.trail import read_trail_bytes

REPO = Path(__file__).resolve().parent.parent
STAMP = "20260101T0000{:02d}Z"


def scrap_output(name: str, data: Any) -> dict[str, Any]:
    """A display output as scrapbook's glue writes it (json encoder, schema v1)."""
    return {
        "output_type": "display_data",
        "data": {
            "application/scrapbook.scrap.json+json": {
                "name": name,
                "data": data,
                "encoder": "json",
                "version": 1,
            }
        },
        "metadata": {"scrapbook": {"name": name, "data": True, "display": False}},
    }


def good_run(**changes: Any) -> dict[str, Any]:
    run = {
        "step": "01_copy",
        "model": "iris",
        "env": "staging",
        "operator": "hostile",
        "dry_run": False,
        "started_at": "2026-01-01T00:00:00+00:00",
        "finished_at": "2026-01-01T00:01:00+00:00",
        "outcome": "succeeded",
        "truss_hash": "a" * 64,
        "run_id": "r-hostile",
        "error": None,
        "exit_code": 0,
    }
    run.update(changes)
    return run


def notebook_json(*outputs: dict[str, Any]) -> str:
    """A finished executed notebook holding ``outputs`` in one code cell."""
    return json.dumps(
        {
            "cells": [
                {
                    "cell_type": "code",
                    "execution_count": 1,
                    "id": "c1",
                    "metadata": {},
                    "outputs": list(outputs),
                    "source": "",
                }
            ],
            "metadata": {"papermill": {"end_time": "2026-01-01T00:01:00", "parameters": {}}},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    )


# --- the hostile trail ------------------------------------------------------------------

# name -> (how to make it in the folder, a fragment of the reason it must be listed with)
Maker = Callable[[Path], None]


def _write(text: str | bytes) -> Maker:
    def make(path: Path) -> None:
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)

    return make


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _directory(path: Path) -> None:
    path.mkdir()
    (path / "inside.txt").write_text("a folder named like a notebook")


def _symlink_loop(path: Path) -> None:
    other = path.with_name(path.name.replace("-01_copy", "-02_verify"))
    path.symlink_to(other.name)
    other.symlink_to(path.name)


def _truncated(path: Path) -> None:
    text = notebook_json(scrap_output("run", good_run()))
    path.write_text(text[: len(text) // 2])


def _large(path: Path) -> None:
    # Valid JSON, larger than the (lowered) read bound.
    path.write_text(notebook_json(scrap_output("run", good_run())) + " " * 200_000)


def _bad_folder(path: Path) -> None:
    folder = path.parent.parent / "iris copy"
    folder.mkdir()
    (folder / path.name).write_text(notebook_json(scrap_output("run", good_run())))


HOSTILE: dict[str, tuple[Maker, str]] = {
    "20261399T000000Z-03_migrate.ipynb": (
        _write(notebook_json(scrap_output("run", good_run(step="03_migrate")))),
        "real UTC time",
    ),
    "notes.ipynb": (_write(notebook_json()), "not named YYYYmmddTHHMMSSZ-STEP.ipynb"),
    f"{STAMP.format(1)}-01_copy.ipynb": (_write("{not json at all"), "not JSON"),
    f"{STAMP.format(2)}-01_copy.ipynb": (_truncated, "truncated"),
    f"{STAMP.format(3)}-01_copy.ipynb": (_write(""), "empty file"),
    f"{STAMP.format(4)}-01_copy.ipynb": (_write("[1, 2, 3]"), "not a notebook"),
    f"{STAMP.format(5)}-01_copy.ipynb": (_write(b"\xff\xfe\x00\xd8garbage"), "not JSON"),
    f"{STAMP.format(6)}-01_copy.ipynb": (
        _write(notebook_json(scrap_output("run", good_run(run_id=["a", "b"])))),
        "run_id is a list",
    ),
    f"{STAMP.format(7)}-01_copy.ipynb": (
        _write(notebook_json(scrap_output("run", good_run(outcome="won")))),
        "outcome is 'won'",
    ),
    f"{STAMP.format(8)}-01_copy.ipynb": (
        _write(notebook_json(scrap_output("run", "succeeded"))),
        "`run` scrap is text, not a mapping",
    ),
    f"{STAMP.format(9)}-01_copy.ipynb": (
        _write(notebook_json(scrap_output("run", good_run()), scrap_output("truss_hash", [1, 2]))),
        "`truss_hash` scrap is a list",
    ),
    f"{STAMP.format(10)}-01_copy.ipynb": (
        _write(
            notebook_json(
                {
                    "output_type": "display_data",
                    "data": {"application/scrapbook.scrap.json+json": {"name": "run"}},
                    "metadata": {},
                }
            )
        ),
        "no version",
    ),
    f"{STAMP.format(11)}-01_copy.ipynb": (
        _write(notebook_json(scrap_output("run", good_run(model="iris\nstaging  prod")))),
        "control or unprintable",
    ),
    f"{STAMP.format(12)}-01_copy.ipynb": (_fifo, "FIFO"),
    f"{STAMP.format(13)}-01_copy.ipynb": (_directory, "a directory"),
    f"{STAMP.format(14)}-01_copy.ipynb": (_symlink_loop, "symbolic links"),
    f"{STAMP.format(16)}-01_copy.ipynb": (_large, "larger than"),
    f"{STAMP.format(17)}-01_copy.ipynb": (
        _write(notebook_json(scrap_output("run", good_run()))),
        "permission denied",
    ),
    f"{STAMP.format(18)}-01_copy.ipynb": (_bad_folder, "not ENV/MODEL"),
}
DENIED = f"{STAMP.format(17)}-01_copy.ipynb"
LARGE_LIMIT = 100_000


def hostile_paths(folder: Path) -> dict[Path, str]:
    """Where each hostile file is listed from, and the reason fragment expected."""
    out: dict[Path, str] = {}
    for name, (_make, reason) in HOSTILE.items():
        if _make is _bad_folder:
            out[folder.parent / "iris copy" / name] = reason
        else:
            out[folder / name] = reason
        if _make is _symlink_loop:
            out[folder / name.replace("-01_copy", "-02_verify")] = reason
    return out


def deny(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening ``path`` fails as a file without read permission does. The tests run as
    root, which reads any file whatever its mode, so the refusal the kernel would give
    an operator is given here instead."""
    real_open = os.open

    def guarded(file: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if Path(os.fsdecode(file)) == path:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(trail_notebook.os, "open", guarded)


@pytest.fixture
def staged(tmp_path: Path, write_config: Any) -> Iterator[tuple[Any, Any]]:
    """`staging` (SQLite, demo built) and `prod`, which requires it; one executed root."""
    from zoo_ops.commands.demo import build_demo
    from zoo_ops.environment import Environment

    shutil.copytree(REPO / "truss_models", tmp_path / "truss_models")
    write_config(
        env_table(tmp_path, "staging", f"sqlite:///{tmp_path / 'staging.db'}")
        + env_table(tmp_path, "prod", f"sqlite:///{tmp_path / 'prod.db'}", requires="staging")
    )
    staging = Environment.load("staging")
    build_demo(staging, apps=4)
    prod = Environment.load("prod")
    build_demo(prod, apps=4)
    yield staging, prod
    staging.dispose()
    prod.dispose()


@pytest.fixture
def hostile_trail(
    staged: tuple[Any, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[Path, str]:
    folder = tmp_path / "executed" / "staging" / "iris"
    folder.mkdir(parents=True)
    for name, (make, _reason) in HOSTILE.items():
        make(folder / name)
    deny(folder / DENIED, monkeypatch)
    monkeypatch.setattr(trail_notebook, "MAX_NOTEBOOK_BYTES", LARGE_LIMIT)
    monkeypatch.chdir(tmp_path)
    return hostile_paths(folder)


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_listed_once_each(text: str, hostile: dict[Path, str], where: str) -> None:
    lines = text.splitlines()
    for path, reason in hostile.items():
        shown = [line for line in lines if line.startswith(f"unreadable trail file {path}:")]
        assert len(shown) == 1, f"{where}: {path.name} listed {len(shown)} times:\n{text}"
        assert reason in shown[0], f"{where}: {shown[0]!r} does not say {reason!r}"
        assert shown[0].endswith("; skipped"), shown[0]


def test_status_history_report_and_rollout_list_each_hostile_file_and_go_on(
    staged: tuple[Any, Any],
    hostile_trail: dict[Path, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert len({reason for reason in hostile_trail.values()}) >= 12
    staging, _prod = staged

    code, out, err = run_cli(["status", "-e", "staging"], capsys)
    assert (code, err) == (0, ""), err
    assert_listed_once_each(out, hostile_trail, "status")
    # None of them is a run: no forged row, no `not recorded` count from them.
    assert "iris copy" not in out.split("unreadable trail file")[0]
    assert "not recorded" not in out

    version = staging.platform.user_versions_proxying(
        staging.platform.zoo_model("iris").current_version_id
    )[0].id
    code, out, err = run_cli(["history", version, "-e", "staging"], capsys)
    assert (code, err) == (0, ""), err
    assert_listed_once_each(out, hostile_trail, "history")

    code, out, err = run_cli(["report", "-e", "staging", "-o", str(tmp_path / "report")], capsys)
    assert (code, err) == (0, ""), err
    assert_listed_once_each(out, hostile_trail, "report output")
    index = unescape((tmp_path / "report" / "index.html").read_text())
    listed = "\n".join(
        part.split("</li>")[0] for part in index.split("<li class='unreadable-file'>")[1:]
    )
    assert_listed_once_each(listed, hostile_trail, "report")

    plan = tmp_path / "plan.yaml"
    plan.write_text("environments: [staging]\nmodels: [iris]\nsteps: [05_retire]\n")
    code, out, err = run_cli(["rollout", str(plan)], capsys)
    assert (code, err) == (0, ""), err
    assert "not due" in out
    # The rollout reads the plan's models only: the folder `iris copy` is none of them.
    in_iris = {p: r for p, r in hostile_trail.items() if p.parent.name == "iris"}
    assert_listed_once_each(out, in_iris, "rollout")
    assert "iris copy" not in out


def test_the_gate_names_hostile_files_and_counts_none(
    staged: tuple[Any, Any], hostile_trail: dict[Path, str]
) -> None:
    from zoo_ops.services.gate import check_gate, succeeded_hashes

    staging, prod = staged
    hashes, evidence = succeeded_hashes(staging, "01_copy", "iris")
    assert hashes == set()
    named = "\n".join(evidence)
    for path in hostile_trail:
        if path.parent.name == "iris" and "-01_copy" in path.name:
            assert str(path) in named, named
    gate = check_gate(prod, step="01_copy", model="iris", truss_hash="a" * 64)
    assert not gate.verdict.open


def rewrite_run(source: Path, target: Path, **changes: Any) -> None:
    nb = json.loads(source.read_text())
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            payload = output.get("data", {}).get("application/scrapbook.scrap.json+json")
            if payload and payload["name"] == "run":
                payload["data"].update(changes)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(nb))


def test_a_notebook_filed_under_staging_does_not_open_prods_gate(
    staged: tuple[Any, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The issue's bypass: a succeeded 01_copy whose run row is in prod's database, its
    notebook filed (or copied) under executed/staging/iris/ -- verbatim, and edited to
    claim staging -- passes no gate: staging's database has no run."""
    from zoo_ops.execute import execute_runbook
    from zoo_ops.services.gate import check_gate, succeeded_hashes

    staging, prod = staged
    done = execute_runbook(
        "01_copy",
        model="iris",
        env="prod",
        parameters={"gate_override_reason": "test: a run recorded in prod only"},
    )
    assert done.exit_code == 0, done.error
    source = Path(done.path)
    truss_hash = trail_notebook.read_entry(source).run["truss_hash"]  # type: ignore[index]
    assert truss_hash
    folder = tmp_path / "executed" / "staging" / "iris"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, folder / "20260101T000000Z-01_copy.ipynb")
    rewrite_run(source, folder / "20260101T000001Z-01_copy.ipynb", env="staging")

    hashes, evidence = succeeded_hashes(staging, "01_copy", "iris")
    assert hashes == set(), evidence
    gate = check_gate(prod, step="01_copy", model="iris", truss_hash=truss_hash)
    assert not gate.verdict.open
    assert "has not succeeded in staging" in gate.verdict.detail

    monkeypatch.chdir(tmp_path)
    code, _out, err = run_cli(["run", "01_copy", "-m", "iris", "-e", "prod"], capsys)
    assert code != 0
    assert "has not succeeded in staging" in err
    assert "Traceback" not in err


def test_a_fifo_is_refused_at_once_never_read(tmp_path: Path) -> None:
    fifo = tmp_path / "20260101T000000Z-03_migrate.ipynb"
    os.mkfifo(fifo)
    outcome: list[BaseException | bytes] = []

    def read() -> None:
        try:
            outcome.append(read_trail_bytes(fifo))
        except BaseException as exc:  # noqa: BLE001 - the outcome is what the test checks
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=1.0)
    if reader.is_alive():  # unblock the reader before failing
        with open(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK), "wb"):
            pass
        pytest.fail("reading a FIFO blocked for more than a second")
    assert len(outcome) == 1 and isinstance(outcome[0], trail_notebook.UnreadableNotebook)
    assert "FIFO" in str(outcome[0])


def test_04_revert_refuses_a_fifo_forward_run_in_one_line(
    staged: tuple[Any, Any], tmp_path: Path
) -> None:
    """`zoo-ops run 04_revert -p forward_run FIFO` ends (bad input, one line) instead of
    hanging; the whole command, kernel start included, well within its timeout."""
    fifo = tmp_path / "forward.ipynb"
    os.mkfifo(fifo)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "zoo_ops.cli",
            "run",
            "04_revert",
            "-m",
            "iris",
            "-e",
            "staging",
            "-p",
            "forward_run",
            str(fifo),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    lines = done.stderr.splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and "FIFO" in lines[0], done.stderr


def test_load_forward_run_refuses_a_fifo_within_a_second(
    staged: tuple[Any, Any], tmp_path: Path
) -> None:
    from zoo_ops.errors import BadInput
    from zoo_ops.steps.s04_revert import load_forward_run

    staging, _prod = staged
    fifo = tmp_path / "forward.ipynb"
    os.mkfifo(fifo)
    outcome: list[BaseException | object] = []

    def load() -> None:
        try:
            outcome.append(load_forward_run(staging, "iris", str(fifo)))
        except BaseException as exc:  # noqa: BLE001 - the outcome is what the test checks
            outcome.append(exc)

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    loader.join(timeout=1.0)
    if loader.is_alive():
        with open(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK), "wb"):
            pass
        pytest.fail("load_forward_run blocked on a FIFO for more than a second")
    assert len(outcome) == 1 and isinstance(outcome[0], BadInput), outcome
    assert "FIFO" in str(outcome[0]) and "\n" not in str(outcome[0])


def test_a_cached_index_row_is_checked_like_a_notebook(
    tmp_path: Path,
) -> None:
    """The index file sits in the trail too: a row edited to hold a forged `run` (a list
    for run_id) is a cache miss, and the notebook is read again."""
    import sqlite3

    from zoo_ops.trail import TrailIndex

    folder = tmp_path / "executed" / "staging" / "iris"
    folder.mkdir(parents=True)
    path = folder / "20200101T000000Z-01_copy.ipynb"
    path.write_text(notebook_json(scrap_output("run", good_run())))
    os.utime(path, (1_600_000_000, 1_600_000_000))  # old enough to be cached
    index = TrailIndex(tmp_path / "executed")
    assert [e.run_id for e in index.entries()] == ["r-hostile"]
    conn = sqlite3.connect(index.index_path)
    payload = json.loads(conn.execute("SELECT payload FROM notebooks").fetchone()[0])
    payload["run"]["run_id"] = ["forged"]
    with conn:
        conn.execute("UPDATE notebooks SET payload = ?", (json.dumps(payload),))
    conn.close()
    assert [e.run_id for e in index.entries()] == ["r-hostile"]
    assert index.last.read == 1 and index.last.cached == 0


def test_04s_lookup_of_the_latest_forward_run_skips_hostile_files(
    staged: tuple[Any, Any], hostile_trail: dict[Path, str]
) -> None:
    """`04_revert` with no forward_run looks for the latest successful 03_migrate: the
    badly named file holding a succeeded 03_migrate `run` scrap is not one, and no other
    hostile file crashes or hangs the lookup."""
    from zoo_ops.errors import NotFound
    from zoo_ops.steps.s04_revert import latest_forward_run

    staging, _prod = staged
    assert any("20261399" in p.name for p in hostile_trail)
    with pytest.raises(NotFound, match="no successful 03_migrate of iris in staging"):
        latest_forward_run(staging, "iris")


@pytest.mark.parametrize(
    "run",
    [
        good_run(),
        # A run refused before zoo-ops recorded it (runbook.start): no id, no hash, and a
        # dry_run parameter that was not a boolean.
        good_run(run_id=None, truss_hash=None, dry_run=None, outcome="refused", exit_code=2),
        # A notebook written by `zoo-ops trail recover`.
        good_run(recovered=True, recovered_at="2026-01-02T00:00:00+00:00", outcome="crashed"),
    ],
    ids=["finished", "refused-before-recorded", "recovered"],
)
def test_the_run_scraps_zoo_ops_writes_follow_the_schema(run: dict[str, Any]) -> None:
    from zoo_ops.domain.scrap_schema import run_scrap_problem

    assert run_scrap_problem(run) is None
    assert run_scrap_problem({**run, "run_id": 7}) == "`run` scrap run_id is an integer, not text"


def test_rollout_goes_on_from_the_run_row_when_its_notebook_has_a_list_for_run_id(
    staged: tuple[Any, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The issue's crash: a `run` scrap with a list for run_id. The notebook is listed as
    unreadable; the run row (the authority) still says 01_copy succeeded: not repeated."""
    from zoo_ops.execute import execute_runbook

    done = execute_runbook("01_copy", model="iris", env="staging")
    assert done.exit_code == 0, done.error
    path = Path(done.path)
    rewrite_run(path, path, run_id=["a", "list"])
    monkeypatch.chdir(tmp_path)
    plan = tmp_path / "plan.yaml"
    plan.write_text("environments: [staging]\nmodels: [iris]\nsteps: [01_copy]\n")
    code, out, err = run_cli(["rollout", str(plan)], capsys)
    assert (code, err) == (0, ""), err
    assert "done before" in out
    assert f"unreadable trail file {path}: `run` scrap run_id is a list, not text" in out
