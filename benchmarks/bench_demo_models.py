"""Figures: how long each demo model takes to load and answer its examples (truss and legacy).

Run: python benchmarks/bench_demo_models.py. The issue asks for "well under a second" each.
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from zoo_ops.adapters.legacy_runtime import load_legacy_model
from zoo_ops.adapters.truss_runtime import load_truss_model, read_truss
from zoo_ops.commands.demo import demo_data_dir

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    import numpy  # noqa: F401  - imported once up front, as a serving process would have it

    catalog = yaml.safe_load((demo_data_dir() / "catalog.yaml").read_text())
    print(
        f"{'model':<12} {'truss load+predict s':>22} {'legacy load+predict s':>22} {'examples':>9}"
    )
    for entry in catalog["models"]:
        started = time.perf_counter()
        package = read_truss(REPO / "truss_models" / entry["truss"])
        model = load_truss_model(package, secrets=catalog.get("secrets") or {})
        for example in package.examples:
            model.predict(example.input)
        truss_s = time.perf_counter() - started
        started = time.perf_counter()
        legacy = load_legacy_model(demo_data_dir() / "legacy" / entry["legacy"])
        for example in package.examples:
            legacy.predict(example.input)
        legacy_s = time.perf_counter() - started
        print(f"{entry['name']:<12} {truss_s:>22.4f} {legacy_s:>22.4f} {len(package.examples):>9}")


if __name__ == "__main__":
    main()
