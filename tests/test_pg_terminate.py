"""The PostgreSQL server terminates a running migration's connection (``pg_terminate_backend``).

The migration runs in a subprocess, as a runbook kernel would run it. Its connections
carry a unique ``application_name`` (the batch connection through the URL; the lock
session names itself ``zoo-ops migrate ENV/MODEL OPERATOR`` and the operator is unique
per test), so the test terminates exactly its own backends, never a parallel test's.

Two cuts:

* the batch connection, inside a batch: the test holds the migration record's row lock,
  so the batch statement (pick, repoint, journal, count: one statement) waits on it with
  its rows already repointed and journaled in its transaction; the backend found waiting
  under our application_name is terminated;
* the lock session, between batches: the advisory lock is gone, the next batch must not
  run.

Each time: the process fails with ONE line that is a zoo_ops error (not a driver
traceback), the journal agrees with the table (the cut batch rolled back as a whole),
and a rerun resumes the open migration to completion.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from support.migration import Platform, build_platform, poll_until

from zoo_ops.config import EnvironmentConfig
from zoo_ops.environment import Environment
from zoo_ops.migration import engine as m
from zoo_ops.migration.plan import DONE, OPEN

ROWS = 6_000
BATCH = 200

# Prints the outcome as one parseable line: "ok", or "error <module>.<class>: <message>".
CHILD = """
import sys, time
from pathlib import Path
from zoo_ops.config import EnvironmentConfig
from zoo_ops.environment import Environment
from zoo_ops.migration.engine import forward_migrate

url, old, new, operator = sys.argv[1:5]
BATCH_SIZE = int(sys.argv[5])
env = Environment(EnvironmentConfig(name="local", root=Path.cwd(), database_url=url))
print("started", flush=True)
try:
    forward_migrate(
        env, "iris", old_version_id=old, new_version_id=new, batch_size=BATCH_SIZE, progress=False,
        operator=operator, on_batch=lambda b, n: time.sleep(0.02),
    )
except Exception as exc:
    print(f"error {type(exc).__module__}.{type(exc).__qualname__}: {exc}", flush=True)
    sys.exit(1)
print("ok", flush=True)
"""


@pytest.fixture
def platform(tmp_path: Path, postgres_url: str) -> Platform:
    env = Environment(EnvironmentConfig(name="local", root=tmp_path, database_url=postgres_url))
    p = build_platform(env, apps=ROWS)
    yield p
    env.dispose()


def start_child(p: Platform, url: str, operator: str, tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, url, p.old, p.new, operator, str(BATCH)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )


def admin_engine(url: str) -> Engine:
    return create_engine(url, isolation_level="AUTOCOMMIT")


def wait_for_backend(admin: Engine, where: str, deadline_s: float = 60.0, **params: str) -> int:
    """The pid of the one backend matching ``where`` on pg_stat_activity, once it shows."""
    pids: list[int] = []

    def one_shows() -> bool:
        with admin.connect() as conn:
            pids[:] = (
                conn.execute(text(f"SELECT pid FROM pg_stat_activity WHERE {where}"), params)
                .scalars()
                .all()
            )
        assert len(pids) < 2, f"several backends match {where}: {pids}"
        return len(pids) == 1

    poll_until(
        one_shows,
        timeout_s=deadline_s,
        interval_s=0.01,
        message=f"no backend matched {where} within {deadline_s}s",
    )
    return int(pids[0])


def child_alive(child: subprocess.Popen[str]) -> None:
    assert child.poll() is None, child.communicate()


def journaled(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(text("SELECT count(*) FROM zoo_ops_migration_journal")).scalar_one()
        )


def assert_one_line_zoo_ops_error(child: subprocess.Popen[str]) -> str:
    out, err = child.communicate(timeout=60)
    assert child.returncode == 1, (out, err)
    lines = [line for line in out.splitlines() if line != "started"]
    assert len(lines) == 1 and lines[0].startswith("error zoo_ops.errors."), (out, err)
    assert "Traceback" not in err, err
    return lines[0]


def assert_journal_agrees(p: Platform) -> m.MigrationRecord:
    """One open forward record; its journal is exactly the rows on new, from old."""
    record = m.latest_migration(p.env, "iris", status=OPEN)
    assert record is not None
    journal = m.journal_for(p.env, record.id)
    on_new = {v.id for v in p.env.platform.user_versions_proxying(p.new)}
    assert set(journal["oracle_version_id"]) == on_new
    assert set(journal["new_proxy"]) <= {p.new} and set(journal["previous_proxy"]) <= {p.old}
    assert record.moved_count == len(journal) < ROWS
    counts = p.env.platform.proxy_counts([p.old, p.new, p.bert])
    assert counts == {p.old: ROWS - len(journal), p.new: len(journal), p.bert: 7}
    return record


def assert_rerun_completes(p: Platform, interrupted: m.MigrationRecord) -> None:
    result = m.forward_migrate(
        p.env, "iris", old_version_id=p.old, new_version_id=p.new, batch_size=2_000,
        progress=False, lock_wait_s=15.0,
    )  # fmt: skip
    assert (result.migration_id, result.resumed, result.status) == (interrupted.id, True, DONE)
    assert (result.moved_count, result.remaining_on_source) == (ROWS, 0)
    assert len(m.journal_for(p.env, interrupted.id)) == ROWS
    assert p.env.platform.proxy_counts([p.old, p.new, p.bert]) == {p.old: 0, p.new: ROWS, p.bert: 7}


def test_the_batch_connection_terminated_inside_a_batch(
    platform: Platform, postgres_url: str, tmp_path: Path
) -> None:
    p = platform
    app = f"zt-term-{secrets.token_hex(4)}"
    url = f"{postgres_url}&application_name={app}"
    admin = admin_engine(postgres_url)
    child = start_child(p, url, f"op-{app}", tmp_path)
    try:
        # Let a few batches commit, then hold the record's row: the next batch blocks on it
        # inside its statement, its rows repointed and journaled but not committed.
        poll_until(
            lambda: journaled(p.engine) >= 3 * BATCH,
            each=lambda: child_alive(child),
            timeout_s=60,
            interval_s=0.005,
            message="the migration made no progress",
        )
        with admin.connect() as holder:
            holder.execute(text("BEGIN"))
            holder.execute(text("SELECT id FROM zoo_ops_migration FOR UPDATE")).all()
            pid = wait_for_backend(
                admin,
                "application_name = :app AND wait_event_type = 'Lock' AND query LIKE '%picked%'",
                app=app,
            )
            with admin.connect() as conn:
                assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
            holder.execute(text("ROLLBACK"))
        line = assert_one_line_zoo_ops_error(child)
    finally:
        child.kill()
        child.wait()
        admin.dispose()
    assert "rerun" in line, line
    interrupted = assert_journal_agrees(p)
    assert interrupted.moved_count % BATCH == 0  # whole batches only: the cut one rolled back
    assert_rerun_completes(p, interrupted)


def test_the_lock_session_terminated_between_batches(
    platform: Platform, postgres_url: str, tmp_path: Path
) -> None:
    p = platform
    operator = f"op-{secrets.token_hex(4)}"
    admin = admin_engine(postgres_url)
    child = start_child(p, postgres_url, operator, tmp_path)
    try:
        pid = wait_for_backend(
            admin, "application_name = :app", app=f"zoo-ops migrate local/iris {operator}"
        )
        poll_until(
            lambda: journaled(p.engine) >= 3 * BATCH,
            each=lambda: child_alive(child),
            timeout_s=60,
            interval_s=0.005,
            message="the migration made no progress",
        )
        with admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
        line = assert_one_line_zoo_ops_error(child)
    finally:
        child.kill()
        child.wait()
        admin.dispose()
    assert "lock" in line and "rerun" in line, line
    interrupted = assert_journal_agrees(p)
    assert_rerun_completes(p, interrupted)
