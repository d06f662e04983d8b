"""A rollout plan: which models, through which environments, which steps (pure).

```yaml
environments: [staging, prod]       # in order: each model goes through staging first
models: [iris, resnet50, summarizer]
steps: [01_copy, 02_verify, 03_migrate, 05_retire]   # default: 01, 02, 03
parameters:                         # optional, per step, passed as -p NAME VALUE
  02_verify: {rtol: 1.0e-6}
  05_retire: {min_age_days: 3}
```

The plan is walked model by model; for each model, environment by environment; for
each environment, step by step. A step already succeeded in the trail for the truss's
current content is not repeated; 05_retire runs only once due.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from zoo_ops.domain.names import name_problem, rule
from zoo_ops.errors import BadInput

ROLLOUT_STEPS = ("01_copy", "02_verify", "03_migrate", "05_retire")
DEFAULT_STEPS = ("01_copy", "02_verify", "03_migrate")
RETIRE = "05_retire"
DEFAULT_MIN_AGE_DAYS = 3.0


@dataclass(frozen=True)
class RolloutPlan:
    environments: tuple[str, ...]
    models: tuple[str, ...]
    steps: tuple[str, ...] = DEFAULT_STEPS
    parameters: dict[str, dict[str, Any]] = field(default_factory=dict)

    def walk(self) -> list[tuple[str, str, str]]:
        """(model, env, step) in the order they run."""
        return [(m, e, s) for m in self.models for e in self.environments for s in self.steps]

    def step_parameters(self, step: str) -> dict[str, str]:
        return {k: _as_text(v) for k, v in self.parameters.get(step, {}).items()}

    @property
    def min_age_days(self) -> float:
        return float(self.parameters.get(RETIRE, {}).get("min_age_days", DEFAULT_MIN_AGE_DAYS))


def _as_text(value: Any) -> str:
    # Parameters reach the runbook as text and are converted to the declared type there.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _names(raw: Any, key: str, where: str) -> tuple[str, ...]:
    if (
        not isinstance(raw, list)
        or not raw
        or not all(isinstance(x, str) and x.strip() for x in raw)
    ):
        raise BadInput(f"{where}: `{key}` must be a non-empty list of names")
    if len(set(raw)) != len(raw):
        raise BadInput(f"{where}: `{key}` lists a name twice")
    kind = {"environments": "environment", "models": "model"}.get(key)
    problems = [name_problem(kind, name) for name in raw] if kind else []
    for problem in filter(None, problems):  # the one name rule (zoo_ops.domain.names)
        raise BadInput(f"{where}: `{key}`: {problem}; {rule(str(kind))}")
    return tuple(raw)


def parse_plan(data: Any, where: str) -> RolloutPlan:
    """Validate a loaded plan; every problem is one line naming the key."""
    if not isinstance(data, dict):
        raise BadInput(f"{where}: a rollout plan is a mapping with environments, models and steps")
    unknown = sorted(set(data) - {"environments", "models", "steps", "parameters"})
    if unknown:
        raise BadInput(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: environments, models, steps, parameters"
        )
    environments = _names(data.get("environments"), "environments", where)
    models = _names(data.get("models"), "models", where)
    steps = _names(data.get("steps", list(DEFAULT_STEPS)), "steps", where)
    bad = [s for s in steps if s not in ROLLOUT_STEPS]
    if bad:
        raise BadInput(
            f"{where}: step(s) {', '.join(bad)} cannot be in a rollout; use {', '.join(ROLLOUT_STEPS)}"
        )
    if list(steps) != sorted(steps):
        raise BadInput(f"{where}: steps must be in order ({', '.join(ROLLOUT_STEPS)})")
    parameters = data.get("parameters") or {}
    if not isinstance(parameters, dict) or not all(
        isinstance(k, str) and isinstance(v, dict) for k, v in parameters.items()
    ):
        raise BadInput(f"{where}: `parameters` maps a step to a mapping of NAME: VALUE")
    for step, values in parameters.items():
        if step not in steps:
            raise BadInput(f"{where}: parameters for {step}, which the plan does not run")
        for reserved in ("model", "env", "confirm"):
            if reserved in values:
                raise BadInput(
                    f"{where}: parameters.{step}.{reserved} is set by the rollout itself"
                )
    plan = RolloutPlan(environments, models, steps, dict(parameters))
    try:
        if not math.isfinite(plan.min_age_days):  # nan, inf: no age is ever enough
            raise ValueError
    except (TypeError, ValueError):
        raise BadInput(
            f"{where}: parameters.05_retire.min_age_days must be a finite number"
        ) from None
    return plan


def retire_due(
    migrated_at: datetime | None, now: datetime, min_age_days: float
) -> tuple[bool, str]:
    """Whether 05_retire is due: the forward migration succeeded ``min_age_days`` ago."""
    if migrated_at is None:
        return False, "no successful 03_migrate yet"
    due_at = migrated_at + timedelta(days=min_age_days)
    if now >= due_at:
        return True, f"due since {due_at.isoformat(timespec='minutes')}"
    return False, f"not due until {due_at.isoformat(timespec='minutes')}"
