"""The run's lifecycle with the real `zoo-ops run` and a real kernel (issue 13).

Signals at every moment of 03 and 04 are tests/test_kill_matrix.py. Here: a run's
record exists before anything mutates -- 20 concurrent runs of one step get 20 distinct
notebooks, 20 runs, each in `history`; a full trail refuses 03 with nothing changed; a
trail that fills during 03 leaves a run that `trail recover` and 04 restore exactly;
plain papermill records its output path; the runs table's own columns; Ctrl-C ends even a
kernel stuck in a cell with no safe point.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from support.envs import REPO
from support.runs import CLI, MIGRATE_ALONE_ARGS, gone, journal_count, user_proxies, wait_for

from zoo_ops.adapters.platform import schema as s
from zoo_ops.adapters.platform import versioning
from zoo_ops.adapters.platform.runs import RunRecord, RunStore
from zoo_ops.adapters.processes import process_alive
from zoo_ops.execute import RUNBOOKS_ENV, STOP_GRACE_S, partial_path
from zoo_ops.trail.notebook import read_notebook_scraps

BATCH = 2  # rows per batch: 03 moves iris's ~750 applications in ~375 batches


@pytest.fixture
def big_demo(local_env: object) -> object:
    from zoo_ops.commands.demo import build_demo

    build_demo(local_env, apps=3000)  # type: ignore[arg-type]
    return local_env


def runs_of(env, step: str) -> list[RunRecord]:
    return RunStore(env.platform.engine).find(step=step, model="iris")


@pytest.fixture
def sqlite_demo_env(tmp_path: Path, write_config: Callable[[str], Path]) -> Iterator[object]:
    """The demo on SQLite only: 20 kernels at once are a CPU bill worth paying once."""
    from zoo_ops.commands.demo import build_demo
    from zoo_ops.environment import Environment

    write_config(
        f"""
[env.local]
database_url = "sqlite:///{tmp_path / "platform.db"}"
settings = "file:{tmp_path / "state" / "dynamic-settings.yaml"}"
state_dir = "{tmp_path / "state"}"
truss_root = "{REPO / "truss_models"}"
executed_root = "{tmp_path / "executed"}"
"""
    )
    env = Environment.load("local")
    build_demo(env, apps=20)
    yield env
    env.dispose()


@pytest.mark.long
def test_twenty_concurrent_runs_get_twenty_notebooks(sqlite_demo_env, tmp_path) -> None:
    """20 operators verify one model at once: 20 runs, 20 notebooks, each its own run's,
    and ``history`` of each run's test application shows that run."""
    from zoo_ops.commands.history import history

    env = sqlite_demo_env
    copy = subprocess.run(
        [*CLI, "run", "01_copy", "-m", "iris"], capture_output=True, cwd=tmp_path, timeout=300
    )
    assert copy.returncode == 0, copy.stderr
    procs = [
        subprocess.Popen(
            [*CLI, "run", "02_verify", "-m", "iris"],
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
        assert proc.returncode == 0, err
        printed.append(out.decode().strip().splitlines()[0])
    runs = runs_of(env, "02_verify")
    assert len(runs) == 20
    paths = {r.notebook_path for r in runs}
    assert len(paths) == 20 and paths == set(printed)
    assert all(Path(p).is_file() for p in paths)
    assert all(r.outcome == "succeeded" for r in runs)
    for r in runs:
        scraps, _, _ = read_notebook_scraps(
            Path(r.notebook_path).read_bytes(), {"run", "oracle_id"}
        )
        assert scraps["run"]["run_id"] == r.id, "each notebook is its own run's"
        with env.platform.engine.connect() as conn:
            version = conn.execute(
                select(s.oracles.c.current_version_id).where(s.oracles.c.id == scraps["oracle_id"])
            ).scalar_one()
        events = history(env, version).events
        assert [e.run_id for e in events if e.step == "02_verify"] == [r.id] * len(
            [e for e in events if e.step == "02_verify"]
        ) and any(e.run_id == r.id for e in events), "history shows the run"


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
            [*CLI, "run", "03_migrate", "-m", "iris", *MIGRATE_ALONE_ARGS],
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


def test_a_trail_that_fills_during_03_leaves_a_recoverable_run(big_demo, tmp_path) -> None:
    """The trail's disk fills while 03 migrates: the run is recorded ``trail-unsaved``
    (exit 1); after space is freed, `trail recover RUN_ID` writes its notebook from the
    database and `04_revert -p forward_run RUN_ID` restores every original row."""
    env = big_demo
    trail = Path(env.config.executed_root_path)
    trail.mkdir(parents=True, exist_ok=True)
    mount = ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(trail)]
    assert subprocess.run(mount, capture_output=True).returncode == 0, "tmpfs (root) needed"
    original = user_proxies(env)
    old = env.platform.zoo_model("iris").current_version_id
    on_old = {k for k, v in original.items() if v == old}
    filler = trail / "filler"
    environ = {**os.environ, "ZOO_OPS_TRAIL_MIN_FREE_BYTES": "65536"}
    try:
        proc = subprocess.Popen(
            [*CLI, "run", "03_migrate", "-m", "iris", "-p", "batch_size", "2", *MIGRATE_ALONE_ARGS],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=tmp_path,
            env=environ,
        )
        wait_for(lambda: journal_count(env) >= 40, 120, "rows moving")
        with open(filler, "wb", buffering=0) as fh, pytest.raises(OSError):
            while True:  # the disk is full: not one more byte
                fh.write(b"\0" * 4096)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 1, err
        (run,) = runs_of(env, "03_migrate")
        assert run.outcome == "trail-unsaved", (run.outcome, run.error)
        assert "could not be written" in err.decode()
        from zoo_ops.commands.status import env_runs, status

        table = status(["local"], "iris", trail, {"local": env_runs(env, "iris")})
        assert table.cell("local", "iris", "03_migrate").outcome == "trail-unsaved"

        filler.unlink()  # the operator frees space, then follows the README
        recovered = subprocess.run(
            [*CLI, "trail", "recover", run.id], capture_output=True, text=True, cwd=tmp_path
        )
        assert recovered.returncode == 0, recovered.stderr
        scraps, _, _ = read_notebook_scraps(Path(run.notebook_path).read_bytes(), {"run"})
        assert scraps["run"]["recovered"] is True and scraps["run"]["run_id"] == run.id
        back = subprocess.run(
            [*CLI, "run", "04_revert", "-m", "iris", "-p", "forward_run", run.id]
            + ["-p", "scope", "recorded"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=environ,
            timeout=300,
        )
        assert back.returncode == 0, back.stderr
        now = user_proxies(env)
        assert {k: now[k] for k in original} == original, "every original row restored"
        with env.platform.engine.connect() as conn:
            m, j = s.migrations, s.migration_journal
            (backward,) = conn.execute(select(m.c.id).where(m.c.direction == "backwards")).all()
            restored = dict(
                conn.execute(
                    select(j.c.oracle_version_id, j.c.new_proxy).where(
                        j.c.migration_id == backward.id
                    )
                ).all()
            )
        assert restored.keys() <= on_old and all(original[k] == v for k, v in restored.items())
    finally:
        subprocess.run(["umount", "-l", str(trail)], check=True)


def test_plain_papermill_records_the_output_path_it_reports(demo_env, tmp_path) -> None:
    """`papermill --inject-output-path IN OUT` tells the kernel OUT: the run row records
    it. The same OUT again writes over the first run's notebook: that row lets go of it."""
    env = demo_env
    out = tmp_path / "elsewhere" / "copy.ipynb"
    out.parent.mkdir()
    command = [
        str(Path(sys.executable).parent / "papermill"),
        "--inject-output-path",
        str(Path(__file__).resolve().parents[1] / "runbooks" / "01_copy.ipynb"),
        "elsewhere/copy.ipynb",  # relative to papermill's (and the kernel's) directory
        "-p",
        "model",
        "iris",
        "-p",
        "dry_run",
        "True",
    ]
    ids = []
    for _ in range(2):
        done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        scraps, _, _ = read_notebook_scraps(out.read_bytes(), {"run"})
        ids.append(scraps["run"]["run_id"])
        assert RunStore(env.platform.engine).get(ids[-1]).notebook_path == str(out)
    first, second = (RunStore(env.platform.engine).get(i) for i in ids)
    assert first.notebook_path is None and second.notebook_path == str(out)


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
        versioning.create_schema(engine)
        versioning.create_schema(engine)  # twice is harmless
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


# A cell with no safe point that swallows even the KeyboardInterrupt the kernel's watchdog
# sends it (a vendor client's retry loop, a blocking call in C that retries on EINTR). It
# touches MARK once it runs in the kernel.
STUBBORN_CELL = """import pathlib, time
pathlib.Path({mark!r}).touch()
while True:
    try:
        time.sleep(0.05)
    except KeyboardInterrupt:
        pass
"""


def test_a_kernel_that_will_not_stop_is_killed_soon_after_ctrl_c(sqlite_demo_env, tmp_path) -> None:
    """Ctrl-C asks the kernel to stop at a safe point; a kernel that never reaches one is
    killed STOP_GRACE_S later all the same: gone within 3 s of the signal, the run recorded
    ``interrupted`` (by `zoo-ops run`, the kernel could not), the notebook saved naming the
    run, exit 130."""
    env = sqlite_demo_env
    runbooks, mark = tmp_path / "runbooks", tmp_path / "stubborn-running"
    shutil.copytree(REPO / "runbooks", runbooks)
    verify = runbooks / "02_verify.ipynb"
    nb = json.loads(verify.read_text(encoding="utf-8"))
    started = next(i for i, c in enumerate(nb["cells"]) if "runbook.start(" in "".join(c["source"]))
    stubborn = {
        "cell_type": "code",
        "execution_count": None,
        "id": "stubborn",
        "metadata": {},
        "outputs": [],
        "source": STUBBORN_CELL.format(mark=str(mark)),
    }
    nb["cells"] = [*nb["cells"][: started + 1], stubborn]
    verify.write_text(json.dumps(nb), encoding="utf-8")

    proc = subprocess.Popen(
        [*CLI, "run", "02_verify", "-m", "iris"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env={**os.environ, RUNBOOKS_ENV: str(runbooks)},
        start_new_session=True,
    )
    run = wait_for(
        lambda: next((r for r in runs_of(env, "02_verify") if r.kernel_pid), None),
        120,
        "the kernel to adopt the run",
    )
    partial = partial_path(Path(run.notebook_path))
    wait_for(mark.exists, 120, "the stubborn cell to run")
    proc.send_signal(signal.SIGINT)
    delivered = time.monotonic()
    wait_for(lambda: gone(run.kernel_pid), 3, "the kernel's end after Ctrl-C")
    assert time.monotonic() - delivered >= STOP_GRACE_S - 0.2, "killed by the grace, not before"
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()[-2000:]
    record = RunStore(env.platform.engine).get(run.id)
    assert record.outcome == "interrupted", (record.outcome, record.error)
    notebook = Path(run.notebook_path)
    assert notebook.is_file() and not partial.exists()
    scraps, _, _ = read_notebook_scraps(notebook.read_bytes(), {"run"})
    assert scraps["run"]["run_id"] == run.id
    assert scraps["run"]["outcome"] == "interrupted"
