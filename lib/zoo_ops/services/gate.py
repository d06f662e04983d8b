"""Gate checks a runbook makes before it mutates: the staging-before-prod requirement."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from zoo_ops.domain.gates import GateVerdict, staging_gate
from zoo_ops.environment import Environment
from zoo_ops.errors import GateClosed, ZooOpsError
from zoo_ops.services.results import StepResult
from zoo_ops.trail import TrailIndex, join_runs


@dataclass(frozen=True)
class GateResult(StepResult):
    env: str
    requires: str
    verdict: GateVerdict
    evidence: tuple[str, ...]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {
                    "gate": "staging before " + self.env if self.requires else "none",
                    "rule": self.verdict.rule,
                    "open": self.verdict.open,
                    "overridden": self.verdict.overridden,
                    "detail": self.verdict.detail,
                }
            ]
        )

    def scraps(self) -> dict[str, Any]:
        return {}

    def failure(self) -> str | None:
        return None if self.verdict.open else self.verdict.detail

    def raise_if_failed(self) -> None:
        if not self.verdict.open:
            raise GateClosed(self.verdict.detail)


def succeeded_hashes(required: Environment, step: str, model: str) -> tuple[set[str], list[str]]:
    """Truss hashes for which ``step`` succeeded for ``model`` in ``required``.

    Read from the required environment's runs table, the authority: a run made by
    ``zoo-ops run`` or by plain papermill to any path counts alike. Each succeeded run is
    cross-checked with its notebook where the notebook exists (its ``run`` scrap must name
    the same environment, model, step, run id and truss hash): a disagreement is not
    counted, and says why in the evidence. A notebook of the trail with no run row (another
    database's, a copied file, one filed under the required environment's folder by a run
    elsewhere) is never counted: where a file sits grants nothing. Unreadable trail files
    are named in the evidence and skipped.
    """
    hashes: set[str] = set()
    evidence: list[str] = []
    try:
        records = required.runs.find(step=step, model=model, env=required.name, outcome="succeeded")
    except Exception as exc:  # noqa: BLE001 - an unreachable staging DB is not a success
        evidence.append(f"{required.name} database unreadable: {exc.__class__.__name__}")
        return hashes, evidence
    index = TrailIndex(required.config.executed_root_path)
    entries = [e for e in index.entries(required.name, model) if e.step == step]
    evidence.extend(f"not counted: {u.line()}" for u in index.unreadable)
    for view in join_runs(records, entries, read_outside=True):
        if view.record is None or view.dry_run:
            continue  # a notebook no run row claims proves nothing; a dry run changed nothing
        if not view.trusted:
            evidence.append(f"run {view.run_id} not counted: {view.notebook_note}")
            continue
        if view.truss_hash:
            hashes.add(view.truss_hash)
            note = f" ({view.notebook_note})" if view.notebook_note else ""
            evidence.append(f"run {view.run_id}{note}")
    return hashes, evidence


def check_gate(
    env: Environment,
    *,
    step: str,
    model: str,
    truss_hash: str | None,
    override_reason: str = "",
    dry_run: bool = False,
) -> GateResult:
    requires = env.config.requires
    hashes: set[str] = set()
    evidence: list[str] = []
    if requires:
        try:
            required = Environment.load(requires)
        except ZooOpsError as exc:
            raise GateClosed(
                f"{env.name} requires {requires!r}, which cannot be loaded: {exc}"
            ) from exc
        try:
            hashes, evidence = succeeded_hashes(required, step, model)
        finally:
            required.dispose()
    verdict = staging_gate(
        env=env.name,
        requires=requires,
        step=step,
        model=model,
        truss_hash=truss_hash,
        succeeded_hashes=hashes,
        override_reason=override_reason,
        dry_run=dry_run,
    )
    return GateResult(env.name, requires, verdict, tuple(evidence))
