"""The preflights of a deploy: capacity (does the new version fit beside the old one,
per accelerator type) and secrets (does the admin organization have every secret the
truss names; names only, values are never read)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from zoo_ops.adapters.truss_runtime import TrussPackage, read_truss
from zoo_ops.domain.capacity import (
    CapacityRequest,
    CapacityRow,
    CapacityVerdict,
    assess_capacity,
    rooms_by_accelerator,
)
from zoo_ops.errors import StepFailed

if TYPE_CHECKING:
    from zoo_ops.domain.truss_config import TrussConfig
    from zoo_ops.environment import Environment


CAPACITY_COLUMNS = ["what", "requested", "free_on_best_node", "old_version", "fits", "detail"]


@dataclass(frozen=True)
class CapacityReport:
    """The capacity preflight of a truss for one zoo model (see domain.capacity).

    ``fits``: whether the deploy may go ahead (warnings do not stop it). ``summary()``
    is one line with the numbers; ``require()`` raises StepFailed with it when refused.
    """

    model: str
    truss_dir: str
    location: str
    old_version_id: str | None
    verdict: CapacityVerdict
    accelerators: list[dict[str, Any]] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return self.verdict.ok

    @property
    def ok(self) -> bool:
        return self.verdict.ok

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.verdict.warnings

    @property
    def rows(self) -> tuple[CapacityRow, ...]:
        return self.verdict.rows

    def summary(self) -> str:
        return f"{self.location}: {self.verdict.summary}"

    def require(self) -> None:
        if not self.fits:
            raise StepFailed(f"capacity for {self.model}: {self.summary()}")

    def to_frame(self) -> pd.DataFrame:
        """Columns: what, requested, free_on_best_node, old_version, fits, detail."""
        return pd.DataFrame(
            [{c: getattr(r, c) for c in CAPACITY_COLUMNS} for r in self.verdict.rows],
            columns=CAPACITY_COLUMNS,
        )

    def accelerators_frame(self) -> pd.DataFrame:
        """Free room per accelerator type (``none`` for CPU-only nodes)."""
        return pd.DataFrame(self.accelerators)


def capacity_verdict(env: Environment, package: TrussPackage, *, old_model: str) -> CapacityVerdict:
    """Whether ``package`` fits beside zoo model ``old_model``'s current version."""
    return _capacity_report(env, old_model, package).verdict


def _capacity_report(env: Environment, model: str, package: TrussPackage) -> CapacityReport:
    cluster = env.cluster
    request = CapacityRequest.from_resources(package.config.resources)
    old_version_id = None
    old = None
    zoo = env.platform.find_zoo_model(model)
    if zoo is not None and zoo.current_version_id:
        old_version_id = zoo.current_version_id
        old = cluster.version_footprint(old_version_id)
    nodes = cluster.nodes()
    verdict = assess_capacity(
        request, nodes, old, enforced=cluster.enforced, no_gpu_note=cluster.no_gpu_note
    )
    return CapacityReport(
        model=model,
        truss_dir=str(package.path),
        location=cluster.location,
        old_version_id=old_version_id,
        verdict=verdict,
        accelerators=rooms_by_accelerator(nodes),
    )


def preflight_capacity(env: Environment, model: str, truss_dir: Path | str) -> CapacityReport:
    """Whether the truss in ``truss_dir`` fits on some node, per accelerator type, beside
    the footprint of zoo model ``model``'s current version (``unknown`` for a legacy one)."""
    return _capacity_report(env, model, read_truss(truss_dir))


@dataclass(frozen=True)
class SecretsReport:
    """Which of the truss's declared secrets exist for the admin organization. Names
    only: values are never read for this."""

    location: str
    declared: tuple[str, ...]
    present: frozenset[str]

    @property
    def missing(self) -> list[str]:
        return [n for n in self.declared if n not in self.present]

    @property
    def ok(self) -> bool:
        return not self.missing

    def summary(self) -> str:
        if not self.declared:
            return "the truss declares no secrets"
        if self.missing:
            return f"missing in {self.location}: {', '.join(self.missing)}; add them first"
        return f"all present in {self.location}: {', '.join(self.declared)}"

    def require(self) -> None:
        if not self.ok:
            raise StepFailed(f"secrets: {self.summary()}")

    def to_frame(self) -> pd.DataFrame:
        """Columns: secret, present."""
        return pd.DataFrame(
            [{"secret": n, "present": n in self.present} for n in self.declared],
            columns=["secret", "present"],
        )


def preflight_secrets(env: Environment, truss_config: TrussConfig) -> SecretsReport:
    """Every secret name in the truss's ``secrets:`` against the admin organization's
    secret store (names only)."""
    store = env.secrets
    declared = tuple(truss_config.secrets)
    present = frozenset(store.names() & set(declared)) if declared else frozenset()
    return SecretsReport(location=store.location, declared=declared, present=present)
