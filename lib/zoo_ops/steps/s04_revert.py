"""Step 04: put the applications back on the old version, from the forward run's record
(the seed's rollback script, with the id map read from the audit trail instead of
typed in by hand).

``load_forward_run`` reads an executed 03_migrate notebook and refuses -- one line,
nothing changed -- anything that is not a successful forward run of this model in this
environment, or whose recorded mapping, migration id or moved rows disagree with the
database journal. ``revert`` runs the forward plan backwards through the same engine.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from zoo_ops.environment import Environment
from zoo_ops.errors import BadInput, NotFound
from zoo_ops.migration.engine import (
    affected_digest,
    journal_digest,
    migration_record,
    revert_migration,
)
from zoo_ops.migration.plan import FORWARDS
from zoo_ops.services.migration_output import TqdmProgress, affected_record
from zoo_ops.services.results import StepResult
from zoo_ops.trail import read_entry, read_scraps, trail_notebooks

FORWARD_STEP = "03_migrate"


@dataclass
class ForwardRun(StepResult):
    """A successful forward run, cross-checked against the database."""

    path: Path
    migration_id: str
    old_version_id: str
    new_version_id: str
    affected_count: int
    truss_hash: str | None

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {"what": "forward run", "value": str(self.path)},
                {"what": "migration id", "value": self.migration_id},
                {"what": "old version", "value": self.old_version_id},
                {"what": "new version", "value": self.new_version_id},
                {"what": "rows it moved (matches the journal)", "value": self.affected_count},
            ]
        )

    def scraps(self) -> dict[str, Any]:
        return {"forward_run": str(self.path)}


def latest_forward_run(env: Environment, model: str) -> Path:
    """The newest executed 03_migrate of ``model`` in ``env`` that succeeded (not a dry run)."""
    found = [
        entry.path
        for entry in map(
            read_entry, trail_notebooks(env.config.executed_root_path, env.name, model)
        )
        if entry.step == FORWARD_STEP and entry.run and entry.run.get("outcome") == "succeeded"
    ]
    if not found:
        raise NotFound(
            f"no successful {FORWARD_STEP} of {model} in {env.name} under "
            f"{env.config.executed_root_path}; pass forward_run=PATH"
        )
    return found[-1]


def _recorded_affected(affected: Any, where: Path) -> pd.DataFrame:
    """The recorded rows: inline, or the parquet file whose sha256 the scrap holds."""
    if isinstance(affected, pd.DataFrame):
        return affected
    if isinstance(affected, dict) and {"path", "sha256"} <= set(affected):
        path = Path(str(affected["path"]))
        if not path.exists():
            raise BadInput(
                f"{where}: its affected rows file {path} is missing; restore it from the trail"
            )
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != affected["sha256"]:
            raise BadInput(
                f"{where}: {path} does not match the sha256 recorded in the run; refusing"
            )
        return pd.read_parquet(path)
    raise BadInput(
        f"{where}: the affected scrap is neither a table nor a parquet reference; refusing"
    )


def load_forward_run(env: Environment, model: str, forward_run: str | Path = "") -> ForwardRun:
    """Read and check the forward run whose mapping the revert will use."""
    if forward_run:
        path = Path(forward_run)
        if not path.is_absolute():
            path = (env.config.root / path) if not path.exists() else path.resolve()
    else:
        path = latest_forward_run(env, model)
    scraps = read_scraps(path)
    run = scraps.get("run")
    if not isinstance(run, dict):
        raise BadInput(
            f"{path}: not an executed runbook (no `run` scrap); pass a 03_migrate notebook"
        )
    if run.get("step") != FORWARD_STEP:
        raise BadInput(
            f"{path}: is a {run.get('step')} run, not {FORWARD_STEP}; pass a forward run"
        )
    if run.get("outcome") != "succeeded":
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
    recorded = _recorded_affected(scraps.get("affected"), path)
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
    return ForwardRun(path, record.id, old_id, new_id, recorded_digest[0], run.get("truss_hash"))


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
    batch_size: int = 1000,
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
        forward, result.migration_id or "", result.to_frame(), reverted, count, remaining, dry_run
    )
