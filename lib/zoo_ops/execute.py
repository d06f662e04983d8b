"""Execute a runbook with papermill into the audit trail (`zoo-ops run`).

Parameters given as text (``-p NAME VALUE``) are converted to the type the step's
parameter schema declares (:mod:`zoo_ops.steps.parameters`, which the runbook's
``parameters`` cell follows); an unknown name or an unconvertible value is refused
before anything runs. The values' rules are checked in the runbook's first cell. The kernel is the ``zoo-ops`` kernelspec, whose ``python`` is
the interpreter running this code, so a user's own ``python3`` kernelspec pointing at
another interpreter does not matter.
"""

from __future__ import annotations

import errno
import getpass
import os
import signal
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from zoo_ops import errors, lifecycle
from zoo_ops.adapters import known_secrets
from zoo_ops.adapters.paths import resolve_inside
from zoo_ops.adapters.platform.runs import (
    CRASHED,
    FAILED,
    INTERRUPTED,
    REFUSED,
    SUCCEEDED,
    NotebookPathTaken,
    RunRecord,
    RunStore,
)
from zoo_ops.adapters.processes import pid_alive
from zoo_ops.config import EnvironmentConfig, load_environment
from zoo_ops.domain.names import check_name
from zoo_ops.domain.redaction import redact_parameters
from zoo_ops.environment import Environment
from zoo_ops.errors import BadInput, NotFound, TrailUnwritable
from zoo_ops.files import write_atomic
from zoo_ops.kernel import KERNEL_MANAGER_CLASS, ensure_kernel
from zoo_ops.services.attached import require_attached
from zoo_ops.steps.parameters import convert_texts
from zoo_ops.trail import canonical_step
from zoo_ops.trail.notebook import read_notebook_scraps
from zoo_ops.trail.space import check_trail_writable
from zoo_ops.trail.stores import TrailStoreError, join_url, store_for

RUNBOOKS_ENV = "ZOO_OPS_RUNBOOKS"
PARTIAL_SUFFIX = ".partial"
RESERVE_ATTEMPTS = 600  # one a second: ten minutes of runs of one step started at once
# `zoo-ops run` ends 128 + the signal's number when a signal stopped the run.
SIGNAL_EXIT: dict[int, int] = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}
# A kernel asked to stop that has not ended this long after the signal is killed: a stop
# is a promise to the operator, kept even when a write stalls or the machine is loaded.
# Past the 1.5 s after which a cell with no safe point is interrupted; a batch in flight
# rolls back, and the run is recorded interrupted here when the kernel could not.
STOP_GRACE_S = 2.0
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO}


@dataclass(frozen=True)
class Execution:
    """What came of running one runbook: where it is kept, and how it ended."""

    path: Path
    outcome: str  # succeeded | failed | dry_run | refused | interrupted | crashed | trail-unsaved
    exit_code: int
    error: str | None
    run_id: str | None = None
    url: str | None = None  # on a remote trail: where the notebook is (path: its spool copy)

    @property
    def location(self) -> str:
        """Where the executed notebook is kept: its URL on a remote trail, else its path."""
        return self.url or str(self.path)


def runbooks_dir(root: Path | None = None) -> Path:
    """`$ZOO_OPS_RUNBOOKS`, else `runbooks/` beside the config, else the source checkout's."""
    candidates = [
        Path(os.environ[RUNBOOKS_ENV]) if os.environ.get(RUNBOOKS_ENV) else None,
        (root / "runbooks") if root else None,
        Path(__file__).resolve().parents[2] / "runbooks",
    ]
    for candidate in candidates:
        if candidate is not None and candidate.is_dir():
            return candidate
    raise NotFound(f"no runbooks folder found; set {RUNBOOKS_ENV} to the repository's runbooks/")


def runbook_path(step: str, root: Path | None = None) -> Path:
    path = runbooks_dir(root) / f"{canonical_step(step)}.ipynb"
    if not path.exists():
        raise NotFound(f"{path}: runbook missing; check {RUNBOOKS_ENV} or the checkout")
    return path


def convert_parameters(step: str, given: dict[str, Any]) -> dict[str, Any]:
    """``-p NAME VALUE`` texts as the types ``step``'s parameter schema declares."""
    return convert_texts(canonical_step(step), given)


@contextmanager
def _environ(name: str, value: str) -> Any:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def exit_code_for(ename: str | None) -> int:
    """A runbook failed with exception class ``ename``: 2 for bad input, else 1."""
    cls = getattr(errors, ename or "", None)
    if isinstance(cls, type) and issubclass(cls, errors.ZooOpsError):
        return cls.exit_code
    return 1


@contextmanager
def _environs(values: dict[str, str]) -> Iterator[None]:
    with _environ_all(list(values.items())):
        yield


@contextmanager
def _environ_all(items: list[tuple[str, str]]) -> Iterator[None]:
    if not items:
        yield
        return
    (name, value), rest = items[0], items[1:]
    with _environ(name, value), _environ_all(rest):
        yield


def execute_runbook(
    step: str,
    *,
    model: str,
    env: str = "local",
    parameters: dict[str, Any] | None = None,
    progress: bool = False,
    cwd: Path | None = None,
    handle_signals: bool = False,
) -> Execution:
    """Run STEP for MODEL in ENV into `executed/ENV/MODEL/STAMP-STEP.ipynb`.

    Before a kernel starts, the run's row is reserved in the runs table with the
    notebook's path (unique: a second run in the same second takes the next second's
    name) and the trail folder is proved writable; a trail that is not is refused (exit 2,
    the row ``refused``, nothing else changed). papermill writes the notebook to a hidden
    ``.NAME.partial`` beside it, renamed into place at the end, also after a failure.

    On a remote trail (``executed_root = "s3://BUCKET/PREFIX"``) the bucket is first
    proved writable (unreachable: refused, exit 2, no row, nothing changed); the row holds
    the notebook's URL, papermill writes to a spool file under the environment's state
    folder, and the finished notebook goes to the bucket in one PUT, read back. When that
    write fails the run is ``trail-unsaved`` (exit 1) and the spool copy is kept for
    ``zoo-ops trail recover``.

    ``handle_signals`` (the CLI): SIGINT, SIGTERM and SIGHUP ask the kernel to stop at a
    safe point, the notebook is saved with the run ``interrupted`` and the exit code is
    130, 143 or 129; the same signal again kills the kernel, and so does a kernel not
    ended :data:`STOP_GRACE_S` after the first.
    """
    # Names first: the run's row and notebook path are reserved from them before the
    # kernel starts, so a name that could leave executed/ must stop here.
    step = canonical_step(step)
    if not isinstance(model, str) or not model:
        raise BadInput("a model is required; pass -m MODEL")
    check_name("model", model)
    check_name("environment", env)
    cfg = load_environment(env)
    notebook = runbook_path(step, cfg.root)
    given = dict(parameters or {})
    for reserved in ("model", "env"):
        if reserved in given:
            raise BadInput(f"pass {reserved} with its own option, not -p {reserved}")
    params = {"model": model, "env": env, **convert_parameters(step, given)}
    environment = Environment(cfg)
    try:
        return _execute(
            environment,
            notebook,
            step,
            params,
            progress=progress,
            cwd=cwd,
            handle_signals=handle_signals,
        )
    finally:
        environment.dispose()


def _execute(
    environment: Environment,
    notebook: Path,
    step: str,
    params: dict[str, Any],
    *,
    progress: bool,
    cwd: Path | None,
    handle_signals: bool,
) -> Execution:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    # Never creates tables: the platform's come from the platform (or the demo), zoo-ops's
    # own from `zoo-ops init -e ENV`.
    require_attached(environment)
    kernel = ensure_kernel()
    runs = environment.runs
    remote = environment.config.executed_root_url
    url: str | None = None
    if remote is not None:
        # Proved before the row is reserved and before the kernel starts: a run that
        # cannot reach the bucket changes nothing, not even the runs table.
        store_for(remote).probe(remote)
        record, out, partial, url = _reserve_remote(runs, environment.config, step, params)
    else:
        record, out, partial = _reserve(runs, environment.config.executed_root_path, step, params)

    stop_file = Path(tempfile.gettempdir()) / f"zoo-ops-stop-{record.id}"
    stopper = _Stopper(record.id, stop_file)
    variables = {
        lifecycle.EXECUTED_PATH_ENV: url or str(out),
        lifecycle.RUN_ID_ENV: record.id,
        lifecycle.STOP_FILE_ENV: str(stop_file),
    }
    error: str | None = None
    ename: str | None = None
    code = 0
    write_error: OSError | None = None
    failure: BaseException | None = None
    try:
        with _environs(variables), stopper.signals(handle_signals), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"The specified file .* does not end in")
            try:
                papermill.execute_notebook(
                    str(notebook),
                    str(partial),
                    parameters=params,
                    kernel_name=kernel,
                    kernel_manager_class=KERNEL_MANAGER_CLASS,
                    progress_bar=progress,
                    cwd=str(cwd or Path.cwd()),
                    # The run is recorded when its last cell ends (and a stopped run when
                    # its cell fails): nothing is left for a graceful shutdown to do, and
                    # a kernel that must go should be gone at once.
                    shutdown_kernel="immediate",
                    # A progress bar's redraws (carriage returns) become its last line.
                    coalesce_streams=True,
                )
            except PapermillExecutionError as exc:
                ename = exc.ename
                error = f"{exc.ename}: {exc.evalue}"
                code = exit_code_for(exc.ename)
            except OSError as exc:
                if exc.errno not in _WRITE_ERRNOS:
                    raise
                write_error = exc
    except Exception as exc:  # noqa: BLE001 - the kernel died, or papermill broke
        failure = exc
    except BaseException:
        # KeyboardInterrupt (a library caller without handle_signals): keep the record.
        _save(partial, out, keep_unreadable=False)
        runs.close_if_open(record.id, outcome=INTERRUPTED, error="interrupted in zoo-ops run")
        raise
    finally:
        stop_file.unlink(missing_ok=True)
        stopper.cleanup()

    save_error = _save(partial, out, keep_unreadable=write_error is not None)
    run = _run_scrap(out)
    unsaved = write_error or save_error
    if unsaved is not None:
        reason = f"the notebook {out} could not be written ({unsaved.strerror or unsaved})"
        runs.mark_trail_unsaved(record.id, known_secrets.redact(reason))
        return Execution(
            path=out, outcome="trail-unsaved", exit_code=1, error=reason, run_id=record.id
        )

    current = runs.get(record.id)
    if current.outcome is None:
        fallback, why = _fallback_outcome(stopper, failure, ename, error, code)
        runs.close_if_open(
            record.id, outcome=fallback, error=known_secrets.redact(why or "") or None
        )
        current = runs.get(record.id)
    outcome = str(current.outcome or run.get("outcome") or FAILED)
    if failure is not None:
        error = current.error or f"{type(failure).__name__}: {failure}"
        code = 1
    elif error is None and outcome in (FAILED, REFUSED):
        code = int(run.get("exit_code") or (2 if outcome == REFUSED else 1))
        error = str(run.get("error") or current.error)
    if stopper.signum is not None and outcome != SUCCEEDED:
        code = SIGNAL_EXIT[stopper.signum]
        error = error or current.error or f"stopped by {signal.Signals(stopper.signum).name}"
    elif outcome == INTERRUPTED and code == 0:
        code = errors.Interrupted.exit_code
    if not run:
        _record_run_scrap(out, runs.get(record.id), code)
    if url is not None:
        upload_error = _upload(out, url)
        if upload_error is not None:
            reason = f"the notebook {url} could not be written ({upload_error}); kept at {out}"
            runs.mark_trail_unsaved(record.id, known_secrets.redact(reason))
            return Execution(
                path=out,
                outcome="trail-unsaved",
                exit_code=1,
                error=known_secrets.redact(reason),
                run_id=record.id,
                url=url,
            )
    return Execution(
        url=url,
        path=out,
        outcome=outcome,
        exit_code=code,
        error=error and known_secrets.redact(error),
        run_id=record.id,
    )


def _fallback_outcome(
    stopper: _Stopper,
    failure: BaseException | None,
    ename: str | None,
    error: str | None,
    code: int,
) -> tuple[str, str | None]:
    """The outcome of a run its kernel did not close (it died, or refused before adopting)."""
    if stopper.signum is not None:
        name = signal.Signals(stopper.signum).name
        return INTERRUPTED, error or f"stopped by {name} to zoo-ops run"
    if ename in ("Interrupted", "KeyboardInterrupt"):
        return INTERRUPTED, error
    if failure is not None:
        return CRASHED, f"kernel died ({type(failure).__name__}: {failure})"
    if error is not None:
        return (REFUSED if code == BadInput.exit_code else FAILED), error
    return FAILED, "the runbook recorded no outcome (did it call zoo_ops.runbook.start?)"


def _reserve_row(runs: RunStore, step: str, params: dict[str, Any], notebook: str) -> RunRecord:
    """The run's row, holding ``notebook`` (raises NotebookPathTaken when another run has
    it); parameters recorded redacted, the operator the OS user when not given."""
    operator = str(params.get("operator") or "") or getpass.getuser()
    return runs.reserve(
        step=step,
        model=str(params["model"]),
        env=str(params["env"]),
        operator=operator,
        dry_run=params.get("dry_run") is True,
        parameters=redact_parameters({**params, "operator": operator}),
        gate_override_reason=str(params.get("gate_override_reason") or ""),
        notebook_path=notebook,
    )


def _reserve(
    runs: RunStore, root: Path, step: str, params: dict[str, Any]
) -> tuple[RunRecord, Path, Path]:
    """Reserve a run row and its notebook name (atomically: a unique path in the runs
    table, and an exclusive create of its partial file); prove the trail writable."""
    from zoo_ops.trail import executed_path, notebook_names

    env, model = str(params["env"]), str(params["model"])
    # The folder a name gives, followed through links: a link inside the trail
    # (executed/ENV -> /etc) must not take the notebook out of it. Checked before the row.
    resolve_inside(root, executed_path(root, env, model, step).parent)
    for out in notebook_names(root, env, model, step, attempts=RESERVE_ATTEMPTS):
        try:
            record = _reserve_row(runs, step, params, str(out))
        except NotebookPathTaken:
            continue
        partial = partial_path(out)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            runs.release(record.id)  # another database's run holds this name on disk
            continue
        except OSError as exc:
            _refuse(
                runs,
                record,
                TrailUnwritable(
                    f"the trail folder {out.parent} is not writable ({exc.strerror or exc}); "
                    "fix its permissions or space, then rerun"
                ),
            )
        if out.exists():  # finished under this name meanwhile, by a run of another database
            partial.unlink(missing_ok=True)
            runs.release(record.id)
            continue
        try:
            check_trail_writable(out.parent)
        except TrailUnwritable as err:
            partial.unlink(missing_ok=True)
            _refuse(runs, record, err)
        return record, out, partial
    raise errors.ConflictError(
        f"no free notebook name under {root / env / model} for {step}; retry in a minute"
    )


def _reserve_remote(
    runs: RunStore, config: EnvironmentConfig, step: str, params: dict[str, Any]
) -> tuple[RunRecord, Path, Path, str]:
    """Reserve a run row holding the notebook's URL on the remote trail (unique in the
    runs table; a name another database's run already wrote in the bucket is skipped),
    and its spool file under the environment's state folder, where papermill writes."""
    from zoo_ops.trail import notebook_names

    remote = str(config.executed_root_url)
    store = store_for(remote)
    spool_root = config.trail_spool_path
    env, model = str(params["env"]), str(params["model"])
    for out in notebook_names(spool_root, env, model, step, attempts=RESERVE_ATTEMPTS):
        url = join_url(remote, env, model, out.name)
        try:
            record = _reserve_row(runs, step, params, url)
        except NotebookPathTaken:
            continue
        partial = partial_path(out)
        try:
            if store.stat(url) is not None:
                runs.release(record.id)  # written by a run of another database
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            runs.release(record.id)
            continue
        except OSError as exc:
            _refuse(
                runs,
                record,
                TrailUnwritable(
                    f"the trail spool {out.parent} or the trail {remote} cannot be used "
                    f"({exc.strerror or exc}); fix it, then rerun"
                ),
            )
        return record, out, partial, url
    raise errors.ConflictError(
        f"no free notebook name under {join_url(remote, env, model)} for {step}; retry later"
    )


def _upload(spool: Path, url: str) -> str | None:
    """Write the finished notebook ``spool`` to ``url`` in one PUT and read it back (size);
    the spool copy is removed once the bucket has it. None, or why it could not be written
    (the spool copy is then kept for ``zoo-ops trail recover``)."""
    try:
        data = spool.read_bytes()
    except OSError as exc:
        return f"its spool copy is unreadable: {exc.strerror or exc}"
    try:
        store_for(url).put_bytes(url, data)
    except (TrailStoreError, OSError) as exc:
        return str(exc)
    spool.unlink(missing_ok=True)
    return None


def _record_run_scrap(out: Path, record: RunRecord, exit_code: int) -> None:
    """Give a notebook whose kernel ended before it glued ``run`` (the kernel died, or the
    first cell failed before the run began) its ``run`` scrap from the runs table, in a
    last cell that says so: every notebook in the trail names its run. An unreadable or
    missing notebook is left as it is (status reports it); so is one we cannot rewrite."""
    import nbformat

    from zoo_ops.runbook import run_scrap_of, scrap_output

    try:
        nb = nbformat.reads(out.read_text(encoding="utf-8"), as_version=4)
    except Exception:  # noqa: BLE001 - missing or unreadable: nothing to complete
        return
    note = nbformat.v4.new_markdown_cell(
        f"**Recorded by `zoo-ops run` after the kernel ended.** The run ended "
        f"**{record.outcome}** before its runbook recorded it; the `run` scrap below is "
        "its row in the runs table."
    )
    cell = nbformat.v4.new_code_cell("# the run's row in the runs table, recorded by zoo-ops run")
    scrap = {**run_scrap_of(record, exit_code=exit_code), "recorded_by": "zoo-ops run"}
    cell.outputs = [scrap_output("run", scrap)]
    nb.cells.extend([note, cell])
    try:
        write_atomic(out, nbformat.writes(nb))
    except OSError:
        pass


def partial_path(out: Path) -> Path:
    """Where papermill writes ``out`` while the run lasts: hidden, not a trail name."""
    return out.with_name(f".{out.name}{PARTIAL_SUFFIX}")


def _refuse(runs: RunStore, record: RunRecord, err: errors.ZooOpsError) -> None:
    runs.finish(record.id, outcome=REFUSED, truss_hash=None, error=known_secrets.redact(str(err)))
    raise err


def _save(partial: Path, out: Path, *, keep_unreadable: bool) -> OSError | None:
    """Rename the partial notebook into place; an empty one (the kernel never started)
    is removed, and with ``keep_unreadable`` a truncated one stays hidden as evidence."""
    try:
        if not partial.exists():
            return None
        if partial.stat().st_size == 0:
            partial.unlink()
            return None
        if keep_unreadable:
            try:
                read_notebook_scraps(partial.read_bytes(), ())
            except Exception:  # noqa: BLE001 - unreadable: leave it beside, hidden
                return None
        os.replace(partial, out)
    except OSError as exc:
        return exc
    return None


class _Stopper:
    """SIGINT, SIGTERM, SIGHUP in `zoo-ops run`: ask the kernel to stop; again, or no end
    :data:`STOP_GRACE_S` later: kill it."""

    def __init__(self, run_id: str, stop_file: Path) -> None:
        self.run_id = run_id
        self.stop_file = stop_file
        self.signum: int | None = None
        self.killed: list[int] = []
        self.deadline: threading.Timer | None = None

    @contextmanager
    def signals(self, enabled: bool) -> Iterator[None]:
        if not enabled or threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {signum: signal.signal(signum, self._on_signal) for signum in SIGNAL_EXIT}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
            self.request_stop(f"{signal.Signals(signum).name} to zoo-ops run")
            # A thread, not the main one: papermill's write or wait must not delay it.
            self.deadline = threading.Timer(STOP_GRACE_S, self.kill_kernel)
            self.deadline.daemon = True
            self.deadline.start()
        elif signum == self.signum:
            self.kill_kernel()

    def request_stop(self, reason: str) -> None:
        """Ask the kernel to stop at its next safe point (it polls this file)."""
        with suppress(OSError):
            staging = self.stop_file.with_name(self.stop_file.name + ".tmp")
            staging.write_text(reason + "\n", encoding="utf-8")
            os.replace(staging, self.stop_file)

    def kill_kernel(self) -> None:
        for pid in kernel_pids(self.run_id, parent=os.getpid()):
            with suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                self.killed.append(pid)

    def cleanup(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        with suppress(OSError):
            self.stop_file.with_name(self.stop_file.name + ".tmp").unlink(missing_ok=True)


def kernel_pids(run_id: str, *, parent: int | None = None) -> list[int]:
    """Live processes whose environment names ``run_id`` (the run's kernel), optionally
    only the children of ``parent``; by a scan of /proc, on this host."""
    marker = f"{lifecycle.RUN_ID_ENV}={run_id}".encode()
    found = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            if marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            if parent is not None:
                stat = (entry / "stat").read_text(errors="replace")
                if int(stat.rsplit(")", 1)[1].split()[1]) != parent:
                    continue
        except (OSError, ValueError, IndexError):
            continue
        if pid != os.getpid() and pid_alive(pid):
            found.append(pid)
    return found


def _run_scrap(path: Path) -> dict[str, Any]:
    """The ``run`` scrap, read as JSON (no scrapbook: it would decode every table scrap
    through pyarrow's dataset scanner, whose threads can abort the exiting CLI)."""
    try:
        scraps, _, _ = read_notebook_scraps(path.read_bytes(), {"run"})
    except Exception:  # noqa: BLE001 - missing or unreadable: the database has the outcome
        return {}
    run = scraps.get("run")
    return run if isinstance(run, dict) else {}
