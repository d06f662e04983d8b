"""Configuration: the built-in local environment, ${VAR} expansion, and one-line errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from zoo_ops import config
from zoo_ops.config import environment_names, load_environment
from zoo_ops.domain.redaction import redact_url
from zoo_ops.errors import BadInput, ConfigError


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


def test_config_has_no_redaction_of_its_own() -> None:
    # One redaction for every URL form: the configuration uses the domain's.
    assert config.redact_url is redact_url


def test_database_url_redacted_hides_a_query_string_password(
    write_config, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config('[env.staging]\ndatabase_url = "postgresql://zoo@h/db?password=hunter22"\n')
    cfg = load_environment("staging")
    assert "hunter22" not in cfg.database_url_redacted
    assert cfg.database_url_redacted == "postgresql://zoo@h/db?password=***"


@pytest.mark.parametrize(
    "table",
    ['".."', '"."', '"a/b"', '"/etc"', '"st\\naging"', '"st\u0430ging"', '"-x"', '""'],
)
def test_a_badly_named_environment_refuses_the_file(write_config, table: str) -> None:
    write_config(
        f'[env.staging]\nsettings = "kubernetes"\n[env.{table}]\nsettings = "kubernetes"\n'
    )
    for load in (lambda: load_environment("staging"), environment_names):
        with pytest.raises(ConfigError) as err:
            load()
        assert "environment name" in str(err.value) and "\n" not in str(err.value)


def test_well_named_environments_load(write_config) -> None:
    write_config('[env.staging-2]\nsettings = "kubernetes"\n[env.Prod_EU]\nsettings = "k"\n')
    assert environment_names() == ["Prod_EU", "local", "staging-2"]
    assert load_environment("Prod_EU").state_dir == ".zoo/Prod_EU"


@pytest.mark.parametrize("name", ["..", "../prod", "/tmp/x", "a\nb", "\u0440rod", "x" * 64])
def test_a_bad_requested_environment_name_is_refused_before_the_file_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # ZOO_OPS_CONFIG names a missing file: reading it would be a different error.
    monkeypatch.setenv("ZOO_OPS_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(BadInput, match="environment name"):
        load_environment(name)


def test_truss_and_trail_paths_are_confined(write_config) -> None:
    write_config('[env.staging]\nsettings = "kubernetes"\n')
    cfg = load_environment("staging")
    assert cfg.truss_path("iris") == cfg.truss_root_path / "iris"
    assert cfg.trail_path("iris") == cfg.executed_root_path / "staging" / "iris"
    for model in ("..", "../x", "/etc", "a/b"):
        with pytest.raises(BadInput):
            cfg.truss_path(model)
        with pytest.raises(BadInput):
            cfg.trail_path(model)


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


def a_checkout(root: Path) -> Path:
    """A folder laid out as a zoo-ops checkout: the runbooks and the demo's trusses."""
    import shutil

    repo = Path(__file__).resolve().parents[1]
    shutil.copytree(repo / "runbooks", root / "runbooks")
    (root / "truss_models").symlink_to(repo / "truss_models")
    return root


def test_config_is_found_by_walking_up_nearest_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ZOO_OPS_CONFIG", raising=False)
    project = a_checkout(tmp_path / "project")
    deep = project / "runbooks" / "notes" / "today"
    deep.mkdir(parents=True)
    # A checkout without zoo_ops.toml: the built-in local, rooted at the checkout.
    assert config.config_path(deep) == project / "zoo_ops.toml"
    cfg = load_environment("local", cwd=deep)
    assert cfg.root == project.resolve()
    assert cfg.database_url_resolved == f"sqlite:///{(project / '.zoo/local.db').resolve()}"
    assert cfg.executed_root_path == project.resolve() / "executed"
    # A zoo_ops.toml on the way up wins over the checkout above it; its relative paths
    # are relative to its own folder.
    (project / "runbooks" / "notes" / "zoo_ops.toml").write_text(
        '[env.staging]\ndatabase_url = "sqlite:///st.db"\nexecuted_root = "trail"\n'
    )
    staging = load_environment("staging", cwd=deep)
    assert staging.root == (project / "runbooks" / "notes").resolve()
    assert staging.executed_root_path == staging.root / "trail"
    # $ZOO_OPS_CONFIG wins over both.
    elsewhere = tmp_path / "elsewhere.toml"
    elsewhere.write_text('[env.prod]\ndatabase_url = "sqlite:///p.db"\n')
    monkeypatch.setenv("ZOO_OPS_CONFIG", str(elsewhere))
    assert config.config_path(deep) == elsewhere
    # Outside any project: the working directory, as before.
    monkeypatch.delenv("ZOO_OPS_CONFIG")
    outside = tmp_path / "outside"
    outside.mkdir()
    assert config.config_path(outside) == outside / "zoo_ops.toml"


def test_a_kernel_started_in_runbooks_uses_the_checkouts_database_and_trail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What opening a runbook in Jupyter does: the kernel's working directory is
    runbooks/. It must find the checkout's demo database and write the checkout's trail,
    and `status` run from runbooks/ must show that run."""
    monkeypatch.delenv("ZOO_OPS_CONFIG", raising=False)
    project = a_checkout(tmp_path / "project")
    runbooks = project / "runbooks"
    assert zoo_ops_cli("demo", "--reset", "--apps", "20", cwd=project).returncode == 0
    papermill = subprocess.run(
        [
            str(Path(sys.executable).parent / "papermill"),
            str(runbooks / "01_copy.ipynb"),
            str(tmp_path / "out.ipynb"),
            *("-p", "model", "iris", "--cwd", str(runbooks)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=runbooks,
    )
    assert papermill.returncode == 0, papermill.stderr[-2000:]
    assert not (runbooks / ".zoo").exists()
    assert not (runbooks / "executed").exists()
    status = zoo_ops_cli("status", "-m", "iris", cwd=runbooks)
    assert status.returncode == 0, status.stderr
    assert re.search(r"iris\s+01_copy\s+succeeded", status.stdout), status.stdout


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        (
            'automation = "platform"\nserving = "kubernetes"\n',
            'automation = "platform" needs predict_url_template',
        ),
        (
            'automation = "platform"\npredict_url_template = "http://x/{truss_hash}"\n',
            'automation = "platform" needs serving = "kubernetes"',
        ),
    ],
)
def test_platform_automation_without_a_way_to_reach_its_versions_is_refused(
    tmp_path: Path, table: str, needle: str
) -> None:
    (tmp_path / "zoo_ops.toml").write_text(
        f'[env.plat]\ndatabase_url = "sqlite:///p.db"\nsettings = "kubernetes"\n{table}'
    )
    run = ("run", "01_copy", "-m", "iris", "-e", "plat")
    done = zoo_ops_cli(*run, cwd=tmp_path, env={"ZOO_OPS_CONFIG": ""})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], done.stderr
    assert not (tmp_path / "p.db").exists()
