"""`zoo-ops rollout PLAN.yaml`: model by model, step by step; resumes from the trail."""

from __future__ import annotations

import argparse
from pathlib import Path

from zoo_ops.cli.output import print_frame


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("rollout", help="run a rollout plan; stops at the first failure, resumes")
    p.add_argument(
        "plan", type=Path, help="the plan (YAML): environments, models, steps, parameters"
    )
    p.add_argument(
        "--confirm",
        action="append",
        default=[],
        metavar="ENV",
        help="confirm mutating steps in this protected environment (repeatable)",
    )
    p.set_defaults(handler=run_rollout)


def run_rollout(args: argparse.Namespace) -> int:
    import sys

    from zoo_ops.commands.rollout import load_plan, rollout

    report = rollout(load_plan(args.plan), confirm=tuple(args.confirm))
    print_frame(report.to_frame())
    for unreadable in report.unreadable:
        print(unreadable.line())
    if report.exit_code:
        last = report.rows[-1]
        sys.stderr.write(
            f"zoo-ops: error: rollout stopped at {last['model']} {last['env']} {last['step']}: "
            f"{last['detail']}\n"
        )
    return report.exit_code
