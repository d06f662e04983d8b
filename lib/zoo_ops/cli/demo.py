"""`zoo-ops demo [--apps N] [--reset]`: the embedded demo environment."""

from __future__ import annotations

import argparse

from zoo_ops.cli.options import add_env_option, env_name
from zoo_ops.cli.output import print_frame


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="create the local environment with a demo zoo")
    p.add_argument(
        "--apps", type=int, default=200, help="user applications to create (default 200)"
    )
    p.add_argument(
        "--reset",
        action="store_true",
        help="rebuild an existing demo environment (its database, artifacts and trail)",
    )
    add_env_option(p, 1)
    p.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from zoo_ops.commands.demo import build_demo
    from zoo_ops.environment import Environment
    from zoo_ops.kernel import ensure_kernel

    env = Environment.load(env_name(args))
    ensure_kernel()  # so that `papermill runbooks/...` works right after the demo
    summary = build_demo(env, apps=args.apps, reset=args.reset)
    print(
        f"demo environment {summary.env!r}: database {summary.database}, settings {summary.settings}"
    )
    print(f"test user: {summary.test_user_email}")
    print_frame(summary.to_frame())
    return 0
