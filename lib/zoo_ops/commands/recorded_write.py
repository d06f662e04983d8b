"""The rules every mutating command obeys, as the runbooks do (DESIGN §8).

``zoo-ops whitelist set/remove/edit`` and ``zoo-ops automation reconcile`` change an
environment outside a runbook; each goes through this module, in this order:

1. **confirm** (:func:`check_confirm`): on a ``protected`` environment a write needs
   ``--confirm ENV`` equal to the environment's name; a dry run needs none. Refused
   before anything is read or written, like a runbook's ``confirm`` (not recorded, as a
   runbook refused for ``confirm`` is not). ``zoo-ops trail recover``, which writes the
   runs table and the trail of a past run, obeys this rule too.
2. **record** (:func:`recorded`): a row in the runs table (started before the write,
   finished after it: ``succeeded``, ``dry_run``, ``refused`` for bad input and closed
   gates, ``failed``) and a notebook in the trail,
   ``executed/ENV/MODEL/YYYYmmddTHHMMSSZ-STEP.ipynb`` with STEP one of
   :data:`~zoo_ops.domain.names.COMMAND_STEPS`, holding the command's tables and a ``run``
   scrap as a runbook's, so ``status``, ``history`` and ``report`` show it. A command step
   is never a runbook step: the gate and ``rollout`` never count it.
3. **gate** (:func:`gate_write`): on an environment with ``requires``, the staging gate of
   :func:`zoo_ops.services.gate.check_gate` for the runbook step whose effect the write
   has (``01_copy`` for ``copy: true``, ``03_migrate`` for ``copy: false``) and the hash
   of ``truss_root/MODEL`` (the content the automation deploys); ``--gate-override-reason``
   is the one way past, recorded in the run.

An environment whose database has no zoo-ops runs table (a local settings file before
``zoo-ops demo``) cannot record: the write goes ahead unrecorded, and says so, only when
the environment is neither protected nor ``requires`` another; otherwise it is refused.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from zoo_ops.adapters import known_secrets
from zoo_ops.adapters.platform import schema as s
from zoo_ops.adapters.platform.engine import database_missing
from zoo_ops.adapters.platform.runs import DRY_RUN, SUCCEEDED, NotebookPathTaken, RunRecord
from zoo_ops.adapters.truss_files import truss_content_hash
from zoo_ops.domain.redaction import redact_parameters
from zoo_ops.environment import Environment
from zoo_ops.errors import BadInput, ConflictError, GateClosed, StepFailed, ZooOpsError
from zoo_ops.files import write_atomic
from zoo_ops.runbook import outcome_for, run_scrap_of, scrap_output
from zoo_ops.services.gate import GateResult, check_gate
from zoo_ops.trail import executed_path, notebook_names
from zoo_ops.trail.mirror import url_of
from zoo_ops.trail.space import check_trail_writable
from zoo_ops.trail.stores import store_for
from zoo_ops.trail.written import iso, notebook_text, table_output, written_notebook

_RESERVE_ATTEMPTS = 60


def check_confirm(
    env: Environment,
    confirm: str | None,
    *,
    dry_run: bool,
    command: str,
    can_dry_run: bool = True,
) -> None:
    """Refuse a write on a protected environment unless ``confirm`` is its name
    (``can_dry_run``: the command has a ``--dry-run`` that the refusal may suggest)."""
    if env.config.protected and not dry_run and (confirm or "") != env.name:
        look = " (or --dry-run to look first)" if can_dry_run else ""
        raise GateClosed(
            f"environment {env.name!r} is protected: pass --confirm {env.name} to "
            f"{command}{look}; nothing changed"
        )


def can_record(env: Environment) -> bool:
    """Whether the environment's database has zoo-ops's runs table (any error: no).

    A SQLite file that does not exist is not created to find out (the answer is no).
    """
    if database_missing(env.config.database_url_resolved):
        return False
    try:
        return env.platform.has_table(s.runs.name)
    except Exception:  # noqa: BLE001 - an unreachable or absent database cannot record
        return False


@dataclass
class Recording:
    """One recorded command run: what it showed (tables), its scraps and truss hash."""

    env: Environment
    step: str
    model: str
    dry_run: bool
    record: RunRecord | None  # None: not recorded (see the module doc)
    path: Path | None
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    scraps: dict[str, Any] = field(default_factory=dict)
    truss_hash: str | None = None
    closed: RunRecord | None = None

    @property
    def recorded(self) -> bool:
        return self.record is not None

    def show(self, title: str, frame: pd.DataFrame) -> None:
        """Keep ``frame`` for the trail notebook (titled ``title``)."""
        self.tables.append((title, frame))

    def note(self) -> str:
        """One line saying where the run is recorded (or that it is not)."""
        if self.record is None:
            return (
                f"not recorded: {self.env.name}'s database has no zoo-ops runs table "
                "(`zoo-ops demo` or `zoo-ops init` creates it)"
            )
        return f"recorded as run {self.record.id}: {self.path}"


def _operator() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name (a container): still recorded
        return "unknown"


@contextmanager
def recorded(
    env: Environment,
    *,
    step: str,
    model: str,
    dry_run: bool,
    parameters: dict[str, Any],
    gate_override_reason: str = "",
) -> Iterator[Recording]:
    """Record the body as a run of command ``step`` for ``model`` (module doc, rule 2).

    The row is started (and the trail folder proved writable) before the body runs; the
    body's ZooOpsError closes it ``refused`` (bad input, a closed gate) or ``failed``,
    any other exception ``failed``, then propagates. The notebook is written last; when
    it cannot be, the run is marked ``trail-unsaved`` and StepFailed says so.
    """
    recording = start_recording(
        env,
        step=step,
        model=model,
        dry_run=dry_run,
        parameters=parameters,
        gate_override_reason=gate_override_reason,
    )
    try:
        yield recording
    except BaseException as exc:
        close_recording(recording, exc)
        raise
    close_recording(recording, None)


def start_recording(
    env: Environment,
    *,
    step: str,
    model: str,
    dry_run: bool,
    parameters: dict[str, Any],
    gate_override_reason: str = "",
) -> Recording:
    """Start the run row of command ``step`` (see :func:`recorded`); close it with
    :func:`close_recording`. Refuses (BadInput, nothing written) where a write must be
    recorded and cannot be."""
    if not can_record(env):
        if env.config.protected or env.config.requires:
            raise BadInput(
                f"environment {env.name!r} has no zoo-ops runs table, so this write cannot be "
                f"recorded; run `zoo-ops init -e {env.name}` first; nothing changed"
            )
        return Recording(env, step, model, dry_run, None, None)
    root = env.config.executed_root_path
    remote = env.config.executed_root_url
    if remote is not None:
        store_for(remote).probe(remote)  # a remote trail: written to the cache, then PUT
    else:
        check_trail_writable(executed_path(root, env.name, model, step).parent)
    for path in notebook_names(root, env.name, model, step, attempts=_RESERVE_ATTEMPTS):
        try:
            record = env.runs.reserve(
                step=step,
                model=model,
                env=env.name,
                operator=_operator(),
                dry_run=dry_run,
                parameters=redact_parameters(parameters),
                gate_override_reason=gate_override_reason,
                notebook_path=url_of(remote, path) if remote else str(path),
            )
        except NotebookPathTaken:
            continue  # two commands in one second: the later one is named a second on
        return Recording(env, step, model, dry_run, record, path)
    raise ConflictError(
        f"no free notebook name under {root / env.name / model} for {step}; retry in a minute"
    )


def close_recording(recording: Recording, error: BaseException | None) -> None:
    """Close the run: ``error`` None is ``succeeded`` (``dry_run`` for a dry run), else
    :func:`zoo_ops.runbook.outcome_for` (refused for bad input, failed otherwise)."""
    if recording.record is None or recording.closed is not None:
        return
    if error is None:
        _close(recording, DRY_RUN if recording.dry_run else SUCCEEDED, None)
    else:
        _close(recording, outcome_for(error), error)


def _close(recording: Recording, outcome: str, error: BaseException | None) -> None:
    """Finish the run row, then write its notebook (trail-unsaved when that fails)."""
    assert recording.record is not None
    runs = recording.env.runs
    message = None if error is None else known_secrets.redact(str(error) or type(error).__name__)
    closed = runs.finish(
        recording.record.id, outcome=outcome, truss_hash=recording.truss_hash, error=message
    )
    recording.closed = closed
    exit_code = 0
    if isinstance(error, ZooOpsError):
        exit_code = error.exit_code
    elif error is not None:
        exit_code = 1
    assert recording.path is not None
    try:
        _write_notebook(recording, closed, run_scrap_of(closed, exit_code=exit_code))
    except OSError as exc:
        runs.mark_trail_unsaved(closed.id, f"the trail notebook could not be written: {exc}")
        if error is None:
            raise StepFailed(
                f"run {closed.id} is recorded in the database but its notebook {recording.path} "
                f"could not be written ({exc.strerror or exc}); `zoo-ops trail recover` it"
            ) from exc


def gate_write(
    recording: Recording,
    *,
    gated_step: str,
    override_reason: str,
) -> GateResult | None:
    """The staging gate for a write with the effect of runbook ``gated_step`` (rule 3).

    None where the environment requires no other (nothing hashed). Otherwise hashes
    ``truss_root/MODEL``, keeps the gate's table and the hash on the recording, and
    raises GateClosed (refused, nothing changed) when the gate is closed.
    """
    env = recording.env
    if not env.config.requires:
        return None
    truss_hash = truss_content_hash(env.config.truss_path(recording.model), cache=env.hash_cache)
    recording.truss_hash = truss_hash
    result = check_gate(
        env,
        step=gated_step,
        model=recording.model,
        truss_hash=truss_hash,
        override_reason=override_reason,
        dry_run=recording.dry_run,
    )
    recording.show(f"staging gate ({gated_step})", result.to_frame())
    recording.scraps["truss_hash"] = truss_hash
    why = result.failure()
    if why is not None:
        raise GateClosed(f"{why} (a command takes --gate-override-reason TEXT)")
    return result


@dataclass(frozen=True)
class GatedWrite:
    """One model's write that must pass the staging gate of ``step`` (the runbook step
    whose effect it has) for ``truss_hash``; ``parameters`` are recorded with a refusal."""

    model: str
    step: str
    truss_hash: str | None
    parameters: dict[str, Any]


def refuse_closed_gates(
    env: Environment,
    writes: list[GatedWrite],
    *,
    record_step: str,
    override_reason: str,
    refusal: str,
) -> None:
    """The staging gate of every write, where the environment ``requires`` another.

    Every closed gate is recorded as a refused run of ``record_step`` (its gate table
    shown), then one :class:`GateClosed` names them all: ``REFUSAL: MODEL: why; ...``.
    Called before anything is written, so a refusal changes nothing.
    """
    if not env.config.requires:
        return
    closed: list[str] = []
    for write in writes:
        gate = check_gate(
            env,
            step=write.step,
            model=write.model,
            truss_hash=write.truss_hash,
            override_reason=override_reason,
            dry_run=False,
        )
        why = gate.failure()
        if why is None:
            continue
        closed.append(f"{write.model}: {why}")
        refused = start_recording(
            env,
            step=record_step,
            model=write.model,
            dry_run=False,
            parameters=write.parameters,
            gate_override_reason=override_reason,
        )
        refused.truss_hash = write.truss_hash
        refused.show(f"staging gate ({write.step})", gate.to_frame())
        close_recording(refused, GateClosed(why))
    if closed:
        raise GateClosed(f"{refusal}: {'; '.join(closed)}")


# --- the trail notebook -------------------------------------------------------------------


def _write_notebook(recording: Recording, record: RunRecord, run: dict[str, Any]) -> None:
    """The command's record in notebook form: what ran, its tables, its scraps, ``run``.

    Written to a temporary file beside the path and renamed into place.
    """
    import nbformat

    assert recording.path is not None
    parameters = dict(record.parameters or {})
    intro = nbformat.v4.new_markdown_cell(
        f"# {record.step} of {record.model} in {record.env} (run `{record.id}`)\n\n"
        f"Recorded by the `zoo-ops` command line, not executed by papermill: the command's "
        f"parameters, what it showed, and its outcome **{record.outcome}**."
    )
    params_cell = nbformat.v4.new_code_cell("# the command's parameters")
    params_cell.outputs = [
        table_output(pd.DataFrame([{"parameter": k, "value": v} for k, v in parameters.items()]))
    ]
    cells = [intro, params_cell]
    for title, frame in recording.tables:
        cell = nbformat.v4.new_code_cell(f"# {title}")
        cell.outputs = [table_output(frame)]
        cells.append(cell)
    done = nbformat.v4.new_code_cell("# the run row, as the runs table holds it")
    done.outputs = [
        *(scrap_output(name, value) for name, value in recording.scraps.items()),
        table_output(pd.DataFrame([run])),
        scrap_output("run", run),
    ]
    cells.append(done)
    nb = written_notebook(
        cells,
        papermill={
            "parameters": parameters,
            "start_time": iso(record.started_at),
            "end_time": iso(record.finished_at),
            "exception": True if record.error else None,
        },
        zoo_ops={"command": record.step, "run_id": record.id},
    )
    path = recording.path
    write_atomic(path, notebook_text(nb))
    remote = recording.env.config.executed_root_url
    if remote is not None:
        # One PUT of the final bytes, read back; a failure is the caller's trail-unsaved.
        store_for(remote).put_bytes(url_of(remote, path), path.read_bytes())
