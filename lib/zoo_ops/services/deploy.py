"""Deploying a truss through the automation, shared by 01_copy and 03_migrate.

``enable_automation`` sets ``{model: {copy: ...}}`` in the whitelist; ``deploy`` has the
automation deploy that model and waits until the target zoo model's current version is
ACTIVE and carries the truss hash, reading it back.

Who deploys is configuration (``automation``, DESIGN §8), decided in one place, the
:data:`DEPLOYERS` registry:

- ``"zoo-ops"``: the embedded reconciler (:mod:`zoo_ops.services.automation`) claims a
  version, serves it and makes it current; the default (``local``, or a cluster where
  zoo-ops is the automation).
- ``"platform"``: zoo-ops only watches (:mod:`zoo_ops.services.platform_watch`) for the
  platform's automation to create the version, and refuses a version whose truss hash
  is not the one zoo-ops hashed. It creates no version, Deployment or deploy-log row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from zoo_ops.adapters.platform import schema as s
from zoo_ops.adapters.registry import Registry
from zoo_ops.domain.whitelist import COPY_SUFFIX
from zoo_ops.environment import Environment
from zoo_ops.errors import ConfigError, StepFailed
from zoo_ops.services.results import StepResult


def deployed_truss_dir(env: Environment, model: str) -> Path:
    """The truss the automation deploys for ``model``: ``truss_root/model``, always.

    The whitelist entry (DESIGN section 4) names a model, not a folder, and every deploy
    of it -- this run's, a later ``automation reconcile``, the platform's own automation
    -- reads ``truss_root/MODEL``. A preflight that hashed any other folder would vouch
    for content that is not deployed, which is why 01_copy has no ``truss_dir``.
    """
    return env.config.truss_path(model)  # confined: a bad name cannot leave truss_root


def find_version_with_hash(env: Environment, zoo_model: str, truss_hash: str) -> str | None:
    """A non-DELETED version of ``zoo_model`` already deployed from this content."""
    oracle = env.platform.find_zoo_model(zoo_model)
    if oracle is None:
        return None
    for version in env.platform.versions_of(oracle.id):
        if version.truss_hash == truss_hash and version.status != s.DELETED:
            return version.id
    return None


@dataclass
class WhitelistStep(StepResult):
    """The whitelist before and after setting one model's entry."""

    change: Any

    def to_frame(self) -> pd.DataFrame:
        return self.change.to_frame()

    def scraps(self) -> dict[str, Any]:
        return {
            "whitelist_before": self.change.before.as_json_object(),
            "whitelist_after": self.change.after.as_json_object(),
        }


def enable_automation(
    env: Environment, model: str, *, copy: bool, dry_run: bool = False
) -> WhitelistStep:
    """Set ``{model: {copy: ...}}``: ``copy=True`` deploys ``MODEL_copy`` (step 01),
    ``copy=False`` a new version of the zoo model itself (step 03). A dry run shows the
    diff and writes nothing."""
    from zoo_ops.services.settings import set_whitelist_entry

    return WhitelistStep(set_whitelist_entry(env, model, copy, dry_run=dry_run))


@dataclass
class Deployment(StepResult):
    """What the automation did for one model, and the version now serving the target."""

    model: str
    target_model: str
    truss_hash: str | None
    version_id: str | None
    deployed: bool
    reconcile: pd.DataFrame
    dry_run: bool

    def to_frame(self) -> pd.DataFrame:
        return self.reconcile

    def scraps(self) -> dict[str, Any]:
        if self.target_model.endswith(COPY_SUFFIX):
            return {
                "copy_model": self.target_model,
                "copy_version_id": self.version_id,
                "deployed": self.deployed,
            }
        return {"new_version_id": self.version_id}


@dataclass(frozen=True)
class Outcome:
    """What one automation mode did: its table, whether a version was made, which one."""

    frame: pd.DataFrame
    deployed: bool
    version_id: str


class Deployer(Protocol):
    """Runs (or watches) the automation for one whitelisted model and waits for the hash."""

    def __call__(
        self,
        env: Environment,
        model: str,
        *,
        target_model: str,
        truss_hash: str | None,
        wait_timeout_s: float,
    ) -> Outcome: ...


#: Who deploys, by the environment's ``automation`` value: the one place that decides
#: (papermill-style registry). 01_copy and 03_migrate reach it through :func:`deploy`.
DEPLOYERS: Registry[Deployer] = Registry("automation mode")


def deployer_for(env: Environment) -> Deployer:
    """The deployer of the environment's ``automation`` value."""
    found = DEPLOYERS.get(env.config.automation)
    if found is None:
        raise ConfigError(
            f"[env.{env.name}] automation = {env.config.automation!r}: use one of "
            f"{', '.join(DEPLOYERS.names())}"
        )
    return found


def deploy(
    env: Environment,
    model: str,
    *,
    target_model: str,
    truss_hash: str | None,
    wait_timeout_s: float = 600,
    dry_run: bool = False,
) -> Deployment:
    """Run the automation for ``model`` and wait for ``target_model`` to serve the hash.

    Who deploys is the environment's ``automation`` (:data:`DEPLOYERS`). Reads back: the
    target's current version is ACTIVE and carries ``truss_hash``.
    """
    from zoo_ops.services.settings import check_entry_kept

    if dry_run:
        # The whitelist was not written, so the automation would not see the entry:
        # say what it would do from the hash alone.
        return _would_deploy(env, model, target_model, truss_hash)
    copy = target_model.endswith(COPY_SUFFIX)
    check_entry_kept(env, model, copy, waiting_for=target_model)
    outcome = deployer_for(env)(
        env, model, target_model=target_model, truss_hash=truss_hash, wait_timeout_s=wait_timeout_s
    )
    # A concurrent whitelist edit during the wait is loud, naming the lost entry.
    check_entry_kept(env, model, copy, waiting_for=target_model)
    version_id = _read_back(env, target_model, truss_hash)
    if version_id != outcome.version_id and outcome.version_id:
        raise StepFailed(
            f"{target_model} current version is {version_id}, not {outcome.version_id} "
            "that the automation reported; something else changed it: check the platform"
        )
    return Deployment(
        model, target_model, truss_hash, version_id, outcome.deployed, outcome.frame, False
    )


def _reconcile_here(
    env: Environment,
    model: str,
    *,
    target_model: str,
    truss_hash: str | None,
    wait_timeout_s: float,
) -> Outcome:
    """``automation = "zoo-ops"``: the embedded reconciler deploys (services.automation)."""
    from zoo_ops.services.automation import reconcile

    result = reconcile(env, models=[model], wait_timeout_s=wait_timeout_s)
    frame = result.to_frame()
    rows = frame[frame["model"] == model] if len(frame) else frame
    failed = rows[rows["action"] == "failed"] if len(rows) else rows
    if len(failed):
        raise StepFailed(f"automation failed to deploy {target_model}: {failed.iloc[0]['detail']}")
    deployed = bool(len(rows) and (rows["action"] == "deployed").any())
    return Outcome(frame, deployed, "")


def _observe_platform(
    env: Environment,
    model: str,
    *,
    target_model: str,
    truss_hash: str | None,
    wait_timeout_s: float,
) -> Outcome:
    """``automation = "platform"``: wait for the platform's automation (services.platform_watch)."""
    from zoo_ops.services.platform_watch import (
        OBSERVED,
        known_version_ids,
        wait_for_platform_deploy,
    )

    if not truss_hash:
        raise StepFailed(
            f'no truss hash for {model}: with automation = "platform" zoo-ops can only '
            "recognise the platform's version by the hash; run the preflight"
        )
    known = known_version_ids(env, target_model)
    version = wait_for_platform_deploy(
        env, target_model, truss_hash, timeout_s=wait_timeout_s, known_ids=known
    )
    deployed = version.id not in known
    detail = (
        f"the platform's automation made version {version.id} ACTIVE and current"
        if deployed
        else f"version {version.id} already served this hash"
    )
    row = {
        "model": model,
        "target": target_model,
        "truss_hash": truss_hash,
        "action": OBSERVED,
        "version_id": version.id,
        "detail": detail,
    }
    return Outcome(pd.DataFrame([row]), deployed, version.id)


DEPLOYERS.register("zoo-ops", _reconcile_here)
DEPLOYERS.register("platform", _observe_platform)


def _would_deploy(
    env: Environment, model: str, target_model: str, truss_hash: str | None
) -> Deployment:
    existing = find_version_with_hash(env, target_model, truss_hash) if truss_hash else None
    row = {
        "model": model,
        "target": target_model,
        "truss_hash": truss_hash,
        "action": "skipped-duplicate" if existing else "would-deploy",
        "version_id": existing,
        "detail": f"version {existing} already has this hash"
        if existing
        else "dry run: nothing deployed",
    }
    return Deployment(model, target_model, truss_hash, existing, False, pd.DataFrame([row]), True)


def _read_back(env: Environment, target_model: str, truss_hash: str | None) -> str:
    oracle = env.platform.zoo_model(target_model)
    current = env.platform.current_version(oracle)
    if current.status != s.ACTIVE:
        raise StepFailed(
            f"{target_model} current version {current.id} is {current.status}, not ACTIVE"
        )
    if truss_hash and current.truss_hash != truss_hash:
        raise StepFailed(
            f"{target_model} current version {current.id} has truss hash "
            f"{(current.truss_hash or 'none')[:12]}, not {truss_hash[:12]}; check the automation"
        )
    return current.id
