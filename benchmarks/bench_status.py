"""`zoo-ops status` over 1,000 executed notebooks: cold index, warm index, one new run.

    .venv/bin/python benchmarks/bench_status.py [--notebooks 1000] [--workdir DIR]

Builds the demo in a temporary local environment, executes 01_copy and 02_verify once
for real, then copies those executed notebooks into a trail of N (spread over 3
environments x 10 models x 5 steps, one run a minute), rewriting each copy's `run`
scrap (step, model, env, outcome, times, run id) and its papermill paths, and dating
every file an hour back (a trail is written over weeks; a file written in the last two
seconds is never cached). Then, in one process, side by side:

- cold: `status` with no index (every notebook read and indexed);
- warm: `status` again (the index answers; every file is still stat'ed);
- new run: one more notebook added, `status` again (one file read);
- the same three through the command line (`zoo-ops status`, a fresh interpreter each);
- for reference, scrapbook's own read of 100 of the notebooks.

Prints seconds. Target: warm <= 2 s over 1,000 notebooks.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
ENVS = ("local", "staging", "prod")
MODELS = tuple(f"model{i:02d}" for i in range(10))
STEPS = ("01_copy", "02_verify", "03_migrate", "04_revert", "05_retire")
OUTCOMES = ("succeeded", "succeeded", "succeeded", "failed", "dry_run")
CLI_SNIPPET = (
    "import sys, zoo_ops.cli as c; "
    "c.COMMAND_MODULES = tuple(dict.fromkeys((*c.COMMAND_MODULES, 'zoo_ops.cli.status'))); "
    "sys.exit(c.main(['status']))"
)
# The same without the command modules that import pandas at module level (demo, rollout
# import zoo_ops.cli.output): what `zoo-ops status` costs once those imports are lazy.
CLI_SNIPPET_LEAN = CLI_SNIPPET.replace(
    "c.COMMAND_MODULES, ",
    "(m for m in c.COMMAND_MODULES if m not in ('zoo_ops.cli.demo', 'zoo_ops.cli.rollout')), ",
)


def real_notebooks(work: Path) -> dict[str, Path]:
    """Execute 01_copy and 02_verify once on a fresh demo; {step: executed path}."""
    config = work / "zoo_ops.toml"
    config.write_text(
        f"""
[env.local]
database_url = "sqlite:///{work / "platform.db"}"
settings = "file:{work / "state" / "dynamic-settings.yaml"}"
state_dir = "{work / "state"}"
truss_root = "{REPO / "truss_models"}"
executed_root = "{work / "real"}"
"""
    )
    os.environ["ZOO_OPS_CONFIG"] = str(config)
    from zoo_ops.commands.demo import build_demo
    from zoo_ops.environment import Environment
    from zoo_ops.execute import execute_runbook

    env = Environment.load("local")
    build_demo(env, apps=5)
    out = {}
    for step in ("01_copy", "02_verify"):
        done = execute_runbook(step, model="iris", cwd=work)
        if done.exit_code:
            raise SystemExit(f"{step} failed: {done.error}")
        out[step] = done.path
    env.dispose()
    return out


def rewrite(nb: dict[str, Any], run: dict[str, Any], out: Path) -> dict[str, Any]:
    """A copy of ``nb`` whose `run` scrap is ``run`` and whose papermill paths name ``out``."""
    nb = json.loads(json.dumps(nb))
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            payload = output.get("data", {}).get("application/scrapbook.scrap.json+json")
            if isinstance(payload, dict) and payload.get("name") == "run":
                payload["data"] = run
    papermill = nb["metadata"].setdefault("papermill", {})
    papermill["output_path"] = str(out)
    papermill["parameters"] = {"model": run["model"], "env": run["env"]}
    return nb


def generate(templates: dict[str, Path], root: Path, count: int) -> list[Path]:
    """``count`` notebooks spread over ENVS x MODELS x STEPS, one a minute, dated an hour back."""
    loaded = {step: json.loads(path.read_text()) for step, path in templates.items()}
    base_run = json.loads(json.dumps(_run_scrap(loaded["01_copy"])))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    old = time.time() - 3600
    paths = []
    for i in range(count):
        env = ENVS[i % len(ENVS)]
        model = MODELS[(i // len(ENVS)) % len(MODELS)]
        step = STEPS[(i // (len(ENVS) * len(MODELS))) % len(STEPS)]
        at = start + timedelta(minutes=i)
        outcome = OUTCOMES[i % len(OUTCOMES)]
        run = dict(
            base_run,
            step=step,
            model=model,
            env=env,
            dry_run=outcome == "dry_run",
            outcome=outcome,
            started_at=at.isoformat(timespec="seconds"),
            finished_at=(at + timedelta(seconds=7)).isoformat(timespec="seconds"),
            run_id=f"bench{i:05d}",
            error="synthetic failure" if outcome == "failed" else None,
            exit_code=1 if outcome == "failed" else 0,
        )
        path = root / env / model / f"{at.strftime('%Y%m%dT%H%M%SZ')}-{step}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        template = loaded["02_verify" if step in ("02_verify", "04_revert") else "01_copy"]
        path.write_text(json.dumps(rewrite(template, run, path), indent=1))
        os.utime(path, (old, old))
        paths.append(path)
    return paths


def _run_scrap(nb: dict[str, Any]) -> dict[str, Any]:
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            payload = output.get("data", {}).get("application/scrapbook.scrap.json+json")
            if isinstance(payload, dict) and payload.get("name") == "run":
                return dict(payload["data"])
    raise SystemExit("the template notebook has no run scrap")


def timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def cli_seconds(work: Path, config: Path, snippet: str = CLI_SNIPPET) -> float:
    env = dict(os.environ, ZOO_OPS_CONFIG=str(config))
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", snippet], cwd=work, env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"zoo-ops status failed: {done.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", type=int, default=1000)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    from zoo_ops.commands.status import status
    from zoo_ops.trail import INDEX_FILE_NAME, TrailIndex

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        print(f"executing 01_copy and 02_verify once (templates) in {work} ...", flush=True)
        templates = real_notebooks(work)
        root = work / "executed"
        seconds, paths = timed(lambda: generate(templates, root, args.notebooks))
        print(f"generated {len(paths)} executed notebooks in {seconds:.1f} s")
        config = work / "zoo_ops.cli.toml"
        config.write_text(f'[env.local]\nexecuted_root = "{root}"\n')

        index = TrailIndex(root)
        (root / INDEX_FILE_NAME).unlink(missing_ok=True)
        cold, table = timed(lambda: status(None, None, root))
        index.entries()
        warm, _ = timed(lambda: status(None, None, root))
        warm_stats = TrailIndex(root)
        warm_stats.entries()
        newest = generate(templates, work / "extra", 1)[0]
        added = root / "local" / MODELS[0] / "20270101T000000Z-01_copy.ipynb"
        added.write_bytes(newest.read_bytes())  # fresh mtime: a run that just finished
        after_new, table_new = timed(lambda: status(None, None, root))
        assert table_new.cell("local", MODELS[0], "01_copy").notebook == added, "stale"

        (root / INDEX_FILE_NAME).unlink()
        for suffix in ("-wal", "-shm"):
            Path(f"{root / INDEX_FILE_NAME}{suffix}").unlink(missing_ok=True)
        cli_cold = cli_seconds(work, config)
        cli_warm = cli_seconds(work, config)
        lean_warm = cli_seconds(work, config, CLI_SNIPPET_LEAN)
        added.touch()
        cli_new = cli_seconds(work, config)
        lean_new = cli_seconds(work, config, CLI_SNIPPET_LEAN)

        from zoo_ops.trail import read_scraps

        sample = paths[:100]
        scrapbook_100, _ = timed(lambda: [read_scraps(p) for p in sample])

        n = len(paths)
        print(f"rows in the status table: {len(table.rows)} ({n} notebooks)")
        print(f"{'':24}{'in-process':>12}{'CLI':>10}{'CLI, no pandas':>16}")
        print(f"{'cold (no index)':24}{cold:>11.3f}s{cli_cold:>9.3f}s")
        print(f"{'warm (index built)':24}{warm:>11.3f}s{cli_warm:>9.3f}s{lean_warm:>15.3f}s")
        print(f"{'after one new notebook':24}{after_new:>11.3f}s{cli_new:>9.3f}s{lean_new:>15.3f}s")
        print(f"warm lookup read {warm_stats.last.read} files, {warm_stats.last.cached} cached")
        print(
            f"scrapbook read of 100 notebooks: {scrapbook_100:.3f} s "
            f"(x{n / 100:.0f} = {scrapbook_100 * n / 100:.1f} s for {n} without the index)"
        )
        print(f"target: warm <= 2 s over 1,000 -> {'met' if warm <= 2.0 else 'NOT met'}")


if __name__ == "__main__":
    main()
