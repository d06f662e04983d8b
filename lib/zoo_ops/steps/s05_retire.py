"""Step 05: delete the old zoo version (and the copy model's versions) once it is safe.

Deleting means: serving stopped as far as zoo-ops serves the version (see
:mod:`zoo_ops.services.retire`: a platform-served version is left, and the table says
so), the version marked DELETED -- never the row itself, which the audit trail and the
journal refer to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from zoo_ops.adapters.platform import schema as s
from zoo_ops.domain.retire_guards import Guard, RetireFacts, refusal, retire_guards
from zoo_ops.domain.whitelist import COPY_SUFFIX
from zoo_ops.environment import Environment
from zoo_ops.errors import GateClosed
from zoo_ops.migration.engine import latest_migration
from zoo_ops.migration.plan import FORWARDS
from zoo_ops.services.results import StepResult
from zoo_ops.services.retire import RETIRED_COLUMNS, RetiredVersion, retire_version
from zoo_ops.steps.parameters import RetireParameters


@dataclass
class RetirePlan(StepResult):
    """The guards' verdicts and what would be deleted."""

    model: str
    old_version_id: str | None
    new_version_id: str | None
    copy_version_ids: list[str]
    guards: list[Guard]
    references: int
    truss_hash: str | None
    already_deleted: bool = False

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([g.__dict__ for g in self.guards], columns=["guard", "ok", "detail"])

    def scraps(self) -> dict[str, Any]:
        return {"references": self.references, "guards": self.to_frame()}

    def failure(self) -> str | None:
        """One line naming every guard that fails (not only the first)."""
        return refusal(self.guards)

    def raise_if_failed(self) -> None:
        reason = self.failure()
        if reason:
            raise GateClosed(reason)


def check_retire(
    env: Environment,
    model: str,
    *,
    min_age_days: float = RetireParameters.min_age_days,
    delete_copy: bool = RetireParameters.delete_copy,
) -> RetirePlan:
    """Read the facts and evaluate every guard; nothing is changed."""
    store = env.platform
    migration = latest_migration(env, model, FORWARDS)
    zoo = store.zoo_model(model)
    old_id = migration.source_version_id if migration else None
    new_id = migration.target_version_id if migration else None
    new = store.find_version(new_id) if new_id else None
    old = store.find_version(old_id) if old_id else None
    copy_ids: list[str] = []
    copy_refs = 0
    if delete_copy:
        copy = store.find_zoo_model(model + COPY_SUFFIX)
        if copy is not None:
            copy_ids = [v.id for v in store.versions_of(copy.id) if v.status != s.DELETED]
            copy_refs = sum(store.proxy_counts(copy_ids).values()) if copy_ids else 0
    references = store.count_proxying(old_id) if old_id else 0
    facts = RetireFacts(
        model=model,
        old_version_id=old_id,
        new_version_id=new_id,
        migration_id=migration.id if migration else None,
        migration_status=migration.status if migration else None,
        migration_finished_at=migration.finished_at if migration else None,
        reverted_by=migration.reverted_by if migration else None,
        references_to_old=references,
        new_status=new.status if new else None,
        new_is_current=new is not None and zoo.current_version_id == new.id,
        copy_references=copy_refs,
    )
    guards = retire_guards(facts, now=datetime.now(UTC), min_age_days=float(min_age_days))
    return RetirePlan(
        model,
        old_id,
        new_id,
        copy_ids,
        guards,
        references,
        new.truss_hash if new else None,
        already_deleted=old is not None and old.status == s.DELETED,
    )


@dataclass
class Retirement(StepResult):
    deleted_version_id: str | None
    deleted_copy_versions: list[str] = field(default_factory=list)
    references: int = 0
    dry_run: bool = False
    # Per version: what serving removed, what it left and why (services.retire).
    retired: list[RetiredVersion] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        if self.retired:
            return pd.DataFrame([r.as_row() for r in self.retired], columns=RETIRED_COLUMNS)
        rows = []
        if self.deleted_version_id:
            rows.append(
                {"version": self.deleted_version_id, "what": "old version", "status": s.DELETED}
            )
        rows += [
            {"version": v, "what": "copy version", "status": s.DELETED}
            for v in self.deleted_copy_versions
        ]
        if self.dry_run:
            for row in rows:
                row["status"] = "would be DELETED"
        return pd.DataFrame(rows, columns=["version", "what", "status"])

    def scraps(self) -> dict[str, Any]:
        return {
            "deleted_version_id": self.deleted_version_id,
            "deleted_copy_versions": self.deleted_copy_versions,
            "references": self.references,
        }


def delete_version(env: Environment, version_id: str, what: str = "") -> RetiredVersion:
    """Retire through the serving adapter, then mark DELETED (services.retire)."""
    return retire_version(env, version_id, what=what)


def retire(env: Environment, plan: RetirePlan, *, dry_run: bool = False) -> Retirement:
    """Delete the old version and, when planned, the copy's versions. Guards must pass."""
    plan.raise_if_failed()
    copies = list(plan.copy_version_ids)
    if dry_run:
        return Retirement(plan.old_version_id, copies, plan.references, dry_run=True)
    retired = []
    if plan.old_version_id and not plan.already_deleted:
        retired.append(delete_version(env, plan.old_version_id, "old version"))
    retired += [delete_version(env, v, "copy version") for v in copies]
    return Retirement(
        plan.old_version_id,
        copies,
        env.platform.count_proxying(plan.old_version_id or ""),
        retired=retired,
    )
