"""The preflights of a deploy: capacity (does the new version fit beside the old one,
per accelerator type; and for a rollout step, do the old version, the copy and the new
version fit at once) and secrets (does the admin organization have every secret the
truss names; names only, values are never read)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from zoo_ops.adapters.truss_runtime import TrussPackage, read_truss
from zoo_ops.domain.capacity import (
    Amounts,
    CapacityRequest,
    CapacityRow,
    CapacityVerdict,
    Footprint,
    NodeRoom,
    PoolRow,
    assess_capacity,
    check_scalable_pools,
    rollout_pool_rows,
    rollout_refusal,
    rooms_by_accelerator,
)
from zoo_ops.domain.whitelist import COPY_SUFFIX
from zoo_ops.errors import CapacityRefused, StepFailed

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
    # For a rollout step: old + copy + new at once, per pool (domain.capacity.rollout_pool_rows).
    pools: tuple[PoolRow, ...] | None = None
    enforced: bool = True
    scaled: bool = False  # one replica fits no node now, but a scalable pool adds one

    @property
    def pools_fit(self) -> bool:
        return self.pools is None or not self.enforced or all(r.fits for r in self.pools)

    @property
    def fits(self) -> bool:
        return (self.verdict.ok or self.scaled) and self.pools_fit

    @property
    def ok(self) -> bool:
        return self.fits

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.verdict.warnings

    @property
    def rows(self) -> tuple[CapacityRow, ...]:
        return self.verdict.rows

    def summary(self) -> str:
        if self.pools is not None and not self.pools_fit:
            return f"{self.location}: {rollout_refusal(self.pools)}"
        one = self.verdict.summary
        if self.scaled:
            one = f"{one}; a scalable pool adds the node it needs"
        return f"{self.location}: {one}"

    def refusal(self) -> CapacityRefused:
        """The one-line refusal (exit 2): what is short, needed vs available, and that
        nothing was changed."""
        return CapacityRefused(
            f"capacity for {self.model}: {self.summary()}; nothing was changed: free room, "
            "or declare the GPUs the autoscaler can add in [env.NAME.capacity] scalable_pools"
        )

    def require(self) -> None:
        if not self.fits:
            raise self.refusal()

    def to_frame(self) -> pd.DataFrame:
        """Columns: what, requested, free_on_best_node, old_version, fits, detail: one
        replica against the best node, then (for a rollout step) one row per pool and
        resource with what old + copy + new need at once against what is available."""
        rows = [{c: getattr(r, c) for c in CAPACITY_COLUMNS} for r in self.verdict.rows]
        for pool in self.pools or ():
            fmt = {"cpu": "cpu", "memory": "memory"}.get(pool.resource, "count")
            needed, available = pool.text(fmt)
            old = dict(pool.by_role).get("old")
            unknown = "old" in pool.unknown_roles
            rows.append(
                {
                    "what": f"{pool.pool} {pool.resource} at once (old + copy + new)",
                    "requested": needed,
                    "free_on_best_node": available,
                    "old_version": "none"
                    if old is None
                    else f"{old} (unknown: counted as the truss's)"
                    if unknown
                    else str(old),
                    "fits": pool.fits,
                    "detail": "fits"
                    if pool.fits
                    else (
                        f"{pool.needed - pool.available} short"
                        + ("" if self.enforced else "; warning only, nothing is reserved locally")
                    ),
                }
            )
        return pd.DataFrame(rows, columns=CAPACITY_COLUMNS)

    def accelerators_frame(self) -> pd.DataFrame:
        """Free room per accelerator type (``none`` for CPU-only nodes)."""
        return pd.DataFrame(self.accelerators)


def capacity_verdict(env: Environment, package: TrussPackage, *, old_model: str) -> CapacityVerdict:
    """Whether one replica of ``package`` fits beside zoo model ``old_model``'s current
    version: on a node now, or on a node a scalable pool of its GPU type can add
    (``capacity.scalable_pools``; then ``ok`` with the summary saying so)."""
    verdict = _capacity_report(env, old_model, package).verdict
    request = CapacityRequest.from_resources(package.config.resources)
    scalable = env.config.scalable_pools.get(request.accelerator or "", 0)
    if not verdict.ok and request.wants_gpu and scalable >= request.amounts.gpus:
        return replace(
            verdict,
            ok=True,
            summary=f"{verdict.summary}; the {request.accelerator} pool can scale up "
            f"by {scalable} (capacity.scalable_pools)",
        )
    return verdict


def _capacity_report(
    env: Environment, model: str, package: TrussPackage, nodes: list[NodeRoom] | None = None
) -> CapacityReport:
    cluster = env.cluster
    request = CapacityRequest.from_resources(package.config.resources)
    old_version_id = None
    old = None
    zoo = env.platform.find_zoo_model(model)
    if zoo is not None and zoo.current_version_id:
        old_version_id = zoo.current_version_id
        old = cluster.version_footprint(old_version_id)
    nodes = cluster.nodes() if nodes is None else nodes
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


def _footprint(
    env: Environment, role: str, version_id: str | None, request: CapacityRequest
) -> Footprint:
    """A version's footprint as the cluster reports it (held: its pods are placed); a
    version that does not exist yet, or whose footprint is unknown (a legacy version
    the cluster shows no labelled pods for), counts as the truss's own request and as
    not yet placed: the most it can need, so that an unknown never lets a rollout
    through that the cluster cannot hold."""
    if version_id is None:
        return Footprint(role, request, held=False, version_id=None)
    placed = env.cluster.version_footprint(version_id)
    if placed is not None:
        return Footprint(role, placed, held=True, version_id=version_id)
    recorded = recorded_footprint(env, version_id, request)
    if recorded is not None:
        return Footprint(role, recorded, held=False, version_id=version_id)
    return Footprint(role, request, held=False, known=False, version_id=version_id)


def recorded_footprint(
    env: Environment, version_id: str, request: CapacityRequest
) -> CapacityRequest | None:
    """A legacy version's GPU as its recorded artifact states it (``legacy.yaml``'s
    ``gpu``: ``"T4"``, ``"A10G:2"``; absent: no GPU), or None when the version has no
    readable local legacy artifact. A legacy artifact records no cpu or memory, so the
    truss's own request stands in for them (the same model, served again)."""
    from zoo_ops.adapters.legacy_runtime import LEGACY_MANIFEST, parse_legacy_manifest
    from zoo_ops.adapters.serving.local import parse_artifact
    from zoo_ops.adapters.truss_runtime import load_yaml_file
    from zoo_ops.domain.truss_config import parse_accelerator
    from zoo_ops.errors import ZooOpsError

    version = env.platform.find_version(version_id)
    if version is None or not version.artifact:
        return None
    try:
        kind, rel = parse_artifact(version.artifact)
        if kind != "legacy":
            return None
        path = env.config.state_path / rel / LEGACY_MANIFEST
        manifest = parse_legacy_manifest(load_yaml_file(path), str(path))
        gpu = manifest.metadata.get("gpu")
        accelerator = parse_accelerator(gpu, str(path)) if gpu else None
    except (ZooOpsError, OSError):
        return None
    amounts = request.amounts
    if accelerator is None:
        return CapacityRequest(Amounts(amounts.cpu_millicores, amounts.memory_bytes, 0))
    return CapacityRequest(
        Amounts(amounts.cpu_millicores, amounts.memory_bytes, accelerator.count), accelerator.type
    )


def rollout_capacity(
    env: Environment,
    model: str,
    truss_dir: Path | str | None = None,
    *,
    copy_version_id: str | None = None,
    copy_pending: bool = False,
    new_version_id: str | None = None,
) -> CapacityReport:
    """Whether the old version, the copy and the new version of ``model`` fit at once
    (the rule: :func:`zoo_ops.domain.capacity.rollout_pool_rows`), per accelerator type,
    against free room + what they already hold + ``capacity.scalable_pools``; and
    whether one replica of the truss fits some node now (or a scalable pool of its GPU
    type can add one). Nothing is changed.

    The old version is the zoo model's current one. ``copy_version_id``: the copy's
    version when it exists (01 passes the duplicate it found); None: ``MODEL_copy``'s
    current version, or, when there is none or ``copy_pending`` (01 about to deploy new
    content), a copy still to be deployed. ``new_version_id``: the new version when it
    exists already (else still to be deployed).
    """
    pools = env.config.scalable_pools
    check_scalable_pools(pools, f"zoo_ops.toml [env.{env.name}.capacity]")
    package = read_truss(truss_dir or env.config.truss_root_path / model)
    nodes = env.cluster.nodes()
    report = _capacity_report(env, model, package, nodes)
    request = CapacityRequest.from_resources(package.config.resources)
    if copy_version_id is None and not copy_pending:
        copy_model = env.platform.find_zoo_model(model + COPY_SUFFIX)
        copy_version_id = copy_model.current_version_id if copy_model else None
    footprints = [
        _footprint(env, "copy", copy_version_id, request),
        _footprint(env, "new", new_version_id, request),
    ]
    if report.old_version_id:
        footprints.insert(0, _footprint(env, "old", report.old_version_id, request))
    rows = tuple(rollout_pool_rows(request, footprints, nodes, pools))
    scalable = pools.get(request.accelerator or "", 0) if request.wants_gpu else 0
    return CapacityReport(
        model=model,
        truss_dir=report.truss_dir,
        location=report.location,
        old_version_id=report.old_version_id,
        verdict=report.verdict,
        accelerators=report.accelerators,
        pools=rows,
        enforced=env.cluster.enforced,
        scaled=not report.verdict.ok and scalable >= request.amounts.gpus > 0,
    )


def require_rollout_capacity(env: Environment, model: str, **kwargs: Any) -> CapacityReport:
    """:func:`rollout_capacity`, raising its one-line :class:`CapacityRefused` (exit 2)
    when it does not fit; called by a step before its first write."""
    report = rollout_capacity(env, model, **kwargs)
    report.require()
    return report


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
