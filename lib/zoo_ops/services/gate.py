"""Gate checks a runbook (or a mutating command) makes before it mutates: step order in
its own environment and the whole chain in the environment it ``requires``
(:mod:`zoo_ops.domain.gates` decides; this module gathers the facts in one place)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from zoo_ops.domain.gates import (
    MIGRATE,
    VERIFY,
    GateVerdict,
    RunFact,
    requirements,
    step_gate,
)
from zoo_ops.environment import Environment
from zoo_ops.errors import GateClosed, ZooOpsError
from zoo_ops.migration.plan import FORWARDS
from zoo_ops.services.results import StepResult
from zoo_ops.trail import TrailIndex, join_runs
from zoo_ops.trail.runs import DRY_RUN, REFUSED, SUCCEEDED

LINK_COLUMNS = ["env", "step", "needs", "found", "detail"]


@dataclass(frozen=True)
class GateResult(StepResult):
    """The verdict and its evidence. The table lists each required link (env, step,
    found); a gate with no requirement is one row saying so."""

    env: str
    requires: str
    verdict: GateVerdict
    evidence: tuple[str, ...]

    def to_frame(self) -> pd.DataFrame:
        rows = [
            {
                "env": link.env,
                "step": link.step,
                "needs": link.requirement.describe(),
                "found": link.found,
                "detail": link.detail,
            }
            for link in self.verdict.links
        ]
        rows.append(
            {
                "env": self.env,
                "step": "gate",
                "needs": self.verdict.rule,
                "found": self.verdict.open,
                "detail": self.verdict.detail,
            }
        )
        return pd.DataFrame(rows, columns=LINK_COLUMNS)

    def scraps(self) -> dict[str, Any]:
        return {
            "gate": {
                "open": self.verdict.open,
                "overridden": self.verdict.overridden,
                "skipped": list(self.verdict.skipped),
                "detail": self.verdict.detail,
            }
        }

    def failure(self) -> str | None:
        return None if self.verdict.open else self.verdict.detail

    def raise_if_failed(self) -> None:
        if not self.verdict.open:
            raise GateClosed(self.verdict.detail)


def migration_reverted_by(env: Environment, model: str, run_id: str) -> str | None:
    """The revert migration that undid the forward migration of 03 run ``run_id``.

    The run's own forward migration; a rerun that adopted a crashed run's migration has
    none of its own, so then the model's latest forward migration stands for it.
    """
    forwards = env.migrations.for_run(run_id, FORWARDS)
    if not forwards:
        latest = env.migrations.latest(env.name, model, FORWARDS)
        forwards = [latest] if latest is not None else []
    return next((m.reverted_by for m in forwards if m.reverted_by), None)


def run_facts(env: Environment, model: str) -> tuple[list[RunFact], list[str]]:
    """Every real run of ``model`` in ``env`` the gate may count, oldest first.

    Read from the environment's runs table, the authority: a run made by ``zoo-ops run``
    or by plain papermill to any path counts alike. Each run is cross-checked with its
    notebook where the notebook exists (its ``run`` scrap must name the same environment,
    model, step, run id and truss hash): a disagreement is not counted, and says why in
    the evidence. A notebook of the trail with no run row (another database's, a copied
    file, one filed under the environment's folder by a run elsewhere) is never counted:
    where a file sits grants nothing. Dry and refused runs changed nothing and are left
    out; a failed run is kept (the gate names it as the nearest miss). A 02's target comes from its recorded parameters; a 03's revert from the
    migrations table. Unreadable trail files are named in the evidence and skipped.
    """
    facts: list[RunFact] = []
    evidence: list[str] = []
    try:
        records = env.runs.find(model=model, env=env.name)
    except Exception as exc:  # noqa: BLE001 - an unreachable database is not a success
        evidence.append(f"{env.name} database unreadable: {exc.__class__.__name__}")
        return facts, evidence
    index = TrailIndex.of(env.config)
    entries = index.entries(env.name, model)
    evidence.extend(f"not counted: {u.line()}" for u in index.unreadable)
    for view in join_runs(records, entries, read_outside=True):
        record = view.record
        if record is None or view.dry_run or view.outcome in (DRY_RUN, REFUSED):
            continue  # a notebook no run row claims proves nothing; a dry run changed nothing
        if not view.trusted:
            evidence.append(f"run {view.run_id} not counted: {view.notebook_note}")
            continue
        if not view.truss_hash or not view.run_id:
            continue  # a run refused or stopped before it knew its content
        target = record.parameters.get("target") if view.step == VERIFY else None
        reverted = (
            migration_reverted_by(env, model, view.run_id)
            if view.step == MIGRATE and view.outcome == SUCCEEDED
            else None
        )
        facts.append(
            RunFact(
                env=env.name,
                step=view.step,
                outcome=view.outcome,
                truss_hash=view.truss_hash,
                run_id=view.run_id,
                target=target if isinstance(target, str) else None,
                reverted_by=reverted,
            )
        )
        note = f" ({view.notebook_note})" if view.notebook_note else ""
        evidence.append(f"{env.name} {view.step} run {view.run_id}{note}")
    return facts, evidence


def succeeded_hashes(required: Environment, step: str, model: str) -> tuple[set[str], list[str]]:
    """Truss hashes for which ``step`` succeeded for ``model`` in ``required`` (the facts
    of :func:`run_facts`, one step)."""
    facts, evidence = run_facts(required, model)
    hashes = {f.truss_hash for f in facts if f.step == step and f.outcome == SUCCEEDED}
    return {h for h in hashes if h}, evidence


def check_gate(
    env: Environment,
    *,
    step: str,
    model: str,
    truss_hash: str | None,
    override_reason: str = "",
    dry_run: bool = False,
) -> GateResult:
    """The gate for ``step`` of ``model`` at ``truss_hash`` in ``env``: the runs each
    environment concerned holds (this one for the step's prerequisite, the required one
    for its chain), judged by :func:`zoo_ops.domain.gates.step_gate`."""
    requires = env.config.requires
    needed = requirements(env=env.name, requires=requires, step=step)
    facts: list[RunFact] = []
    evidence: list[str] = []
    if any(n.env == env.name for n in needed):
        found, notes = run_facts(env, model)
        facts += found
        evidence += notes
    if requires and any(n.env == requires for n in needed):
        try:
            required = Environment.load(requires)
        except ZooOpsError as exc:
            raise GateClosed(
                f"{env.name} requires {requires!r}, which cannot be loaded: {exc}"
            ) from exc
        try:
            found, notes = run_facts(required, model)
        finally:
            required.dispose()
        facts += found
        evidence += notes
    verdict = step_gate(
        env=env.name,
        requires=requires,
        step=step,
        model=model,
        truss_hash=truss_hash,
        facts=facts,
        override_reason=override_reason,
        dry_run=dry_run,
    )
    return GateResult(env.name, requires, verdict, tuple(evidence))
