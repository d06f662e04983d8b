"""Names in the audit trail: steps, and where an executed runbook is kept.

An executed copy is named ``executed/ENV/MODEL/YYYYmmddTHHMMSSZ-STEP.ipynb`` (DESIGN §5).
ENV and MODEL must obey the one name rule (:mod:`zoo_ops.domain.names`) and the path is
joined with :func:`zoo_ops.domain.paths.confined`, so no name can file a notebook
outside ``executed_root`` (``-m ../staging/iris`` is refused, not filed under
another environment's folder).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from zoo_ops.domain.names import COMMAND_STEPS, RUNBOOK_STEPS, check_name, name_problem, shown
from zoo_ops.domain.paths import confined
from zoo_ops.errors import BadInput

STEPS = RUNBOOK_STEPS
STEP_ALIASES = {step.split("_", 1)[1]: step for step in STEPS} | {
    step.split("_", 1)[0]: step for step in STEPS
}
# A runbook step (``03_migrate``) or a recorded command (``whitelist-set``, COMMAND_STEPS).
_NAME = re.compile(
    r"^(?P<stamp>\d{8}T\d{6}Z)-(?P<step>\d\d_[a-z]+|"
    + "|".join(re.escape(s) for s in COMMAND_STEPS)
    + r")\.ipynb$"
)
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_ONE_SECOND = timedelta(seconds=1)


def canonical_step(step: str) -> str:
    """``03_migrate``, ``migrate`` and ``03`` all name the step ``03_migrate``.

    A value that is not even a name (the one name rule) is refused as such, shown
    escaped; a name that is no step is refused with the list of steps.
    """
    if step in STEPS:
        return step
    if step in STEP_ALIASES:
        return STEP_ALIASES[step]
    problem = name_problem("step", step)
    if problem is not None:
        raise BadInput(f"{problem}; steps are {', '.join(STEPS)}")
    raise BadInput(f"unknown step {shown(step)}; steps are {', '.join(STEPS)}")


def executed_path(
    executed_root: Path, env: str, model: str, step: str, at: datetime | None = None
) -> Path:
    """Where a run of ``step`` started ``at`` is kept; never overwrites an earlier run.

    ``env`` and ``model`` are checked by the name rule and ``step`` must be a runbook step
    or a recorded command (:data:`COMMAND_STEPS`; :class:`BadInput` otherwise), so the path always lies in ``executed_root/ENV/MODEL``.
    """
    at = (at or datetime.now(UTC)).astimezone(UTC)
    step = step if step in COMMAND_STEPS else canonical_step(step)
    folder = confined(executed_root, check_name("environment", env), check_name("model", model))
    path = confined(folder, f"{at.strftime(STAMP_FORMAT)}-{step}.ipynb")
    while path.exists():
        # Two runs in one second: the later one is named a second on.
        at = at.replace(microsecond=0) + _ONE_SECOND
        path = confined(folder, f"{at.strftime(STAMP_FORMAT)}-{step}.ipynb")
    return path


def notebook_names(
    executed_root: Path, env: str, model: str, step: str, *, attempts: int
) -> Iterator[Path]:
    """The names to try, in turn, for the notebook of a run of ``step`` starting now: the
    first free one (:func:`executed_path`), then -- each time the caller finds the name
    taken (another process's run row holds it) and asks for the next -- the first free
    one a second later; ``attempts`` names in all. The one "next free notebook name"
    loop of ``zoo-ops run``, ``zoo-ops submit``'s runs and the recorded commands."""
    at = datetime.now(UTC).replace(microsecond=0)
    for _ in range(attempts):
        path = executed_path(executed_root, env, model, step, at)
        yield path
        parsed = parse_trail_name(path)
        at = (parsed[1] if parsed else at) + _ONE_SECOND


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
    """Every executed runbook path under the root, oldest first by name.

    ``env`` and ``model`` are names (the name rule): they become glob patterns, where
    ``*`` or ``../x`` would read other environments' or other folders' notebooks.
    """
    if env is not None:
        check_name("environment", env)
    if model is not None:
        check_name("model", model)
    if not executed_root.exists():
        return []
    pattern = f"{env or '*'}/{model or '*'}/*.ipynb"
    paths = [p for p in executed_root.glob(pattern) if parse_trail_name(p)]
    return sorted(paths, key=lambda p: (p.name, str(p)))
