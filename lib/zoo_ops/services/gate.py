"""Gate checks a runbook makes before it mutates: the staging-before-prod requirement."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from zoo_ops.domain.gates import GateVerdict, staging_gate
from zoo_ops.environment import Environment
from zoo_ops.errors import GateClosed, ZooOpsError
from zoo_ops.services.results import StepResult
from zoo_ops.trail import read_entry, trail_notebooks


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

    Read from the required environment's database runs and from its trail, so that a
    success recorded in either counts (the trail is the audit record; the database is
    there even when the trail lives on another machine).
    """
    hashes: set[str] = set()
    evidence: list[str] = []
    try:
        for record in required.runs.find(
            step=step, model=model, env=required.name, outcome="succeeded"
        ):
            if record.truss_hash:
                hashes.add(record.truss_hash)
                evidence.append(f"run {record.id}")
    except Exception as exc:  # noqa: BLE001 - an unreachable staging DB is not a success
        evidence.append(f"{required.name} database unreadable: {exc.__class__.__name__}")
    for path in trail_notebooks(required.config.executed_root_path, required.name, model):
        entry = read_entry(path)
        if entry.step == step and entry.run and entry.run.get("outcome") == "succeeded":
            h = entry.run.get("truss_hash")
            if h:
                hashes.add(str(h))
                evidence.append(str(path))
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
