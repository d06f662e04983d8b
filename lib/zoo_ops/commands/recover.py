"""`zoo-ops trail recover RUN_ID`: a readable notebook for a run whose own was lost.

A run that crashed, was interrupted, or could not save its notebook (outcome
``crashed``, ``interrupted``, ``trail-unsaved``, or none at all) left its truth in the
database: the run row, the migration it started and that migration's journal. This
writes the executed notebook such a run would have left, from those alone, marked as
recovered -- a markdown cell says so, and the ``run`` scrap carries ``recovered: true``
-- with the DESIGN §5 scraps of its step (for 03_migrate: ``old_version_id``,
``new_version_id``, ``mapping``, ``migration_id``, ``affected`` from the journal,
``affected_count``, ``remaining_on_old``), so that ``04_revert -p forward_run PATH`` (or
the run id) accepts it.

The scraps are written as ``scrapbook.glue`` writes them (same mimetypes, payloads and
encoders, :func:`zoo_ops.runbook.glue`'s choice of encoder), so the file reads back
through scrapbook and through the trail's own decoder. The file is written to a temporary
name and renamed into place; a notebook already at that path is kept beside it
(``NAME.ipynb.before-recover``), never overwritten.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from zoo_ops.commands.recorded_write import check_confirm
from zoo_ops.config import trail_cache_path
from zoo_ops.environment import Environment
from zoo_ops.errors import BadInput, NotFound, StepFailed, ZooOpsError
from zoo_ops.files import write_atomic
from zoo_ops.migration.engine import migrations_of_run, result_for
from zoo_ops.migration.plan import BACKWARDS, FORWARDS, MigrationRecord
from zoo_ops.runbook import run_scrap_of, scrap_output
from zoo_ops.services.migration_output import affected_record
from zoo_ops.trail import executed_path
from zoo_ops.trail.mirror import local_copy
from zoo_ops.trail.notebook import UnreadableNotebook, read_notebook_scraps, read_trail_bytes
from zoo_ops.trail.stores import TrailStoreError, is_remote, store_for
from zoo_ops.trail.written import iso, notebook_text, table_output, written_notebook

SUCCEEDED = "succeeded"
CRASHED = "crashed"
RUNNING = "running"
ASIDE_SUFFIX = ".before-recover"
DEFAULT_INLINE_LIMIT = 100_000


@dataclass
class Recovered:
    """What ``trail recover`` wrote."""

    run_id: str
    step: str
    model: str
    env: str
    outcome: str
    path: Path | str  # a URL on a remote trail
    migration_id: str | None
    affected_count: int | None
    kept_aside: Path | None
    problem: str | None  # why the run's own notebook could not be used
    scraps: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, record: Any, outcome: str, path: Path | str, **rest: Any) -> Recovered:
        """What was written for run ``record`` (a runs-table row)."""
        return cls(
            run_id=record.id,
            step=record.step,
            model=record.model,
            env=record.env,
            outcome=outcome,
            path=path,
            **rest,
        )

    def to_frame(self) -> pd.DataFrame:
        rows = [
            ("run", self.run_id),
            ("step", f"{self.step} of {self.model} in {self.env}"),
            ("outcome", self.outcome),
            ("its notebook", self.problem or "readable"),
            ("recovered notebook", str(self.path)),
            ("migration", self.migration_id or "(none recorded)"),
            ("rows in the journal", "" if self.affected_count is None else self.affected_count),
            ("original kept as", str(self.kept_aside) if self.kept_aside else ""),
        ]
        return pd.DataFrame(rows, columns=["what", "value"])


def _outcome(record: Any) -> str:
    """The run's outcome: the runs table's computed one (``crashed`` once an unfinished
    run's processes are gone; None while it runs), else the recorded one."""
    if hasattr(record, "effective_outcome"):
        effective = record.effective_outcome
        return str(effective) if effective else RUNNING
    return str(record.outcome) if record.outcome else CRASHED


def _notebook_problem(path: Path | None) -> tuple[str | None, dict[str, Any] | None]:
    """(why the notebook is unusable or None, its `run` scrap when it has one)."""
    if path is None:
        return "no notebook recorded", None
    try:
        # A regular file only (a FIFO at the recorded path must not hang recover).
        scraps, _names, _papermill = read_notebook_scraps(read_trail_bytes(path), {"run"})
    except (OSError, UnreadableNotebook) as exc:
        return ("missing" if not os.path.lexists(path) else f"unreadable ({exc})"), None
    run = scraps.get("run")
    if not isinstance(run, dict):
        return "no `run` scrap", None
    return None, run


def recover_run(
    env: Environment, run_id: str, *, force: bool = False, confirm: str = ""
) -> Recovered:
    """Write the recovered notebook of run ``run_id`` (see the module doc).

    It writes the environment's runs table and trail: on a protected environment it
    refuses, nothing read or written, unless ``confirm`` is the environment's name.
    """
    check_confirm(env, confirm, dry_run=False, command=f"trail recover {run_id}", can_dry_run=False)
    try:
        record = env.runs.get(run_id)
    except ZooOpsError:
        raise NotFound(
            f"no run {run_id!r} in {env.name}'s runs table; check the id (zoo-ops status)"
        ) from None
    outcome = _outcome(record)
    if outcome == RUNNING:
        raise BadInput(f"run {run_id} is still running; recover it once its process is gone")
    url = record.notebook_path if is_remote(record.notebook_path) else None
    if url is not None:
        uploaded = _upload_spool(env, record, outcome, url)
        if uploaded is not None:
            return uploaded
        own: Path | None = _remote_copy(url)
    else:
        own = Path(record.notebook_path) if record.notebook_path else None
    if own is not None and not own.is_absolute():
        own = env.config.root / own
    problem, old_run = _notebook_problem(own)
    if problem is None and outcome == SUCCEEDED and not force:
        raise BadInput(
            f"run {run_id} succeeded and its notebook {own} is readable; nothing to recover "
            "(--force writes it again from the database)"
        )
    if problem is None and old_run is not None and old_run.get("recovered") and not force:
        raise BadInput(f"run {run_id} was already recovered into {own}; --force writes it again")

    target = own or executed_path(
        env.config.executed_root_path, env.name, record.model, record.step, at=record.started_at
    )
    migration = _migration_of(env, record)
    scraps, tables = _step_scraps(env, record, migration, target)
    scraps["run"] = _run_scrap(record, outcome, scraps.get("truss_hash"), problem)
    notebook = _notebook(record, outcome, problem, own, migration, scraps, tables)
    kept = _write_atomically(notebook, target)
    if url is not None:
        _put(url, target.read_bytes())
    elif own is None or target != own:
        _record_path(env, record.id, target)
    affected = scraps.get("affected_count", scraps.get("reverted_count"))
    return Recovered.of(
        record,
        outcome,
        url or target,
        migration_id=migration.id if migration else None,
        affected_count=int(affected) if isinstance(affected, int) else None,
        kept_aside=kept,
        problem=problem,
        scraps=scraps,
    )


def _remote_copy(url: str) -> Path:
    """The current local copy of a remote trail notebook (where it would be if missing)."""
    try:
        return local_copy(url)
    except FileNotFoundError:
        return trail_cache_path(url)
    except TrailStoreError as exc:
        raise StepFailed(_unreachable(url, exc)) from None


def _unreachable(url: str, exc: BaseException) -> str:
    return (
        f"the trail {url} cannot be reached ({exc}); the run stays as it is recorded, "
        "rerun `zoo-ops trail recover` once the bucket is back"
    )


def _put(url: str, data: bytes) -> None:
    """One PUT of the notebook's final bytes, read back (size) by the store."""
    try:
        store_for(url).put_bytes(url, data)
    except (TrailStoreError, OSError) as exc:
        raise StepFailed(_unreachable(url, exc)) from None


def _upload_spool(env: Environment, record: Any, outcome: str, url: str) -> Recovered | None:
    """A remote run whose final write failed kept its own notebook in the spool: write
    that to the bucket (one PUT, read back) and remove the spool copy. None when there is
    no readable spool copy (the notebook is then rebuilt from the database)."""
    name = url.rsplit("/", 1)[-1]
    spool = env.config.trail_spool_path / record.env / record.model / name
    problem, run = _notebook_problem(spool if spool.is_file() else None)
    if problem is not None or run is None:
        return None
    data = spool.read_bytes()
    _put(url, data)
    spool.unlink(missing_ok=True)
    return Recovered.of(
        record,
        outcome,
        url,
        migration_id=None,
        affected_count=None,
        kept_aside=None,
        problem=f"its notebook was kept in the spool ({spool}) and is now written",
    )


def _migration_of(env: Environment, record: Any) -> MigrationRecord | None:
    direction = {"03_migrate": FORWARDS, "04_revert": BACKWARDS}.get(record.step)
    if direction is None:
        return None
    found = migrations_of_run(env, record.id, direction)
    return found[0] if found else None


def _inline_limit(record: Any) -> int:
    value = (record.parameters or {}).get("affected_inline_limit")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return DEFAULT_INLINE_LIMIT


def _step_scraps(
    env: Environment, record: Any, migration: MigrationRecord | None, target: Path
) -> tuple[dict[str, Any], list[pd.DataFrame]]:
    """The step's DESIGN §5 scraps from the database, and the tables to show."""
    if migration is None:
        return {}, []
    result = result_for(env, migration.id)
    rows, count = affected_record(result, inline_limit=_inline_limit(record), beside=target)
    remaining = env.platform.count_proxying(migration.source_version_id)
    summary = result.to_frame()
    summary["status"] = migration.status
    summary["remaining_on_source"] = remaining
    version = env.platform.find_version(
        migration.target_version_id
        if migration.direction == FORWARDS
        else migration.source_version_id
    )
    scraps: dict[str, Any] = {}
    if version is not None and version.truss_hash:
        scraps["truss_hash"] = version.truss_hash
    if migration.direction == FORWARDS:
        scraps.update(
            {
                "old_version_id": migration.source_version_id,
                "new_version_id": migration.target_version_id,
                "mapping": migration.mapping,
                "migration_id": migration.id,
                "affected": rows,
                "affected_count": count,
                "remaining_on_old": remaining,
            }
        )
    else:
        forward = env.migrations.get(migration.forward_migration_id or "")
        scraps.update(
            {
                "forward_run": (forward.run_id or "") if forward else "",
                "mapping": migration.mapping,
                "migration_id": migration.id,
                "reverted": rows,
                "reverted_count": count,
                "remaining_on_new": remaining,
            }
        )
    return scraps, [summary]


def _run_scrap(record: Any, outcome: str, truss_hash: Any, problem: str | None) -> dict[str, Any]:
    scrap = run_scrap_of(record, exit_code=0 if outcome == SUCCEEDED else 1)
    return {
        **scrap,
        "outcome": outcome,
        "truss_hash": record.truss_hash or (truss_hash if isinstance(truss_hash, str) else None),
        "recovered": True,
        "recovered_at": iso(datetime.now(UTC)),
        "recovered_from": "database: runs table, migration record, journal",
        "original_notebook": problem or "readable",
    }


# --- the notebook ---------------------------------------------------------------------------


def _notebook(
    record: Any,
    outcome: str,
    problem: str | None,
    own: Path | None,
    migration: MigrationRecord | None,
    scraps: dict[str, Any],
    tables: list[pd.DataFrame],
) -> Any:
    import nbformat

    now = datetime.now(UTC).isoformat(timespec="seconds")
    original = f"`{own}` ({problem or 'readable'})" if own else "none recorded"
    what = (
        f"migration `{migration.id}` ({migration.direction}, status {migration.status}, "
        f"{migration.moved_count} rows journaled)"
        if migration
        else "no migration recorded for this run"
    )
    intro = nbformat.v4.new_markdown_cell(
        f"# Recovered: {record.step} of {record.model} in {record.env} (run `{record.id}`)\n\n"
        f"**This notebook was recovered from the database** by `zoo-ops trail recover` at "
        f"{now}; it was not executed. The run's outcome is **{outcome}**; its own notebook: "
        f"{original}. What it did is read from the runs table, {what}, and that "
        "migration's journal, which is the authority: `affected` below is every journal row."
    )
    run_frame = pd.DataFrame(
        [
            {"what": k, "value": "" if v is None else str(v)}
            for k, v in scraps["run"].items()
            if k not in ("recovered_from",)
        ]
    )
    params = pd.DataFrame(
        [{"parameter": k, "value": v} for k, v in (record.parameters or {}).items()]
    )
    cells = [intro]
    run_cell = nbformat.v4.new_code_cell("# the run row (recovered)\nrun")
    run_cell.outputs = [table_output(params)]
    cells.append(run_cell)
    if scraps.keys() - {"run"}:
        cells.append(nbformat.v4.new_markdown_cell(f"## The migration\n\n{what}."))
        step_cell = nbformat.v4.new_code_cell("# recovered from the migration record and journal")
        step_cell.outputs = [table_output(t) for t in tables] + [
            scrap_output(name, value) for name, value in scraps.items() if name != "run"
        ]
        cells.append(step_cell)
    done = nbformat.v4.new_code_cell("run.finish()  # recovered")
    done.outputs = [table_output(run_frame), scrap_output("run", scraps["run"])]
    cells.append(done)
    return written_notebook(
        cells,
        papermill={
            "parameters": dict(record.parameters or {}),
            "start_time": iso(record.started_at),
            "end_time": iso(record.finished_at) or now,
            "exception": None,
            "recovered": True,
        },
        zoo_ops={"recovered": True, "run_id": record.id, "recovered_at": now},
    )


def _write_atomically(notebook: Any, path: Path) -> Path | None:
    """Write to a temporary file beside ``path``, then rename it into place. A file already
    at ``path`` stays, hard-linked (or copied) to ``NAME.before-recover``; returns that."""
    text = notebook_text(notebook)
    kept: Path | None = None
    if path.exists():
        kept = _aside_name(path)
        try:
            os.link(path, kept)
        except OSError:
            import shutil

            shutil.copy2(path, kept)
    try:
        write_atomic(path, text)
    except BaseException:
        if kept is not None and _same_file(path, kept):  # not replaced: no copy to keep
            kept.unlink(missing_ok=True)
        raise
    return kept


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _aside_name(path: Path) -> Path:
    kept = path.with_name(path.name + ASIDE_SUFFIX)
    n = 1
    while kept.exists():
        n += 1
        kept = path.with_name(f"{path.name}{ASIDE_SUFFIX}.{n}")
    return kept


def _record_path(env: Environment, run_id: str, path: Path) -> None:
    """Record the recovered notebook's path on the run row."""
    env.runs.set_notebook_path(run_id, str(path))
