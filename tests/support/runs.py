"""What the runbook-level tests share: the real `zoo-ops` command, waiting on a process or
a condition, and reading the user applications' proxies and the migration journal.

Used by test_run_lifecycle, test_kill_matrix and test_runbooks_migrate_revert.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from zoo_ops.adapters.platform import schema as s

CLI = [sys.executable, "-m", "zoo_ops.cli"]


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """The first truthy value of ``condition()``, polled every 5 ms for ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.005)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def gone(pid: int) -> bool:
    """Dead (a zombie counts: it runs no code)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def user_proxies(env: Any) -> dict[str, str | None]:
    """user version id -> proxy, for every user application's version."""
    with env.platform.engine.connect() as conn:
        rows = conn.execute(
            select(s.oracle_versions.c.id, s.oracle_versions.c.proxy_model_version_id)
            .join(s.oracles, s.oracles.c.id == s.oracle_versions.c.oracle_id)
            .where(s.oracles.c.is_model_zoo.is_(False))
        ).all()
    return dict(rows)


def journal_count(env: Any) -> int:
    """Rows in the migration journal, every migration: the sum of the batches' sizes.

    Polled every 5 ms while a run moves rows; counting the journal view instead unnests
    every batch (10 ms at 6,000 rows on SQLite), a core's worth of CPU taken from the run
    under test. :func:`journal_view_count` is the view's own count, to compare once."""
    with env.platform.engine.connect() as conn:
        total = conn.execute(select(func.sum(s.migration_batches.c.size))).scalar()
    return int(total or 0)


def journal_view_count(env: Any) -> int:
    """Rows of the migration journal view, every migration."""
    with env.platform.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(s.migration_journal)).scalar())


# A test of the migration machinery, not of step order: 03 run on the demo without 01/02
# goes past the step-order gate the one recorded way (the reason lands in `run`).
MIGRATE_ALONE_REASON = "test: the migration alone, 01_copy/02_verify not run"
MIGRATE_ALONE = {"gate_override_reason": MIGRATE_ALONE_REASON}
MIGRATE_ALONE_ARGS = ("-p", "gate_override_reason", MIGRATE_ALONE_REASON)
