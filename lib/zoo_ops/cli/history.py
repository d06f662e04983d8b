"""`zoo-ops history ORACLE_VERSION_ID [-e ENV]`: every change zoo-ops made to a user version."""

from __future__ import annotations

import argparse

from zoo_ops.cli.options import add_env_option, env_name


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "history",
        help="every change the tool made to a user version",
        description="Migrations (journal) and test repoints (trail) of one oracle version.",
    )
    p.add_argument("oracle_version_id", metavar="ORACLE_VERSION_ID", help="a user version id")
    add_env_option(p, 1)
    p.set_defaults(handler=run_history)


def run_history(args: argparse.Namespace) -> int:
    from zoo_ops.cli.output import format_table
    from zoo_ops.cli.status import display_path
    from zoo_ops.commands.history import COLUMNS, history
    from zoo_ops.environment import Environment

    env = Environment.load(env_name(args))
    try:
        table = history(env, args.oracle_version_id)
    finally:
        env.dispose()
    owner = f" (application {table.oracle_id})" if table.oracle_id else ""
    print(f"{table.oracle_version_id}{owner} in {table.env}")
    if not table.events:
        print("no changes recorded by zoo-ops")
    else:
        rows = []
        for event in table.events:
            row = event.as_row()
            row["notebook"] = display_path(event.notebook)
            rows.append(tuple(str(row[c]) for c in COLUMNS))
        print(format_table(COLUMNS, rows))
    for unreadable in table.unreadable:
        print(unreadable.line())
    return 0
