"""When an old zoo version may be deleted (the seed: "a few days after everything is
known to function ok"), as pure rules over facts already read.

The old version may go only when all of these hold:

1. a forward migration moved its applications off it (status done);
2. that migration finished at least ``min_age_days`` ago;
3. it has not been reverted since;
4. no user version points at the old version any more;
5. the new version is ACTIVE and is the zoo model's current version.

Each guard is one row (guard, ok, detail); every guard is evaluated, and the refusal
(:func:`refusal`) names all that fail, so fixing one never reveals another.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class RetireFacts:
    model: str
    old_version_id: str | None
    new_version_id: str | None
    migration_id: str | None
    migration_status: str | None
    migration_finished_at: datetime | None
    reverted_by: str | None
    references_to_old: int
    new_status: str | None
    new_is_current: bool
    copy_references: int


@dataclass(frozen=True)
class Guard:
    guard: str
    ok: bool
    detail: str


def retire_guards(facts: RetireFacts, *, now: datetime, min_age_days: float) -> list[Guard]:
    """Every guard's verdict, in the order above, plus the copy's references."""
    guards: list[Guard] = []
    migrated = facts.migration_id is not None and facts.migration_status == "done"
    guards.append(
        Guard(
            "forward migration done",
            migrated,
            f"migration {facts.migration_id} moved {facts.model}'s applications to {facts.new_version_id}"
            if migrated
            else f"no finished forward migration of {facts.model}; run 03_migrate first",
        )
    )
    if facts.migration_finished_at is not None:
        age_days = (now - facts.migration_finished_at).total_seconds() / 86400
        old_enough = age_days >= min_age_days
        detail = f"{age_days:.2f} days since the migration (min_age_days={min_age_days:g})"
        if not old_enough:
            detail += "; wait, or lower min_age_days deliberately"
    else:
        old_enough, detail = False, "the migration has not finished"
    guards.append(Guard("old enough", old_enough, detail))
    guards.append(
        Guard(
            "not reverted",
            facts.reverted_by is None,
            "no revert since the migration"
            if facts.reverted_by is None
            else f"reverted by migration {facts.reverted_by}: users are back on the old version",
        )
    )
    guards.append(
        Guard(
            "no references",
            facts.references_to_old == 0,
            f"{facts.references_to_old} user versions still point at {facts.old_version_id}"
            + ("; migrate them first" if facts.references_to_old else ""),
        )
    )
    new_ok = facts.new_status == "ACTIVE" and facts.new_is_current
    guards.append(
        Guard(
            "new version serving",
            new_ok,
            f"{facts.new_version_id} is {facts.new_status}"
            + (" and current" if facts.new_is_current else " and NOT current"),
        )
    )
    guards.append(
        Guard(
            "copy unused",
            facts.copy_references == 0,
            f"{facts.copy_references} user versions point at {facts.model}_copy versions"
            + ("; restore them first" if facts.copy_references else ""),
        )
    )
    return guards


def refusal(guards: list[Guard]) -> str | None:
    """One line naming every failing guard with its detail, in order; None when all hold.

    ``retire refused (2 of 6 guards): old enough: ...; not reverted: ...``
    """
    failing = [g for g in guards if not g.ok]
    if not failing:
        return None
    named = "; ".join(f"{g.guard}: {g.detail}" for g in failing)
    return f"retire refused ({len(failing)} of {len(guards)} guards): {named}"
