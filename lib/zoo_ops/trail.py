"""The audit trail: executed runbooks under `executed/ENV/MODEL/` and their scraps.

An executed copy is named ``YYYYmmddTHHMMSSZ-STEP.ipynb`` (DESIGN §5). Scraps are read
with scrapbook; a notebook that cannot be read, or that lacks the ``run`` scrap, is a
broken trail entry and is reported as such rather than skipped silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from zoo_ops.errors import BadInput, NotFound

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


@dataclass(frozen=True)
class TrailEntry:
    """One executed runbook as the trail knows it, from its name and its `run` scrap."""

    path: Path
    env: str
    model: str
    step: str
    stamp: datetime
    run: dict[str, Any] | None  # None: the notebook has no readable `run` scrap

    @property
    def outcome(self) -> str:
        if self.run is None:
            return "unreadable"
        return str(self.run.get("outcome") or "running")


def parse_trail_name(path: Path) -> tuple[str, datetime] | None:
    match = _NAME.match(path.name)
    if not match:
        return None
    stamp = datetime.strptime(match["stamp"], STAMP_FORMAT).replace(tzinfo=UTC)
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


def read_scraps(path: Path) -> dict[str, Any]:
    """All scraps of an executed notebook as plain values (DataFrames stay DataFrames)."""
    import scrapbook as sb

    if not path.exists():
        raise NotFound(f"{path}: no such executed notebook")
    try:
        nb = sb.read_notebook(str(path))
        return {name: scrap.data for name, scrap in nb.scraps.items()}
    except Exception as exc:  # noqa: BLE001 - any unreadable notebook is one verdict
        raise BadInput(
            f"{path}: not a readable executed runbook ({exc.__class__.__name__}); check the file"
        ) from exc


def read_entry(path: Path) -> TrailEntry:
    parsed = parse_trail_name(path)
    if parsed is None:
        raise BadInput(f"{path}: not a trail name (YYYYmmddTHHMMSSZ-STEP.ipynb)")
    step, stamp = parsed
    try:
        run = read_scraps(path).get("run")
    except BadInput:
        run = None
    return TrailEntry(
        path=path,
        env=path.parent.parent.name,
        model=path.parent.name,
        step=step,
        stamp=stamp,
        run=run if isinstance(run, dict) else None,
    )
