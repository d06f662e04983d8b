"""The `zoo-ops` command line (DESIGN §6).

Each subcommand lives in its own module exposing ``register(subparsers)``; the module
sets ``handler`` on its parser. ``-e ENV`` is accepted before or after the command and its
action (:mod:`zoo_ops.cli.options`). Exit codes: 0 success, 1 a step failed, 2 bad usage or
bad input. Errors are one line on stderr.

:func:`main` is the one error handler of every command: a :class:`ZooOpsError` is its
line; a database that cannot be reached, or that fails under a command, is one line
naming the environment and the redacted URL (exit 1), whichever command met it; any other
exception is a bug and keeps its traceback. Every text it prints goes through
:func:`zoo_ops.cli.output.print_error`, which scrubs the secrets the process knows.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence

from zoo_ops import __version__
from zoo_ops.cli.options import DEFAULT_ENV, add_env_option, check_env_accepted, given_envs
from zoo_ops.cli.output import print_error, safe_text
from zoo_ops.errors import DatabaseUnreachable, ZooOpsError

# Order is the order of `zoo-ops --help`.
COMMAND_MODULES = (
    "zoo_ops.cli.demo",
    "zoo_ops.cli.init",
    "zoo_ops.cli.hash",
    "zoo_ops.cli.run",
    "zoo_ops.cli.whitelist",
    "zoo_ops.cli.automation",
    "zoo_ops.cli.rollout",
    "zoo_ops.cli.status",
    "zoo_ops.cli.history",
    "zoo_ops.cli.report",
    "zoo_ops.cli.trail",
    "zoo_ops.cli.submit",
    "zoo_ops.cli.shell",
    "zoo_ops.cli.lab",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse prints the whole usage block; DESIGN §6 wants one line. The message
        # echoes what was typed: a mistyped --password=x is not shown back.
        shown = safe_text(" ".join(message.split()))
        sys.stderr.write(f"{self.prog}: error: {shown}; see `{self.prog} --help`\n")
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
    except DatabaseUnreachable as err:
        print_error(f"{_environment_label(args, err.url)}{err}")
        return err.exit_code
    except ZooOpsError as err:
        print_error(str(err))
        return err.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("zoo-ops: interrupted\n")
        return 130
    except Exception as exc:
        failed = _database_failure(args, exc)
        if failed is None:
            # A bug: the traceback is for its report, scrubbed like every other text.
            sys.stderr.write(safe_text(traceback.format_exc()))
            return 1
        print_error(failed)
        return 1


def _environment_label(args: argparse.Namespace, url: str) -> str:
    """``environment 'NAME': `` for the configured environment whose database is ``url``
    (redacted), the ``-e`` ones tried first; empty when none matches."""
    from zoo_ops.config import environment_names

    try:
        names = [*given_envs(args), *environment_names()]
    except ZooOpsError:  # the config that named the database is unreadable now
        names = given_envs(args)
    for name in dict.fromkeys(names):
        if _database_of(name) == url:
            return f"environment {name!r}: "
    return ""


def _database_failure(args: argparse.Namespace, exc: Exception) -> str | None:
    """One line for a database error that escaped a command (a connection lost under it,
    a server shutting down); None when ``exc`` is not a database error."""
    database_errors = sys.modules.get("sqlalchemy.exc")  # not imported: not a database error
    if database_errors is None or not isinstance(
        exc, database_errors.OperationalError | database_errors.InterfaceError
    ):
        return None
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    reason = lines[0] if lines else type(exc).__name__
    names = given_envs(args) or [DEFAULT_ENV]
    where = ", ".join(f"environment {n!r} ({_database_of(n)})" for n in dict.fromkeys(names))
    return (
        f"{where}: the database failed: {reason}; check that the database is up, "
        "reachable and not locked, then rerun"
    )


def _database_of(name: str) -> str:
    """Environment ``name``'s database URL as it is shown (redacted, secrets scrubbed)."""
    from zoo_ops.config import load_environment

    try:
        return safe_text(load_environment(name).database_url_redacted)
    except ZooOpsError:
        return "database unknown"


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
