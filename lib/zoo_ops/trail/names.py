"""Names in the audit trail: steps, and where an executed runbook is kept.

An executed copy is named ``executed/ENV/MODEL/YYYYmmddTHHMMSSZ-STEP.ipynb`` (DESIGN §5).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from zoo_ops.errors import BadInput

STEPS = ("01_copy", "02_verify", "03_migrate", "04_revert", "05_retire")
STEP_ALIASES = {step.split("_", 1)[1]: step for step in STEPS} | {
    step.split("_", 1)[0]: step for step in STEPS
}
_NAME = re.compile(r"^(?P<stamp>\d{8}T\d{6}Z)-(?P<step>\d\d_[a-z]+)\.ipynb$")
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_ONE_SECOND = timedelta(seconds=1)


def canonical_step(step: str) -> str:
    """``03_migrate``, ``migrate`` and ``03`` all name the step ``03_migrate``."""
    if step in STEPS:
        return step
    if step in STEP_ALIASES:
        return STEP_ALIASES[step]
    raise BadInput(f"unknown step {step!r}; steps are {', '.join(STEPS)}")


def executed_path(
    executed_root: Path, env: str, model: str, step: str, at: datetime | None = None
) -> Path:
    """Where a run of ``step`` started ``at`` is kept; never overwrites an earlier run."""
    at = (at or datetime.now(UTC)).astimezone(UTC)
    folder = executed_root / env / model
    path = folder / f"{at.strftime(STAMP_FORMAT)}-{step}.ipynb"
    while path.exists():
        # Two runs in one second: the later one is named a second on.
        at = at.replace(microsecond=0) + _ONE_SECOND
        path = folder / f"{at.strftime(STAMP_FORMAT)}-{step}.ipynb"
    return path


def parse_trail_name(path: Path) -> tuple[str, datetime] | None:
    match = _NAME.match(path.name)
    if not match:
        return None
    try:
        stamp = datetime.strptime(match["stamp"], STAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:  # 20261399T...: the shape of a stamp, not a time
        return None
    return match["step"], stamp


def trail_notebooks(
    executed_root: Path, env: str | None = None, model: str | None = None
) -> list[Path]:
    """Every executed runbook path under the root, oldest first by name."""
    if not executed_root.exists():
        return []
    pattern = f"{env or '*'}/{model or '*'}/*.ipynb"
    paths = [p for p in executed_root.glob(pattern) if parse_trail_name(p)]
    return sorted(paths, key=lambda p: (p.name, str(p)))
