"""`zoo-ops rollout PLAN.yaml`: the whole zoo, model by model, step by step.

Stops at the first failure. A second call resumes from each environment's runs table
(joined with the trail): a step whose latest real (not dry, not refused) run succeeded
for the truss's current content is not repeated. A model
whose migration was reverted after it succeeded (a later 04_revert run, or any revert the
migrations table records: from the journal alone, by auto_revert) stops the rollout --
a reverted 03 is never ``done before``: going forward again is an engineer's decision,
made by running 03_migrate by hand. Step order itself is the runbooks' gate
(:mod:`zoo_ops.domain.gates`): a step the rollout starts out of order is refused there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from zoo_ops.domain.bounded_yaml import DocumentRefused, load_bounded
from zoo_ops.domain.rollout_plan import RETIRE, RolloutPlan, parse_plan, retire_due
from zoo_ops.environment import Environment
from zoo_ops.errors import BadInput, NotFound
from zoo_ops.execute import execute_runbook
from zoo_ops.files import FileRefused, read_regular_bytes
from zoo_ops.trail import RunView, TrailIndex, UnreadableFile, join_runs
from zoo_ops.trail.runs import DRY_RUN, REFUSED

REVERT = "04_revert"
MIGRATE = "03_migrate"


MAX_PLAN_BYTES = 1024 * 1024  # a plan is a page of YAML


def load_plan(path: Path) -> RolloutPlan:
    """The plan in ``path``: a regular file (a FIFO never hangs us), YAML loaded with its
    aliases bounded and its numbers finite, then checked by :func:`parse_plan`."""
    if not path.exists():
        raise NotFound(f"{path}: no such rollout plan")
    try:
        data = load_bounded(read_regular_bytes(path, MAX_PLAN_BYTES))
    except FileRefused as exc:
        raise BadInput(f"{path}: {exc}; name a rollout plan file") from None
    except DocumentRefused as exc:
        raise BadInput(f"{path}: {exc}; fix the plan") from None
    return parse_plan(data, str(path))


@dataclass
class RolloutReport:
    rows: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int = 0
    # Files of the trail the rollout did not use (a bad name, a bad notebook), with why.
    unreadable: list[UnreadableFile] = field(default_factory=list)

    def note_unreadable(self, files: list[UnreadableFile]) -> None:
        for found in files:
            if found not in self.unreadable:
                self.unreadable.append(found)

    def add(
        self, model: str, env: str, step: str, action: str, detail: str = "", path: str = ""
    ) -> None:
        self.rows.append(
            {
                "model": model,
                "env": env,
                "step": step,
                "action": action,
                "detail": detail,
                "notebook": path,
            }
        )

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            self.rows, columns=["model", "env", "step", "action", "detail", "notebook"]
        )


def _real_runs(env: Environment, model: str, report: RolloutReport | None = None) -> list[RunView]:
    """The model's runs in this environment that were not dry runs and not refused, from
    its runs table (the authority: a run made by plain papermill to any path counts),
    each cross-checked with its notebook where one exists; oldest first. A notebook of the
    trail that no run row claims (a database since rebuilt, a copied file) proves nothing
    here, nor does a run whose notebook disagrees with its row."""
    records = env.runs.find(model=model, env=env.name)
    index = TrailIndex.of(env.config)
    entries = index.entries(env.name, model)
    if report is not None:
        report.note_unreadable(index.unreadable)
    return [
        v
        for v in join_runs(records, entries, read_outside=True)
        if v.trusted and not v.dry_run and v.outcome not in (REFUSED, DRY_RUN)
    ]


def _latest(runs: list[RunView], step: str) -> RunView | None:
    matching = [r for r in runs if r.step == step]
    return matching[-1] if matching else None


def _succeeded_for(run: RunView | None, truss_hash: str) -> bool:
    return bool(run and run.outcome == "succeeded" and run.truss_hash == truss_hash)


def _reverted(env: Environment, model: str, migrate: RunView | None, revert: RunView | None) -> str:
    """What undid the latest succeeded 03 (``""``: nothing): a later succeeded 04 run, or
    the migrations table's ``reverted_by`` on its forward migration -- a revert made from
    the journal alone (``migration_id``), by ``auto_revert`` or by a run whose notebook
    is gone counts the same. A reverted migration is never ``done before``."""
    from zoo_ops.services.gate import migration_reverted_by

    if migrate is None or migrate.outcome != "succeeded" or not migrate.run_id:
        return ""
    if revert is not None and revert.outcome == "succeeded" and revert.order() > migrate.order():
        return _where(revert)
    by = migration_reverted_by(env, model, migrate.run_id)
    return f"migration {by}" if by else ""


def _finished_at(run: RunView | None) -> datetime | None:
    return None if run is None else run.finished_at


def _where(run: RunView) -> str:
    return str(run.notebook) if run.notebook else f"run {run.run_id}"


def rollout(
    plan: RolloutPlan, *, confirm: tuple[str, ...] = (), now: datetime | None = None
) -> RolloutReport:
    """Run what the plan still needs; stop at the first failure."""
    from zoo_ops.adapters.truss_files import truss_content_hash

    now = now or datetime.now(UTC)
    report = RolloutReport()
    environments = {name: Environment.load(name) for name in plan.environments}
    try:
        for model, env_name, step in plan.walk():
            env = environments[env_name]
            truss_hash = truss_content_hash(
                env.config.truss_root_path / model, cache=env.hash_cache
            )
            runs = _real_runs(env, model, report)
            migrate, revert = _latest(runs, MIGRATE), _latest(runs, REVERT)
            undone = _reverted(env, model, migrate, revert)
            if undone:
                report.add(
                    model,
                    env_name,
                    step,
                    "stopped",
                    f"{MIGRATE} was reverted by {undone}; run {MIGRATE} by hand to go forward again",
                )
                report.exit_code = 1
                return report
            latest = _latest(runs, step)
            if step == RETIRE:
                if latest is not None and latest.outcome == "succeeded":
                    report.add(model, env_name, step, "done before", "", _where(latest))
                    continue
                due, why = retire_due(
                    _finished_at(migrate) if _succeeded_for(migrate, truss_hash) else None,
                    now,
                    plan.min_age_days,
                )
                if not due:
                    report.add(model, env_name, step, "not due", why)
                    continue
            elif _succeeded_for(latest, truss_hash):
                assert latest is not None
                report.add(
                    model,
                    env_name,
                    step,
                    "done before",
                    f"truss {truss_hash[:12]}",
                    _where(latest),
                )
                continue
            parameters = plan.step_parameters(step)
            if env.config.protected and env_name in confirm:
                parameters["confirm"] = env_name
            result = execute_runbook(step, model=model, env=env_name, parameters=parameters)
            if result.exit_code:
                report.add(model, env_name, step, "failed", result.error or "", result.location)
                report.exit_code = result.exit_code
                return report
            report.add(model, env_name, step, result.outcome, "", result.location)
    finally:
        for env in environments.values():
            env.dispose()
    return report
