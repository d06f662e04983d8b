"""`zoo-ops status --watch`: the status table, redrawn, with the runs in progress.

Each frame is read afresh from the runs table (the index; the trail is not listed) and
shows, under the usual table, one line per run **in progress** -- a row with no outcome
whose owning process is alive (a row whose process is gone is ``crashed``, and the table
says so) -- with its open migration's ``moved/total``: ``moved`` is the migration's
``moved_count``, committed with each batch, so the figure is never ahead of the database;
``total`` is ``moved`` plus the user versions the plan would still move, read in the same
frame.

On a terminal the screen is redrawn in place; into a pipe or a file, frames follow one
another, separated by their time line. Ctrl-C ends the watch with exit 0: watching
changes nothing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TextIO

from zoo_ops.environment import Environment
from zoo_ops.migration.plan import OPEN

CLEAR_SCREEN = "\x1b[H\x1b[2J"
DEFAULT_INTERVAL_S = 2.0


@dataclass(frozen=True)
class RunInProgress:
    """A run whose row has no outcome and whose process is alive."""

    env: str
    model: str
    step: str
    run_id: str
    operator: str
    started_at: datetime  # aware UTC: the column is a UTCDateTime
    migration_id: str | None = None
    direction: str | None = None
    moved: int | None = None
    total: int | None = None


def runs_in_progress(env: Environment, model: str | None = None) -> list[RunInProgress]:
    """The environment's runs in progress, oldest first, with their open migration."""
    found = []
    for record in env.runs.find(env=env.name, model=model):
        if record.outcome is not None or record.effective_outcome is not None:
            continue
        open_migrations = [m for m in env.migrations.for_run(record.id, None) if m.status == OPEN]
        run = RunInProgress(
            env=record.env,
            model=record.model,
            step=record.step,
            run_id=record.id,
            operator=record.operator,
            started_at=record.started_at,
        )
        if open_migrations:
            m = open_migrations[0]
            pending = env.migrations.count_pending(m.plan)
            run = replace(
                run,
                migration_id=m.id,
                direction=m.direction,
                moved=m.moved_count,
                total=m.moved_count + pending,
            )
        found.append(run)
    return found


def progress_line(run: RunInProgress, now: datetime) -> str:
    """One line: where, what, who, for how long, and the migration's moved/total."""
    elapsed = max(0, int((now - run.started_at).total_seconds()))
    line = (
        f"{run.env} {run.model} {run.step} run {run.run_id} by {run.operator}, "
        f"running for {elapsed // 60}m{elapsed % 60:02d}s"
    )
    if run.migration_id is not None and run.moved is not None:
        share = f" ({100 * run.moved // run.total}%)" if run.total else ""
        line += (
            f"; migration {run.migration_id} {run.direction}: moved {run.moved}/{run.total}{share}"
        )
    return line


def in_progress_section(env_names: Sequence[str], model: str | None, now: datetime) -> str:
    """The "in progress" lines of every named environment whose database can be read."""
    from zoo_ops.errors import ZooOpsError

    lines = []
    for name in env_names:
        try:
            env = Environment.load(name)
        except ZooOpsError as exc:
            lines.append(f"{name}: runs in progress not read ({exc})")
            continue
        try:
            lines.extend(progress_line(r, now) for r in runs_in_progress(env, model))
        except Exception as exc:  # noqa: BLE001 - a frame shows what failed, the next retries
            lines.append(f"{name}: runs in progress not read ({type(exc).__name__}: {exc})")
        finally:
            env.dispose()
    return "\n".join(
        ["in progress:", *(f"  {x}" for x in lines)] if lines else ["in progress: none"]
    )


def watch(
    frame: Callable[[], str],
    *,
    interval: float = DEFAULT_INTERVAL_S,
    out: TextIO | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Print ``frame()`` every ``interval`` seconds until Ctrl-C; exit code 0."""
    stream = out or sys.stdout
    tty = stream.isatty()
    shown = 0
    try:
        while True:
            now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            text = frame()
            header = f"zoo-ops status --watch, every {interval:g} s; {now} (Ctrl-C to stop)"
            stream.write((CLEAR_SCREEN if tty else ("\n" if shown else "")) + header + "\n")
            stream.write(text.rstrip("\n") + "\n")
            stream.flush()
            shown += 1
            sleep(interval)
    except KeyboardInterrupt:
        stream.write("\n")
    return 0
