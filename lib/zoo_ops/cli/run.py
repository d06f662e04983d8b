"""`zoo-ops run STEP -m MODEL [-e ENV] [-p NAME VALUE]...`: papermill into the trail."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("run", help="execute a runbook into executed/ENV/MODEL/")
    p.add_argument("step", help="01_copy, 02_verify, 03_migrate, 04_revert or 05_retire")
    p.add_argument("-m", "--model", required=True, help="model zoo model name, e.g. iris")
    p.add_argument("-e", "--env", default="local", help="environment (default local)")
    p.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a runbook parameter, converted to its declared type",
    )
    p.add_argument("--progress", action="store_true", help="show papermill's cell progress bar")
    p.set_defaults(handler=run_step)


def run_step(args: argparse.Namespace) -> int:
    from zoo_ops.errors import BadInput
    from zoo_ops.execute import execute_runbook

    given: dict[str, str] = {}
    for name, value in args.parameter:
        if name in given:
            raise BadInput(f"parameter {name} given twice; pass it once")
        given[name] = value
    result = execute_runbook(
        args.step, model=args.model, env=args.env, parameters=given, progress=args.progress
    )
    print(result.path)
    if result.exit_code:
        sys.stderr.write(f"zoo-ops: error: {result.error} (see {result.path})\n")
    return result.exit_code
