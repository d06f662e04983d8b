"""Step order and staging-before-prod as one pure gate (DESIGN §2 `requires`, §8).

A mutating step may run only when the steps before it have run, for the same model and
the same truss hash:

- in its own environment, the step's direct prerequisite (:data:`PREREQUISITE`):
  ``02_verify`` needs ``01_copy`` succeeded; ``03_migrate`` needs ``02_verify`` *passed*
  with ``target=copy`` (the copy verified before the rollout); ``05_retire`` needs
  ``03_migrate`` succeeded and not reverted since. ``01_copy`` and ``04_revert`` need
  nothing here (a revert is always allowed where there is something to revert);
- in the environment it ``requires`` (staging for prod), the whole chain up to and
  including the step (:func:`chain_up_to`): for ``03_migrate``, ``01_copy``,
  ``02_verify`` (passed, target copy) and ``03_migrate`` itself, each succeeded there.
  ``04_revert`` needs ``04_revert`` there, as before.

Each required run is one :class:`Link`; the gate is open when every link is found. The
facts are the environments' real runs (:class:`RunFact`: not dry, not refused, trusted
by the runs table and the notebook alike), gathered by the service layer in one place.
An explicit override reason lets a closed gate through and the verdict names every link
it skipped; a dry run is never blocked (it changes nothing) but its detail names what a
real run would be refused for.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

COPY, VERIFY, MIGRATE, REVERT, RETIRE = (
    "01_copy",
    "02_verify",
    "03_migrate",
    "04_revert",
    "05_retire",
)
# The forward chain, in order; 04_revert stands outside it.
CHAIN = (COPY, VERIFY, MIGRATE, RETIRE)
# The step that must have run before each step, in the same environment.
PREREQUISITE: dict[str, str | None] = {
    COPY: None,
    VERIFY: COPY,
    MIGRATE: VERIFY,
    REVERT: None,
    RETIRE: MIGRATE,
}
SUCCEEDED = "succeeded"
# 03 needs the copy verified: a passed 02 whose target was the copy.
VERIFY_TARGET_BEFORE_MIGRATE = "copy"


@dataclass(frozen=True)
class RunFact:
    """One real run (not dry, not refused, trusted) as the gate needs it."""

    env: str
    step: str
    outcome: str
    truss_hash: str | None
    run_id: str
    target: str | None = None  # 02_verify's target
    reverted_by: str | None = None  # 03_migrate: the revert migration that undid it


@dataclass(frozen=True)
class Requirement:
    """One run that must exist: ``step`` succeeded in ``env`` (with the conditions)."""

    env: str
    step: str
    target: str | None = None  # 02_verify: the target it must have verified
    not_reverted: bool = False  # 03_migrate: not undone since

    def describe(self) -> str:
        what = "passed" if self.step == VERIFY else "succeeded"
        if self.target:
            what += f" (target {self.target})"
        if self.not_reverted:
            what += " and not reverted"
        return f"{self.env} {self.step} {what}"

    def matches(self, fact: RunFact, truss_hash: str) -> bool:
        """Whether ``fact`` is a run that satisfies this requirement for ``truss_hash``."""
        return (
            fact.env == self.env
            and fact.step == self.step
            and fact.outcome == SUCCEEDED
            and fact.truss_hash == truss_hash
            and (self.target is None or (fact.target or "copy") == self.target)
            and not (self.not_reverted and fact.reverted_by)
        )


@dataclass(frozen=True)
class Link:
    """A requirement and whether the facts hold it (``run_id`` of the run that does)."""

    requirement: Requirement
    found: bool
    detail: str

    @property
    def env(self) -> str:
        return self.requirement.env

    @property
    def step(self) -> str:
        return self.requirement.step


@dataclass(frozen=True)
class GateVerdict:
    open: bool
    rule: str
    detail: str
    overridden: bool = False
    links: tuple[Link, ...] = ()
    skipped: tuple[str, ...] = field(default=())  # the links an override walked past


def _requirement(env: str, step: str, *, not_reverted: bool) -> Requirement:
    if step == VERIFY:
        return Requirement(env, step, target=VERIFY_TARGET_BEFORE_MIGRATE)
    if step == MIGRATE:
        return Requirement(env, step, not_reverted=not_reverted)
    return Requirement(env, step)


def chain_up_to(step: str) -> tuple[str, ...]:
    """The forward chain up to and including ``step``; ``04_revert`` is its own chain."""
    if step not in CHAIN:
        return (step,)
    return CHAIN[: CHAIN.index(step) + 1]


def requirements(*, env: str, requires: str, step: str) -> list[Requirement]:
    """Every run ``step`` in ``env`` needs: its prerequisite here, the chain in ``requires``.

    Order: the required environment's chain first (the order they were meant to run),
    then this environment's prerequisite. A 03 needed by a 05 must not have been
    reverted; a 03 in the required environment's chain of a 03 or 04 need not (prod may
    follow staging's rollout even if staging reverted later: the data are the same).
    """
    needed: list[Requirement] = []
    if requires:
        for earlier in chain_up_to(step):
            needed.append(_requirement(requires, earlier, not_reverted=step == RETIRE))
    prerequisite = PREREQUISITE.get(step)
    if prerequisite:
        needed.append(_requirement(env, prerequisite, not_reverted=True))
    return needed


def find_links(
    needed: Sequence[Requirement], facts: Iterable[RunFact], truss_hash: str | None
) -> tuple[Link, ...]:
    """Each requirement with the latest run that satisfies it, or why none does.

    Without a truss hash nothing can be matched (every link is not found).
    """
    runs = list(facts)
    links = []
    for need in needed:
        hits = [f for f in runs if truss_hash and need.matches(f, truss_hash)]
        if hits:
            links.append(Link(need, True, f"run {hits[-1].run_id}"))
            continue
        links.append(Link(need, False, _why_missing(need, runs, truss_hash)))
    return tuple(links)


def _why_missing(need: Requirement, runs: Sequence[RunFact], truss_hash: str | None) -> str:
    """The nearest miss, in a few words: failed, reverted, another hash, or none at all."""
    if not truss_hash:
        return "no truss hash to match"
    same = [f for f in runs if f.env == need.env and f.step == need.step]
    same_hash = [f for f in same if f.truss_hash == truss_hash]
    reverted = [f for f in same_hash if f.reverted_by and f.outcome == SUCCEEDED]
    if need.not_reverted and reverted:
        last = reverted[-1]
        return f"not found: run {last.run_id} was reverted by migration {last.reverted_by}"
    if need.target and same_hash:
        targeted = [f for f in same_hash if (f.target or "copy") == need.target]
        if not targeted:
            return f"not found: only target {same_hash[-1].target} runs for this hash"
        same_hash = targeted
    if same_hash:
        return f"not found: latest run {same_hash[-1].run_id} {same_hash[-1].outcome}"
    if same:
        return "not found: only runs for another truss hash"
    return "not found: never run"


def step_gate(
    *,
    env: str,
    requires: str,
    step: str,
    model: str,
    truss_hash: str | None,
    facts: Iterable[RunFact],
    override_reason: str,
    dry_run: bool,
) -> GateVerdict:
    """Open when every requirement is found, on a dry run (saying what would block), or
    when overridden (naming what was skipped); else closed with one line naming every
    missing link and what to do."""
    short = (truss_hash or "?")[:12]
    needed = requirements(env=env, requires=requires, step=step)
    if not needed:
        return GateVerdict(True, "none", f"{step} in {env} needs no earlier run")
    links = find_links(needed, facts, truss_hash)
    rule = f"for {model}, truss {short}: " + "; ".join(n.describe() for n in needed)
    missing = tuple(link.requirement.describe() for link in links if not link.found)
    if not missing:
        return GateVerdict(True, rule, f"every earlier step found for truss {short}", links=links)
    listed = ", ".join(missing)
    if dry_run:
        return GateVerdict(
            True, rule, f"dry run: not blocked; a real run would need {listed}", links=links
        )
    if override_reason:
        return GateVerdict(
            True,
            rule,
            f"overridden: {override_reason} (skipped: {listed})",
            True,
            links,
            missing,
        )
    return GateVerdict(False, rule, _refusal(env, requires, step, model, short, links), links=links)


def _refusal(
    env: str, requires: str, step: str, model: str, short: str, links: Sequence[Link]
) -> str:
    """One line: what is missing for which step, and what to run first."""
    missing = [link for link in links if not link.found]
    elsewhere = [link for link in missing if link.env != env]
    here = [link for link in missing if link.env == env]
    parts = []
    if elsewhere:
        steps = ", ".join(link.step for link in elsewhere)
        parts.append(f"{steps} for {model} has not succeeded in {requires} for truss {short}")
    for link in here:
        why = link.detail.removeprefix("not found: ")
        parts.append(f"{link.requirement.describe()} not found for truss {short} ({why})")
    first = (elsewhere or here)[0]
    return (
        f"{env}: {step} for {model} refused: {'; '.join(parts)}; "
        f"run {first.step} in {first.env} first, or pass gate_override_reason"
    )
