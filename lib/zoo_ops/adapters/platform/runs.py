"""RunStore: the `zoo_ops_run` table, one row per executed runbook.

A run's row is written before anything mutates: ``zoo-ops run`` *reserves* it (with the
notebook path, unique per run) before it starts a kernel, and the runbook's first cell
*adopts* it; plain papermill has no reservation and the runbook *starts* its own row.
Each row names the processes that own it (host, pid and start time of ``zoo-ops run``
or of the kernel), so a run whose outcome is empty and whose processes are gone is seen
as ``crashed`` (:func:`effective_outcome`).

Outcomes (DESIGN §8): ``succeeded``, ``failed``, ``dry_run``, ``refused`` (nothing
changed), ``interrupted``, ``crashed``, ``trail-unsaved`` (recorded here, the notebook
could not be written); NULL while the run is in progress.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from zoo_ops.adapters.platform import schema as s
from zoo_ops.adapters.platform.schema import utcnow
from zoo_ops.adapters.processes import ProcessId, process_alive, this_process
from zoo_ops.domain.ids import new_id
from zoo_ops.errors import ConflictError, StepFailed

SUCCEEDED, FAILED, DRY_RUN = "succeeded", "failed", "dry_run"
REFUSED, INTERRUPTED, CRASHED, TRAIL_UNSAVED = "refused", "interrupted", "crashed", "trail-unsaved"
OUTCOMES = (SUCCEEDED, FAILED, DRY_RUN, REFUSED, INTERRUPTED, CRASHED, TRAIL_UNSAVED)


class NotebookPathTaken(ConflictError):
    """Another run already holds this executed-notebook path."""


@dataclass(frozen=True)
class RunRecord:
    id: str
    step: str
    model: str
    env: str
    operator: str
    dry_run: bool
    parameters: dict[str, Any]
    truss_hash: str | None
    gate_override_reason: str | None
    started_at: datetime
    finished_at: datetime | None
    outcome: str | None  # as recorded; see effective_outcome for crashed runs
    error: str | None
    notebook_path: str | None
    host: str | None = None  # the owning process: `zoo-ops run`, or the kernel (papermill)
    pid: int | None = None
    pid_start: int | None = None  # /proc start time (clock ticks since boot)
    kernel_pid: int | None = None
    kernel_pid_start: int | None = None

    @property
    def alive(self) -> bool:
        """Whether a process of this run (its owner or its kernel) still runs."""
        if self.host is None:
            return False
        return process_alive(self.host, self.pid, self.pid_start) or process_alive(
            self.host, self.kernel_pid, self.kernel_pid_start
        )

    @property
    def effective_outcome(self) -> str | None:
        """The recorded outcome; for an open run, ``crashed`` once its processes are gone.

        None: the run is still in progress (or runs on another host, where its processes
        cannot be checked). A row without any process (written before zoo-ops recorded
        them) and no outcome is crashed.
        """
        if self.outcome is not None:
            return self.outcome
        return None if self.alive else CRASHED


def effective_outcome(record: RunRecord) -> str | None:
    return record.effective_outcome


class RunStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def reserve(
        self,
        *,
        step: str,
        model: str,
        env: str,
        operator: str,
        dry_run: bool,
        parameters: dict[str, Any],
        gate_override_reason: str | None,
        notebook_path: str,
        owner: ProcessId | None = None,
    ) -> RunRecord:
        """Insert a run that has not started, holding ``notebook_path``; raises
        NotebookPathTaken when another run holds it (the caller tries the next name)."""
        try:
            return self._insert(
                step=step,
                model=model,
                env=env,
                operator=operator,
                dry_run=dry_run,
                parameters=parameters,
                gate_override_reason=gate_override_reason,
                notebook_path=notebook_path,
                owner=owner or this_process(),
            )
        except IntegrityError as exc:
            raise NotebookPathTaken(f"{notebook_path} is another run's notebook") from exc

    def start(self, *, owner: ProcessId | None = None, **fields: Any) -> RunRecord:
        """Insert a run started by this process (the kernel, under plain papermill); the
        fields are :meth:`reserve`'s.

        Plain papermill may write over an earlier run's notebook (the same OUT path
        twice): that run no longer has a notebook, so its row lets go of the path. A run
        still open holds its path: a second papermill run writing to it is refused.
        """
        process = owner or this_process()
        path = fields.get("notebook_path")
        if path:
            with self.engine.begin() as conn:
                conn.execute(
                    update(s.runs)
                    .where(s.runs.c.notebook_path == path, s.runs.c.outcome.is_not(None))
                    .values(notebook_path=None)
                )
        try:
            return self._insert(owner=process, kernel=process, **fields)
        except IntegrityError as exc:
            raise ConflictError(
                f"{path} is the notebook of a run still in progress; "
                "give this run another output path"
            ) from exc

    def _insert(
        self,
        *,
        step: str,
        model: str,
        env: str,
        operator: str,
        dry_run: bool,
        parameters: dict[str, Any],
        gate_override_reason: str | None,
        notebook_path: str | None,
        owner: ProcessId,
        kernel: ProcessId | None = None,
    ) -> RunRecord:
        record = RunRecord(
            id=new_id(),
            step=step,
            model=model,
            env=env,
            operator=operator,
            dry_run=dry_run,
            parameters=parameters,
            truss_hash=None,
            gate_override_reason=gate_override_reason or None,
            started_at=utcnow(),
            finished_at=None,
            outcome=None,
            error=None,
            notebook_path=notebook_path,
            host=owner.host,
            pid=owner.pid,
            pid_start=owner.started,
            kernel_pid=kernel.pid if kernel else None,
            kernel_pid_start=kernel.started if kernel else None,
        )
        values = {k: getattr(record, k) for k in RunRecord.__dataclass_fields__}
        with self.engine.begin() as conn:
            conn.execute(insert(s.runs).values(**values))
        return record

    def adopt(
        self,
        run_id: str,
        *,
        operator: str,
        dry_run: bool,
        parameters: dict[str, Any],
        gate_override_reason: str | None,
        kernel: ProcessId | None = None,
    ) -> RunRecord:
        """The kernel takes over a reserved run: its validated parameters and its process."""
        process = kernel or this_process()
        with self.engine.begin() as conn:
            done = conn.execute(
                update(s.runs)
                .where(s.runs.c.id == run_id, s.runs.c.outcome.is_(None))
                .values(
                    operator=operator,
                    dry_run=dry_run,
                    parameters=parameters,
                    gate_override_reason=gate_override_reason or None,
                    kernel_pid=process.pid,
                    kernel_pid_start=process.started,
                )
            ).rowcount
        if done != 1:
            raise StepFailed(
                f"run {run_id} is not an open reserved run in this environment's database; "
                "start the runbook with `zoo-ops run` or plain papermill, not both"
            )
        return self.get(run_id)

    def finish(
        self, run_id: str, *, outcome: str, truss_hash: str | None, error: str | None
    ) -> RunRecord:
        with self.engine.begin() as conn:
            conn.execute(
                update(s.runs)
                .where(s.runs.c.id == run_id)
                .values(outcome=outcome, truss_hash=truss_hash, error=error, finished_at=utcnow())
            )
        record = self.get(run_id)
        if record.outcome != outcome:
            raise StepFailed(f"run {run_id} was not recorded as {outcome}; check the database")
        return record

    def close_if_open(self, run_id: str, *, outcome: str, error: str | None) -> bool:
        """Record ``outcome`` only when the run has none yet; whether it did."""
        with self.engine.begin() as conn:
            done = conn.execute(
                update(s.runs)
                .where(s.runs.c.id == run_id, s.runs.c.outcome.is_(None))
                .values(outcome=outcome, error=error, finished_at=utcnow())
            ).rowcount
        return bool(done)

    def mark_trail_unsaved(self, run_id: str, reason: str) -> RunRecord:
        """The notebook of a run could not be written: say so, keeping what it recorded."""
        record = self.get(run_id)
        before = record.outcome or "unfinished"
        error = f"{reason} (run outcome before: {before}"
        error += f"; {record.error})" if record.error else ")"
        with self.engine.begin() as conn:
            conn.execute(
                update(s.runs)
                .where(s.runs.c.id == run_id)
                .values(
                    outcome=TRAIL_UNSAVED,
                    error=error,
                    finished_at=record.finished_at or utcnow(),
                )
            )
        return self.get(run_id)

    def set_notebook_path(self, run_id: str, path: str) -> RunRecord:
        """Record where the run's notebook is (papermill's output, or a recovered one)."""
        with self.engine.begin() as conn:
            done = conn.execute(
                update(s.runs).where(s.runs.c.id == run_id).values(notebook_path=path)
            ).rowcount
        if done != 1:
            raise StepFailed(f"run {run_id} is not in the database")
        return self.get(run_id)

    def release(self, run_id: str) -> None:
        """Forget a reservation that never started (its notebook name was taken on disk)."""
        with self.engine.begin() as conn:
            conn.execute(delete(s.runs).where(s.runs.c.id == run_id, s.runs.c.outcome.is_(None)))

    def get(self, run_id: str) -> RunRecord:
        with self.engine.connect() as conn:
            row = conn.execute(select(s.runs).where(s.runs.c.id == run_id)).first()
        if row is None:
            raise StepFailed(f"run {run_id} is not in the database")
        return _record(row)

    def find(
        self,
        *,
        step: str | None = None,
        model: str | None = None,
        env: str | None = None,
        outcome: str | None = None,
    ) -> list[RunRecord]:
        """Runs matching every given filter, oldest first."""
        stmt = select(s.runs)
        for column, value in (("step", step), ("model", model), ("env", env), ("outcome", outcome)):
            if value is not None:
                stmt = stmt.where(s.runs.c[column] == value)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt.order_by(s.runs.c.started_at, s.runs.c.id)).all()
        return [_record(r) for r in rows]


def _record(row: Any) -> RunRecord:
    m = row._mapping
    return RunRecord(**{k: m.get(k) for k in RunRecord.__dataclass_fields__})
