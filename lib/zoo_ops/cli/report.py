"""`zoo-ops report [-o DIR] [-e ENV]...`: the static HTML audit report; prints index.html's path."""

from __future__ import annotations

import argparse
from pathlib import Path

from zoo_ops.cli.options import add_env_option, env_names


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "report",
        help="HTML audit report of the trail",
        description="The status matrix and every executed notebook rendered as HTML.",
    )
    p.add_argument(
        "-o",
        "--out",
        type=Path,
        default=None,
        help="output folder: new, empty or an earlier report's (default: report/ beside"
        " zoo_ops.toml)",
    )
    add_env_option(p, 1, repeatable=True)
    p.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace) -> int:
    from zoo_ops.cli.status import executed_roots
    from zoo_ops.commands.report import render_report
    from zoo_ops.commands.status import database_runs
    from zoo_ops.config import config_path, environment_names
    from zoo_ops.errors import StepFailed

    out = args.out if args.out is not None else config_path().parent.resolve() / "report"
    envs = env_names(args)
    with database_runs(list(envs) if envs else environment_names(), detail=True) as runs:
        try:
            result = render_report(envs, executed_roots(envs), out, runs)
        except OSError as err:
            # The folder was checked; the disk filled or a file vanished while writing.
            reason = err.strerror or type(err).__name__
            where = f" ({ascii(err.filename)})" if err.filename else ""
            raise StepFailed(f"writing the report failed: {reason}{where}; rerun") from None
    print(result.index)
    for unreadable in result.unreadable:
        print(unreadable.line())
    return 0
