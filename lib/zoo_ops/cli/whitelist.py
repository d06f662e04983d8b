"""`zoo-ops whitelist [-e ENV] show | set MODEL --copy true|false | remove MODEL | edit`.

The validated replacement for the seed's ``kubectl edit cm``: prints the before/after
table of every change, writes conditionally (DESIGN §4), and refuses a malformed current
value with exit code 2 before writing anything. Every write obeys the runbooks' rules
(:mod:`zoo_ops.commands.recorded_write`): ``--confirm ENV`` on a protected environment,
the staging gate where the environment ``requires`` another (``--gate-override-reason``),
and a recorded run.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from zoo_ops.cli.options import add_env_option, add_write_options, env_name, model_name

if TYPE_CHECKING:
    from zoo_ops.environment import Environment

_BOOL = {"true": True, "false": False}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "whitelist",
        help="show or change the model zoo automation whitelist",
        description="Show or change automaticallyDeployedModelZooModelsWhitelist.",
    )
    add_env_option(p, 1)
    actions = p.add_subparsers(dest="whitelist_action", metavar="ACTION")
    actions.required = True

    show = actions.add_parser("show", help="the automation flag and the whitelist")
    add_env_option(show, 2)

    s = actions.add_parser("set", help='whitelist MODEL with {"copy": true|false}')
    # The one name rule for a key added; `remove` takes any key, so a bad one can go.
    s.add_argument("model", metavar="MODEL", type=model_name)
    s.add_argument(
        "--copy",
        required=True,
        choices=sorted(_BOOL),
        help="true: deploy as MODEL_copy; false: deploy as a new version of MODEL",
    )
    s.add_argument("--dry-run", action="store_true", help="show the change, write nothing")
    add_write_options(s)
    add_env_option(s, 2)

    r = actions.add_parser("remove", help="take MODEL off the whitelist")
    r.add_argument("model", metavar="MODEL")
    r.add_argument("--dry-run", action="store_true", help="show the change, write nothing")
    add_write_options(r, gate=False)
    add_env_option(r, 2)

    e = actions.add_parser(
        "edit",
        help="edit the whitelist in $VISUAL/$EDITOR: validated, conditional on resourceVersion",
        description=(
            "Open $VISUAL (else $EDITOR) on the whitelist as JSON; validate what is saved and "
            "write it only if nobody changed the whitelist meanwhile (else re-open on the new "
            "content). Use this, not `kubectl edit`, on that key."
        ),
    )
    add_write_options(e)
    add_env_option(e, 2)

    p.set_defaults(handler=run_whitelist)


def run_whitelist(args: argparse.Namespace) -> int:
    from zoo_ops.cli.output import format_frame
    from zoo_ops.environment import Environment
    from zoo_ops.services.settings import show_settings

    env = Environment.load(env_name(args))
    if args.whitelist_action == "show":
        view = show_settings(env)
        print(f"{view.location} resourceVersion {view.resource_version or '-'}")
        print(
            f"modelZooDeploymentAutomationEnabled: {'true' if view.automation_enabled else 'false'}"
        )
        print(format_frame(view.to_frame()))
        return 0

    if args.whitelist_action == "edit":
        return _edit(env, args)
    from zoo_ops.commands.guarded_writes import guarded_remove, guarded_set

    if args.whitelist_action == "set":
        done = guarded_set(
            env,
            args.model,
            _BOOL[args.copy],
            confirm=args.confirm,
            override_reason=args.gate_override_reason,
            dry_run=args.dry_run,
        )
    else:
        done = guarded_remove(env, args.model, confirm=args.confirm, dry_run=args.dry_run)
    change = done.change
    print(format_frame(change.to_frame()))
    if change.dry_run:
        verdict = "would change" if change.changed else "would not change"
        print(f"dry run: {verdict} {change.location}; nothing written")
    elif change.changed:
        print(
            f"wrote {change.location}: resourceVersion "
            f"{change.resource_version_before} -> {change.resource_version_after}"
        )
    else:
        print(f"no change: {change.location} already says so; nothing written")
    print(done.note)
    return 0


def _edit(env: Environment, args: argparse.Namespace) -> int:
    import sys

    from zoo_ops.cli.output import format_frame
    from zoo_ops.commands.whitelist_edit import edit_whitelist

    def ask(question: str) -> bool:
        print(f"zoo-ops: {question} [Y/n] ", end="", file=sys.stderr, flush=True)
        answer = sys.stdin.readline().strip().lower()
        return answer in ("", "y", "yes")

    interactive = sys.stdin.isatty() and sys.stderr.isatty()
    result = edit_whitelist(
        env,
        ask=ask if interactive else None,
        confirm=args.confirm,
        override_reason=args.gate_override_reason,
    )
    if result.outcome == "empty":
        print(f"edit cancelled: the saved file was empty; nothing written to {result.location}")
        return 0
    if result.outcome == "unchanged":
        print(f"edit cancelled: no change; nothing written to {result.location}")
        return 0
    print(format_frame(result.to_frame()))
    again = (
        f" (after {result.conflicts} conflicting write(s), re-edited)" if result.conflicts else ""
    )
    print(
        f"wrote {result.location}: resourceVersion "
        f"{result.resource_version_before} -> {result.resource_version_after}{again}"
    )
    for note in result.notes:
        print(note)
    return 0
