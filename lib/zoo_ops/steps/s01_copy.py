"""Step 01: deploy the truss as a copy, `MODEL_copy` (the seed's "Enable model zoo
automation for this model but as a copy").

``preflight`` checks the seed's prerequisites and hashes the truss; the runbook then
sets ``{model: {copy: true}}`` with :func:`zoo_ops.services.deploy.enable_automation`,
and ``deploy_copy`` runs the automation and waits for the copy's version to be ACTIVE,
then reads it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from zoo_ops.domain.names import shown
from zoo_ops.domain.whitelist import COPY_SUFFIX, DynamicSettings
from zoo_ops.environment import Environment
from zoo_ops.errors import BadInput, StepFailed, ZooOpsError
from zoo_ops.services.deploy import Deployment, deploy, deployed_truss_dir, find_version_with_hash
from zoo_ops.services.results import StepResult
from zoo_ops.steps.parameters import CopyParameters


@dataclass
class PreflightCheck:
    check: str
    ok: bool
    detail: str
    error: ZooOpsError | None = None


@dataclass
class Preflight(StepResult):
    """The prerequisites of deploying the truss in ``truss_dir`` to ``target_model``."""

    model: str
    target_model: str
    truss_dir: Path
    truss_hash: str | None
    duplicate_version_id: str | None
    checks: list[PreflightCheck] = field(default_factory=list)
    details: dict[str, pd.DataFrame] = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [{"check": c.check, "ok": c.ok, "detail": c.detail} for c in self.checks]
        )

    def scraps(self) -> dict[str, Any]:
        return {"preflight": self.to_frame(), "truss_hash": self.truss_hash}

    def failure(self) -> str | None:
        bad = [c for c in self.checks if not c.ok]
        return None if not bad else f"preflight: {bad[0].check}: {bad[0].detail}"

    def raise_if_failed(self) -> None:
        for check in self.checks:
            if not check.ok:
                if check.error is not None:
                    raise check.error
                raise StepFailed(f"preflight: {check.check}: {check.detail}")


def _check(checks: list[PreflightCheck], name: str, fn: Any) -> Any:
    """Run one check; a zoo_ops error becomes a failed row (kept for raise_if_failed)."""
    try:
        ok, detail, value = fn()
    except ZooOpsError as err:
        checks.append(PreflightCheck(name, False, str(err), err))
        return None
    checks.append(PreflightCheck(name, ok, detail))
    return value


def _check_truss_dir(env: Environment, model: str, truss_dir: str, deployed: Path) -> None:
    """Refuse a ``truss_dir`` that is not the folder the automation deploys."""
    if not truss_dir:
        return
    given = Path(truss_dir)
    given = given if given.is_absolute() else env.config.root / given
    if given.resolve() != deployed.resolve():
        raise BadInput(
            f"truss_dir {shown(str(given))} is not {deployed}, the folder the automation "
            f"deploys for {model}: put the truss there, or leave truss_dir empty"
        )


def preflight(env: Environment, model: str, *, truss_dir: str = "", copy: bool = True) -> Preflight:
    """Every prerequisite as a row (check, ok, detail); nothing is changed.

    The truss checked and hashed is the one the automation deploys, ``truss_root/MODEL``
    (``services.deploy.deployed_truss_dir``). ``truss_dir`` (DESIGN §5) may name that
    folder, by any path that resolves to it; any other folder is refused, because its
    content would be hashed but never deployed."""
    from zoo_ops.adapters.truss_files import truss_content_hash
    from zoo_ops.adapters.truss_runtime import read_truss
    from zoo_ops.services.preflight import preflight_secrets, rollout_capacity

    target = model + COPY_SUFFIX if copy else model
    path = deployed_truss_dir(env, model)
    _check_truss_dir(env, model, truss_dir, path)
    checks: list[PreflightCheck] = []
    details: dict[str, pd.DataFrame] = {}

    def settings() -> tuple[bool, str, DynamicSettings]:
        snapshot = env.settings.read()
        parsed = DynamicSettings.from_data(snapshot.data)
        return True, f"read at resourceVersion {snapshot.resource_version}", parsed

    dynamic = _check(checks, "whitelist valid", settings)
    if dynamic is not None:
        checks.insert(
            0,
            PreflightCheck(
                "automation enabled",
                dynamic.automation_enabled,
                "modelZooDeploymentAutomationEnabled is "
                + ("true" if dynamic.automation_enabled else 'false: set it to "true" first'),
            ),
        )
    package = _check(checks, "truss readable", lambda: _truss_row(read_truss(path)))
    truss_hash = _check(
        checks, "truss hash", lambda: _hash_row(truss_content_hash(path, cache=env.hash_cache))
    )
    duplicate = None
    if truss_hash:
        duplicate = find_version_with_hash(env, target, truss_hash)
        checks.append(
            PreflightCheck(
                "duplicate check",
                True,
                f"already deployed to {target} as version {duplicate}: nothing to deploy"
                if duplicate
                else f"new content for {target}",
            )
        )
    if package is not None:
        capacity = _check(  # old + copy + new at once, before any write (exit 2 if short)
            checks,
            "capacity",
            lambda: _capacity_row(
                rollout_capacity(
                    env, model, path, copy_version_id=duplicate, copy_pending=duplicate is None
                )
                if copy
                else rollout_capacity(env, model, path, new_version_id=duplicate)
            ),
        )
        if capacity is not None:
            details["capacity"] = capacity.to_frame()
            if not capacity.fits:
                checks[-1].error = capacity.refusal()
        secrets = _check(
            checks, "secrets", lambda: _secrets_row(env, package.config, preflight_secrets)
        )
        if secrets is not None:
            details["secrets"] = secrets
    return Preflight(model, target, path, truss_hash, duplicate, checks, details)


def _truss_row(package: Any) -> tuple[bool, str, Any]:
    examples = len(package.examples)
    return True, f"{package.path} ({examples} examples)", package


def _hash_row(truss_hash: str) -> tuple[bool, str, str]:
    return True, truss_hash, truss_hash


def _capacity_row(report: Any) -> tuple[bool, str, Any]:
    return bool(report.fits), report.summary(), report


def _secrets_row(env: Environment, config: Any, preflight_secrets: Any) -> tuple[bool, str, Any]:
    report = preflight_secrets(env, config)
    frame = report.to_frame()
    missing = [str(r["secret"]) for _, r in frame.iterrows() if not r["present"]]
    if not len(frame):
        return True, "the truss declares no secrets", frame
    if missing:
        return (
            False,
            f"missing for the admin organization: {', '.join(missing)}; add them first",
            frame,
        )
    return True, f"all present: {', '.join(map(str, frame['secret']))}", frame


def deploy_copy(
    env: Environment,
    model: str,
    *,
    truss_hash: str | None,
    wait_timeout_s: float = CopyParameters.wait_timeout_s,
    dry_run: bool = False,
) -> Deployment:
    return deploy(
        env,
        model,
        target_model=model + COPY_SUFFIX,
        truss_hash=truss_hash,
        wait_timeout_s=wait_timeout_s,
        dry_run=dry_run,
    )
