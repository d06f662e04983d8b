"""`zoo-ops automation [-e ENV] reconcile [--watch SECONDS] [--model M]... [--dry-run]
[--confirm ENV] [--gate-override-reason TEXT]`.

Runs the model zoo automation once (or every SECONDS until interrupted) and prints the
table of what it did and why. Exit code 1 when any model's deploy failed. A deploy obeys
the runbooks' rules (:mod:`zoo_ops.commands.guarded_writes`): ``--confirm ENV`` on a
protected environment, the staging gate of every model it would deploy where the
environment ``requires`` another (one closed gate: nothing deployed, exit 2), and one
recorded run per model deployed.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime

from zoo_ops.cli.options import add_env_option, add_write_options, env_name


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "automation",
        help="run the model zoo automation (deploy whitelisted trusses)",
        description="Run the model zoo automation: deploy each whitelisted truss once.",
    )
    add_env_option(p, 1)
    actions = p.add_subparsers(dest="automation_action", metavar="ACTION")
    actions.required = True
    r = actions.add_parser("reconcile", help="deploy whitelisted trusses not yet deployed")
    r.add_argument(
        "--watch",
        type=_positive_seconds,
        metavar="SECONDS",
        help="reconcile again every SECONDS until interrupted",
    )
    r.add_argument(
        "--model",
        "-m",
        action="append",
        dest="models",
        metavar="MODEL",
        help="only this whitelisted model (repeatable; default: every whitelisted model)",
    )
    r.add_argument(
        "--wait-timeout",
        type=_positive_seconds,
        default=600.0,
        metavar="SECONDS",
        help="how long to wait for a deploy to become ready (default: 600)",
    )
    r.add_argument("--dry-run", action="store_true", help="decide and show, deploy nothing")
    add_write_options(r)
    add_env_option(r, 2)
    p.set_defaults(handler=run_automation)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be more than 0 seconds")
    return value


def run_automation(args: argparse.Namespace) -> int:
    from zoo_ops.cli.output import format_frame
    from zoo_ops.commands.guarded_writes import guarded_reconcile
    from zoo_ops.environment import Environment
    from zoo_ops.errors import ZooOpsError

    env = Environment.load(env_name(args))

    def reconcile_once() -> bool:
        """One guarded reconcile, printed; whether a deploy failed."""
        result, notes = guarded_reconcile(
            env,
            models=args.models,
            wait_timeout_s=args.wait_timeout,
            dry_run=args.dry_run,
            confirm=getattr(args, "confirm", ""),
            override_reason=getattr(args, "gate_override_reason", ""),
        )
        print(format_frame(result.to_frame()), flush=True)
        for note in notes:
            print(note, flush=True)
        return bool(result.failed)

    try:
        if not args.watch:
            return 1 if reconcile_once() else 0
        while True:  # until interrupted (the CLI's main turns ^C into exit code 130)
            print(f"# {datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')} env {env.name}")
            try:
                reconcile_once()
            except ZooOpsError as err:
                # A watcher outlives one bad tick (a malformed setting being fixed, an API blip).
                print(f"zoo-ops: error: {err}", file=sys.stderr, flush=True)
            time.sleep(args.watch)
    finally:
        env.dispose()
