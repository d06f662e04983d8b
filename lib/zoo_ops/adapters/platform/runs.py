"""RunStore: the `zoo_ops_run` table, one row per executed runbook."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine

from zoo_ops.adapters.platform import schema as s
from zoo_ops.adapters.platform.schema import utcnow
from zoo_ops.domain.ids import new_id
from zoo_ops.errors import StepFailed


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
    outcome: str | None
    error: str | None
    notebook_path: str | None


class RunStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def start(
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
        )
        with self.engine.begin() as conn:
            conn.execute(
                insert(s.runs).values(
                    id=record.id,
                    step=step,
                    model=model,
                    env=env,
                    operator=operator,
                    dry_run=dry_run,
                    parameters=parameters,
                    truss_hash=None,
                    gate_override_reason=record.gate_override_reason,
                    started_at=record.started_at,
                    notebook_path=notebook_path,
                )
            )
        return record

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
    return RunRecord(**{k: m[k] for k in RunRecord.__dataclass_fields__})
