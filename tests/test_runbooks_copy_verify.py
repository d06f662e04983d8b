"""Runbooks 01_copy and 02_verify executed in a real kernel (papermill / nbclient),
on the local environment over SQLite and over PostgreSQL; scraps read back with scrapbook.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from zoo_ops.adapters.platform import schema as s
from zoo_ops.adapters.truss_files import truss_content_hash
from zoo_ops.execute import execute_runbook
from zoo_ops.trail import read_scraps

REPO = Path(__file__).resolve().parent.parent


def settings_bytes(env) -> bytes:
    return Path(env.config.settings[len("file:") :]).read_bytes()


def version_rows(env) -> list[tuple]:
    with env.platform.engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(s.oracle_versions.select()).all())


def test_copy_then_verify_iris(demo_env) -> None:
    env = demo_env
    first = execute_runbook("01_copy", model="iris")
    assert first.exit_code == 0, first.error
    scraps = read_scraps(first.path)
    expected_hash = truss_content_hash(REPO / "truss_models" / "iris")
    assert scraps["truss_hash"] == expected_hash
    assert scraps["copy_model"] == "iris_copy"
    assert scraps["deployed"] is True
    assert scraps["whitelist_before"] == {}
    assert scraps["whitelist_after"] == {"iris": {"copy": True}}
    assert bool(scraps["preflight"]["ok"].all())
    run = scraps["run"]
    assert (
        run["outcome"] == "succeeded"
        and run["step"] == "01_copy"
        and run["truss_hash"] == expected_hash
    )
    assert set(run) >= {
        "step",
        "model",
        "env",
        "operator",
        "dry_run",
        "started_at",
        "finished_at",
        "outcome",
        "truss_hash",
        "zoo_ops_version",
    }
    copy_version = env.platform.version(scraps["copy_version_id"])
    assert copy_version.status == s.ACTIVE and copy_version.truss_hash == expected_hash
    assert env.platform.zoo_model("iris_copy").current_version_id == copy_version.id
    assert first.path.parent == env.config.executed_root_path / "local" / "iris"

    again = execute_runbook("01_copy", model="iris")
    assert again.exit_code == 0, again.error
    again_scraps = read_scraps(again.path)
    assert again_scraps["deployed"] is False, "the same content is never deployed twice"
    assert again_scraps["copy_version_id"] == copy_version.id

    iris_current = env.platform.zoo_model("iris").current_version_id
    verified = execute_runbook("02_verify", model="iris")
    assert verified.exit_code == 0, verified.error
    v = read_scraps(verified.path)
    assert v["passed"] is True
    assert v["candidate_version_id"] == copy_version.id
    assert v["original_version_id"] == iris_current
    assert bool(v["comparison"]["match"].all()) and len(v["comparison"]) >= 3
    app = env.platform.application(v["oracle_id"])
    assert app.proxy_model_version_id == iris_current, "the test application's proxy is restored"
    assert v["run"]["outcome"] == "succeeded"


def test_verify_catches_the_deliberately_different_model(demo_env) -> None:
    env = demo_env
    assert execute_runbook("01_copy", model="sentiment").exit_code == 0
    original = env.platform.zoo_model("sentiment").current_version_id
    result = execute_runbook("02_verify", model="sentiment")
    assert result.exit_code == 1
    assert result.path.exists(), "a failed run still writes its executed notebook"
    scraps = read_scraps(result.path)
    comparison = scraps["comparison"]
    assert scraps["passed"] is False
    assert not bool(comparison["match"].all()) and bool(comparison["match"].any())
    assert scraps["run"]["outcome"] == "failed"
    assert "answers differ" in scraps["run"]["error"]
    app = env.platform.application(scraps["oracle_id"])
    assert app.proxy_model_version_id == original


def test_copy_dry_run_changes_nothing(demo_env) -> None:
    env = demo_env
    before_settings, before_versions = settings_bytes(env), version_rows(env)
    result = execute_runbook("01_copy", model="iris", parameters={"dry_run": "true"})
    assert result.exit_code == 0, result.error
    scraps = read_scraps(result.path)
    assert scraps["run"]["outcome"] == "dry_run"
    assert scraps["whitelist_after"] == {"iris": {"copy": True}}, "the diff is shown"
    assert scraps["truss_hash"] == truss_content_hash(REPO / "truss_models" / "iris")
    assert settings_bytes(env) == before_settings
    assert version_rows(env) == before_versions


@pytest.mark.parametrize(
    "step,params,needle",
    [
        ("01_copy", {"wait_timeout_s": "soon"}, "expected a whole number"),
        ("01_copy", {"colour": "red"}, "unknown parameter(s) colour"),
        ("02_verify", {"target": "prod"}, "must be 'copy' or 'new'"),
        ("02_verify", {"user_email": "nobody@nowhere.example"}, "no user with email"),
    ],
)
def test_bad_parameters_exit_2_and_change_nothing(demo_env, step, params, needle, tmp_path) -> None:
    env = demo_env
    before_settings, before_versions = settings_bytes(env), version_rows(env)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "zoo_ops.cli",
            "run",
            step,
            "-m",
            "iris",
            *[x for k, v in params.items() for x in ("-p", k, v)],
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
    )
    assert result.returncode == 2, result.stderr
    assert needle in result.stderr
    assert settings_bytes(env) == before_settings
    assert version_rows(env) == before_versions


def test_plain_papermill_works_with_a_foreign_python3_kernelspec(demo_env, tmp_path) -> None:
    # A user's own `python3` kernelspec pointing at an interpreter that cannot run anything.
    kernels = tmp_path / "jupyter" / "kernels" / "python3"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(
        json.dumps(
            {
                "argv": ["/bin/false", "{connection_file}"],
                "display_name": "other",
                "language": "python",
            }
        )
    )
    out = tmp_path / "out.ipynb"
    env = {
        **os.environ,
        "JUPYTER_PATH": str(tmp_path / "jupyter"),
        "JUPYTER_DATA_DIR": str(tmp_path / "jupyter"),
    }
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "papermill"),
            str(REPO / "runbooks" / "01_copy.ipynb"),
            str(out),
            "-p",
            "model",
            "iris",
            "-p",
            "dry_run",
            "True",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert read_scraps(out)["run"]["outcome"] == "dry_run"


def test_a_kernel_without_zoo_ops_says_so_in_one_line(demo_env, tmp_path) -> None:
    kernel_dir = tmp_path / "jupyter" / "kernels" / "bare"
    kernel_dir.mkdir(parents=True)
    launcher = "import sys; sys.modules['zoo_ops'] = None; from ipykernel import kernelapp; kernelapp.launch_new_instance()"
    (kernel_dir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-c", launcher, "-f", "{connection_file}"],
                "display_name": "bare",
                "language": "python",
            }
        )
    )
    out = tmp_path / "out.ipynb"
    env = {**os.environ, "JUPYTER_PATH": str(tmp_path / "jupyter")}
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "papermill"),
            str(REPO / "runbooks" / "01_copy.ipynb"),
            str(out),
            "-k",
            "bare",
            "-p",
            "model",
            "iris",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode != 0
    assert "has no zoo_ops: install it there" in result.stderr + out.read_text()


def test_no_secret_or_password_in_executed_notebooks(
    tmp_path, postgres_url, write_config, monkeypatch
) -> None:
    from zoo_ops.commands.demo import build_demo, load_catalog
    from zoo_ops.environment import Environment
    from zoo_ops.testing.test_secrets import RUNBOOK_DATABASE_PASSWORD

    password = RUNBOOK_DATABASE_PASSWORD
    url = postgres_url.replace(
        "postgresql+psycopg://postgres@", f"postgresql+psycopg://postgres:{password}@"
    )
    monkeypatch.setenv("ZOO_DB_URL", url)
    write_config(
        f"""
[env.local]
database_url = "${{ZOO_DB_URL}}"
settings = "file:{tmp_path / "state" / "dynamic-settings.yaml"}"
state_dir = "{tmp_path / "state"}"
truss_root = "{REPO / "truss_models"}"
executed_root = "{tmp_path / "executed"}"
"""
    )
    env = Environment.load("local")
    build_demo(env, apps=6)
    results = [
        execute_runbook("01_copy", model="sentiment"),
        execute_runbook("02_verify", model="sentiment"),
        execute_runbook("02_verify", model="sentiment", parameters={"user_email": "x@y.z"}),
    ]
    assert [r.exit_code for r in results] == [0, 1, 2]
    secrets = [password, *load_catalog().secrets.values()]
    for path in (tmp_path / "executed").rglob("*.ipynb"):
        text = path.read_text()
        for secret in secrets:
            assert secret not in text, f"{secret[:4]}... leaked into {path}"
    env.dispose()
