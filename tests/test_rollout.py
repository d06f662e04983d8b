"""`zoo-ops rollout`: stops at the first failure and resumes from the trail once fixed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from zoo_ops.domain.rollout_plan import parse_plan
from zoo_ops.errors import BadInput

REPO = Path(__file__).resolve().parent.parent


def zoo_ops(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zoo_ops.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.long
def test_rollout_stops_at_the_failure_and_resumes_after_the_fix(
    tmp_path: Path, write_config
) -> None:
    from zoo_ops.commands.demo import build_demo
    from zoo_ops.environment import Environment

    shutil.copytree(REPO / "truss_models", tmp_path / "truss_models")
    write_config(
        f"""
[env.local]
database_url = "sqlite:///{tmp_path / "local.db"}"
settings = "file:{tmp_path / "state" / "settings.yaml"}"
state_dir = "{tmp_path / "state"}"
truss_root = "{tmp_path / "truss_models"}"
executed_root = "{tmp_path / "executed"}"
"""
    )
    env = Environment.load("local")
    build_demo(env, apps=12)
    plan = tmp_path / "plan.yaml"
    plan.write_text("environments: [local]\nmodels: [iris, sentiment, summarizer]\n")

    first = zoo_ops("rollout", str(plan), cwd=tmp_path)
    assert first.returncode == 1, first.stderr
    assert "rollout stopped at sentiment local 02_verify" in first.stderr
    trail = tmp_path / "executed" / "local"
    assert len(list((trail / "iris").glob("*.ipynb"))) == 3
    assert not (trail / "summarizer").exists(), "nothing after the failure ran"
    iris_current = env.platform.zoo_model("iris").current_version_id
    assert env.platform.version(iris_current).truss_hash, "iris was rolled out"

    # The fix: the truss's lexicon back to the legacy value, so it answers as before.
    lexicon = tmp_path / "truss_models" / "sentiment" / "data" / "lexicon.json"
    words = json.loads(lexicon.read_text())
    words["weights"]["okay"] = 0.0
    lexicon.write_text(json.dumps(words, indent=2))

    second = zoo_ops("rollout", str(plan), cwd=tmp_path)
    assert second.returncode == 0, second.stderr + second.stdout
    assert len(list((trail / "iris").glob("*.ipynb"))) == 3, "iris's steps were not repeated"
    assert "done before" in second.stdout
    for model in ("sentiment", "summarizer"):
        current = env.platform.version(env.platform.zoo_model(model).current_version_id)
        assert current.truss_hash and env.platform.count_proxying(current.id) > 0
    env.dispose()


@pytest.mark.parametrize(
    "plan,needle",
    [
        ([], "a rollout plan is a mapping"),
        ({"models": ["iris"]}, "`environments` must be a non-empty list"),
        ({"environments": ["local"], "models": ["iris", "iris"]}, "lists a name twice"),
        (
            {"environments": ["local"], "models": ["iris"], "steps": ["04_revert"]},
            "cannot be in a rollout",
        ),
        (
            {"environments": ["local"], "models": ["iris"], "steps": ["03_migrate", "01_copy"]},
            "in order",
        ),
        (
            {"environments": ["local"], "models": ["iris"], "parameters": {"05_retire": {"x": 1}}},
            "does not run",
        ),
        (
            {
                "environments": ["local"],
                "models": ["iris"],
                "parameters": {"01_copy": {"confirm": "x"}},
            },
            "set by the rollout",
        ),
        ({"environments": ["local"], "models": ["iris"], "colour": 1}, "unknown key(s) colour"),
    ],
)
def test_bad_plans_are_refused(plan, needle) -> None:
    with pytest.raises(BadInput) as err:
        parse_plan(plan, "plan.yaml")
    assert needle in str(err.value)


def test_bad_plan_file_exits_2_and_runs_nothing(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("environments: [local\n")
    result = zoo_ops("rollout", str(plan), cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "executed").exists()


def test_a_plan_that_is_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    """A named pipe as the plan: refused in one line, never waited on (no writer comes)."""
    import os

    plan = tmp_path / "plan.yaml"
    os.mkfifo(plan)
    result = subprocess.run(
        [sys.executable, "-m", "zoo_ops.cli", "rollout", str(plan)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,  # a reader waiting for a writer would never return
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"zoo-ops: error: {plan}: a FIFO (named pipe); name a rollout plan file"
    ]
