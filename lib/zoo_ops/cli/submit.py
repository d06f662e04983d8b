"""`zoo-ops submit STEP -m MODEL -e ENV [-p NAME VALUE]... [--confirm ENV]`: the runbook as
a Kubernetes Job in the environment's cluster, followed to its end (commands/submit.py)."""

from __future__ import annotations

import argparse
import sys

from zoo_ops.cli.options import (
    add_runbook_arguments,
    add_write_options,
    env_name,
    given_parameters,
)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "submit",
        help="run a runbook as a Kubernetes Job in the environment's cluster; follow it",
        description="Create a Job that runs `zoo-ops run STEP -m MODEL -e ENV` in the "
        "environment's cluster ([env.ENV.submit] in zoo_ops.toml), follow it to its end, "
        "print the executed notebook's URL; exit 0, 1 or 2 as the run did.",
    )
    add_runbook_arguments(p, "a runbook parameter (checked here against the step's schema)")
    add_write_options(p, gate=False)
    p.set_defaults(handler=run_submit)


def run_submit(args: argparse.Namespace) -> int:
    from zoo_ops.commands.submit import create, follow, prepare
    from zoo_ops.environment import Environment

    given = given_parameters(args)
    env = Environment.load(env_name(args))
    try:
        manifest = prepare(env, args.step, args.model, given, confirm=args.confirm)
        job = create(env, manifest)
        print(f"Job {job.namespace}/{job.name} created; following it (Ctrl-C stops following)")
        try:
            done = follow(env, job, on_wait=lambda line: print(line, flush=True))
        except KeyboardInterrupt:
            print(
                f"\nstopped following; the Job keeps running: kubectl -n {job.namespace} "
                f"get job {job.name}, or zoo-ops status --watch -e {env.name}"
            )
            return 130
    finally:
        env.dispose()
    print(done.notebook or f"(no notebook reported by Job {done.namespace}/{done.job})")
    if done.exit_code:
        if done.log_tail.strip():
            sys.stderr.write(done.log_tail.rstrip("\n") + "\n")
        sys.stderr.write(
            f"zoo-ops: error: Job {done.namespace}/{done.job} ended {done.outcome} "
            f"(exit {done.exit_code}): {done.error}\n"
        )
    return done.exit_code
