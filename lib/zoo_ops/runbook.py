"""The notebook side of a runbook: start a run, record scraps, finish it.

A runbook's cells stay one library call each; this module carries what every runbook
shares (DESIGN §5): validating the parameters against the step's schema
(:mod:`zoo_ops.steps.parameters`, so no cell lists them again), the protected-environment
confirmation, recording the run in the database and as the ``run`` scrap, and marking
the run failed when any cell raises -- through an IPython ``post_run_cell`` hook, so
no cell needs a ``try``.
"""

from __future__ import annotations

import getpass
import os
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from zoo_ops import __version__, lifecycle
from zoo_ops.adapters import known_secrets
from zoo_ops.adapters.platform.runs import (
    DRY_RUN,
    FAILED,
    INTERRUPTED,
    REFUSED,
    SUCCEEDED,
    RunRecord,
)
from zoo_ops.domain.redaction import redact_parameters
from zoo_ops.environment import Environment
from zoo_ops.errors import (
    BadInput,
    GateClosed,
    Interrupted,
    ZooOpsError,
)
from zoo_ops.services.attached import require_attached
from zoo_ops.steps.parameters import CommonParameters, parameters_of, validate_step
from zoo_ops.tables import show_tables_whole, table_html
from zoo_ops.trail import canonical_step
from zoo_ops.trail.space import check_trail_writable

EXECUTED_PATH_ENV = lifecycle.EXECUTED_PATH_ENV
PAPERMILL_OUTPUT_PATH = "PAPERMILL_OUTPUT_PATH"  # injected by papermill --inject-output-path
RUN_ID_ENV = lifecycle.RUN_ID_ENV
__all__ = ["DRY_RUN", "FAILED", "INTERRUPTED", "REFUSED", "SUCCEEDED"]


def outcome_for(error: BaseException | str | None) -> str:
    """A run that ended with ``error``: interrupted, refused (bad input: nothing changed
    by this cell) or failed."""
    if isinstance(error, Interrupted | KeyboardInterrupt):
        return INTERRUPTED
    if isinstance(error, BadInput):
        return REFUSED
    return FAILED


def _isoformat(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat(timespec="seconds")


@dataclass(repr=False)
class Run:
    """One execution of one runbook step for one model in one environment.

    ``params`` holds the step's validated parameters (an instance of its schema in
    :mod:`zoo_ops.steps.parameters`, e.g. ``run.params.batch_size``). Shown in a
    notebook, a run is the table of its parameters.
    """

    step: str
    model: str
    env: Environment
    dry_run: bool
    operator: str
    parameters: dict[str, Any]
    gate_override_reason: str
    record_: RunRecord
    params: CommonParameters  # the step's schema instance, e.g. MigrateParameters
    truss_hash: str | None = None
    gate_skipped: str = ""  # the links a gate override walked past
    finished: dict[str, Any] | None = None
    _hook: Any = field(default=None, repr=False)
    _lock: Any = field(default_factory=threading.Lock, repr=False)

    # --- showing ----------------------------------------------------------------------

    def parameters_frame(self) -> pd.DataFrame:
        """The run's parameters as a table (already redacted)."""
        return pd.DataFrame([{"parameter": k, "value": v} for k, v in self.parameters.items()])

    def _repr_html_(self) -> str:
        return table_html(self.parameters_frame())

    def __repr__(self) -> str:
        return f"{self.step} run {self.run_id}\n{self.parameters_frame().to_string(index=False)}"

    # --- recording ------------------------------------------------------------------

    def glue(self, name: str, value: Any) -> None:
        """Record one scrap in the executed notebook (no-op outside a kernel)."""
        glue(name, value)

    def record(self, result: Any) -> Any:
        """Glue every scrap a step result carries (``result.scraps()``) and return it.

        A result that names a truss hash sets the run's, so ``run`` tells which content
        this run acted on.
        """
        for name, value in result.scraps().items():
            self.glue(name, value)
        hash_ = getattr(result, "truss_hash", None)
        if hash_:
            self.truss_hash = hash_
        check = getattr(result, "raise_if_failed", None)
        if check is not None:
            try:
                check()
            except ZooOpsError:
                # The evidence (every guard, every link, its pictures) above the error.
                _show(result, *getattr(result, "pictures", list)())
                raise
        return result

    def check_gate(self, truss_hash: str | None) -> Any:
        """The step-order and staging-before-prod gate for this step and truss hash
        (:func:`zoo_ops.services.gate.check_gate`); raises when closed. An override is
        recorded with what it skipped (``gate_skipped`` in the ``run`` scrap)."""
        from zoo_ops.services.gate import check_gate

        if truss_hash:
            self.truss_hash = truss_hash
        result = check_gate(
            self.env,
            step=self.step,
            model=self.model,
            truss_hash=truss_hash,
            override_reason=self.gate_override_reason,
            dry_run=self.dry_run,
        )
        if result.verdict.overridden:
            self.gate_skipped = "; ".join(result.verdict.skipped)
        return self.record(result)

    @property
    def run_id(self) -> str:
        return self.record_.id

    @property
    def executed_path(self) -> Path | None:
        value = os.environ.get(EXECUTED_PATH_ENV)
        return Path(value) if value else None

    # --- the end --------------------------------------------------------------------

    def finish(self) -> pd.DataFrame:
        """Mark the run succeeded (or dry_run), glue ``run``, and show it as a table."""
        return self._close(DRY_RUN if self.dry_run else SUCCEEDED, None)

    def fail(self, error: BaseException | str) -> pd.DataFrame:
        """Close the run for ``error``: interrupted, refused or failed (:func:`outcome_for`)."""
        return self._close(outcome_for(error), error)

    def interrupt(self, reason: str, *, glue_scrap: bool = True) -> pd.DataFrame:
        return self._close(INTERRUPTED, reason, glue_scrap=glue_scrap)

    def _close(
        self, outcome: str, error: BaseException | str | None, *, glue_scrap: bool = True
    ) -> pd.DataFrame:
        with self._lock:
            return self._close_locked(outcome, error, glue_scrap)

    def _close_locked(
        self, outcome: str, error: BaseException | str | None, glue_scrap: bool
    ) -> pd.DataFrame:
        if self.finished is not None:
            return pd.DataFrame([self.finished])
        if glue_scrap:  # from the watchdog thread IPython's hooks are not ours to touch
            self._unhook()
        lifecycle.on_abandon(None)
        message = None if error is None else known_secrets.redact(str(error))
        record = self.env.runs.finish(
            self.record_.id, outcome=outcome, truss_hash=self.truss_hash, error=message
        )
        exit_code = 0
        if isinstance(error, ZooOpsError):
            exit_code = error.exit_code
        elif outcome == INTERRUPTED:
            exit_code = Interrupted.exit_code
        elif error is not None:
            exit_code = 1
        self.finished = run_scrap_of(record, exit_code=exit_code)
        if self.gate_skipped:
            self.finished["gate_skipped"] = self.gate_skipped
        if glue_scrap:
            self.glue("run", self.finished)
        return pd.DataFrame([self.finished])

    def _unhook(self) -> None:
        if self._hook is not None:
            ip = _ipython()
            if ip is not None:
                try:
                    ip.events.unregister("post_run_cell", self._hook)
                except ValueError:
                    pass
            self._hook = None


def scrap_encoding(value: Any) -> tuple[Any, str]:
    """(value, scrapbook encoder) for a scrap: tables as arrow-backed pandas scraps, strings
    as text (the json encoder would parse them), everything else as JSON. Scrapbook's
    schema has no null at the top level, so "no value" (a dry run's version id) is
    recorded as the empty string."""
    if value is None:
        return "", "text"
    if isinstance(value, pd.DataFrame):
        return value, "pandas"
    if isinstance(value, str):
        return value, "text"
    return value, "json"


def run_scrap_of(record: RunRecord, *, exit_code: int) -> dict[str, Any]:
    """The ``run`` scrap (DESIGN §5) of a closed run, from its row in the runs table."""
    return {
        "step": record.step,
        "model": record.model,
        "env": record.env,
        "operator": record.operator,
        "dry_run": bool(record.dry_run),
        "started_at": _isoformat(record.started_at),
        "finished_at": _isoformat(record.finished_at),
        "outcome": record.outcome,
        "truss_hash": record.truss_hash,
        "zoo_ops_version": __version__,
        "gate_override_reason": record.gate_override_reason or "",
        "run_id": record.id,
        "error": record.error,
        "exit_code": exit_code,
    }


def scrap_output(name: str, value: Any) -> Any:
    """One scrap as the display output ``scrapbook.glue`` makes (for a notebook written
    outside a kernel: `trail recover`, or `zoo-ops run` completing a run's record)."""
    import nbformat
    from scrapbook.encoders import registry
    from scrapbook.scraps import Scrap, scrap_to_payload

    value, encoder = scrap_encoding(value)
    payload = scrap_to_payload(registry.encode(Scrap(name, value, encoder)))
    return nbformat.v4.new_output(
        "display_data",
        data={f"application/scrapbook.scrap.{encoder}+json": payload},
        metadata={"scrapbook": {"name": name, "data": True, "display": False}},
    )


def glue(name: str, value: Any) -> None:
    try:
        import scrapbook as sb
    except ImportError:  # pragma: no cover - scrapbook is a dependency
        return
    if _ipython() is None:
        return
    value, encoder = scrap_encoding(value)
    sb.glue(name, value, encoder=encoder)


def _show(*results: Any) -> None:
    """Display ``results`` in the notebook (no-op outside a kernel)."""
    if _ipython() is None:
        return
    from IPython.display import display

    display(*results)


def _ipython() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return None
    return get_ipython()


def start(step: str, namespace: Mapping[str, Any] | None = None, /, **values: Any) -> Run:
    """Validate the step's parameters, check the protected-env confirmation, record the run.

    The values are read from ``namespace`` -- the notebook's ``globals()``, by default the
    IPython user namespace -- for exactly the names of the step's schema
    (:mod:`zoo_ops.steps.parameters`); keyword arguments override them. The run carries
    them validated and typed as ``run.params``, so no cell lists them again.

    Raises before anything is written when a parameter is wrong, the environment is
    unknown, its database has no platform tables, or a protected environment's mutating
    run lacks ``confirm``.
    """
    started = datetime.now(UTC)
    if namespace is None:
        ip = _ipython()
        namespace = ip.user_ns if ip is not None else {}
    given = _given(step, namespace, values)
    try:
        return _start(step, given, papermill_output=_papermill_output(namespace))
    except Exception as err:
        if getattr(err, "run_recorded", False):
            raise

        # Refused (or broken: an unreachable database) before a run existed: the notebook
        # still says so in its `run` scrap.
        def text(name: str, default: str = "") -> str:
            value = given.get(name, default)
            return value if isinstance(value, str) else repr(value)

        dry_run = given.get("dry_run", False)
        reason = given.get("gate_override_reason", "")
        glue(
            "run",
            {
                "step": step,
                "model": text("model"),
                "env": text("env", "local"),
                "operator": given.get("operator") if isinstance(given.get("operator"), str) else "",
                "dry_run": dry_run if isinstance(dry_run, bool) else None,
                "started_at": _isoformat(started),
                "finished_at": _isoformat(datetime.now(UTC)),
                "outcome": outcome_for(err),
                "truss_hash": None,
                "zoo_ops_version": __version__,
                "gate_override_reason": reason if isinstance(reason, str) else "",
                "run_id": os.environ.get(RUN_ID_ENV) or None,
                "error": known_secrets.redact(str(err)),
                "exit_code": err.exit_code if isinstance(err, ZooOpsError) else 1,
            },
        )
        raise


def _papermill_output(namespace: Mapping[str, Any]) -> str | None:
    """The output path papermill reports (``papermill --inject-output-path`` or
    ``--inject-paths`` injects ``PAPERMILL_OUTPUT_PATH``): a local path made absolute
    against the kernel's working directory, a URL (``s3://...``) as it is."""
    value = namespace.get(PAPERMILL_OUTPUT_PATH)
    if not isinstance(value, str) or not value.strip() or "\0" in value:
        return None
    return value if "://" in value else str(Path(value).absolute())


def _given(step: str, namespace: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The schema's names as the notebook has them (then ``values``); nothing else."""
    try:
        names = [p.name for p in parameters_of(canonical_step(step))]
    except ZooOpsError:
        names = []  # _start refuses the step by name
    given = {name: namespace[name] for name in names if name in namespace}
    given.update(values)
    return given


def _start(step: str, given: dict[str, Any], *, papermill_output: str | None = None) -> Run:
    step = canonical_step(step)
    params = validate_step(step, given)
    operator = params.operator or getpass.getuser()
    params = replace(params, operator=operator)

    environment = Environment.load(params.env)
    if environment.config.protected and not params.dry_run and params.confirm != environment.name:
        raise GateClosed(
            f"environment {environment.name!r} is protected: pass -p confirm {environment.name} "
            "to run a mutating step (or dry_run=True to look first)"
        )
    # Never creates tables: the platform's come from the platform (or the demo), zoo-ops's
    # own from `zoo-ops init -e ENV`.
    require_attached(environment)

    parameters = redact_parameters(asdict(params))
    notebook = os.environ.get(EXECUTED_PATH_ENV) or papermill_output
    reserved = os.environ.get(RUN_ID_ENV) or None
    if reserved:
        # `zoo-ops run` reserved the row (and proved the trail writable) before it
        # started this kernel: adopt it, with the validated parameters and our process.
        record = environment.runs.adopt(
            reserved,
            operator=operator,
            dry_run=params.dry_run,
            parameters=parameters,
            gate_override_reason=params.gate_override_reason,
        )
    else:
        trail = Path(notebook).parent if notebook else environment.config.executed_root_path
        check_trail_writable(trail)
        record = environment.runs.start(
            step=step,
            model=params.model,
            env=environment.name,
            operator=operator,
            dry_run=params.dry_run,
            parameters=parameters,
            gate_override_reason=params.gate_override_reason,
            notebook_path=notebook,
        )
    run = Run(
        step=step,
        model=params.model,
        env=environment,
        dry_run=params.dry_run,
        operator=operator,
        parameters=parameters,
        gate_override_reason=params.gate_override_reason,
        record_=record,
        params=params,
    )
    _hook_failures(run)
    show_tables_whole(_ipython())

    def abandon(reason: str) -> None:
        run.interrupt(reason, glue_scrap=False)

    lifecycle.on_abandon(abandon)
    if lifecycle.stop_requested():  # asked to stop before the run began: nothing changed
        try:
            lifecycle.check_stop()
        except Interrupted as err:
            run.interrupt(str(err))
            err.run_recorded = True  # type: ignore[attr-defined]
            raise
    return run


def _hook_failures(run: Run) -> None:
    """Close the run, and glue ``run``, when any later cell raises: interrupted for a stop
    (Interrupted, KeyboardInterrupt), refused for bad input, failed otherwise."""
    ip = _ipython()
    if ip is None:
        return

    def on_cell(result: Any) -> None:
        error = getattr(result, "error_in_exec", None) or getattr(result, "error_before_exec", None)
        if error is not None and run.finished is None:
            run.fail(error)

    ip.events.register("post_run_cell", on_cell)
    run._hook = on_cell


def parameters_frame(run: Run) -> pd.DataFrame:
    """The run's parameters as a table (already redacted)."""
    return run.parameters_frame()
