"""`zoo-ops shell` in a pseudo-terminal: the session preloaded in terminal IPython, its
helper's counts those of the database, a write refused; a bad environment is one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pexpect
from sqlalchemy import select

from zoo_ops.adapters.platform import schema as s

CLI = [sys.executable, "-m", "zoo_ops.cli"]


def test_shell_preloads_the_session_and_refuses_writes(demo_env, tmp_path: Path) -> None:
    platform = demo_env.platform
    iris = platform.current_version(platform.zoo_model("iris")).id
    expected = platform.count_proxying(iris)
    with platform.engine.connect() as conn:
        names_before = sorted(conn.execute(select(s.oracles.c.name)).scalars())
    child = pexpect.spawn(
        CLI[0],
        [*CLI[1:], "shell", "-e", "local"],
        cwd=str(tmp_path),
        env={**os.environ, "TERM": "dumb"},
        timeout=90,
        encoding="utf-8",
    )
    try:
        child.expect("zoo-ops session: env 'local'")
        child.expect(r"In \[\d+\]")
        child.sendline(
            'print("NAMES", sorted({"env", "oracles_oracle", "zoo_models", "runs"} - set(dir())))'
        )
        child.expect(r"NAMES \[\]")
        child.sendline(
            'm = zoo_models().set_index("model"); '
            'print("IRIS", m.loc["iris", "current_version"], m.loc["iris", "on_current"])'
        )
        child.expect(rf"IRIS {iris} {expected}")
        child.sendline("%sql UPDATE oracles_oracle SET name = 'x'")
        child.expect("attempt to write a readonly database|cannot execute UPDATE in a read-only")
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    with platform.engine.connect() as conn:
        assert sorted(conn.execute(select(s.oracles.c.name)).scalars()) == names_before


def test_shell_with_an_unknown_environment_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [*CLI, "shell", "-e", "nowhere"], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "zoo-ops: error: unknown environment 'nowhere'; known environments: local"
    ]
