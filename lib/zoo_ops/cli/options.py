"""Options every command shares: ``-e ENV``, before or after the (sub)command.

``zoo-ops -e X whitelist show``, ``zoo-ops whitelist -e X show`` and
``zoo-ops whitelist show -e X`` all mean environment X. argparse copies a subcommand's
values over its parent's, so each level keeps ``-e`` in a destination of its own
(``env_0`` for ``zoo-ops``, ``env_1`` for the command, ``env_2`` for its action) and
:func:`env_name` / :func:`env_names` read them together. Handlers call those rather
than read ``args.env``, so they also work when a test builds the parser with only a
command's ``register``.

Every ``-e`` value is checked by the one name rule (:mod:`zoo_ops.domain.names`) as it
is read, before any command can join it into a path or look it up.
"""

from __future__ import annotations

import argparse
from typing import Any

from zoo_ops.domain.names import check_name
from zoo_ops.errors import BadInput

DEFAULT_ENV = "local"
_LEVELS = ("env_0", "env_1", "env_2")
TAKES_ENV = "takes_env"


def model_name(value: str) -> str:
    """An argparse ``type`` for ``-m MODEL``: the name rule, refused as a usage error."""
    try:
        return check_name("model", value)
    except BadInput as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_env_option(
    parser: argparse.ArgumentParser, level: int, *, repeatable: bool = False
) -> None:
    """``-e/--env ENV`` on ``parser``; ``level`` 0 is ``zoo-ops`` itself, 1 a command, 2 its action."""
    if repeatable:
        text = "environment (repeatable; default: every environment in the trail)"
    else:
        text = f"environment name from zoo_ops.toml (default: {DEFAULT_ENV})"
    parser.add_argument(
        "-e",
        "--env",
        dest=_LEVELS[level],
        action="append",
        default=argparse.SUPPRESS,
        metavar="ENV",
        help=text,
    )
    if level == 1:
        parser.set_defaults(**{TAKES_ENV: "many" if repeatable else "one"})


def _raw_envs(args: argparse.Namespace) -> list[str]:
    """Every ``-e`` value as typed, outermost first."""
    values: list[str] = []
    for dest in _LEVELS:
        values.extend(getattr(args, dest, None) or [])
    return values


def given_envs(args: argparse.Namespace) -> list[str]:
    """Every ``-e`` value, outermost first, each checked by the name rule."""
    return [check_name("environment", value) for value in _raw_envs(args)]


def env_name(args: argparse.Namespace) -> str:
    """The one environment a command acts on (``local`` when no ``-e``)."""
    values = list(dict.fromkeys(given_envs(args)))
    if len(values) > 1:
        raise BadInput(f"-e given for {', '.join(values)}; this command acts on one environment")
    return values[0] if values else DEFAULT_ENV


def env_names(args: argparse.Namespace) -> list[str] | None:
    """Every environment named with ``-e`` (None: none named, so every one)."""
    values = list(dict.fromkeys(given_envs(args)))
    return values or None


def check_env_accepted(parser: argparse.ArgumentParser, args: Any) -> None:
    """Refuse ``zoo-ops -e X COMMAND`` for a command that takes no environment."""
    if _raw_envs(args) and not getattr(args, TAKES_ENV, None):
        parser.error(f"zoo-ops {args.command} takes no -e ENV")


def add_write_options(parser: argparse.ArgumentParser, *, gate: bool = True) -> None:
    """``--confirm ENV`` (and ``--gate-override-reason TEXT``) for a mutating action.

    The same rules as a runbook's ``confirm`` and ``gate_override_reason`` parameters
    (DESIGN §8): a write on a protected environment needs ``--confirm`` equal to its name;
    the override reason is the one recorded way past the staging gate.
    """
    parser.add_argument(
        "--confirm",
        default="",
        metavar="ENV",
        help="required to write to a protected environment: its name",
    )
    if gate:
        parser.add_argument(
            "--gate-override-reason",
            default="",
            metavar="TEXT",
            help="let this write past the staging gate; recorded in the run",
        )


def add_runbook_arguments(parser: argparse.ArgumentParser, parameter_help: str) -> None:
    """STEP, ``-m MODEL``, ``-e ENV`` and ``-p NAME VALUE``: a runbook run's arguments
    (``zoo-ops run``, ``zoo-ops submit``)."""
    parser.add_argument("step", help="01_copy, 02_verify, 03_migrate, 04_revert or 05_retire")
    parser.add_argument("-m", "--model", required=True, help="model zoo model name, e.g. iris")
    add_env_option(parser, 1)
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help=parameter_help,
    )


def given_parameters(args: argparse.Namespace) -> dict[str, str]:
    """The ``-p NAME VALUE`` pairs; a name given twice is refused."""
    from zoo_ops.errors import BadInput

    given: dict[str, str] = {}
    for name, value in args.parameter:
        if name in given:
            raise BadInput(f"parameter {name} given twice; pass it once")
        given[name] = value
    return given
