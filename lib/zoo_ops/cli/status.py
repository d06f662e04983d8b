"""`zoo-ops status [-e ENV]... [-m MODEL]`: models x steps per environment.

Kept free of pandas: it reads ``zoo_ops.toml`` (for where each environment keeps its
trail), each environment's runs table (one query; the authority) and the trail index.
An environment whose database cannot be read (its URL names an unset variable, its
SQLite file does not exist yet, its server does not answer) is shown from its trail
alone, and the output says so; with no trail either, that is one line and exit 1.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from zoo_ops.cli.options import add_env_option, env_names, model_name
from zoo_ops.errors import BadInput, StepFailed

if TYPE_CHECKING:
    from zoo_ops.commands.status import StatusTable


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "status",
        help="table of models x steps from the runs table and the trail",
        description="Last outcome, time, truss hash and executed notebook of every step; "
        "refusals, crashed runs and unrecorded notebooks are noted.",
    )
    add_env_option(p, 1, repeatable=True)
    p.add_argument("-m", "--model", default=None, type=model_name, help="only this model")
    p.add_argument(
        "--watch",
        action="store_true",
        help="redraw the table every --interval seconds, with the runs in progress and "
        "their migration's moved/total, until Ctrl-C",
    )
    p.add_argument(
        "--interval",
        type=interval_seconds,
        default=None,
        metavar="SECONDS",
        help="seconds between frames of --watch (default 2)",
    )
    p.set_defaults(handler=run_status)


def interval_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0.1 <= seconds <= 3600:
        raise argparse.ArgumentTypeError(
            f"--interval {value!r}: give a number of seconds from 0.1 to 3600"
        )
    return seconds


def executed_root_for(name: str) -> Path:
    """Where environment ``name`` keeps its trail (a remote one: its read cache, brought up
    to date for ``name``), read from zoo_ops.toml without
    resolving the environment's other values (its database URL may name an unset
    variable: the trail is still readable)."""
    from zoo_ops.config import (
        LOCAL,
        EnvironmentConfig,
        config_path,
        expand_vars,
        read_config_tables,
        remote_trail_root,
    )
    from zoo_ops.errors import ConfigError, StepFailed

    path = config_path()
    tables = read_config_tables(path)
    if name not in tables and name != LOCAL:
        known = ", ".join(sorted({LOCAL, *tables}))
        raise ConfigError(f"unknown environment {name!r}; known environments: {known}")
    value = tables.get(name, {}).get("executed_root", EnvironmentConfig.executed_root)
    if not isinstance(value, str):
        raise ConfigError(f"{path.name} [env.{name}] executed_root: must be a string")
    where = f"{path.name} [env.{name}] executed_root"
    text = expand_vars(value, where)
    url = remote_trail_root(text, where)
    if url is not None:
        # A remote trail is read from its local cache, brought up to date first: the
        # runs table names the runs, the bucket holds their notebooks.
        from zoo_ops.trail.mirror import sync
        from zoo_ops.trail.stores import TrailStoreError

        try:
            return sync(url, name)
        except TrailStoreError as exc:
            raise StepFailed(
                f"the trail {url} cannot be read ({exc}); check AWS_ENDPOINT_URL and the "
                "AWS credentials, then rerun"
            ) from None
    root = Path(text)
    return root if root.is_absolute() else path.parent.resolve() / root


def executed_roots(env_names: Sequence[str] | None) -> list[Path]:
    """The trail roots of the named environments (None: of every configured one), deduplicated."""
    from zoo_ops.config import environment_names

    names = list(env_names) if env_names else environment_names()
    roots: list[Path] = []
    for name in names:
        root = executed_root_for(name)
        if root not in roots:
            roots.append(root)
    return roots


def display_path(path: Path | None) -> str:
    from zoo_ops.config import cached_url

    if path is None:
        return ""
    url = cached_url(path)  # a remote trail's notebook: shown by its URL
    if url is not None:
        return url
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def run_status(args: argparse.Namespace) -> int:
    if args.interval is not None and not args.watch:
        raise BadInput("--interval goes with --watch; add --watch or drop --interval")
    if args.watch:
        return watch_status(args)
    print_status(*status_of(args))
    return 0


def watch_status(args: argparse.Namespace) -> int:
    """``status --watch``: the same table each frame, then the runs in progress."""
    import contextlib
    import io
    from datetime import UTC, datetime

    from zoo_ops.commands.status_watch import DEFAULT_INTERVAL_S, in_progress_section, watch
    from zoo_ops.config import environment_names

    names = list(env_names(args) or environment_names())

    def frame() -> str:
        table = io.StringIO()
        with contextlib.redirect_stdout(table):
            try:
                print_status(*status_of(args))
            except StepFailed as exc:  # no runs readable yet: say so, keep watching
                print(exc)
        now = datetime.now(UTC)
        return table.getvalue() + "\n" + in_progress_section(names, args.model, now)

    return watch(frame, interval=args.interval or DEFAULT_INTERVAL_S)


def status_of(args: argparse.Namespace) -> tuple[StatusTable, Sequence[str] | None, str | None]:
    """The status table the arguments ask for (raises StepFailed when nothing is readable)."""
    from zoo_ops.commands.status import database_runs, status
    from zoo_ops.config import environment_names

    envs = env_names(args)
    with database_runs(list(envs) if envs else environment_names(), args.model) as runs:
        table = status(envs, args.model, executed_roots(envs), runs)
    unread = {n: r.problem for n, r in runs.items() if r.records is None and r.problem}
    if unread and not table.rows and not table.runs:
        # Nothing in any trail and a database that could not be read: "no runs" would be
        # a guess. Say what could not be read, and fail.
        name, problem = next(iter(unread.items()))
        raise StepFailed(f"environment {name!r}: {problem}; nothing to show")
    return table, envs, args.model


def print_status(table: StatusTable, envs: Sequence[str] | None, model: str | None) -> None:
    from zoo_ops.cli.output import format_table
    from zoo_ops.commands.status import format_at

    if not table.rows and not table.runs:
        scope = f" for model {model}" if model else ""
        where = ", ".join(envs) if envs else "any environment"
        print(f"no runs{scope} in {where}")
        print_unreadable(table)
        return
    headers = ("model", "step", "outcome", "at", "truss_hash", "notebook", "dry run", "note")
    shown_envs = sorted({*table.envs(), *(r.env for r in table.runs)})
    for i, env in enumerate(shown_envs):
        rows = [
            (
                r.model,
                r.step,
                r.outcome,
                r.as_row()["at"],
                r.short_hash,
                display_path(r.notebook),
                r.dry_run_note,
                r.note,
            )
            for r in table.rows
            if r.env == env
        ]
        if i:
            print()
        print(f"== {env} ==")
        if env in table.trail_only:
            print(f"(from the trail alone: {table.trail_only[env]})")
        if rows:
            print(format_table(headers, rows))
        matrix = set(table.models(env))
        orphans = [r for r in table.refusals(env) if r.model not in matrix]
        for r in orphans:
            print(
                f"refused {r.model} {r.step} at {format_at(r.at)} (run {r.run_id}): "
                f"{r.error or 'no reason recorded'}"
            )
    print_unreadable(table)


def print_unreadable(table: StatusTable) -> None:
    """One line per file of the trail no reader used, with the reason."""
    if table.unreadable:
        print()
    for unreadable in table.unreadable:
        print(unreadable.line())
