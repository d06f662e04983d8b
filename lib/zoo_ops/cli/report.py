"""`zoo-ops report [-o DIR] [-e ENV]...`: the static HTML audit report; prints index.html's path."""

from __future__ import annotations

import argparse
from pathlib import Path


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
        help="output folder (default: report/ beside zoo_ops.toml)",
    )
    p.add_argument(
        "-e",
        "--env",
        action="append",
        default=None,
        help="environment (repeatable; default: every environment in the trail)",
    )
    p.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace) -> int:
    from zoo_ops.cli.status import executed_roots
    from zoo_ops.commands.report import render_report
    from zoo_ops.config import config_path

    out = args.out if args.out is not None else config_path().parent.resolve() / "report"
    result = render_report(args.env, executed_roots(args.env), out)
    print(result.index)
    return 0
