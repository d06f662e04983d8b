"""The run's lifecycle with the real `zoo-ops run` and a real kernel (issue 13).

* The kernel never outlives its run: SIGKILL of the CLI's process group, SIGTERM,
  SIGINT and SIGHUP of the CLI, and SIGKILL of the kernel alone, each in the middle of
  03_migrate, on SQLite and PostgreSQL. After each: no kernel of the run alive 3 s later,
  at most one batch moved after the kill took effect, the run row ``interrupted`` (or
  ``crashed``), exit 130/143/129 for the graceful signals with the notebook saying
  ``interrupted``. The five kills are made one after the other, each on the rerun that
  resumes the migration the previous run left open; a last rerun completes it and the
  journal agrees with the table.
* A run's record exists before anything mutates: 20 concurrent runs of one step get 20
  distinct notebooks and 20 runs; a full trail refuses 03 with nothing changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from zoo_ops.adapters.platform import schema as s
from zoo_ops.adapters.platform.runs import RunRecord, RunStore
from zoo_ops.adapters.processes import process_alive
from zoo_ops.execute import kernel_pids
from zoo_ops.trail.notebook import read_notebook_scraps

BATCH = 2  # rows per batch: 03 moves iris's ~750 applications in ~375 batches
CLI = [sys.executable, "-m", "zoo_ops.cli"]


@pytest.fixture
def big_demo(local_env: object) -> object:
    from zoo_ops.commands.demo import build_demo

    build_demo(local_env, apps=3000)  # type: ignore[arg-type]
    return local_env


def journal_count(env) -> int:
    with env.platform.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(s.migration_journal)).scalar())


def runs_of(env, step: str) -> list[RunRecord]:
    return RunStore(env.platform.engine).find(step=step, model="iris")


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def gone(pid: int) -> bool:
    """Dead (a zombie counts: it runs no code)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def start_migrate(tmp_path: Path, n: int) -> subprocess.Popen[bytes]:
    out = open(tmp_path / f"run{n}.out", "wb")  # noqa: SIM115 - closed with the process
    err = open(tmp_path / f"run{n}.err", "wb")  # noqa: SIM115
    return subprocess.Popen(
        [*CLI, "run", "03_migrate", "-m", "iris", "-p", "batch_size", str(BATCH)],
        stdout=out,
        stderr=err,
        cwd=tmp_path,
        env=os.environ.copy(),
        start_new_session=True,  # its own process group, as an operator's shell gives it
    )


def user_proxies(env) -> dict[str, str | None]:
    with env.platform.engine.connect() as conn:
        rows = conn.execute(
            select(s.oracle_versions.c.id, s.oracle_versions.c.proxy_model_version_id)
            .join(s.oracles, s.oracles.c.id == s.oracle_versions.c.oracle_id)
            .where(s.oracles.c.is_model_zoo.is_(False))
        ).all()
    return dict(rows)


# how: (signal, target, expected exit code of the CLI, outcomes the run row may show)
KILLS = [
    ("SIGKILL", "group", -signal.SIGKILL, {"interrupted", "crashed"}),
    ("SIGTERM", "cli", 143, {"interrupted"}),
    ("SIGINT", "cli", 130, {"interrupted"}),
    ("SIGHUP", "cli", 129, {"interrupted"}),
    ("SIGKILL", "kernel", 1, {"crashed", "interrupted"}),
]


def test_kills_mid_migration_leave_no_kernel_and_a_resumable_run(big_demo, tmp_path) -> None:
    env = big_demo
    old = env.platform.zoo_model("iris").current_version_id
    before = user_proxies(env)
    on_old = {k for k, v in before.items() if v == old}
    assert len(on_old) > 300
    base = journal_count(env)

    for n, (name, target, code, outcomes) in enumerate(KILLS):
        sig = getattr(signal, name)
        proc = start_migrate(tmp_path, n)
        start = journal_count(env)
        # The moment: 20 batches into this run's share of the migration.
        wait_for(lambda s=start: journal_count(env) >= s + 20 * BATCH, 120, f"{name}: rows moving")
        (run,) = [r for r in runs_of(env, "03_migrate") if r.pid == proc.pid]
        kernel = run.kernel_pid
        assert kernel and run.pid == proc.pid and run.notebook_path
        assert kernel_pids(run.id) == [kernel]
        if target == "group":
            os.killpg(proc.pid, sig)
            proc.wait(30)  # reaped: the kill took effect, the kernel is an orphan now
        elif target == "kernel":
            os.kill(kernel, sig)
            wait_for(lambda k=kernel: gone(k), 10, "the kernel's death")
        else:
            proc.send_signal(sig)
            stop_file = Path(f"/tmp/zoo-ops-stop-{run.id}")
            wait_for(stop_file.exists, 10, f"{name}: the CLI's stop request")
        at_kill = journal_count(env)
        returncode = proc.wait(60)
        time.sleep(3)
        record = RunStore(env.platform.engine).get(run.id)
        detail = f"{name} to {target}: {(tmp_path / f'run{n}.err').read_text()[-600:]}"
        assert returncode == code, detail
        assert not process_alive(record.host, kernel, record.kernel_pid_start), detail
        assert kernel_pids(run.id) == [], detail
        moved_after = journal_count(env) - at_kill
        assert moved_after <= BATCH, f"{detail}: {moved_after} rows moved after the kill"
        assert record.effective_outcome in outcomes, (record.outcome, record.error, detail)
        if target == "cli":
            assert record.outcome == "interrupted"
            scraps, _, _ = read_notebook_scraps(Path(run.notebook_path).read_bytes(), {"run"})
            assert scraps["run"]["outcome"] == "interrupted", detail
            assert scraps["run"]["run_id"] == run.id
        partial = Path(run.notebook_path).with_name(f".{Path(run.notebook_path).name}.partial")
        if target != "group":  # a CLI that lives renames its notebook into place
            assert Path(run.notebook_path).is_file() and not partial.exists(), detail

    # The rerun resumes the migration the kills left open and completes it.
    final = subprocess.run(
        [*CLI, "run", "03_migrate", "-m", "iris", "-p", "batch_size", "50"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=os.environ.copy(),
        timeout=300,
    )
    assert final.returncode == 0, final.stderr
    new = env.platform.zoo_model("iris").current_version_id
    after = user_proxies(env)
    assert all(after[k] == new for k in on_old)
    assert all(after[k] == v for k, v in before.items() if v != old), "other models untouched"
    with env.platform.engine.connect() as conn:
        journal = conn.execute(
            select(s.migration_journal.c.oracle_version_id, s.migration_journal.c.new_proxy)
        ).all()
    assert journal_count(env) - base == len(journal) and {j for j, _ in journal} == on_old
    assert all(after[j] == proxy for j, proxy in journal), "the journal agrees with the table"
    assert not kernel_pids_of_any(env)


def kernel_pids_of_any(env) -> list[int]:
    return [pid for r in runs_of(env, "03_migrate") for pid in kernel_pids(r.id)]


@pytest.fixture
def sqlite_demo_env(tmp_path: Path, write_config: Callable[[str], Path]) -> Iterator[object]:
    """The demo on SQLite only: 20 kernels at once are a CPU bill worth paying once."""
    from conftest import REPO_ROOT

    from zoo_ops.commands.demo import build_demo
    from zoo_ops.environment import Environment

    write_config(
        f"""
[env.local]
database_url = "sqlite:///{tmp_path / "platform.db"}"
settings = "file:{tmp_path / "state" / "dynamic-settings.yaml"}"
state_dir = "{tmp_path / "state"}"
truss_root = "{REPO_ROOT / "truss_models"}"
executed_root = "{tmp_path / "executed"}"
"""
    )
    env = Environment.load("local")
    build_demo(env, apps=20)
    yield env
    env.dispose()


def test_twenty_concurrent_runs_get_twenty_notebooks(sqlite_demo_env, tmp_path) -> None:
    env = sqlite_demo_env
    procs = [
        subprocess.Popen(
            [*CLI, "run", "02_verify", "-m", "iris", "-p", "dry_run", "true"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=tmp_path,
            env=os.environ.copy(),
        )
        for _ in range(20)
    ]
    printed = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode in (0, 1, 2), err
        printed.append(out.decode().strip().splitlines()[0])
    runs = runs_of(env, "02_verify")
    assert len(runs) == 20
    paths = {r.notebook_path for r in runs}
    assert len(paths) == 20 and paths == set(printed)
    assert all(Path(p).is_file() for p in paths)
    assert all(r.outcome is not None for r in runs)
    for r in runs:
        scraps, _, _ = read_notebook_scraps(Path(r.notebook_path).read_bytes(), {"run"})
        assert scraps["run"]["run_id"] == r.id, "each notebook is its own run's"


def platform_checksum(env) -> str:
    with env.platform.engine.connect() as conn:
        parts = [
            sorted(map(tuple, conn.execute(t.select()).all()))
            for t in (s.oracles, s.oracle_versions, s.migrations, s.migration_journal)
        ]
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def test_a_full_trail_refuses_03_and_changes_nothing(demo_env, tmp_path, monkeypatch) -> None:
    env = demo_env
    trail = Path(env.config.executed_root_path)
    trail.mkdir(parents=True, exist_ok=True)
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(trail)], capture_output=True
        ).returncode
        == 0
    )
    try:
        if mounted:
            # Really full: not one more byte.
            with open(trail / "filler", "wb", buffering=0) as fh, pytest.raises(OSError):
                while True:
                    fh.write(b"\0" * 4096)
        else:  # no tmpfs here: a threshold no disk meets
            monkeypatch.setenv("ZOO_OPS_TRAIL_MIN_FREE_BYTES", str(1 << 60))
        settings = Path(env.config.settings[len("file:") :]).read_bytes()
        before = platform_checksum(env)
        result = subprocess.run(
            [*CLI, "run", "03_migrate", "-m", "iris"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=os.environ.copy(),
            timeout=300,
        )
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "trail folder" in result.stderr
        assert platform_checksum(env) == before
        assert Path(env.config.settings[len("file:") :]).read_bytes() == settings
        (run,) = runs_of(env, "03_migrate")
        assert run.outcome == "refused" and run.kernel_pid is None, "no kernel was started"
        assert not [p for p in trail.rglob("*") if p.name != "filler" and p.is_file()]
    finally:
        if mounted:
            subprocess.run(["umount", str(trail)], check=True)


def test_the_cli_does_not_load_pyarrows_dataset_scanner(demo_env, tmp_path) -> None:
    """The SIGABRT at exit: scrapbook read table scraps through pyarrow's dataset scanner,
    whose threads could run into interpreter finalization. The CLI reads `run` as JSON."""
    code = (
        "import sys, json\n"
        "from zoo_ops.execute import execute_runbook\n"
        "r = execute_runbook('02_verify', model='iris', parameters={'dry_run': 'true'})\n"
        "print(json.dumps([r.outcome, 'pyarrow._dataset' in sys.modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=os.environ.copy(),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    outcome, loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome in ("dry_run", "failed", "refused") and loaded is False


def test_an_older_runs_table_gets_the_new_columns(database_url) -> None:
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "CREATE TABLE zoo_ops_run (id VARCHAR(32) PRIMARY KEY, step VARCHAR(32) "
                    "NOT NULL, model VARCHAR(200) NOT NULL, env VARCHAR(64) NOT NULL, operator "
                    "VARCHAR(200) NOT NULL, dry_run BOOLEAN NOT NULL, parameters JSON NOT NULL, "
                    "truss_hash VARCHAR(64), gate_override_reason TEXT, started_at TIMESTAMP "
                    "NOT NULL, finished_at TIMESTAMP, outcome VARCHAR(16), error TEXT, "
                    "notebook_path TEXT)"
                )
            )
        s.create_schema(engine)
        s.create_schema(engine)  # twice is harmless
        columns = {c["name"] for c in inspect(engine).get_columns("zoo_ops_run")}
        assert set(s.RUN_COLUMNS_ADDED) <= columns
        store = RunStore(engine)
        common = dict(step="03_migrate", model="iris", env="local", operator="me", dry_run=False)
        first = store.reserve(**common, parameters={}, gate_override_reason=None, notebook_path="x")
        from zoo_ops.adapters.platform.runs import NotebookPathTaken

        with pytest.raises(NotebookPathTaken):
            store.reserve(**common, parameters={}, gate_override_reason=None, notebook_path="x")
        assert store.get(first.id).pid == os.getpid()
        assert store.get(first.id).effective_outcome is None  # this process is alive
    finally:
        engine.dispose()


def test_a_run_whose_processes_are_gone_is_crashed(local_env) -> None:
    env = local_env
    env.platform.create_schema()
    store = RunStore(env.platform.engine)
    dead = subprocess.Popen(["true"])
    dead.wait()
    from zoo_ops.adapters.processes import ProcessId, hostname, process_start, this_process

    record = store.reserve(
        step="03_migrate",
        model="iris",
        env="local",
        operator="me",
        dry_run=False,
        parameters={},
        gate_override_reason=None,
        notebook_path="y",
        owner=ProcessId(hostname(), dead.pid, 1),
    )
    assert store.get(record.id).effective_outcome == "crashed"
    me = this_process()
    assert process_alive(me.host, me.pid, me.started)
    assert not process_alive(me.host, me.pid, (process_start(me.pid) or 0) + 1), "recycled pid"
    assert process_alive("another-host", dead.pid, None), "another host: cannot tell"
