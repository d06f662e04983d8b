"""`zoo-ops init [-e ENV] [--confirm ENV]`: attach zoo-ops to an existing platform database."""

from __future__ import annotations

import argparse
import sys

from zoo_ops.cli.options import add_env_option, add_write_options, env_name
from zoo_ops.cli.output import print_error, print_frame, safe_text


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "init",
        help="attach to an existing platform database: check its tables, create zoo-ops's own",
        description=(
            "Check that the platform tables zoo-ops reads and writes are as it expects "
            "(refused with every difference, nothing created, when they are not), then "
            "create or upgrade zoo-ops's own tables (zoo_ops_*) to the current revision. "
            "Never creates a platform table. Running it again is harmless."
        ),
    )
    add_write_options(p, gate=False)
    add_env_option(p, 1)
    p.set_defaults(handler=run_init)


def run_init(args: argparse.Namespace) -> int:
    from zoo_ops.commands.init import PlatformSchemaMismatch, init
    from zoo_ops.environment import Environment

    env = Environment.load(env_name(args))
    try:
        result = init(env, confirm=args.confirm)
    except PlatformSchemaMismatch as err:
        print_error(str(err))
        for difference in err.differences:
            sys.stderr.write(f"  - {safe_text(difference)}\n")
        return err.exit_code
    finally:
        env.dispose()
    print(safe_text(result.summary()))
    print_frame(result.to_frame())
    return 0
