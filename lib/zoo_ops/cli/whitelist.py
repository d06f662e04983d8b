"""`zoo-ops whitelist [-e ENV] show | set MODEL --copy true|false | remove MODEL [--dry-run]`.

The validated replacement for the seed's ``kubectl edit cm``: prints the before/after
table of every change, writes conditionally (DESIGN §4), and refuses a malformed current
value with exit code 2 before writing anything.
"""

from __future__ import annotations

import argparse

from zoo_ops.cli.options import add_env_option, env_name, model_name

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
    add_env_option(s, 2)

    r = actions.add_parser("remove", help="take MODEL off the whitelist")
    r.add_argument("model", metavar="MODEL")
    r.add_argument("--dry-run", action="store_true", help="show the change, write nothing")
    add_env_option(r, 2)

    p.set_defaults(handler=run_whitelist)


def run_whitelist(args: argparse.Namespace) -> int:
    from zoo_ops.cli.output import format_frame
    from zoo_ops.environment import Environment
    from zoo_ops.services.settings import (
        remove_whitelist_entry,
        set_whitelist_entry,
        show_settings,
    )

    env = Environment.load(env_name(args))
    if args.whitelist_action == "show":
        view = show_settings(env)
        print(f"{view.location} resourceVersion {view.resource_version or '-'}")
        print(
            f"modelZooDeploymentAutomationEnabled: {'true' if view.automation_enabled else 'false'}"
        )
        print(format_frame(view.to_frame()))
        return 0

    if args.whitelist_action == "set":
        change = set_whitelist_entry(env, args.model, _BOOL[args.copy], dry_run=args.dry_run)
    else:
        change = remove_whitelist_entry(env, args.model, dry_run=args.dry_run)
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
    return 0
