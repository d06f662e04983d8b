"""`whitelist set/remove` and `automation reconcile` under the runbooks' rules.

Each is :mod:`zoo_ops.commands.recorded_write`'s three rules around one service call:
confirm on a protected environment, the staging gate where the environment ``requires``
another, and a recorded run (runs table + trail notebook).

Which runbook step's gate a write passes, by the effect it has:

- ``whitelist set MODEL --copy true``: the automation deploys ``MODEL_copy``, as 01_copy
  does -> the ``01_copy`` gate;
- ``whitelist set MODEL --copy false``: it deploys a new version of ``MODEL`` itself, as
  03_migrate does -> the ``03_migrate`` gate;
- ``automation reconcile``: each model it would deploy, by its entry's ``copy`` as above;
  one closed gate refuses the whole reconcile with nothing deployed;
- ``whitelist remove MODEL``: no gate. Taking a model off the whitelist deploys nothing,
  and it is how an operator stops a rollout that went wrong: a rule that blocks it until
  staging has done the same would block the safe direction. It still needs ``--confirm``
  on a protected environment and is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zoo_ops.commands.recorded_write import (
    GatedWrite,
    Recording,
    check_confirm,
    close_recording,
    gate_write,
    recorded,
    refuse_closed_gates,
    start_recording,
)
from zoo_ops.domain.names import RECONCILE, WHITELIST_REMOVE, WHITELIST_SET
from zoo_ops.domain.whitelist import COPY_SUFFIX, check_model_name
from zoo_ops.environment import Environment
from zoo_ops.errors import StepFailed
from zoo_ops.services.automation import (
    DEPLOYED,
    FAILED,
    WOULD_DEPLOY,
    ReconcileResult,
    reconcile,
)
from zoo_ops.services.settings import (
    WhitelistChange,
    remove_whitelist_entry,
    set_whitelist_entry,
)

COPY_STEP, MIGRATE_STEP = "01_copy", "03_migrate"


def gated_step_for(copy: bool) -> str:
    """The runbook step whose effect a ``copy`` entry has (module doc)."""
    return COPY_STEP if copy else MIGRATE_STEP


@dataclass(frozen=True)
class RecordedChange:
    change: WhitelistChange
    note: str


def _parameters(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v not in (None, "")}


def _record_change(recording: Recording, change: WhitelistChange) -> None:
    recording.show("whitelist", change.to_frame())
    recording.scraps["whitelist_before"] = change.before.as_json_object()
    recording.scraps["whitelist_after"] = change.after.as_json_object()


def guarded_set(
    env: Environment,
    model: str,
    copy: bool,
    *,
    confirm: str = "",
    override_reason: str = "",
    dry_run: bool = False,
) -> RecordedChange:
    """``whitelist set``: confirm, record, gate (``01_copy``/``03_migrate``), write."""
    check_model_name(model)
    check_confirm(env, confirm, dry_run=dry_run, command=f"whitelist set {model}")
    parameters = _parameters(
        model=model,
        copy=copy,
        dry_run=dry_run,
        confirm=confirm,
        gate_override_reason=override_reason,
    )
    with recorded(
        env,
        step=WHITELIST_SET,
        model=model,
        dry_run=dry_run,
        parameters=parameters,
        gate_override_reason=override_reason,
    ) as recording:
        gate_write(recording, gated_step=gated_step_for(copy), override_reason=override_reason)
        change = set_whitelist_entry(env, model, copy, dry_run=dry_run)
        _record_change(recording, change)
    return RecordedChange(change, recording.note())


def guarded_remove(
    env: Environment,
    model: str,
    *,
    confirm: str = "",
    dry_run: bool = False,
) -> RecordedChange:
    """``whitelist remove``: confirm and record (no gate: see the module doc)."""
    check_model_name(model)
    check_confirm(env, confirm, dry_run=dry_run, command=f"whitelist remove {model}")
    parameters = _parameters(model=model, dry_run=dry_run, confirm=confirm)
    with recorded(
        env, step=WHITELIST_REMOVE, model=model, dry_run=dry_run, parameters=parameters
    ) as recording:
        change = remove_whitelist_entry(env, model, dry_run=dry_run)
        _record_change(recording, change)
    return RecordedChange(change, recording.note())


def guarded_reconcile(
    env: Environment,
    *,
    models: list[str] | None = None,
    wait_timeout_s: float = 600,
    dry_run: bool = False,
    confirm: str = "",
    override_reason: str = "",
) -> tuple[ReconcileResult, list[str]]:
    """``automation reconcile`` under the rules; (result, one note per recorded run).

    Algorithm: confirm; decide with a dry-run reconcile (hash each in-scope entry, skip
    duplicates and models with no room); a dry run stops there (nothing recorded: it
    writes nothing). For every model that would deploy, the gate of its ``copy``; any
    closed gate records a refused run for each closed model and refuses the whole
    reconcile, nothing deployed. Otherwise start one run per model that would deploy,
    reconcile exactly those models (a model whitelisted meanwhile is not deployed
    ungated), and close each run by its row: deployed or already there -> succeeded,
    failed -> failed.
    """
    check_confirm(env, confirm, dry_run=dry_run, command="automation reconcile")
    plan = reconcile(env, models=models, wait_timeout_s=wait_timeout_s, dry_run=True)
    if dry_run:
        return plan, []
    candidates = [r for r in plan.rows if r.action == WOULD_DEPLOY]
    if not candidates:
        return ReconcileResult(env.name, plan.automation_enabled, False, plan.rows), []
    refuse_closed_gates(
        env,
        [
            GatedWrite(
                row.model,
                gated_step_for(row.target.endswith(COPY_SUFFIX)),
                row.truss_hash,
                _parameters(model=row.model, confirm=confirm),
            )
            for row in candidates
        ],
        record_step=RECONCILE,
        override_reason=override_reason,
        refusal="reconcile refused, nothing deployed",
    )
    recordings = [
        start_recording(
            env,
            step=RECONCILE,
            model=row.model,
            dry_run=False,
            parameters=_parameters(
                model=row.model,
                wait_timeout_s=wait_timeout_s,
                confirm=confirm,
                gate_override_reason=override_reason,
            ),
            gate_override_reason=override_reason,
        )
        for row in candidates
    ]
    try:
        result = reconcile(env, models=[r.model for r in candidates], wait_timeout_s=wait_timeout_s)
    except BaseException as exc:
        for recording in recordings:
            close_recording(recording, exc)
        raise
    # The plan's rows for models not deployed (duplicates, no room, unreadable), the
    # reconcile's for the rest, in the plan's order.
    done = {r.model: r for r in result.rows}
    result = ReconcileResult(
        env.name,
        result.automation_enabled,
        False,
        tuple(done.get(r.model, r) if r.action == WOULD_DEPLOY else r for r in plan.rows),
    )
    frame = result.to_frame()
    for recording in recordings:
        row = result.row(recording.model)
        recording.truss_hash = row.truss_hash or None
        recording.show("reconcile", frame[frame["model"] == recording.model])
        error = None
        if row.action == FAILED:
            error = StepFailed(f"automation failed to deploy {row.target}: {row.detail}")
        elif row.action == DEPLOYED:
            recording.scraps["deployed_version_id"] = row.version_id
        close_recording(recording, error)
    return result, [r.note() for r in recordings]
