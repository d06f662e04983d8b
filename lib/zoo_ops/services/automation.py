"""Model zoo automation: deploy whitelisted trusses, never twice for the same content.

``reconcile`` is the mechanism behind "enable model zoo automation for this model" (the
seed's prerequisites 1 and 3). For each whitelisted model, when
``modelZooDeploymentAutomationEnabled`` is true:

1. read ``truss_root/NAME`` and hash it (truss's content hash, cached per environment);
2. the target zoo model is ``NAME_copy`` when ``copy`` is true, else ``NAME``; it is
   created in the admin organization when missing;
3. skip when the target already has a non-DELETED version with that hash (the row says
   which version and its status: a FAILED one is not retried until the truss changes or
   that version is deleted, so a broken truss is not redeployed every ``--watch`` tick);
4. refuse (no version created) when the cluster has no room for it (Kubernetes);
5. otherwise claim a DEPLOYING version (atomically: two reconciles at once create one,
   see :class:`~zoo_ops.adapters.platform.deploys.DeployLog`), hand the truss to the
   serving adapter, wait until it is ready, mark it ACTIVE and make it the target's
   current version, reading both back.

A deploy that fails marks the version FAILED with the reason in the deploy log, removes
what serving created, and leaves the target's current version as it was; reconcile goes
on with the other models and reports ``failed`` for this one.

The preflights of a deploy (capacity, secrets) are in :mod:`zoo_ops.services.preflight`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from zoo_ops.adapters.platform import schema as s
from zoo_ops.adapters.platform.store import OracleVersion
from zoo_ops.adapters.polling import poll
from zoo_ops.adapters.truss_files import truss_content_hash
from zoo_ops.adapters.truss_runtime import TrussPackage, read_truss
from zoo_ops.domain.whitelist import DynamicSettings, WhitelistEntry, target_zoo_model
from zoo_ops.errors import BadInput, StepFailed, ZooOpsError
from zoo_ops.services.preflight import capacity_verdict

if TYPE_CHECKING:
    from zoo_ops.adapters.platform.deploys import DeployLog
    from zoo_ops.environment import Environment

DEPLOYED = "deployed"
SKIPPED_DUPLICATE = "skipped-duplicate"
FAILED = "failed"
DISABLED = "disabled"
WOULD_DEPLOY = "would-deploy"
RECONCILE_COLUMNS = ["model", "target", "truss_hash", "action", "version_id", "detail"]
_POLL_FIRST_S = 0.05
_POLL_CAP_S = 1.0
PLATFORM_AUTOMATION = "platform"


# --- reconcile ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReconcileRow:
    model: str
    target: str
    truss_hash: str
    action: str
    version_id: str
    detail: str


@dataclass(frozen=True)
class ReconcileResult:
    """What one reconcile did, one row per whitelisted model considered."""

    env: str
    automation_enabled: bool
    dry_run: bool
    rows: tuple[ReconcileRow, ...]

    def to_frame(self) -> pd.DataFrame:
        """Columns: model, target, truss_hash, action, version_id, detail."""
        return pd.DataFrame([r.__dict__ for r in self.rows], columns=RECONCILE_COLUMNS)

    @property
    def failed(self) -> list[ReconcileRow]:
        return [r for r in self.rows if r.action == FAILED]

    @property
    def deployed(self) -> list[ReconcileRow]:
        return [r for r in self.rows if r.action == DEPLOYED]

    def row(self, model: str) -> ReconcileRow:
        for r in self.rows:
            if r.model == model:
                return r
        raise KeyError(f"reconcile has no row for {model!r}")


def reconcile(
    env: Environment,
    *,
    models: list[str] | None = None,
    wait_timeout_s: float = 600,
    dry_run: bool = False,
) -> ReconcileResult:
    """Deploy every whitelisted truss not yet deployed to its target (module docstring).

    ``models`` limits the run to these whitelisted models (one not on the whitelist is
    bad input). ``dry_run``: hash and decide, create nothing (``would-deploy`` rows).
    A malformed setting raises SettingsError before anything is done.
    """
    refuse_if_the_platform_deploys(env)
    settings = DynamicSettings.from_data(env.settings.read().data)
    entries = list(settings.whitelist.values())
    if models is not None:
        missing = sorted(set(models) - set(settings.whitelist))
        if missing:
            raise BadInput(
                f"{', '.join(missing)} not on the whitelist; "
                "run `zoo-ops whitelist set MODEL --copy true|false` first"
            )
        entries = [e for e in entries if e.model in set(models)]
    if not settings.automation_enabled:
        detail = "modelZooDeploymentAutomationEnabled is false; nothing deployed"
        rows = [
            ReconcileRow(e.model, target_zoo_model(e), "", DISABLED, "", detail) for e in entries
        ] or [ReconcileRow("", "", "", DISABLED, "", detail)]
        return ReconcileResult(env.name, False, dry_run, tuple(rows))
    rows = [_reconcile_one(env, e, wait_timeout_s=wait_timeout_s, dry_run=dry_run) for e in entries]
    return ReconcileResult(env.name, True, dry_run, tuple(rows))


def refuse_if_the_platform_deploys(env: Environment) -> None:
    """BadInput (one line) on an ``automation = "platform"`` environment: the platform's
    own automation deploys there, and a second deployer would race it."""
    if env.config.automation == PLATFORM_AUTOMATION:
        raise BadInput(
            f'[env.{env.name}] automation = "platform": the platform\'s own automation '
            "deploys there, zoo-ops does not reconcile; set the whitelist with "
            "`zoo-ops whitelist set` and let the platform deploy"
        )


def _reconcile_one(
    env: Environment, entry: WhitelistEntry, *, wait_timeout_s: float, dry_run: bool
) -> ReconcileRow:
    target = target_zoo_model(entry)

    def row(action: str, detail: str, truss_hash: str = "", version_id: str = "") -> ReconcileRow:
        return ReconcileRow(entry.model, target, truss_hash, action, version_id, detail)

    try:
        # A whitelist key comes from the ConfigMap, not from zoo-ops: never a path out.
        truss_dir = env.config.truss_path(entry.model)
    except ZooOpsError as exc:
        return row(FAILED, str(exc))
    try:
        package = read_truss(truss_dir)
        truss_hash = truss_content_hash(truss_dir, cache=env.hash_cache)
    except ZooOpsError as exc:
        return row(FAILED, f"truss {truss_dir}: {exc}")

    existing_model = env.platform.find_zoo_model(target)
    if existing_model is not None:
        duplicate = version_with_hash(env, existing_model.id, truss_hash)
        if duplicate is not None:
            return row(SKIPPED_DUPLICATE, _duplicate_detail(duplicate), truss_hash, duplicate.id)

    try:
        verdict = capacity_verdict(env, package, old_model=target)
    except ZooOpsError as exc:
        return row(FAILED, f"capacity check failed: {exc}", truss_hash)
    if not verdict.ok:
        return row(FAILED, f"no room: {verdict.summary}", truss_hash)
    if dry_run:
        creates = "" if existing_model is not None else f"; would create zoo model {target}"
        return row(WOULD_DEPLOY, f"no version of {target} has this hash{creates}", truss_hash)

    deploys = env.deploys
    oracle, created = deploys.find_or_create_zoo_model(target)
    claim = deploys.claim(oracle, truss_name=entry.model, truss_hash=truss_hash)
    if claim.existing is not None:
        return row(
            SKIPPED_DUPLICATE, _duplicate_detail(claim.existing), truss_hash, claim.existing.id
        )
    assert claim.version is not None
    version = claim.version
    previous_current = env.platform.oracle(oracle.id).current_version_id
    try:
        _deploy(env, package, oracle.id, version, target, truss_hash, wait_timeout_s)
    except Exception as exc:  # noqa: BLE001 - any failure must leave the version FAILED
        reason = _one_line(exc)
        _mark_failed(env, deploys, version, reason)
        if (
            previous_current is not None
            and env.platform.oracle(oracle.id).current_version_id == version.id
        ):
            # Only reachable if the failure came after the switch: undo it.
            env.platform.set_current_version(oracle.id, previous_current)
        return row(FAILED, f"version {version.id} FAILED: {reason}", truss_hash, version.id)
    deploys.finish(version.id, s.ACTIVE)
    made = f"created zoo model {target}; " if created else ""
    return row(DEPLOYED, f"{made}version {version.id} ACTIVE and current", truss_hash, version.id)


def _deploy(
    env: Environment,
    package: TrussPackage,
    oracle_id: str,
    version: OracleVersion,
    target: str,
    truss_hash: str,
    wait_timeout_s: float,
) -> None:
    """Serve the claimed version, wait until ready, then ACTIVE + current, read back."""
    store = env.platform
    artifact = env.serving.deploy(
        version.id, package.path, package.config, model=target, truss_hash=truss_hash
    )
    store.set_version_status(version.id, s.DEPLOYING, artifact=artifact)
    env.serving.wait_ready(version.id, artifact, wait_timeout_s)
    store.set_version_status(version.id, s.ACTIVE)
    store.set_current_version(oracle_id, version.id)
    back = store.version(version.id)
    if back.status != s.ACTIVE or store.oracle(oracle_id).current_version_id != version.id:
        raise StepFailed(
            f"version {version.id} is not ACTIVE and current after the write; check the database"
        )


def _mark_failed(env: Environment, deploys: DeployLog, version: OracleVersion, reason: str) -> None:
    """FAILED in the platform and the deploy log; serving's leftovers removed (best effort:
    a GPU held by a crash-looping pod would block the next attempt)."""
    env.platform.set_version_status(version.id, s.FAILED)
    cleanup = ""
    failed_version = env.platform.version(version.id)
    if failed_version.artifact:
        try:
            env.serving.delete(failed_version)
        except Exception as exc:  # noqa: BLE001 - the deploy's own reason matters more
            cleanup = f" (cleanup also failed: {_one_line(exc)})"
    deploys.finish(version.id, s.FAILED, reason + cleanup)


def _duplicate_detail(version: OracleVersion) -> str:
    return f"version {version.id} ({version.status}) already has this hash"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if isinstance(exc, ZooOpsError) else f"{type(exc).__name__}: {text}"


def version_with_hash(env: Environment, oracle_id: str, truss_hash: str) -> OracleVersion | None:
    """The oldest non-DELETED version of the oracle carrying ``truss_hash``, if any."""
    for version in env.platform.versions_of(oracle_id):
        if version.truss_hash == truss_hash and version.status != s.DELETED:
            return version
    return None


def wait_for_active(
    env: Environment, zoo_model_name: str, truss_hash: str, timeout_s: float
) -> OracleVersion:
    """Wait until zoo model ``zoo_model_name`` has an ACTIVE version with ``truss_hash``.

    StepFailed at once when that version is FAILED (with the deploy log's reason), and
    when ``timeout_s`` passes first.
    """
    seen = "no such model yet"

    def probe() -> OracleVersion | None:
        nonlocal seen
        oracle = env.platform.find_zoo_model(zoo_model_name)
        if oracle is None:
            return None
        version = version_with_hash(env, oracle.id, truss_hash)
        if version is None:
            seen = "no version with this hash yet"
        elif version.status == s.ACTIVE:
            return version
        elif version.status == s.FAILED:
            record = env.deploys.record(version.id)
            reason = record.reason if record and record.reason else "no reason recorded"
            raise StepFailed(
                f"{zoo_model_name} version {version.id} ({truss_hash[:12]}) FAILED: {reason}"
            )
        else:
            seen = f"version {version.id} is {version.status}"
        return None

    active = poll(probe, timeout_s=timeout_s, first_s=_POLL_FIRST_S, cap_s=_POLL_CAP_S)
    if active is None:
        raise StepFailed(
            f"{zoo_model_name} has no ACTIVE version with hash {truss_hash[:12]} after "
            f"{timeout_s:g}s ({seen}); check `zoo-ops automation reconcile`"
        )
    return active


# --- capacity preflight ------------------------------------------------------------------


# --- secrets preflight -------------------------------------------------------------------
