"""Step 04: put the applications back on the old version, from the forward run's record
(the seed's rollback script, with the id map read from the audit trail instead of
typed in by hand).

``load_forward_run`` finds the forward migration to undo, from one of three sources:

- an executed 03_migrate notebook (``forward_run=PATH``, or empty: the latest successful
  one): it is refused -- one line, nothing changed -- unless it is a successful (or a
  recovered, ``run.recovered``) forward run of this model in this environment whose
  mapping, migration id and moved rows agree with the database journal;
- a run id (``forward_run=RUN_ID``): the run's notebook from the runs table; when that
  notebook is missing or unreadable, the migration that run started, from the journal;
- ``migration_id=ID``: the journal alone, the authority when the notebook is lost.

The executed 04 notebook names its source ("source: journal of migration ID" or the
notebook). ``restore_zoo_model`` first puts back the rest of what 03 changed -- the
whitelist entry (from the forward run's ``whitelist_before``) and the zoo model's current
version, so new applications land on the old version again -- each only if it is still
as 03 left it, read back, or says why not (:mod:`zoo_ops.domain.rollback`). ``revert``
then runs the forward plan backwards through the same engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from zoo_ops.config import trail_cache_path
from zoo_ops.domain.rollback import (
    CANNOT,
    NONE,
    REMOVE,
    Restore,
    current_version_restore,
    whitelist_restore,
)
from zoo_ops.environment import Environment
from zoo_ops.errors import BadInput, NotFound, StepFailed, ZooOpsError
from zoo_ops.migration.engine import (
    BatchTiming,
    affected_digest,
    journal_digest,
    migration_record,
    migrations_of_run,
    revert_migration,
)
from zoo_ops.migration.plan import FORWARDS, MigrationRecord
from zoo_ops.migration.sizing import AUTO, DEFAULT_LOCK_BUDGET_MS, BatchSize
from zoo_ops.services.migration_output import TqdmProgress, affected_record, read_affected
from zoo_ops.services.results import StepResult
from zoo_ops.trail import TrailIndex, read_scraps
from zoo_ops.trail.mirror import local_copy
from zoo_ops.trail.stores import is_remote

FORWARD_STEP = "03_migrate"


@dataclass
class ForwardRun(StepResult):
    """The forward migration to undo, cross-checked against the database."""

    path: Path | None  # the executed 03_migrate read; None: from the journal alone
    migration_id: str
    old_version_id: str
    new_version_id: str
    affected_count: int
    truss_hash: str | None
    source: str = ""  # "notebook PATH" | "journal of migration ID"
    run_id: str = ""  # the forward run's id, when known

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {"what": "source", "value": self.source or f"notebook {self.path}"},
                {"what": "forward run", "value": str(self.path or self.run_id or "(unknown)")},
                {"what": "migration id", "value": self.migration_id},
                {"what": "old version", "value": self.old_version_id},
                {"what": "new version", "value": self.new_version_id},
                {"what": "rows it moved (matches the journal)", "value": self.affected_count},
            ]
        )

    def scraps(self) -> dict[str, Any]:
        # forward_run: the notebook's path, else (journal source) the forward run's id.
        return {
            "forward_run": str(self.path) if self.path is not None else self.run_id,
            "forward_source": self.source or f"notebook {self.path}",
        }


def latest_forward_run(env: Environment, model: str) -> Path:
    """The newest executed 03_migrate of ``model`` in ``env`` that succeeded (not a dry run).

    Read through the trail index: unreadable files (a bad name, a FIFO, a scrap of the
    wrong type) are skipped; the notebook found is then checked against the journal."""
    found = [
        entry.path
        for entry in TrailIndex.of(env.config).entries(env.name, model)
        if entry.step == FORWARD_STEP and entry.run and entry.run.get("outcome") == "succeeded"
    ]
    if not found:
        raise NotFound(
            f"no successful {FORWARD_STEP} of {model} in {env.name} under "
            f"{env.config.executed_root_path}; pass forward_run=PATH or RUN_ID, or migration_id=ID"
        )
    return found[-1]


def load_forward_run(
    env: Environment, model: str, forward_run: str | Path = "", migration_id: str = ""
) -> ForwardRun:
    """Read and check the forward migration the revert will undo (see the module doc)."""
    migration_id = str(migration_id or "").strip()
    if migration_id:
        journal = forward_from_journal(env, model, migration_id)
        if forward_run:
            named = load_forward_run(env, model, forward_run)
            if named.migration_id != journal.migration_id:
                raise BadInput(
                    f"forward_run {forward_run} is migration {named.migration_id}, not "
                    f"migration_id {migration_id}; pass one of them"
                )
            return named
        return journal
    if not forward_run:
        return _from_notebook(env, model, latest_forward_run(env, model))
    text = str(forward_run).strip()
    if _looks_like_path(text):
        return _from_notebook(env, model, _resolve_path(env, text))
    return _from_run_id(env, model, text)


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or text.endswith(".ipynb") or Path(text).exists()


def _resolve_path(env: Environment, text: str) -> Path:
    if is_remote(text):
        return _readable_copy(text)
    path = Path(text)
    if not path.is_absolute():
        path = (env.config.root / path) if not path.exists() else path.resolve()
    return path


def _from_run_id(env: Environment, model: str, run_id: str) -> ForwardRun:
    """A run id: its notebook when readable, else the migration it started (journal)."""
    try:
        record = env.runs.get(run_id)
    except ZooOpsError:
        raise NotFound(
            f"forward_run {run_id!r} is neither an executed notebook nor a run id; pass a "
            "03_migrate notebook path, its run id, or migration_id=ID"
        ) from None
    if record.step != FORWARD_STEP:
        raise BadInput(
            f"run {run_id} is a {record.step} run, not {FORWARD_STEP}; pass a forward run"
        )
    notebook = _run_notebook(env, record)
    problem = "no notebook recorded" if notebook is None else _unusable(notebook)
    if notebook is not None and problem is None:
        return _from_notebook(env, model, notebook)
    migrations = migrations_of_run(env, run_id)
    if not migrations:
        raise NotFound(
            f"run {run_id}'s notebook is unusable ({problem}) and it started no forward "
            "migration; nothing to revert from it"
        )
    return forward_from_journal(env, model, migrations[0].id, note=f"run {run_id}: {problem}")


def _run_notebook(env: Environment, record: Any) -> Path | None:
    """The run's notebook: its recovered one when the runs table names it, else its own."""
    for name in ("recovered_path", "notebook_path"):
        value = getattr(record, name, None)
        if value:
            if is_remote(str(value)):
                return _readable_copy(str(value))
            path = Path(str(value))
            return path if path.is_absolute() else env.config.root / path
    return None


def _readable_copy(url: str) -> Path:
    """A remote trail notebook's current local copy; where it would be when it cannot be
    read (missing, or the bucket unreachable): then the journal is the record."""
    try:
        return local_copy(url)
    except (OSError, ZooOpsError):
        return trail_cache_path(url)


def _unusable(path: Path) -> str | None:
    """Why a forward run's notebook cannot be used as the record (None: it can)."""
    try:
        run = read_scraps(path).get("run")
    except ZooOpsError as exc:
        return str(exc)
    if not isinstance(run, dict):
        return "no `run` scrap"
    if run.get("outcome") != "succeeded" and run.get("recovered") is not True:
        return f"its outcome is {run.get('outcome')!r}"
    return None


def forward_from_journal(
    env: Environment, model: str, migration_id: str, *, note: str = ""
) -> ForwardRun:
    """The forward migration ``migration_id`` as the database records it: no notebook."""
    record = migration_record(env, migration_id)
    _check_forward_record(record, model, env.name, f"migration_id {migration_id}")
    rows, _digest = journal_digest(env, record.id)
    truss_hash = None
    version = env.platform.find_version(record.target_version_id)
    if version is not None:
        truss_hash = version.truss_hash
    source = f"journal of migration {record.id}" + (f" ({note})" if note else "")
    return ForwardRun(
        None,
        record.id,
        record.source_version_id,
        record.target_version_id,
        rows,
        truss_hash,
        source=source,
        run_id=record.run_id or "",
    )


def _check_forward_record(record: MigrationRecord, model: str, env: str, what: str) -> None:
    if record.direction != FORWARDS:
        raise BadInput(f"{what} is a revert, not a forward migration; pass the forward one")
    if (record.model, record.env) != (model, env):
        raise BadInput(
            f"{what} migrated {record.model!r} in {record.env!r}, not {model!r} in {env!r}"
        )


def _from_notebook(env: Environment, model: str, path: Path) -> ForwardRun:
    scraps = read_scraps(path)
    run = scraps.get("run")
    if not isinstance(run, dict):
        raise BadInput(
            f"{path}: not an executed runbook (no `run` scrap); pass a 03_migrate notebook, "
            "its run id, or migration_id=ID"
        )
    if run.get("step") != FORWARD_STEP:
        raise BadInput(
            f"{path}: is a {run.get('step')} run, not {FORWARD_STEP}; pass a forward run"
        )
    if run.get("outcome") != "succeeded" and run.get("recovered") is not True:
        raise BadInput(
            f"{path}: the forward run's outcome is {run.get('outcome')!r}, not 'succeeded'; "
            "resume it with 03_migrate, or revert its migration_id from the database"
        )
    if run.get("model") != model or run.get("env") != env.name:
        raise BadInput(
            f"{path}: migrated {run.get('model')!r} in {run.get('env')!r}, not {model!r} in {env.name!r}"
        )
    mapping, migration_id = scraps.get("mapping"), scraps.get("migration_id")
    if not isinstance(mapping, dict) or len(mapping) != 1 or not migration_id:
        raise BadInput(
            f"{path}: mapping or migration_id missing or malformed; the notebook was altered"
        )
    ((old_id, new_id),) = mapping.items()
    record = migration_record(env, str(migration_id))
    if (record.direction, record.model, record.env) != (FORWARDS, model, env.name) or (
        record.source_version_id,
        record.target_version_id,
    ) != (old_id, new_id):
        raise BadInput(
            f"{path}: mapping {old_id} -> {new_id} disagrees with migration {migration_id} in the "
            f"database ({record.source_version_id} -> {record.target_version_id}); refusing"
        )
    recorded = read_affected(scraps.get("affected"), path)
    try:
        recorded_digest = affected_digest(recorded)
    except KeyError as exc:
        raise BadInput(
            f"{path}: the affected table lacks column {exc}; the notebook was altered"
        ) from exc
    if recorded_digest != journal_digest(env, record.id):
        rows, _ = journal_digest(env, record.id)
        raise BadInput(
            f"{path}: its {recorded_digest[0]} affected rows disagree with the {rows} journal rows "
            f"of migration {record.id}; refusing"
        )
    recovered = " (recovered from the database)" if run.get("recovered") is True else ""
    return ForwardRun(
        path,
        record.id,
        old_id,
        new_id,
        recorded_digest[0],
        run.get("truss_hash"),
        source=f"notebook {path}{recovered}",
        run_id=str(run.get("run_id") or ""),
    )


@dataclass
class Revert(StepResult):
    """What the revert moved back, from the new version to the old."""

    forward: ForwardRun
    migration_id: str
    summary: pd.DataFrame
    reverted: Any
    reverted_count: int
    remaining_on_new: int
    dry_run: bool
    # Per committed batch of this run (seconds since start, moved so far, lock seconds).
    timings: list[BatchTiming] = field(default_factory=list, repr=False)

    def pictures(self) -> list[Any]:
        from zoo_ops.plots import migration_over_time

        return [migration_over_time(self.timings, dry_run=self.dry_run)]

    def to_frame(self) -> pd.DataFrame:
        return self.summary

    def scraps(self) -> dict[str, Any]:
        return {
            "mapping": {self.forward.new_version_id: self.forward.old_version_id},
            "migration_id": self.migration_id,
            "reverted": self.reverted,
            "reverted_count": self.reverted_count,
            "remaining_on_new": self.remaining_on_new,
        }

    def failure(self) -> str | None:
        if self.dry_run or self.remaining_on_new == 0:
            return None
        return (
            f"{self.remaining_on_new} user versions are still on the new version "
            f"{self.forward.new_version_id}; rerun 04_revert to resume"
        )


def revert(
    env: Environment,
    model: str,
    forward: ForwardRun,
    *,
    scope: str = "all",
    batch_size: BatchSize = AUTO,
    lock_budget_ms: int = DEFAULT_LOCK_BUDGET_MS,
    dry_run: bool = False,
    affected_inline_limit: int = 100_000,
    executed_path: Path | None = None,
    operator: str = "",
    run_id: str | None = None,
) -> Revert:
    """Point them back: ``all`` on the new version, or only the ``recorded`` ones."""
    result = revert_migration(
        env,
        model,
        forward_migration_id=forward.migration_id,
        scope=scope,
        batch_size=batch_size,
        lock_budget_ms=lock_budget_ms,
        dry_run=dry_run,
        operator=operator,
        run_id=run_id,
        progress=TqdmProgress(),
    )
    reverted, count = affected_record(
        result, inline_limit=affected_inline_limit, beside=executed_path
    )
    remaining = 0 if dry_run else result.remaining_on_source
    return Revert(
        forward,
        result.migration_id or "",
        result.to_frame(),
        reverted,
        count,
        remaining,
        dry_run,
        timings=list(result.batch_timings),
    )


@dataclass
class ZooModelRestore(StepResult):
    """The whitelist entry and current version put back (or why not), read back."""

    model: str
    rows: list[Restore]
    dry_run: bool

    def to_frame(self) -> pd.DataFrame:
        rows = [
            {
                "what": r.what,
                "action": ("would " + r.action)
                if self.dry_run and r.action not in (NONE, CANNOT)
                else r.action,
                "now": r.now,
                "wanted": r.wanted,
                "detail": r.detail,
            }
            for r in self.rows
        ]
        return pd.DataFrame(rows, columns=["what", "action", "now", "wanted", "detail"])

    @property
    def not_restored(self) -> str:
        """One line naming what could not be put back, and why ("" when all was)."""
        return "; ".join(f"{r.what} not restored: {r.detail}" for r in self.rows if not r.ok)

    def scraps(self) -> dict[str, Any]:
        return {"rollback": self.to_frame(), "rollback_not_restored": self.not_restored}


def _recorded_entry(forward: ForwardRun, model: str) -> tuple[bool, bool | None]:
    """(recorded, copy) of ``model``'s whitelist entry before 03, from the forward run's
    ``whitelist_before`` scrap; (False, None) when no readable forward notebook has it."""
    if forward.path is None:
        return False, None
    try:
        before = read_scraps(forward.path).get("whitelist_before")
    except ZooOpsError:
        return False, None
    if not isinstance(before, dict):
        return False, None
    entry = before.get(model)
    copy = entry.get("copy") if isinstance(entry, dict) else None
    return True, copy if isinstance(copy, bool) else None


def restore_zoo_model(
    env: Environment, model: str, forward: ForwardRun, *, dry_run: bool = False
) -> ZooModelRestore:
    """Put back the whitelist entry, then the current version (see the module doc).

    The whitelist goes first: with ``copy: false`` still set, an automation could make
    the new version current again. Each write is read back; a dry run writes nothing.
    """
    from zoo_ops.services.settings import (
        remove_whitelist_entry,
        set_whitelist_entry,
        show_settings,
    )

    store = env.platform
    zoo = store.zoo_model(model)
    now_entry = show_settings(env).whitelist.get(model)
    recorded, before = _recorded_entry(forward, model)
    entry = whitelist_restore(
        model=model,
        now=now_entry.copy if now_entry is not None else None,
        recorded=recorded,
        before=before,
    )
    old = store.find_version(forward.old_version_id)
    current = current_version_restore(
        model=model,
        current_id=zoo.current_version_id,
        old_id=forward.old_version_id,
        new_id=forward.new_version_id,
        old_status=old.status if old else None,
    )
    if not dry_run:
        if entry.action == REMOVE:
            remove_whitelist_entry(env, model)
        elif entry.action not in (NONE, CANNOT):
            set_whitelist_entry(env, model, bool(before))
        if entry.action not in (NONE, CANNOT):
            got = show_settings(env).whitelist.get(model)
            if (got.copy if got is not None else None) != before:
                raise StepFailed(
                    f"{model}'s whitelist entry did not read back as it was before 03; "
                    "inspect the ConfigMap"
                )
        if current.action not in (NONE, CANNOT):
            store.set_current_version(zoo.id, forward.old_version_id)  # reads it back
    return ZooModelRestore(model, [entry, current], dry_run)
