"""The benchmarks still run: each at its smallest size, figures not judged.

A benchmark is run by hand and reported as figures (README); one that no longer runs
against today's library (a moved function, a renamed step) is only found when someone
needs its figures. Each runs here once, small, and must end cleanly with its table.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.postgres import postgres_base_url

REPO = Path(__file__).resolve().parents[1]
SMALLEST = {
    "bench_migration.py": (
        "--seed-rows", "100", "--ours-rows", "1000", "--big", "2000", "--mem-small", "500",
        "--batch-sizes", "500",
    ),
    "bench_runbooks.py": ("--apps", "40"),
    "bench_status.py": ("--notebooks", "10"),
    "bench_truss_hash.py": ("--quick", "--repeat", "1"),
    "bench_demo_models.py": (),
}  # fmt: skip
LAST_LINE = {
    "bench_migration.py": "rows: Python heap peak",
    "bench_runbooks.py": "all four",
    "bench_status.py": "target:",
    "bench_truss_hash.py": "cached vs cold",
    "bench_demo_models.py": "summarizer",
}


def test_every_benchmark_is_listed_here() -> None:
    assert sorted(p.name for p in (REPO / "benchmarks").glob("bench_*.py")) == sorted(SMALLEST)


@pytest.mark.parametrize("script", sorted(SMALLEST))
def test_the_benchmark_runs_at_its_smallest_size(script: str, tmp_path: Path) -> None:
    env = {**os.environ, "ZOO_OPS_BENCH_PG": postgres_base_url()}
    env.pop("ZOO_OPS_CONFIG", None)
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), *SMALLEST[script]],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert LAST_LINE[script] in done.stdout.strip().splitlines()[-1], done.stdout[-2000:]
