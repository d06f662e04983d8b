"""`zoo-ops shell [-e ENV]`: terminal IPython with the session preloaded (``%load_ext zoo_ops``).

The environment is checked before IPython starts (a bad name or an unknown environment
is one line, exit 2), then handed to the extension through ``$ZOO_OPS_ENV``.
"""

from __future__ import annotations

import argparse
import os

from zoo_ops.cli.options import add_env_option, env_name

ENV_VAR = "ZOO_OPS_ENV"  # read by zoo_ops.explore.session


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "shell",
        help="terminal IPython with env, the tables and DataFrame helpers preloaded (read-only)",
        description="IPython with `%%load_ext zoo_ops` done: env, the platform tables, "
        "helpers returning DataFrames and %%%%sql, on a read-only connection.",
    )
    add_env_option(p, 1)
    p.set_defaults(handler=run_shell)


def run_shell(args: argparse.Namespace) -> int:
    from IPython import start_ipython

    from zoo_ops.config import load_environment

    name = load_environment(env_name(args)).name
    os.environ[ENV_VAR] = name
    start_ipython(argv=["--no-banner", "--ext", "zoo_ops"])
    return 0
