"""`zoo-ops status`: models x steps per environment, from the audit trail.

Algorithm: list the executed notebooks of the requested environments through the trail
index (so every row reflects the files as they are now); group them by (env, model,
step); within a group, order by the stamp in the file name (the run's start, unique per
folder) and take

- the *counted* run: the latest run that is not a dry run. Its outcome is the step's
  outcome -- a failed latest run shows ``failed`` even after an earlier success;
- the latest dry run newer than the counted run, shown beside it: a dry run never counts
  as the step's success.

A model gets a row for every step (``not run`` where the trail has none), so the table
reads as a matrix. Nothing here imports pandas or scrapbook unless a frame is asked for:
the command must answer in well under two seconds over a thousand notebooks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo_ops.trail import STEPS, TrailEntry, TrailIndex

if TYPE_CHECKING:
    import pandas as pd

NOT_RUN = "not run"
SHORT_HASH = 12
COLUMNS = (
    "env",
    "model",
    "step",
    "outcome",
    "at",
    "truss_hash",
    "notebook",
    "dry_run",
    "runs",
)


@dataclass(frozen=True)
class StepStatus:
    """One cell of the matrix: a step of a model in an environment."""

    env: str
    model: str
    step: str
    outcome: str  # succeeded | failed | running | unreadable | dry_run (dry runs only) | not run
    at: datetime | None
    truss_hash: str | None
    notebook: Path | None
    runs: int = 0  # executed notebooks of this step, dry runs included
    dry_run_outcome: str | None = None  # the latest dry run newer than the counted run
    dry_run_at: datetime | None = None
    dry_run_notebook: Path | None = None

    @property
    def succeeded(self) -> bool:
        return self.outcome == "succeeded"

    @property
    def short_hash(self) -> str:
        return (self.truss_hash or "")[:SHORT_HASH]

    @property
    def dry_run_note(self) -> str:
        if self.dry_run_outcome is None:
            return ""
        word = "ok" if self.dry_run_outcome == "dry_run" else self.dry_run_outcome
        return f"{word} {format_at(self.dry_run_at)}"

    def as_row(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "model": self.model,
            "step": self.step,
            "outcome": self.outcome,
            "at": format_at(self.at),
            "truss_hash": self.short_hash,
            "notebook": "" if self.notebook is None else str(self.notebook),
            "dry_run": self.dry_run_note,
            "runs": self.runs,
        }


@dataclass
class StatusTable:
    """The status of every (env, model, step) asked for, plus every notebook read."""

    rows: list[StepStatus] = field(default_factory=list)
    notebooks: list[TrailEntry] = field(default_factory=list, repr=False)

    def envs(self) -> list[str]:
        return sorted({r.env for r in self.rows})

    def models(self, env: str) -> list[str]:
        return sorted({r.model for r in self.rows if r.env == env})

    def cell(self, env: str, model: str, step: str) -> StepStatus | None:
        for row in self.rows:
            if (row.env, row.model, row.step) == (env, model, step):
                return row
        return None

    def matrix(self, env: str) -> dict[str, dict[str, StepStatus]]:
        """``{model: {step: StepStatus}}`` of one environment, every step present."""
        out: dict[str, dict[str, StepStatus]] = {}
        for row in self.rows:
            if row.env == env:
                out.setdefault(row.model, {})[row.step] = row
        return out

    def as_rows(self) -> list[dict[str, Any]]:
        return [r.as_row() for r in self.rows]

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.as_rows(), columns=list(COLUMNS))

    def _repr_html_(self) -> str:
        return str(self.to_frame().to_html(index=False))


def format_at(at: datetime | None) -> str:
    return "" if at is None else at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def parse_time(value: Any) -> datetime | None:
    """An ISO time from a `run` scrap as an aware UTC datetime (naive means UTC)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def run_time(entry: TrailEntry) -> datetime:
    """When the run ended (else started; else the stamp in its file name)."""
    run = entry.run or {}
    return parse_time(run.get("finished_at")) or parse_time(run.get("started_at")) or entry.stamp


def run_truss_hash(entry: TrailEntry) -> str | None:
    value = (entry.run or {}).get("truss_hash") or entry.scraps.get("truss_hash")
    return str(value) if value else None


def step_status(env: str, model: str, step: str, runs: Sequence[TrailEntry]) -> StepStatus:
    """The matrix cell of ``runs`` (one env/model/step, oldest first); see module doc."""
    if not runs:
        return StepStatus(env, model, step, NOT_RUN, None, None, None)
    real = [r for r in runs if not r.dry_run]
    dry = [r for r in runs if r.dry_run]
    counted = real[-1] if real else None
    newer_dry = [d for d in dry if counted is None or _order(d) > _order(counted)]
    last_dry = newer_dry[-1] if newer_dry else None
    shown = counted or last_dry
    assert shown is not None
    return StepStatus(
        env=env,
        model=model,
        step=step,
        outcome=counted.outcome if counted else "dry_run",
        at=run_time(shown),
        truss_hash=run_truss_hash(shown),
        notebook=shown.path,
        runs=len(runs),
        dry_run_outcome=None if last_dry is None else last_dry.outcome,
        dry_run_at=None if last_dry is None else run_time(last_dry),
        dry_run_notebook=None if last_dry is None else last_dry.path,
    )


def _order(entry: TrailEntry) -> tuple[datetime, str]:
    return entry.stamp, entry.path.name


def status_rows(notebooks: Iterable[TrailEntry]) -> list[StepStatus]:
    """Every (env, model, step) of the models present, sorted; see :func:`step_status`."""
    groups: dict[tuple[str, str, str], list[TrailEntry]] = {}
    models: set[tuple[str, str]] = set()
    for nb in notebooks:
        groups.setdefault((nb.env, nb.model, nb.step), []).append(nb)
        models.add((nb.env, nb.model))
    rows: list[StepStatus] = []
    for env, model in sorted(models):
        extra = sorted(s for (e, m, s) in groups if (e, m) == (env, model) and s not in STEPS)
        for step in (*STEPS, *extra):
            runs = sorted(groups.get((env, model, step), []), key=_order)
            rows.append(step_status(env, model, step, runs))
    return rows


def trail_envs(executed_root: Path) -> list[str]:
    """Environment folders present in the trail."""
    if not executed_root.is_dir():
        return []
    return sorted(p.name for p in executed_root.iterdir() if p.is_dir() and p.name[0] != ".")


def status(
    env_names: Sequence[str] | None,
    model: str | None,
    executed_root: Path | Sequence[Path],
) -> StatusTable:
    """The status matrix of ``env_names`` (None: every env in the trail), one model or all.

    ``executed_root`` may be several roots (environments configured with different
    ``executed_root``); an environment's notebooks are taken from the first root that has
    its folder.
    """
    roots = [Path(executed_root)] if isinstance(executed_root, str | Path) else executed_root
    notebooks: list[TrailEntry] = []
    taken: set[str] = set()
    for root in map(Path, roots):
        present = trail_envs(root)
        wanted = present if env_names is None else [e for e in env_names if e in present]
        index = TrailIndex(root)
        for env in wanted:
            if env in taken:
                continue
            taken.add(env)
            notebooks.extend(index.entries(env, model))
    return StatusTable(rows=status_rows(notebooks), notebooks=notebooks)
