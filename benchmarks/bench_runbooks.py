"""Benchmark: a local rollout through `zoo-ops run` against the same steps as library calls.

    python benchmarks/bench_runbooks.py                 # iris with 10,000 applications
    python benchmarks/bench_runbooks.py --apps 2000     # quicker

Two identical local environments (SQLite, a local ConfigMap file, in-process serving),
built side by side by the demo with ``4 x --apps`` user applications, ``--apps`` of them
on iris. In the first, 01_copy, 02_verify, 03_migrate and 04_revert run one after the
other as ``zoo-ops run STEP -m iris`` (each its own process and kernel; the gate passes
the normal way). In the second, one child Python process imports the library (timed on
its own) and makes the runbooks' library calls, step by step, without a kernel, a run
row, scraps or a notebook.

Where a ``zoo-ops run``'s seconds go, read from its executed notebook's papermill
metadata against the wall clock:

- ``launch``: the ``zoo-ops run`` process start, its imports, the run row and the
  kernel start (the process start to the first cell's start);
- ``imports``: the cell that imports ``zoo_ops.runbook`` and adopts the run;
- ``cells``: every other cell as papermill timed it (the step's own work, scraps
  included);
- ``finish``: the last cell's end to the process exit (kernel shutdown, the notebook
  written and renamed, the run read back).

Figures, not pass/fail: the ratio ``zoo-ops run`` / library call per step.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STEPS = ("01_copy", "02_verify", "03_migrate", "04_revert")
MODEL = "iris"


def environment_config(root: Path) -> Path:
    """A `local` environment kept entirely inside ``root``."""
    path = root / "zoo_ops.toml"
    path.write_text(
        f"""
[env.local]
database_url = "sqlite:///{root / "platform.db"}"
settings = "file:{root / "state" / "dynamic-settings.yaml"}"
state_dir = "{root / "state"}"
truss_root = "{REPO / "truss_models"}"
executed_root = "{root / "executed"}"
"""
    )
    return path


def build(root: Path, apps_on_iris: int) -> dict[str, str]:
    """The demo with ``apps_on_iris`` applications on each of its zoo models; the
    process environment that points zoo-ops at it."""
    config = environment_config(root)
    env = {**os.environ, "ZOO_OPS_CONFIG": str(config)}
    models = int(
        subprocess.run(
            [sys.executable, "-c", "from zoo_ops.commands.demo import load_catalog;"
             "print(len(load_catalog().models))"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "zoo_ops.cli", "demo", "--apps", str(models * apps_on_iris)],
        env=env, cwd=root, check=True, capture_output=True,
    )  # fmt: skip
    return env


def parse_time(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def run_step(step: str, env: dict[str, str], cwd: Path) -> dict[str, float]:
    """``zoo-ops run STEP -m iris``: its wall time and where the seconds went."""
    started = time.time()
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "zoo_ops.cli", "run", step, "-m", MODEL],
        env=env, cwd=cwd, capture_output=True, text=True,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    ended = time.time()
    if done.returncode != 0:
        raise SystemExit(f"zoo-ops run {step} failed ({done.returncode}): {done.stderr}")
    notebook = json.loads(Path(done.stdout.strip().splitlines()[0]).read_text())
    cells = [c for c in notebook["cells"] if c["metadata"].get("papermill", {}).get("start_time")]
    first = parse_time(cells[0]["metadata"]["papermill"]["start_time"])
    last = parse_time(cells[-1]["metadata"]["papermill"]["end_time"])
    imports = sum(
        c["metadata"]["papermill"]["duration"]
        for c in cells
        if c["cell_type"] == "code" and "runbook.start(" in "".join(c["source"])
    )
    in_cells = sum(c["metadata"]["papermill"]["duration"] for c in cells)
    return {
        "wall": wall,
        "launch": first - started,
        "imports": imports,
        "cells": in_cells - imports,
        "finish": ended - last,
    }


def library_steps(config: str) -> None:
    """The child: the runbooks' library calls, each step timed; prints JSON."""
    os.environ["ZOO_OPS_CONFIG"] = config
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    from zoo_ops.environment import Environment
    from zoo_ops.services import applications, deploy
    from zoo_ops.steps import s01_copy, s02_verify, s03_migrate, s04_revert

    times["imports"] = time.perf_counter() - t0
    env = Environment.load("local")

    t0 = time.perf_counter()
    pre = s01_copy.preflight(env, MODEL, copy=True)
    deploy.enable_automation(env, MODEL, copy=True)
    s01_copy.deploy_copy(env, MODEL, truss_hash=pre.truss_hash, wait_timeout_s=600)
    times["01_copy"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    plan = s02_verify.plan_probe(env, MODEL, target="copy")
    app = s02_verify.probe_application(env, plan)
    s02_verify.compare(env, app, requests=plan.requests)
    applications.new_application_lands(env, MODEL, target="copy", user_email="")
    times["02_verify"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    old = s03_migrate.note_old_version(env, MODEL)
    deploy.enable_automation(env, MODEL, copy=False)
    new = deploy.deploy(env, MODEL, target_model=MODEL, truss_hash=old.truss_hash)
    applications.new_application_lands(env, MODEL, target="new", user_email="")
    moved = s03_migrate.forward(
        env, MODEL, old_version_id=old.old_version_id, new_version_id=new.version_id
    )
    times["03_migrate"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    forward = s04_revert.load_forward_run(env, MODEL, migration_id=moved.migration_id)
    s04_revert.restore_zoo_model(env, MODEL, forward)
    s04_revert.revert(env, MODEL, forward, scope="all")
    times["04_revert"] = time.perf_counter() - t0
    env.dispose()
    print(json.dumps(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--apps", type=int, default=10_000, help="applications on iris")
    parser.add_argument("--library-child", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.library_child:
        library_steps(args.library_child)
        return

    with tempfile.TemporaryDirectory(prefix="bench-runbooks-") as tmp:
        by_run, by_call = Path(tmp) / "run", Path(tmp) / "library"
        by_run.mkdir()
        by_call.mkdir()
        t0 = time.perf_counter()
        run_env = build(by_run, args.apps)
        call_env = build(by_call, args.apps)
        print(f"built two demos with {args.apps} applications on iris "
              f"in {time.perf_counter() - t0:.1f} s")  # fmt: skip

        runs = {step: run_step(step, run_env, by_run) for step in STEPS}
        child = subprocess.run(
            [sys.executable, __file__, "--library-child", call_env["ZOO_OPS_CONFIG"]],
            env=call_env, cwd=by_call, capture_output=True, text=True,
        )  # fmt: skip
        if child.returncode != 0:
            raise SystemExit(f"library calls failed: {child.stderr}")
        calls = json.loads(child.stdout.strip().splitlines()[-1])

    print()
    print(f"iris with {args.apps} applications; seconds, one run each, side by side")
    head = ("step", "zoo-ops run", "library", "ratio", "launch", "imports", "cells", "finish")
    print("{:<11} {:>11} {:>8} {:>6} {:>7} {:>8} {:>6} {:>7}".format(*head))
    for step in STEPS:
        r, c = runs[step], calls[step]
        print(
            f"{step:<11} {r['wall']:>11.2f} {c:>8.2f} {r['wall'] / c:>5.1f}x "
            f"{r['launch']:>7.2f} {r['imports']:>8.2f} {r['cells']:>6.2f} {r['finish']:>7.2f}"
        )
    total_run = sum(r["wall"] for r in runs.values())
    total_call = sum(calls[s] for s in STEPS) + calls["imports"]
    print(
        f"{'all four':<11} {total_run:>11.2f} {total_call:>8.2f} {total_run / total_call:>5.1f}x"
        f"   (library total includes its imports once: {calls['imports']:.2f} s)"
    )


if __name__ == "__main__":
    main()
