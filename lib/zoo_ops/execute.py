"""Execute a runbook with papermill into the audit trail (`zoo-ops run`).

Parameters given as text (``-p NAME VALUE``) are converted to the type the step's
parameter schema declares (:mod:`zoo_ops.steps.parameters`, which the runbook's
``parameters`` cell follows); an unknown name or an unconvertible value is refused
before anything runs. The values' rules are checked in the runbook's first cell. The kernel is the ``zoo-ops`` kernelspec, whose ``python`` is
the interpreter running this code, so a user's own ``python3`` kernelspec pointing at
another interpreter does not matter.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo_ops import errors
from zoo_ops.config import load_environment
from zoo_ops.errors import BadInput, NotFound
from zoo_ops.kernel import ensure_kernel
from zoo_ops.runbook import EXECUTED_PATH_ENV
from zoo_ops.steps.parameters import convert_texts
from zoo_ops.trail import canonical_step, executed_path, read_scraps

RUNBOOKS_ENV = "ZOO_OPS_RUNBOOKS"


@dataclass(frozen=True)
class Execution:
    """What came of running one runbook: where it is kept, and how it ended."""

    path: Path
    outcome: str  # succeeded | failed | dry_run
    exit_code: int
    error: str | None


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


def execute_runbook(
    step: str,
    *,
    model: str,
    env: str = "local",
    parameters: dict[str, Any] | None = None,
    progress: bool = False,
    cwd: Path | None = None,
) -> Execution:
    """Run STEP for MODEL in ENV into `executed/ENV/MODEL/STAMP-STEP.ipynb`."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    step = canonical_step(step)
    if not isinstance(model, str) or not model.strip():
        raise BadInput("a model is required; pass -m MODEL")
    cfg = load_environment(env)
    notebook = runbook_path(step, cfg.root)
    given = dict(parameters or {})
    for reserved in ("model", "env"):
        if reserved in given:
            raise BadInput(f"pass {reserved} with its own option, not -p {reserved}")
    params = {"model": model, "env": env, **convert_parameters(step, given)}
    out = executed_path(cfg.executed_root_path, env, model, step)
    out.parent.mkdir(parents=True, exist_ok=True)
    kernel = ensure_kernel()
    error: str | None = None
    code = 0
    with _environ(EXECUTED_PATH_ENV, str(out)):
        try:
            papermill.execute_notebook(
                str(notebook),
                str(out),
                parameters=params,
                kernel_name=kernel,
                progress_bar=progress,
                cwd=str(cwd or Path.cwd()),
            )
        except PapermillExecutionError as exc:
            error = f"{exc.ename}: {exc.evalue}"
            code = exit_code_for(exc.ename)
    run = _run_scrap(out)
    outcome = str(run.get("outcome") or ("failed" if error else "succeeded"))
    if error is None and outcome == "failed":
        code = int(run.get("exit_code") or 1)
        error = str(run.get("error"))
    return Execution(path=out, outcome=outcome, exit_code=code, error=error)


def _run_scrap(path: Path) -> dict[str, Any]:
    try:
        run = read_scraps(path).get("run")
    except errors.ZooOpsError:
        return {}
    return run if isinstance(run, dict) else {}
