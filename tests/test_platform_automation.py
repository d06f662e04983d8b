"""Who deploys is configuration; serving endpoints are configuration (issue 15).

An ``automation = "platform"`` environment on the Kubernetes stand-in (settings, capacity,
secrets over HTTP through the official client), its platform database on SQLite and on
PostgreSQL. The platform's automation is played by
:class:`~zoo_ops.testing.platform_automation.PlatformAutomation`, which watches the
stand-in's ConfigMap and writes the platform tables with plain SQL. Versions are served
by a small HTTP server: truss versions at ``/truss-<hash>/...``, legacy versions at
``/legacy-<version id>/...``, the routes the environment's URL templates name.
Runbooks run in a real kernel (``execute_runbook``, what ``zoo-ops run`` does).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from support.kube import use_standin

from zoo_ops.adapters.legacy_runtime import load_legacy_model
from zoo_ops.adapters.platform import schema as s
from zoo_ops.adapters.truss_files import truss_content_hash
from zoo_ops.adapters.truss_runtime import load_truss_model
from zoo_ops.commands.demo import build_demo, demo_data_dir
from zoo_ops.environment import Environment
from zoo_ops.execute import execute_runbook
from zoo_ops.services.automation import reconcile
from zoo_ops.services.settings import set_whitelist_entry
from zoo_ops.steps.s05_retire import check_retire, retire
from zoo_ops.testing.kube_api import KubeApiStandIn
from zoo_ops.testing.kube_fixtures import BASETEN_NAMESPACE, SETTINGS_CONFIGMAP
from zoo_ops.testing.platform_automation import PlatformAutomation, settings_from_kubernetes
from zoo_ops.testing.truss_server import TrussHttpServer
from zoo_ops.trail import read_scraps

REPO = Path(__file__).resolve().parent.parent
TRUSSES = REPO / "truss_models"
SECRET_NAME = "model-zoo-admin-secrets"
IRIS_HASH = truss_content_hash(TRUSSES / "iris")
PREDICT = "/v1/models/model:predict"


@pytest.fixture
def server() -> Iterator[TrussHttpServer]:
    """Serves iris's truss at /truss-<hash>/ and every demo legacy iris at /legacy-<id>/."""
    models = {f"truss-{IRIS_HASH}": load_truss_model(TRUSSES / "iris")}
    with TrussHttpServer(models) as running:
        yield running


@pytest.fixture
def make_env(
    kubeconfig: Path,
    kube_api: KubeApiStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
    server: TrussHttpServer,
    write_config: Callable[[str], Path],
) -> Iterator[Callable[..., Environment]]:
    """``make_env(legacy_template=True, extra="")``: the ``plat`` environment (automation = platform),
    its database built by the demo through a ``build`` environment with a settings file."""
    use_standin(kube_api, kubeconfig, monkeypatch)
    made: list[Environment] = []

    def make(*, legacy_template: bool = True, extra: str = "") -> Environment:
        legacy = (
            f'legacy_predict_url_template = "{server.url}/legacy-{{version_id}}{PREDICT}"'
            if legacy_template
            else ""
        )
        write_config(
            f"""
[env.build]
database_url = "{database_url}"
settings = "file:{tmp_path / "build" / "dynamic-settings.yaml"}"
state_dir = "{tmp_path / "build"}"

[env.plat]
database_url = "{database_url}"
settings = "kubernetes"
automation = "platform"
state_dir = "{tmp_path / "plat"}"
truss_root = "{TRUSSES}"
executed_root = "{tmp_path / "executed"}"
serving = "kubernetes"
kube_context = "standin"
namespace = "{BASETEN_NAMESPACE}"
configmap = "{SETTINGS_CONFIGMAP}"
secret_name = "{SECRET_NAME}"
predict_url_template = "{server.url}/truss-{{truss_hash}}{PREDICT}"
{legacy}
{extra}
"""
        )
        builder = Environment.load("build")
        build_demo(builder, apps=3)
        builder.dispose()
        env = Environment.load("plat")
        legacy_iris = load_legacy_model(demo_data_dir() / "legacy" / "iris")
        zoo = env.platform.zoo_model("iris")
        server.models[f"legacy-{zoo.current_version_id}"] = legacy_iris
        made.append(env)
        return env

    yield make
    for env in made:
        env.dispose()


@pytest.fixture
def platform(kubeconfig: Path, database_url: str) -> Callable[..., PlatformAutomation]:
    """``platform(**options)``: the platform's automation over the stand-in's ConfigMap."""
    read = settings_from_kubernetes(kubeconfig, "standin", BASETEN_NAMESPACE, SETTINGS_CONFIGMAP)

    def start(**options: object) -> PlatformAutomation:
        return PlatformAutomation(database_url, read, TRUSSES, **options)  # type: ignore[arg-type]

    return start


def deploy_log_rows(env: Environment) -> int:
    with env.platform.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(s.deploy_log)).scalar_one())


def oracle_count(env: Environment) -> int:
    with env.platform.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(s.oracles)).scalar_one())


def test_copy_verify_migrate_retire_with_the_platform_deploying(
    make_env: Callable[..., Environment],
    platform: Callable[..., PlatformAutomation],
    kube_api: KubeApiStandIn,
) -> None:
    env = make_env()
    legacy_id = env.platform.current_version(env.platform.zoo_model("iris")).id
    with platform() as automation:
        copy = execute_runbook("01_copy", model="iris", env="plat")
        assert copy.exit_code == 0, copy.error
        scraps = read_scraps(copy.path)
        assert scraps["deployed"] is True
        assert scraps["copy_version_id"] in automation.created
        copy_version = env.platform.version(scraps["copy_version_id"])
        assert copy_version.truss_hash == IRIS_HASH and copy_version.status == s.ACTIVE

        # 02: the legacy baseline through legacy_predict_url_template, the copy through
        # predict_url_template, both served over HTTP by what the templates name.
        verify = execute_runbook("02_verify", model="iris", env="plat")
        assert verify.exit_code == 0, verify.error
        assert read_scraps(verify.path)["passed"] is True
        assert read_scraps(verify.path)["original_version_id"] == legacy_id

        migrate = execute_runbook("03_migrate", model="iris", env="plat")
        assert migrate.exit_code == 0, migrate.error
        new_id = read_scraps(migrate.path)["new_version_id"]
        assert new_id in automation.created
        zoo = env.platform.zoo_model("iris")
        assert zoo.current_version_id == new_id
        assert env.platform.version(new_id).truss_hash == IRIS_HASH
        assert env.platform.count_proxying(legacy_id) == 0
        assert not automation.errors

    # zoo-ops deployed nothing itself: no Deployment, no Service, no deploy-log row.
    assert kube_api.list_objects("Deployment", BASETEN_NAMESPACE) == []
    assert kube_api.list_objects("Service", BASETEN_NAMESPACE) == []
    assert kube_api.requests_for("create", "deployments") == []
    assert deploy_log_rows(env) == 0

    # 05: the platform serves the legacy version and the copy: rows DELETED, serving left,
    # and the table says so per version.
    plan = check_retire(env, "iris", min_age_days=0)
    done = retire(env, plan)
    table = done.to_frame().set_index("version")
    assert table.loc[legacy_id, "status"] == s.DELETED
    assert table.loc[legacy_id, "removed"] == ""
    assert table.loc[legacy_id, "not_removed"].startswith("serving not removed by zoo-ops: legacy:")
    assert "legacy" in table.loc[legacy_id, "why"]
    copy_row = table.loc[copy_version.id]
    assert copy_row["not_removed"] == f"serving not removed by zoo-ops: {copy_version.artifact}"
    assert "platform's automation" in copy_row["why"]
    assert env.platform.version(legacy_id).status == s.DELETED
    assert kube_api.requests_for("delete", "deployments") == []


def test_a_platform_deploying_other_content_fails_01_naming_both_hashes(
    make_env: Callable[..., Environment], platform: Callable[..., PlatformAutomation]
) -> None:
    env = make_env()
    other = "e" * 64
    with platform(hash_of=lambda _path: other):
        run = execute_runbook("01_copy", model="iris", env="plat")
    assert run.exit_code == 1
    assert run.error is not None and "\n" not in run.error
    assert other[:12] in run.error and IRIS_HASH[:12] in run.error
    assert deploy_log_rows(env) == 0


def test_no_platform_automation_times_out_in_one_line_and_creates_no_version(
    make_env: Callable[..., Environment], kube_api: KubeApiStandIn
) -> None:
    env = make_env()
    before = oracle_count(env)
    run = execute_runbook("01_copy", model="iris", env="plat", parameters={"wait_timeout_s": 1.5})
    assert run.exit_code == 1
    assert run.error is not None and "\n" not in run.error
    assert "no ACTIVE current version" in run.error and "after 1.5s" in run.error
    assert env.platform.find_zoo_model("iris_copy") is None
    assert oracle_count(env) == before and deploy_log_rows(env) == 0
    assert kube_api.list_objects("Deployment", BASETEN_NAMESPACE) == []


def test_02_against_a_legacy_baseline_without_a_legacy_url_refuses_before_the_application(
    make_env: Callable[..., Environment], platform: Callable[..., PlatformAutomation]
) -> None:
    env = make_env(legacy_template=False)
    with platform():
        assert execute_runbook("01_copy", model="iris", env="plat").exit_code == 0
    before = oracle_count(env)
    run = execute_runbook("02_verify", model="iris", env="plat")
    assert run.exit_code == 2
    assert run.error is not None and "\n" not in run.error
    assert "set legacy_predict_url_template" in run.error
    assert oracle_count(env) == before  # no test application was created


def test_automation_reconcile_refuses_where_the_platform_deploys(
    make_env: Callable[..., Environment], kube_api: KubeApiStandIn
) -> None:
    env = make_env()
    before = oracle_count(env)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "zoo-ops"), "automation", "-e", "plat", "reconcile"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and 'automation = "platform"' in lines[0]
    assert oracle_count(env) == before and deploy_log_rows(env) == 0
    assert kube_api.list_objects("Deployment", BASETEN_NAMESPACE) == []


def test_a_bad_image_template_refuses_01_in_one_line_before_the_whitelist_is_written(
    make_env: Callable[..., Environment], kube_api: KubeApiStandIn
) -> None:
    make_env(extra='image = "registry.example/{truss_name}:{version}"')
    before = kube_api.get_object("ConfigMap", BASETEN_NAMESPACE, SETTINGS_CONFIGMAP)
    run = execute_runbook("01_copy", model="iris", env="plat")
    assert run.exit_code == 2
    assert run.error is not None and "\n" not in run.error
    assert "image" in run.error and "{version}" in run.error
    assert kube_api.get_object("ConfigMap", BASETEN_NAMESPACE, SETTINGS_CONFIGMAP) == before


def test_zoo_ops_automation_deploys_the_configured_image_with_pull_secrets_and_retires_it(
    kubeconfig: Path,
    kube_api: KubeApiStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
    write_config: Callable[[str], Path],
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    write_config(
        f"""
[env.zk]
database_url = "{database_url}"
settings = "file:{tmp_path / "zk" / "dynamic-settings.yaml"}"
state_dir = "{tmp_path / "zk"}"
truss_root = "{TRUSSES}"
serving = "kubernetes"
kube_context = "standin"
namespace = "{BASETEN_NAMESPACE}"
secret_name = "{SECRET_NAME}"
image = "registry.example/zoo/{{truss_name}}:{{truss_hash_short}}"
image_pull_secrets = ["regcred", "mirror-cred"]
"""
    )
    env = Environment.load("zk")
    try:
        build_demo(env, apps=0)
        set_whitelist_entry(env, "iris", True)
        row = reconcile(env, wait_timeout_s=10).row("iris")
        assert row.action == "deployed", row.detail
        name = f"zoo-{row.version_id}"
        dep = kube_api.get_object("Deployment", BASETEN_NAMESPACE, name)
        assert dep is not None
        pod_spec = dep["spec"]["template"]["spec"]
        assert pod_spec["containers"][0]["image"] == f"registry.example/zoo/iris:{IRIS_HASH[:16]}"
        assert pod_spec["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror-cred"}]

        removal = env.serving.retire(env.platform.version(row.version_id))
        assert removal.removed == f"Deployment and Service {BASETEN_NAMESPACE}/{name}"
        assert kube_api.get_object("Deployment", BASETEN_NAMESPACE, name) is None
    finally:
        env.dispose()
