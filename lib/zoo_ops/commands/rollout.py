"""`zoo-ops rollout PLAN.yaml`: the whole zoo, model by model, step by step.

Stops at the first failure. A second call resumes from the trail: a step whose latest
real (not dry) run succeeded for the truss's current content is not repeated. A model
whose migration was reverted after it succeeded stops the rollout: going forward again
is an engineer's decision, made by running 03_migrate by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from zoo_ops.domain.rollout_plan import RETIRE, RolloutPlan, parse_plan, retire_due
from zoo_ops.environment import Environment
from zoo_ops.errors import BadInput, NotFound
from zoo_ops.execute import execute_runbook
from zoo_ops.trail import TrailEntry, read_entry, trail_notebooks

REVERT = "04_revert"
MIGRATE = "03_migrate"


def load_plan(path: Path) -> RolloutPlan:
    if not path.exists():
        raise NotFound(f"{path}: no such rollout plan")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise BadInput(f"{path}: not YAML ({exc.__class__.__name__}); fix the plan") from exc
    return parse_plan(data, str(path))


@dataclass
class RolloutReport:
    rows: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int = 0

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


def _real_runs(env: Environment, model: str) -> list[TrailEntry]:
    """The model's executed runbooks in this environment that were not dry runs and that
    this environment's database also recorded, oldest first. (A trail entry whose run the
    database does not know belongs to a database since rebuilt: it proves nothing here.)"""
    entries = [
        read_entry(p) for p in trail_notebooks(env.config.executed_root_path, env.name, model)
    ]
    known = {r.id for r in env.runs.find(model=model, env=env.name)}
    return [
        e
        for e in entries
        if e.run is not None and not e.run.get("dry_run") and e.run.get("run_id") in known
    ]


def _latest(entries: list[TrailEntry], step: str) -> TrailEntry | None:
    matching = [e for e in entries if e.step == step]
    return matching[-1] if matching else None


def _succeeded_for(entry: TrailEntry | None, truss_hash: str) -> bool:
    return bool(
        entry
        and entry.outcome == "succeeded"
        and entry.run
        and entry.run.get("truss_hash") == truss_hash
    )


def _finished_at(entry: TrailEntry | None) -> datetime | None:
    if entry is None or entry.run is None or not entry.run.get("finished_at"):
        return None
    return datetime.fromisoformat(str(entry.run["finished_at"]))


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
            runs = _real_runs(env, model)
            migrate, revert = _latest(runs, MIGRATE), _latest(runs, REVERT)
            if (
                revert is not None
                and revert.outcome == "succeeded"
                and migrate is not None
                and revert.stamp > migrate.stamp
            ):
                report.add(
                    model,
                    env_name,
                    step,
                    "stopped",
                    f"{MIGRATE} was reverted by {revert.path.name}; run {MIGRATE} by hand to go forward again",
                )
                report.exit_code = 1
                return report
            latest = _latest(runs, step)
            if step == RETIRE:
                if latest is not None and latest.outcome == "succeeded":
                    report.add(model, env_name, step, "done before", "", str(latest.path))
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
                    str(latest.path),
                )
                continue
            parameters = plan.step_parameters(step)
            if env.config.protected and env_name in confirm:
                parameters["confirm"] = env_name
            result = execute_runbook(step, model=model, env=env_name, parameters=parameters)
            if result.exit_code:
                report.add(model, env_name, step, "failed", result.error or "", str(result.path))
                report.exit_code = result.exit_code
                return report
            report.add(model, env_name, step, result.outcome, "", str(result.path))
    finally:
        for env in environments.values():
            env.dispose()
    return report
