"""The `zoo-ops` command line (DESIGN §6).

Each subcommand lives in its own module exposing ``register(subparsers)``; the module
sets ``handler`` on its parser. ``-e ENV`` is accepted before or after the command and its
action (:mod:`zoo_ops.cli.options`). Exit codes: 0 success, 1 a step failed, 2 bad usage or
bad input. Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from zoo_ops import __version__
from zoo_ops.cli.options import add_env_option, check_env_accepted
from zoo_ops.errors import ZooOpsError

# Order is the order of `zoo-ops --help`.
COMMAND_MODULES = (
    "zoo_ops.cli.demo",
    "zoo_ops.cli.hash",
    "zoo_ops.cli.run",
    "zoo_ops.cli.whitelist",
    "zoo_ops.cli.automation",
    "zoo_ops.cli.rollout",
    "zoo_ops.cli.status",
    "zoo_ops.cli.history",
    "zoo_ops.cli.report",
    "zoo_ops.cli.trail",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse prints the whole usage block; DESIGN §6 wants one line.
        sys.stderr.write(f"{self.prog}: error: {message}; see `{self.prog} --help`\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="zoo-ops", description="Roll model zoo models over to truss deployments.")
    parser.add_argument("--version", action="version", version=f"zoo-ops {__version__}")
    add_env_option(parser, 0)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_env_accepted(parser, args)
    try:
        return int(args.handler(args) or 0)
    except ZooOpsError as err:
        sys.stderr.write(f"zoo-ops: error: {err}\n")
        return err.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("zoo-ops: interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
