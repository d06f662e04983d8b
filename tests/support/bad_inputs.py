"""What the bad-input tests share (test_bad_inputs, test_truss_content): the environment a
case runs in (the fixture ``case_env``), the fingerprint of everything a refused command
must leave as it was, and the shape of the one error line it prints."""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from support.envs import REPO
from zoo_ops.adapters.platform import schema as s
from zoo_ops.commands.demo import build_demo
from zoo_ops.environment import Environment

UNCHECKED_TABLES = {s.runs.name}
ONE_ERROR_LINE = re.compile(r"^zoo-ops(?: [a-z_]+)*: error: ")


def fingerprint(env: Environment) -> dict[str, str]:
    """sha256 of every checked table's rows (sorted) and of the settings file's bytes."""
    out: dict[str, str] = {}
    with env.platform.engine.connect() as conn:
        for table in s.metadata.sorted_tables:
            if table.name in UNCHECKED_TABLES:
                continue
            rows = sorted(repr(tuple(map(str, r))) for r in conn.execute(select(table)).all())
            out[table.name] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    settings = Path(env.config.settings.removeprefix("file:"))
    out["settings"] = hashlib.sha256(settings.read_bytes()).hexdigest()
    return out


@pytest.fixture
def case_env(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    write_config: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., tuple[Environment, Path]]]:
    made: list[Environment] = []

    def make(db: str, extra_config: str = "") -> tuple[Environment, Path]:
        url = (
            f"sqlite:///{tmp_path / 'platform.db'}"
            if db == "sqlite"
            else str(request.getfixturevalue("postgres_url"))
        )
        trusses = tmp_path / "trusses"
        shutil.copytree(REPO / "truss_models", trusses)
        local = f"""
[env.local]
database_url = "{url}"
settings = "file:{tmp_path / "state" / "dynamic-settings.yaml"}"
state_dir = "{tmp_path / "state"}"
truss_root = "{trusses}"
executed_root = "{tmp_path / "executed"}"
"""
        write_config(local)
        monkeypatch.chdir(tmp_path)
        env = Environment.load("local")
        build_demo(env, apps=6)
        made.append(env)
        if extra_config:  # after the build: a case's config may be one that cannot load
            write_config(local + extra_config)
        return env, trusses

    yield make
    for env in made:
        env.dispose()
