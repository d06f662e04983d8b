"""`zoo-ops run STEP -m MODEL [-e ENV] [-p NAME VALUE]...`: papermill into the trail.

``zoo-ops run STEP --help`` lists STEP's parameters (type, default, meaning) from the
step's schema in :mod:`zoo_ops.steps.parameters` -- the same schema that converts
``-p`` values here and validates them in the runbook.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from zoo_ops.cli.options import add_runbook_arguments, env_name, given_parameters

_PASSED_AS = {"model": "-m", "env": "-e"}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "run",
        help="execute a runbook into executed/ENV/MODEL/",
        description="Execute runbook STEP with papermill into executed/ENV/MODEL/.",
        epilog="`zoo-ops run STEP --help` also lists STEP's parameters.",
        add_help=False,
    )
    p.add_argument(
        "-h", "--help", action=_StepHelp, nargs=0, help="show this help (and STEP's parameters)"
    )
    add_runbook_arguments(p, "a runbook parameter, converted to its declared type")
    p.add_argument("--progress", action="store_true", help="show papermill's cell progress bar")
    p.set_defaults(handler=run_step)


class _StepHelp(argparse.Action):
    """``--help``; after a STEP (``run 03_migrate --help``) it lists the step's parameters."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        text = parser.format_help()
        step = getattr(namespace, "step", None)
        if step:
            text += "\n" + step_parameters_help(step) + "\n"
        sys.stdout.write(text)
        parser.exit()


def step_parameters_help(step: str) -> str:
    """STEP's parameters as a table: name, type, default, option (-m, -e or -p NAME VALUE), meaning."""
    from zoo_ops.cli.output import format_table
    from zoo_ops.errors import ZooOpsError
    from zoo_ops.steps.parameters import parameters_of
    from zoo_ops.trail import canonical_step

    try:
        step = canonical_step(step)
        declared = parameters_of(step)
    except ZooOpsError as err:
        return str(err)
    rows = [
        (
            p.name,
            p.type_name,
            json.dumps(p.default) if isinstance(p.default, str) else repr(p.default),
            _PASSED_AS.get(p.name, "-p"),
            p.help,
        )
        for p in sorted(declared, key=lambda p: p.common)  # the step's own first
    ]
    table = format_table(("parameter", "type", "default", "option", "meaning"), rows)
    return f"parameters of {step}:\n{table}"


def run_step(args: argparse.Namespace) -> int:
    from zoo_ops.execute import execute_runbook

    given = given_parameters(args)
    result = execute_runbook(
        args.step,
        model=args.model,
        env=env_name(args),
        parameters=given,
        progress=args.progress,
        handle_signals=True,  # SIGINT/SIGTERM/SIGHUP: stop at a safe point, exit 130/143/129
    )
    print(result.location)
    write_termination_message(result)
    if result.exit_code:
        sys.stderr.write(f"zoo-ops: error: {result.error} (see {result.location})\n")
    return result.exit_code


def write_termination_message(result: Any) -> None:
    """In a `zoo-ops submit` Job (``$ZOO_OPS_TERMINATION_LOG`` set): the run's result as
    the container's termination message, which `submit` reads from the pod's status."""
    import os
    from pathlib import Path

    from zoo_ops.domain.job_manifest import TERMINATION_LOG_ENV

    path = os.environ.get(TERMINATION_LOG_ENV)
    if not path:
        return
    message = {
        "run_id": result.run_id,
        "outcome": result.outcome,
        "exit_code": result.exit_code,
        "notebook": result.location,
    }
    try:
        Path(path).write_text(json.dumps(message))
    except OSError:  # the message is a convenience; the run and its trail are recorded
        pass
