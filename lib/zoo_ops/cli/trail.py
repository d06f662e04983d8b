"""`zoo-ops trail recover RUN_ID [-e ENV] [--force] [--confirm ENV]`: the audit trail's repairs.

``recover`` writes a readable executed notebook for a crashed, interrupted or
trail-unsaved run from the database (run row, migration, journal), marked as recovered;
``04_revert -p forward_run PATH`` accepts it. It refuses (exit 2) an unknown run id, and a
run that succeeded with a readable notebook unless ``--force``. It writes the runs table
and the trail, so on a protected environment it needs ``--confirm ENV``, as every other
write does (:func:`zoo_ops.commands.recorded_write.check_confirm`): without it, one line,
exit 2, nothing changed.
"""

from __future__ import annotations

import argparse

from zoo_ops.cli.options import add_env_option, add_write_options, env_name


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "trail",
        help="repair the audit trail (recover a crashed run's notebook)",
        description="Repairs of the audit trail under executed/.",
    )
    add_env_option(p, 1)
    actions = p.add_subparsers(dest="trail_action", metavar="ACTION")
    actions.required = True
    r = actions.add_parser(
        "recover",
        help="write a readable notebook for a crashed run from the database",
        description=(
            "Write the executed notebook of a crashed, interrupted or trail-unsaved run from "
            "the database (run row, migration, journal), marked as recovered."
        ),
    )
    r.add_argument("run_id", metavar="RUN_ID", help="the run's id (zoo-ops status, history)")
    r.add_argument(
        "--force",
        action="store_true",
        help="also for a run that succeeded with a readable notebook (kept beside it)",
    )
    add_write_options(r, gate=False)
    add_env_option(r, 2)
    p.set_defaults(handler=run_trail)


def run_trail(args: argparse.Namespace) -> int:
    from zoo_ops.cli.output import format_frame
    from zoo_ops.commands.recover import recover_run
    from zoo_ops.environment import Environment

    env = Environment.load(env_name(args))
    try:
        recovered = recover_run(env, args.run_id, force=args.force, confirm=args.confirm)
    finally:
        env.dispose()
    print(format_frame(recovered.to_frame()))
    print(recovered.path)
    return 0
