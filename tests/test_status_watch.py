"""`zoo-ops status --watch` (issue 16): a second terminal beside a running 03_migrate.

The operator runs `zoo-ops run 03_migrate` in one terminal and `zoo-ops status --watch`
in another. The migration is held mid-way the way a busy database holds it -- another
session keeps the migration record's row locked, so the next batch waits -- and the
watch must show the run in progress with its migration's moved/total as the database has
them; once the lock is released and the run ends, the next frames show no run in
progress and the step succeeded; Ctrl-C ends the watch with exit 0.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest
from sqlalchemy import func, select, text
from support.migration import poll_until
from support.runs import CLI, MIGRATE_ALONE_ARGS

from zoo_ops.adapters.platform import schema as s

IN_PROGRESS = re.compile(
    rb"local iris 03_migrate run (\w+) by .*?; migration \w+ forwards: moved (\d+)/(\d+)"
)


@pytest.fixture
def pg_demo(local_env_config: Path) -> object:
    from zoo_ops.commands.demo import build_demo
    from zoo_ops.environment import Environment

    env = Environment.load("local")
    build_demo(env, apps=3000)
    yield env
    env.dispose()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_watch_shows_a_migration_in_progress_then_its_outcome(pg_demo, tmp_path: Path) -> None:
    env = pg_demo
    engine = env.platform.engine
    iris_old = env.platform.current_version(env.platform.zoo_model("iris")).id
    on_old = env.platform.proxy_counts([iris_old])[iris_old]
    migrate = subprocess.Popen(
        [*CLI, "run", "03_migrate", "-m", "iris", "-p", "batch_size", "1", *MIGRATE_ALONE_ARGS],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    watch = None
    try:
        poll_until(
            lambda: _moved(engine) >= 3,
            each=lambda: migrate.poll() is None,
            timeout_s=120,
            interval_s=0.005,
            message="03_migrate moved nothing",
        )
        with engine.connect() as holder:
            holder.execute(text("SELECT id FROM zoo_ops_migration FOR UPDATE")).all()
            held_at = _moved(engine)
            watch = pexpect.spawn(
                sys.executable,
                ["-m", "zoo_ops.cli", "status", "--watch", "--interval", "0.3", "-e", "local"],
                cwd=str(tmp_path),
                env=os.environ.copy(),
                timeout=60,
            )
            watch.expect(IN_PROGRESS)
            run_id, moved, total = watch.match.group(1, 2, 3)
            assert int(total) == on_old
            # The batch waiting on the lock has not committed: the figure is the database's.
            assert int(moved) == held_at < on_old
            holder.rollback()
        out, err = (b.decode() for b in migrate.communicate(timeout=300))
        assert migrate.returncode == 0, err
        # A frame drawn after the run ended: nothing in progress, 03 succeeded in the table.
        watch.expect(re.escape(b"zoo-ops status --watch"))
        watch.expect(rb"in progress: none")
        frame = watch.before
        assert re.search(rb"iris\s+03_migrate\s+succeeded", frame), frame.decode()
        assert env.platform.proxy_counts([iris_old])[iris_old] == 0
        watch.sendintr()
        watch.expect(pexpect.EOF)
        watch.close()
        assert watch.exitstatus == 0
        assert env.runs.get(run_id.decode()).notebook_path == out.strip().splitlines()[0]
    finally:
        if watch is not None and watch.isalive():
            watch.terminate(force=True)
        if migrate.poll() is None:
            migrate.kill()
            migrate.wait()


def test_interval_without_watch_is_refused_with_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [*CLI, "status", "--interval", "1"], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "zoo-ops: error: --interval goes with --watch; add --watch or drop --interval"
    ]


def _moved(engine) -> int:
    with engine.connect() as conn:
        moved = select(func.coalesce(func.max(s.migrations.c.moved_count), 0))
        return int(conn.execute(moved).scalar())
