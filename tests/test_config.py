"""Configuration: the built-in local environment, ${VAR} expansion, and one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from zoo_ops.config import load_environment, redact_url
from zoo_ops.errors import ConfigError


def zoo_ops_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "zoo_ops.cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_local_exists_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZOO_OPS_CONFIG", raising=False)
    cfg = load_environment("local", cwd=tmp_path)
    assert cfg.database_url == "sqlite:///.zoo/local.db"
    assert cfg.database_url_resolved == f"sqlite:///{(tmp_path / '.zoo/local.db').resolve()}"
    assert cfg.settings.startswith("file:")
    assert cfg.serving == "local"


def test_var_expansion_reads_the_process_environment(
    write_config, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config('[env.staging]\ndatabase_url = "${STAGING_DB}"\nsettings = "kubernetes"\n')
    monkeypatch.setenv("STAGING_DB", "postgresql://zoo:hunter2@db.internal/zoo")
    cfg = load_environment("staging")
    assert cfg.database_url == "postgresql://zoo:hunter2@db.internal/zoo"
    assert "hunter2" not in cfg.database_url_redacted
    assert "***" in cfg.database_url_redacted


def test_unset_var_is_one_line_error(write_config, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config('[env.staging]\ndatabase_url = "${NOPE_NOT_SET}"\n')
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    with pytest.raises(ConfigError, match="NOPE_NOT_SET is not set"):
        load_environment("staging")


def test_unknown_env_lists_known(write_config) -> None:
    write_config('[env.staging]\nsettings = "kubernetes"\n[env.prod]\nsettings = "kubernetes"\n')
    with pytest.raises(ConfigError) as err:
        load_environment("qa")
    assert "known environments: local, prod, staging" in str(err.value)


def test_unknown_key_is_refused(write_config) -> None:
    write_config('[env.staging]\ndatabse_url = "x"\n')
    with pytest.raises(ConfigError, match="databse_url"):
        load_environment("staging")


@pytest.mark.parametrize(
    "url,shown",
    [
        ("postgresql://zoo:s3cr3t@h:5432/db", "postgresql://zoo:***@h:5432/db"),
        ("postgresql+psycopg://u:p%40ss@h/db", "postgresql+psycopg://u:***@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
        ("postgresql://zoo@h/db", "postgresql://zoo@h/db"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    "toml,env_name,needle",
    [
        ("[env.staging\n", "staging", "malformed TOML"),
        (
            '[env.staging]\ndatabase_url = "${UNSET_FOR_TEST}"\n',
            "staging",
            "UNSET_FOR_TEST is not set",
        ),
        ('[env.staging]\nsettings = "kubernetes"\n', "qa", "unknown environment 'qa'"),
    ],
)
def test_config_errors_exit_2_with_one_line(
    tmp_path: Path, toml: str, env_name: str, needle: str
) -> None:
    (tmp_path / "zoo_ops.toml").write_text(toml)
    result = zoo_ops_cli("demo", "-e", env_name, cwd=tmp_path, env={"ZOO_OPS_CONFIG": ""})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]
    assert not (tmp_path / ".zoo").exists(), "a refused command must change nothing"
