"""A forward migration SIGKILLed mid-run: resume completes it, a revert restores the table.

The migration runs in a subprocess (its own process, connections and lock); the test
kills it once some batches are committed, at a random moment inside the run.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from support.migration import Platform, build_platform, poll_until, table_checksum

from zoo_ops.adapters.platform import schema as s
from zoo_ops.environment import Environment
from zoo_ops.errors import LockHeld
from zoo_ops.migration import engine as m
from zoo_ops.migration.plan import ABANDONED, DONE, OPEN

ROWS = 20_000
BATCH = 250

# The child: a forward migration that sleeps a little after each batch, so the run lasts
# long enough for the parent to kill it in the middle.
CHILD = """
import sys, time
from zoo_ops.environment import Environment
from zoo_ops.errors import LockHeld
from zoo_ops.migration.engine import forward_migrate

env = Environment.load("local")
forward_migrate(
    env, "iris", old_version_id=sys.argv[1], new_version_id=sys.argv[2],
    batch_size=int(sys.argv[3]), progress=False, on_batch=lambda b, n: time.sleep(0.01),
)
"""


def journaled(p: Platform) -> int:
    with p.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(s.migration_journal)).scalar_one())


def child_alive(child: subprocess.Popen[bytes]) -> None:
    assert child.poll() is None, f"child ended early: {child.stderr.read()!r}"  # type: ignore[union-attr]


def kill_mid_run(p: Platform, tmp_path: Path) -> None:
    """Start the child, SIGKILL it after a random number of committed rows, reap it."""
    rng = random.Random(os.environ.get("PYTEST_XDIST_WORKER", "") + str(tmp_path))
    kill_after = rng.randrange(2 * BATCH, ROWS // 2)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, p.old, p.new, str(BATCH)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        poll_until(
            lambda: journaled(p) >= kill_after,
            each=lambda: child_alive(child),
            timeout_s=60,
            interval_s=0.005,
            message="child made no progress",
        )
        time.sleep(rng.random() * 0.02)  # a random moment: between or inside batches
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL


@pytest.fixture
def big(local_env: Environment) -> Platform:
    return build_platform(local_env, apps=ROWS)


def assert_journal_agrees_with_table(p: Platform, migration_id: str) -> int:
    """Every journaled row is on the target; every row on the target is journaled."""
    journal = m.journal_for(p.env, migration_id)
    on_new = {v.id for v in p.env.platform.user_versions_proxying(p.new)}
    assert set(journal["oracle_version_id"]) == on_new
    assert set(journal["previous_proxy"]) <= {p.old}
    return len(journal)


def test_a_killed_forward_migration_resumes_to_completion(big: Platform, tmp_path: Path) -> None:
    p = big
    kill_mid_run(p, tmp_path)
    interrupted = m.latest_migration(p.env, "iris", status=OPEN)
    assert interrupted is not None
    moved = assert_journal_agrees_with_table(p, interrupted.id)
    assert 0 < moved < ROWS and interrupted.moved_count == moved

    result = m.forward_migrate(
        p.env, "iris", old_version_id=p.old, new_version_id=p.new,
        batch_size=5000, progress=False, lock_wait_s=10.0,
    )  # fmt: skip
    assert (result.migration_id, result.resumed, result.status) == (interrupted.id, True, DONE)
    assert (result.moved_count, result.remaining_on_source) == (ROWS, 0)
    assert assert_journal_agrees_with_table(p, interrupted.id) == ROWS


def test_a_revert_after_the_kill_restores_the_original_exactly(
    big: Platform, tmp_path: Path
) -> None:
    p = big
    before = table_checksum(p.engine)
    kill_mid_run(p, tmp_path)
    interrupted = m.latest_migration(p.env, "iris", status=OPEN)
    assert interrupted is not None

    revert = m.revert_migration(
        p.env, "iris", forward_migration_id=interrupted.id, scope="recorded",
        batch_size=5000, progress=False, lock_wait_s=10.0,
    )  # fmt: skip
    assert revert.moved_count == interrupted.moved_count > 0
    assert table_checksum(p.engine) == before
    assert m.migration_record(p.env, interrupted.id).status == ABANDONED
    assert m.migration_record(p.env, interrupted.id).reverted_by == revert.migration_id


def test_a_migration_running_in_another_process_holds_off_a_second_one(
    big: Platform, tmp_path: Path
) -> None:
    p = big
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, p.old, p.new, "50"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        poll_until(
            lambda: journaled(p) > 0,
            each=lambda: child_alive(child),
            timeout_s=60,
            interval_s=0.01,
            message="child made no progress",
        )
        running = m.latest_migration(p.env, "iris", status=OPEN)
        assert running is not None
        with pytest.raises(LockHeld, match="holds the lock"):
            m.forward_migrate(
                p.env, "iris", old_version_id=p.old, new_version_id=p.new, progress=False,
                lock_wait_s=0.0,
            )  # fmt: skip
        with pytest.raises(LockHeld):
            m.revert_migration(p.env, "iris", forward_migration_id=running.id, lock_wait_s=0.0)
        with p.engine.connect() as conn:
            records = conn.execute(select(s.migrations.c.id)).scalars().all()
        assert records == [running.id]  # the refused runs wrote nothing
        assert child.poll() is None  # and the running one was not disturbed
    finally:
        child.kill()
        child.wait()
