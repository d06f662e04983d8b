"""`zoo-ops demo`: the embedded environment, its counts and proxies, and what it prints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from zoo_ops.adapters.platform import schema as s
from zoo_ops.commands.demo import build_demo, load_catalog
from zoo_ops.errors import BadInput
from zoo_ops.testing.test_secrets import DEMO_DATABASE_PASSWORD

REPO = Path(__file__).resolve().parent.parent


def test_demo_counts_and_proxies_are_consistent(local_env) -> None:
    summary = build_demo(local_env, apps=37)
    catalog = load_catalog()
    store = local_env.platform
    frame = summary.to_frame()
    assert sorted(frame["model"]) == sorted(m.name for m in catalog.models)
    assert len(catalog.models) >= 4
    assert int(frame["applications"].sum()) == 37
    with store.engine.connect() as conn:
        user_rows = conn.execute(
            select(s.oracle_versions.c.proxy_model_version_id, s.oracles.c.name)
            .join(s.oracles, s.oracles.c.id == s.oracle_versions.c.oracle_id)
            .where(s.oracles.c.is_model_zoo.is_(False))
        ).all()
    assert len(user_rows) == 37
    currents = {m.name: m.current_version_id for m in store.zoo_models()}
    for proxy, app_name in user_rows:
        zoo_name = app_name.split("-app-")[0]
        assert proxy == currents[zoo_name], (
            "every application proxies its zoo model's current version"
        )
    for model in store.zoo_models():
        version = store.version(model.current_version_id)
        assert version.status == s.ACTIVE and version.truss_hash is None
        assert (
            local_env.config.state_path / version.artifact.split(":", 1)[1] / "legacy.yaml"
        ).exists()
    assert summary.test_user_email and store.user_by_email(summary.test_user_email)
    admin = store.admin_organization()
    assert catalog.secrets and store.secret_names(admin.id) == set(catalog.secrets)


def test_demo_refuses_an_existing_environment_unless_reset(local_env) -> None:
    build_demo(local_env, apps=5)
    before = {m.name: m.current_version_id for m in local_env.platform.zoo_models()}
    with pytest.raises(BadInput, match="already exists.*--reset"):
        build_demo(local_env, apps=5)
    assert {m.name: m.current_version_id for m in local_env.platform.zoo_models()} == before
    build_demo(local_env, apps=3, reset=True)
    after = local_env.platform.zoo_models()
    assert {m.current_version_id for m in after}.isdisjoint(before.values())
    assert sum(local_env.platform.proxy_counts([m.current_version_id for m in after]).values()) == 3


def test_settings_file_is_a_configmap_like_the_seeds(demo_env) -> None:
    import yaml

    path = Path(demo_env.config.settings[len("file:") :])
    manifest = yaml.safe_load(path.read_text())
    assert manifest["kind"] == "ConfigMap"
    assert manifest["metadata"]["name"] == "baseten-django-dynamic-settings"
    assert manifest["data"] == {
        "ratelimitEnabled": "true",
        "modelZooDeploymentAutomationEnabled": "true",
        "automaticallyDeployedModelZooModelsWhitelist": "{}",
    }


def test_cli_never_prints_the_database_password(tmp_path: Path, postgres_url: str) -> None:
    # Trust auth ignores the password, so a made-up one connects and must never be shown.
    password = DEMO_DATABASE_PASSWORD
    url = postgres_url.replace(
        "postgresql+psycopg://postgres@", f"postgresql+psycopg://postgres:{password}@"
    )
    assert password in url
    (tmp_path / "zoo_ops.toml").write_text(
        """
[env.pgdemo]
database_url = "${PGDEMO_URL}"
settings = "file:state/dynamic-settings.yaml"
state_dir = "state"
"""
    )
    env = {**os.environ, "ZOO_OPS_CONFIG": str(tmp_path / "zoo_ops.toml"), "PGDEMO_URL": url}
    outputs = []
    for args in (
        ["demo", "-e", "pgdemo", "--apps", "8"],
        ["demo", "-e", "pgdemo"],
        ["demo", "-e", "nope"],
    ):
        result = subprocess.run(
            [sys.executable, "-m", "zoo_ops.cli", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        outputs.append(result)
    assert outputs[0].returncode == 0, outputs[0].stderr
    assert "***" in outputs[0].stdout
    assert outputs[1].returncode == 2 and "already exists" in outputs[1].stderr
    assert outputs[2].returncode == 2
    for result in outputs:
        assert password not in result.stdout + result.stderr
