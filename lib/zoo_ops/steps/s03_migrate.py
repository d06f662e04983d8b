"""Step 03: roll the truss out as a new version of the zoo model and forward-migrate
every existing application to it (the seed's "Rollout as new version of model zoo
model", "Test the new model zoo model with a new application" and "Migrate existing
applications to the new model version").

``note_old_version`` records the old version before anything changes (the seed: "Make
sure to take a note of the old model zoo oracle version"); ``copy.enable_automation`` sets
``copy: false``; the deployment is :func:`zoo_ops.steps.s01_copy.deploy` with the zoo
model itself as target; ``forward`` runs the migration engine and records the mapping
and every moved row.

A rerun after a crashed or interrupted run adopts that run's migration (resume adopts,
never forgets): an open record of the same versions is resumed, and a finished one whose
run did not succeed (an orphaned kernel finished it with no notebook to record it) is
reopened, swept and closed again -- same migration id, same journal -- so ``affected``
is every row the migration moved, before and after the crash, and ``adopted_run_id``
names the run that started it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from zoo_ops.environment import Environment
from zoo_ops.errors import BadInput, Interrupted, StepFailed
from zoo_ops.migration.engine import (
    BatchTiming,
    MigrationResult,
    forward_migrate,
    revert_migration,
)
from zoo_ops.migration.plan import FORWARDS, OPEN
from zoo_ops.migration.sizing import AUTO, DEFAULT_LOCK_BUDGET_MS, Batching, BatchSize
from zoo_ops.services.applications import previous_active_version
from zoo_ops.services.migration_output import TqdmProgress, affected_record
from zoo_ops.services.results import StepResult


@dataclass
class OldVersionNote(StepResult):
    """The zoo model's version before this rollout, and the truss that replaces it."""

    model: str
    old_version_id: str
    truss_hash: str
    new_already_current: bool
    old_version_users: int

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {"what": "old version", "value": self.old_version_id},
                {"what": "applications on it", "value": self.old_version_users},
                {"what": "truss hash", "value": self.truss_hash},
                {
                    "what": "new version already current",
                    "value": "yes (a rerun: resuming)" if self.new_already_current else "no",
                },
            ]
        )

    def scraps(self) -> dict[str, Any]:
        return {"old_version_id": self.old_version_id}


def note_old_version(env: Environment, model: str) -> OldVersionNote:
    """The version users are on now; on a rerun after the new version went current, the
    source of the open (or latest) forward migration, else the previous ACTIVE version.

    Before 03's first write, when the new version is not deployed yet: the old version,
    the copy and the new version must fit at once (services.preflight.rollout_capacity),
    else a one-line refusal (exit 2) and nothing changed."""
    from zoo_ops.adapters.truss_files import truss_content_hash
    from zoo_ops.adapters.truss_runtime import read_truss
    from zoo_ops.services.preflight import require_rollout_capacity

    store = env.platform
    zoo = store.zoo_model(model)
    read_truss(env.config.truss_root_path / model)  # a broken truss is refused before any write
    current = store.current_version(zoo)
    truss_hash = truss_content_hash(env.config.truss_root_path / model, cache=env.hash_cache)
    already = current.truss_hash == truss_hash
    if not already:
        old_id = current.id
        # Old + copy + new must fit at once before 03 writes copy: false (exit 2 if not).
        require_rollout_capacity(env, model)
    else:
        pending = env.migrations.latest(
            env.name, model, FORWARDS, status=OPEN
        ) or env.migrations.latest(env.name, model, FORWARDS)
        if pending is not None and pending.target_version_id == current.id:
            old_id = pending.source_version_id
        else:
            old_id = previous_active_version(env, model).id
    return OldVersionNote(model, old_id, truss_hash, already, store.count_proxying(old_id))


@dataclass
class ForwardMigration(StepResult):
    """The forward migration as recorded: mapping, migration id, every moved row."""

    model: str
    old_version_id: str
    new_version_id: str
    migration_id: str
    summary: pd.DataFrame
    affected: Any  # a DataFrame, or {path, rows, sha256} of a parquet file beside the notebook
    affected_count: int
    remaining_on_old: int
    dry_run: bool
    auto_reverted: MigrationResult | None = None
    adopted_run_id: str = ""  # the crashed or interrupted run whose migration this continued
    # Per committed batch of this run (seconds since start, moved so far, lock seconds).
    timings: list[BatchTiming] = field(default_factory=list, repr=False)

    def pictures(self) -> list[Any]:
        from zoo_ops.plots import migration_over_time

        return [migration_over_time(self.timings, dry_run=self.dry_run)]

    def to_frame(self) -> pd.DataFrame:
        return self.summary

    def scraps(self) -> dict[str, Any]:
        return {
            "mapping": {self.old_version_id: self.new_version_id},
            "migration_id": self.migration_id,
            "affected": self.affected,
            "affected_count": self.affected_count,
            "remaining_on_old": self.remaining_on_old,
            "adopted_run_id": self.adopted_run_id,
        }

    def failure(self) -> str | None:
        if self.dry_run or self.remaining_on_old == 0:
            return None
        reverted = (
            f"; auto_revert moved {self.auto_reverted.moved_count} back"
            if self.auto_reverted
            else ""
        )
        return (
            f"{self.remaining_on_old} user versions are still on the old version "
            f"{self.old_version_id}{reverted}; rerun 03_migrate to resume"
        )


def forward(
    env: Environment,
    model: str,
    *,
    old_version_id: str,
    new_version_id: str | None,
    batch_size: BatchSize = AUTO,
    lock_budget_ms: int = DEFAULT_LOCK_BUDGET_MS,
    dry_run: bool = False,
    auto_revert: bool = False,
    affected_inline_limit: int = 100_000,
    executed_path: Path | None = None,
    operator: str = "",
    run_id: str | None = None,
) -> ForwardMigration:
    """Move every user version on the old version to the new one; check none is left.

    ``batch_size`` rows a transaction, or ``"auto"``: sized so each batch holds its row
    locks under ``lock_budget_ms`` (:mod:`zoo_ops.migration.sizing`).

    With ``auto_revert``, a failed read-back reverts the moved rows (scope ``recorded``)
    before the run fails.
    """
    if not isinstance(affected_inline_limit, int) or affected_inline_limit < 0:
        raise BadInput(
            f"affected_inline_limit={affected_inline_limit!r}: must be a whole number >= 0"
        )
    if not new_version_id:
        if not dry_run:
            raise StepFailed(
                f"no new version of {model} to migrate to; the deployment did not record one"
            )
        return _count_only(env, model, old_version_id)
    batching = Batching(batch_size, lock_budget_ms)
    try:
        result = forward_migrate(
            env,
            model,
            old_version_id=old_version_id,
            new_version_id=new_version_id,
            batch_size=batching.batch_size,
            lock_budget_ms=batching.lock_budget_ms,
            dry_run=dry_run,
            operator=operator,
            run_id=run_id,
            progress=TqdmProgress(),
            adopt=True,
        )
    except Interrupted:
        raise  # stopped between batches: nothing to undo now, a rerun resumes
    except StepFailed:
        if auto_revert and not dry_run:
            _auto_revert(env, model, old_version_id, new_version_id, batching, operator, run_id)
        raise
    affected, count = affected_record(
        result, inline_limit=affected_inline_limit, beside=executed_path
    )
    remaining = 0 if dry_run else env.platform.count_proxying(old_version_id)
    migration = ForwardMigration(
        model,
        old_version_id,
        new_version_id,
        result.migration_id or "",
        result.to_frame(),
        affected,
        count,
        remaining,
        dry_run,
        adopted_run_id=result.adopted_run_id or "",
        timings=list(result.batch_timings),
    )
    if remaining and auto_revert and not dry_run and result.migration_id:
        migration.auto_reverted = _revert_recorded(
            env, model, result.migration_id, batching, operator, run_id
        )
    return migration


def _count_only(env: Environment, model: str, old_version_id: str) -> ForwardMigration:
    """A dry run before any new version exists: how many would move, which ones first."""
    users = env.platform.user_versions_proxying(old_version_id)
    sample = pd.DataFrame(
        [
            {
                "oracle_version_id": v.id,
                "oracle_id": v.oracle_id,
                "from_version_id": old_version_id,
                "to_version_id": "(new version)",
            }
            for v in users[:20]
        ]
    )
    summary = pd.DataFrame(
        [
            {
                "model": model,
                "source_version_id": old_version_id,
                "would_move": len(users),
                "status": "dry_run",
            }
        ]
    )
    return ForwardMigration(
        model, old_version_id, "", "", summary, sample, len(users), len(users), True
    )


def _revert_recorded(
    env: Environment,
    model: str,
    forward_migration_id: str,
    batching: Batching,
    operator: str,
    run_id: str | None,
) -> MigrationResult:
    """auto_revert: put back exactly the rows the forward migration moved."""
    return revert_migration(
        env,
        model,
        forward_migration_id=forward_migration_id,
        scope="recorded",
        batch_size=batching.batch_size,
        lock_budget_ms=batching.lock_budget_ms,
        operator=operator,
        run_id=run_id,
        progress=TqdmProgress(),
    )


def _auto_revert(
    env: Environment,
    model: str,
    old_version_id: str,
    new_version_id: str,
    batching: Batching,
    operator: str,
    run_id: str | None,
) -> None:
    """Revert what an interrupted forward migration moved (its open record), if anything."""
    record = env.migrations.latest(env.name, model, FORWARDS, status=None)
    if (
        record is not None
        and record.source_version_id == old_version_id
        and record.target_version_id == new_version_id
    ):
        _revert_recorded(env, model, record.id, batching, operator, run_id)
