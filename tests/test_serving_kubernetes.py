"""The Kubernetes adapters (serving, cluster capacity, secrets) against the API stand-in.

Every call goes over HTTP through the official client to the stand-in; predict goes over
HTTP to a small local server that serves truss models with the in-process runtime.
"""

from __future__ import annotations

import base64
import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from zoo_ops.adapters.cluster.kubernetes import KubernetesCluster
from zoo_ops.adapters.legacy_runtime import load_legacy_model
from zoo_ops.adapters.platform.store import OracleVersion, utcnow
from zoo_ops.adapters.serving.kubernetes import KubernetesServing
from zoo_ops.adapters.truss_files import truss_content_hash
from zoo_ops.adapters.truss_runtime import load_truss_model, read_truss
from zoo_ops.adapters.wiring import cluster_for
from zoo_ops.commands.demo import demo_data_dir
from zoo_ops.domain.capacity import Amounts
from zoo_ops.environment import Environment
from zoo_ops.errors import ConfigError, StepFailed
from zoo_ops.services.preflight import preflight_capacity, preflight_secrets
from zoo_ops.testing.kube_api import (
    FAIL_ANNOTATION,
    NEVER_READY_ANNOTATION,
    KubeApiStandIn,
    default_seed_manifests,
)
from zoo_ops.testing.kube_fixtures import ACCELERATOR_LABEL, BASETEN_NAMESPACE, GPU_RESOURCE
from zoo_ops.testing.truss_server import TrussHttpServer

REPO = Path(__file__).resolve().parent.parent
TRUSSES = REPO / "truss_models"
SECRET_NAME = "model-zoo-admin-secrets"


@pytest.fixture
def k8s_env(
    kubeconfig: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    write_config: Callable[[str], Path],
) -> Iterator[Environment]:
    """A `k8s` environment: serving, capacity and secrets in the stand-in; SQLite platform."""
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    write_config(
        f"""
[env.k8s]
database_url = "sqlite:///{tmp_path / "platform.db"}"
settings = "file:{tmp_path / "state" / "dynamic-settings.yaml"}"
state_dir = "{tmp_path / "state"}"
truss_root = "{TRUSSES}"
serving = "kubernetes"
kube_context = "standin"
namespace = "{BASETEN_NAMESPACE}"
secret_name = "{SECRET_NAME}"
predict_url_template = "http://127.0.0.1:9/{{service}}/v1/models/model:predict"
"""
    )
    env = Environment.load("k8s")
    env.platform.create_schema()
    yield env
    env.dispose()


def serving_of(env: Environment, **kwargs: Any) -> KubernetesServing:
    cfg = env.config
    options: dict[str, Any] = {
        "namespace": cfg.namespace,
        "context": cfg.kube_context,
        "predict_url_template": cfg.predict_url_template,
        "secret_name": cfg.secret_name,
        "poll_interval_s": 0.05,
    }
    options.update(kwargs)
    return KubernetesServing(**options)


TRUSS_HASH = "ab" * 32


def version(version_id: str, artifact: str, truss_hash: str | None = TRUSS_HASH) -> OracleVersion:
    """A zoo version row: a truss version by default, a legacy one with truss_hash=None."""
    return OracleVersion(version_id, "oracle1", None, truss_hash, "ACTIVE", artifact, utcnow())


def pod(name: str, node: str, requests: dict[str, str], phase: str = "Running") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "other"},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "image": "busybox", "resources": {"requests": requests}}],
        },
        "status": {"phase": phase},
    }


# --- serving -------------------------------------------------------------------------------


def test_deploy_creates_deployment_and_service_with_the_truss_resources(
    k8s_env: Environment, kube_api: KubeApiStandIn
) -> None:
    truss = read_truss(TRUSSES / "resnet50")  # cpu 2, memory 8Gi, accelerator T4
    truss_hash = truss_content_hash(truss.path)
    serving = k8s_env.serving
    assert isinstance(serving, KubernetesServing)

    artifact = serving.deploy(
        "v1resnet", truss.path, truss.config, model="resnet50_copy", truss_hash=truss_hash
    )

    assert artifact == f"kubernetes:{BASETEN_NAMESPACE}/zoo-v1resnet"
    dep = kube_api.get_object("Deployment", BASETEN_NAMESPACE, "zoo-v1resnet")
    assert dep is not None
    labels = dep["metadata"]["labels"]
    assert labels["zoo-ops/version"] == "v1resnet"
    assert labels["zoo-ops/model"] == "resnet50_copy"
    assert labels["zoo-ops/truss-hash"] == truss_hash[:32]
    assert dep["metadata"]["annotations"]["zoo-ops/truss-hash"] == truss_hash
    pod_spec = dep["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    expected = {"cpu": "2", "memory": "8Gi", GPU_RESOURCE: "1"}
    assert container["resources"] == {"requests": expected, "limits": expected}
    assert pod_spec["nodeSelector"] == {ACCELERATOR_LABEL: "nvidia-tesla-t4"}
    svc = kube_api.get_object("Service", BASETEN_NAMESPACE, "zoo-v1resnet")
    assert svc is not None
    assert svc["spec"]["selector"] == {"zoo-ops/version": "v1resnet"}

    serving.wait_ready("v1resnet", artifact, timeout_s=10)
    # The stand-in's scheduler honoured the node selector: the pod is on the T4 node.
    pods = [
        p
        for p in kube_api.list_objects("Pod", BASETEN_NAMESPACE)
        if p["metadata"]["labels"].get("zoo-ops/version") == "v1resnet"
    ]
    assert [p["spec"]["nodeName"] for p in pods] == ["gpu-node-1"]


def test_cpu_truss_has_no_gpu_and_a_truss_with_secrets_mounts_the_secret(
    k8s_env: Environment, kube_api: KubeApiStandIn
) -> None:
    truss = read_truss(TRUSSES / "sentiment")  # 500m, 512Mi, secret hf_access_token
    serving_of(k8s_env).deploy("v1sent", truss.path, truss.config, model="sentiment")

    dep = kube_api.get_object("Deployment", BASETEN_NAMESPACE, "zoo-v1sent")
    assert dep is not None
    pod_spec = dep["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    assert container["resources"]["requests"] == {"cpu": "500m", "memory": "512Mi"}
    assert "nodeSelector" not in pod_spec
    assert pod_spec["volumes"][0]["secret"]["secretName"] == SECRET_NAME
    assert container["volumeMounts"][0]["mountPath"] == "/secrets"


def test_wait_ready_waits_for_the_deployment_to_become_ready(
    k8s_env: Environment, kube_api: KubeApiStandIn
) -> None:
    truss = read_truss(TRUSSES / "iris")
    # Ready 3 s after creation: long enough that a loaded machine's deploy call cannot
    # outlast it before the 0.1 s wait below.
    serving = serving_of(k8s_env, extra_annotations={"zoo-ops.test/ready-after-seconds": "3"})
    # Warm up first: the first call in a process imports the Kubernetes client and reads the
    # kubeconfig, which on a loaded machine (xdist workers) can take longer than the 3 s.
    _ = serving.apps, serving.core
    artifact = serving.deploy("v1slow", truss.path, truss.config, model="iris")

    with pytest.raises(StepFailed, match=r"not ready after 0\.1s \(0 of 1 replicas ready\)"):
        serving.wait_ready("v1slow", artifact, timeout_s=0.1)
    started = time.monotonic()
    serving.wait_ready("v1slow", artifact, timeout_s=10)
    assert time.monotonic() - started < 9
    status = kube_api.get_object("Deployment", BASETEN_NAMESPACE, "zoo-v1slow")["status"]  # type: ignore[index]
    assert status["readyReplicas"] == 1


def test_wait_ready_honours_the_timeout_of_a_deployment_that_never_becomes_ready(
    k8s_env: Environment,
) -> None:
    truss = read_truss(TRUSSES / "iris")
    serving = serving_of(k8s_env, extra_annotations={NEVER_READY_ANNOTATION: "true"})
    artifact = serving.deploy("v1never", truss.path, truss.config, model="iris")

    started = time.monotonic()
    with pytest.raises(StepFailed, match="zoo-v1never not ready after 0.5s"):
        serving.wait_ready("v1never", artifact, timeout_s=0.5)
    elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 5


def test_wait_ready_fails_at_once_when_the_rollout_cannot_progress(k8s_env: Environment) -> None:
    truss = read_truss(TRUSSES / "iris")
    serving = serving_of(k8s_env, extra_annotations={FAIL_ANNOTATION: "true"})
    artifact = serving.deploy("v1fail", truss.path, truss.config, model="iris")

    started = time.monotonic()
    with pytest.raises(StepFailed, match="failed to roll out: ProgressDeadlineExceeded"):
        serving.wait_ready("v1fail", artifact, timeout_s=30)
    assert time.monotonic() - started < 10


def test_a_gpu_deploy_with_no_free_gpu_times_out_naming_the_scheduler_reason(
    k8s_env: Environment, kube_api: KubeApiStandIn
) -> None:
    kube_api.seed([pod("gpu-hog", "gpu-node-1", {"cpu": "1", GPU_RESOURCE: "1"})])
    truss = read_truss(TRUSSES / "resnet50")
    serving = serving_of(k8s_env)
    artifact = serving.deploy("v1nogpu", truss.path, truss.config, model="resnet50")

    with pytest.raises(StepFailed, match=f"Insufficient {GPU_RESOURCE}"):
        serving.wait_ready("v1nogpu", artifact, timeout_s=0.5)


def test_delete_removes_deployment_and_service_and_is_idempotent(
    k8s_env: Environment, kube_api: KubeApiStandIn
) -> None:
    truss = read_truss(TRUSSES / "iris")
    serving = serving_of(k8s_env)
    artifact = serving.deploy("v1gone", truss.path, truss.config, model="iris")
    serving.wait_ready("v1gone", artifact, timeout_s=10)

    serving.delete(version("v1gone", artifact))

    assert kube_api.get_object("Deployment", BASETEN_NAMESPACE, "zoo-v1gone") is None
    assert kube_api.get_object("Service", BASETEN_NAMESPACE, "zoo-v1gone") is None
    serving.delete(version("v1gone", artifact))  # already gone: no error
    assert kube_api.requests_for("delete", "deployments")


def test_predict_posts_json_to_the_url_template_for_truss_and_legacy_versions(
    k8s_env: Environment,
) -> None:
    iris = load_truss_model(TRUSSES / "iris")
    legacy = load_legacy_model(demo_data_dir() / "legacy" / "iris")
    request = {"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}
    # Each kind through its own template (issue 15 changed this: a legacy version used to
    # be asked at the truss template's zoo-<id> Service, which only zoo-ops deploys make).
    with TrussHttpServer({"zoo-v1iris": iris, "legacy-oracle1-v0legacy": legacy}) as server:
        serving = serving_of(
            k8s_env,
            predict_url_template=server.url + "/{service}/v1/models/model:predict",
            legacy_predict_url_template=(
                server.url + "/legacy-{oracle_id}-{version_id}/v1/models/model:predict"
            ),
        )
        answer = serving.predict(version("v1iris", "kubernetes:baseten/zoo-v1iris"), request)
        legacy_version = version("v0legacy", "legacy:artifacts/v0legacy", truss_hash=None)
        old_answer = serving.predict(legacy_version, request)
        with pytest.raises(StepFailed, match="HTTP 404"):
            serving.predict(version("v9missing", "kubernetes:baseten/zoo-v9missing"), request)
        with pytest.raises(StepFailed, match="HTTP 500"):
            serving.predict(version("v1iris", "kubernetes:baseten/zoo-v1iris"), {"bad": 1})

    assert answer == iris.predict(request)
    assert answer["predictions"] == ["setosa", "virginica"]
    assert old_answer == legacy.predict(request)


def test_a_legacy_version_without_a_legacy_template_is_refused_naming_the_key(
    k8s_env: Environment,
) -> None:
    serving = serving_of(k8s_env)
    legacy = version("v0legacy", "legacy:artifacts/v0legacy", truss_hash=None)
    assert serving.endpoint_problem(version("v1iris", "kubernetes:baseten/zoo-v1iris")) is None
    problem = serving.endpoint_problem(legacy)
    assert problem is not None and "legacy_predict_url_template" in problem
    with pytest.raises(ConfigError, match="set legacy_predict_url_template"):
        serving.predict(legacy, {"instances": []})


@pytest.mark.parametrize(
    ("key", "template", "field"),
    [
        ("image", "registry/{truss_name}:{tag}", "{tag}"),
        ("predict_url_template", "http://{host}/predict", "{host}"),
        ("legacy_predict_url_template", "http://{service}/predict", "{service}"),
        ("image", "registry/{}:x", "positional"),
    ],
)
def test_a_template_with_an_unknown_field_is_refused_in_one_line(
    k8s_env: Environment, key: str, template: str, field: str
) -> None:
    config = dataclasses.replace(k8s_env.config, **{key: template})
    with pytest.raises(ConfigError) as caught:
        cluster_for(config)  # the capacity preflight builds this before any write
    message = str(caught.value)
    assert "\n" not in message and key in message and field in message


def test_deploy_uses_the_image_template_and_image_pull_secrets(
    k8s_env: Environment, kube_api: KubeApiStandIn
) -> None:
    serving = serving_of(
        k8s_env,
        image_template="registry.example/zoo/{truss_name}@{truss_hash_short}",
        image_pull_secrets=("regcred", "mirror"),
    )
    package = read_truss(TRUSSES / "iris")
    serving.deploy("v1img", package.path, package.config, model="iris", truss_hash=TRUSS_HASH)
    deployment = kube_api.get_object("Deployment", BASETEN_NAMESPACE, "zoo-v1img")
    assert deployment is not None
    pod_spec = deployment["spec"]["template"]["spec"]
    assert pod_spec["containers"][0]["image"] == f"registry.example/zoo/iris@{TRUSS_HASH[:16]}"
    assert pod_spec["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror"}]


def test_retire_deletes_only_what_zoo_ops_made(
    k8s_env: Environment, kube_api: KubeApiStandIn
) -> None:
    serving = serving_of(k8s_env)
    package = read_truss(TRUSSES / "iris")
    artifact = serving.deploy(
        "v1own", package.path, package.config, model="iris", truss_hash=TRUSS_HASH
    )
    own = serving.retire(version("v1own", artifact))
    assert own.removed == f"Deployment and Service {BASETEN_NAMESPACE}/zoo-v1own"
    assert not own.not_removed
    assert kube_api.get_object("Deployment", BASETEN_NAMESPACE, "zoo-v1own") is None
    assert kube_api.get_object("Service", BASETEN_NAMESPACE, "zoo-v1own") is None
    legacy = serving.retire(version("v0old", "legacy:artifacts/v0old", truss_hash=None))
    assert not legacy.removed
    assert legacy.not_removed == "serving not removed by zoo-ops: legacy:artifacts/v0old"
    assert "legacy" in legacy.why
    # On a platform-automated cluster even a zoo-<id>-looking artifact is not zoo-ops's.
    observer = serving_of(k8s_env, manages_versions=False)
    theirs = observer.retire(version("v2p", f"kubernetes:{BASETEN_NAMESPACE}/zoo-v2p"))
    assert not theirs.removed and "platform's automation" in theirs.why


def test_predict_names_the_url_when_nothing_answers(k8s_env: Environment) -> None:
    serving = serving_of(k8s_env, predict_timeout_s=5)
    with pytest.raises(StepFailed, match=r"cannot reach http://127\.0\.0\.1:9/zoo-v1x/"):
        serving.predict(version("v1x", "kubernetes:baseten/zoo-v1x"), {"instances": []})


# --- capacity --------------------------------------------------------------------------------


def test_capacity_is_allocatable_minus_requests_of_non_terminal_pods(
    k8s_env: Environment, kube_api: KubeApiStandIn
) -> None:
    kube_api.seed(
        [
            pod("busy", "cpu-node-1", {"cpu": "1500m", "memory": "4Gi"}),
            pod("pending-ish", "cpu-node-1", {"cpu": "500m"}, phase="Pending"),
            pod("done", "cpu-node-1", {"cpu": "4", "memory": "16Gi"}, phase="Succeeded"),
            pod("crashed", "gpu-node-1", {GPU_RESOURCE: "1"}, phase="Failed"),
        ]
    )
    cluster = k8s_env.cluster
    assert isinstance(cluster, KubernetesCluster)

    rooms = {n.name: n for n in cluster.nodes()}

    assert rooms["cpu-node-1"].accelerator == ""
    assert rooms["cpu-node-1"].free == Amounts(8000 - 2000, (32 - 4) * 2**30, 0)
    assert rooms["gpu-node-1"].accelerator == "T4"
    assert rooms["gpu-node-1"].free == Amounts(8000, 32 * 2**30, 1)


def test_preflight_capacity_fits_a_gpu_truss_on_the_t4_node(k8s_env: Environment) -> None:
    report = preflight_capacity(k8s_env, "resnet50", TRUSSES / "resnet50")

    assert report.fits
    assert "fits on gpu-node-1" in report.summary()
    frame = report.to_frame().set_index("what")
    assert frame.loc["accelerator", "requested"] == "T4 x1"
    assert frame.loc[GPU_RESOURCE, "free_on_best_node"] == "1"
    assert frame["fits"].all()


def test_preflight_refuses_a_gpu_truss_whose_gpu_is_taken_with_the_numbers(
    k8s_env: Environment, kube_api: KubeApiStandIn
) -> None:
    kube_api.seed([pod("gpu-hog", "gpu-node-1", {"cpu": "7", GPU_RESOURCE: "1"})])

    report = preflight_capacity(k8s_env, "resnet50", TRUSSES / "resnet50")

    assert not report.fits
    summary = report.summary()
    assert "fits on no node" in summary
    assert "best candidate gpu-node-1" in summary
    assert f"{GPU_RESOURCE} 1 requested, 0 free" in summary
    assert "cpu 2 requested, 1 free" in summary
    frame = report.to_frame().set_index("what")
    assert frame.loc[GPU_RESOURCE, "requested"] == "1"
    assert frame.loc[GPU_RESOURCE, "free_on_best_node"] == "0"
    assert not frame.loc[GPU_RESOURCE, "fits"]
    assert frame.loc["memory", "fits"]  # 8Gi of 32Gi: memory is not the problem
    with pytest.raises(StepFailed, match=f"{GPU_RESOURCE} 1 requested, 0 free"):
        report.require()


def a100_only_cluster() -> list[dict[str, Any]]:
    manifests = [m for m in default_seed_manifests() if m["kind"] != "Node"]
    manifests.append(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "a100-node", "labels": {ACCELERATOR_LABEL: "nvidia-a100-80gb"}},
            "status": {"allocatable": {"cpu": "16", "memory": "64Gi", GPU_RESOURCE: "2"}},
        }
    )
    return manifests


class TestAClusterWithoutTheAcceleratorType:
    @pytest.fixture
    def kube_seed_manifests(self) -> list[dict[str, Any]]:
        return a100_only_cluster()

    def test_preflight_refuses_and_names_the_accelerators_there_are(
        self, k8s_env: Environment
    ) -> None:
        report = preflight_capacity(k8s_env, "resnet50", TRUSSES / "resnet50")

        assert not report.fits
        assert "no schedulable node has T4 (accelerators in the cluster: A100)" in report.summary()
        frame = report.to_frame().set_index("what")
        assert not frame.loc["accelerator", "fits"]
        # A CPU-only truss still fits on the A100 node (no GPU taint there).
        assert preflight_capacity(k8s_env, "iris", TRUSSES / "iris").fits


def test_preflight_shows_the_old_versions_footprint_beside_the_new(
    k8s_env: Environment,
) -> None:
    truss = read_truss(TRUSSES / "summarizer")  # 1 cpu, 1Gi
    store = k8s_env.platform
    admin = store.create_organization("admin", is_admin=True)
    zoo = store.create_oracle("summarizer", admin.id, is_model_zoo=True)
    old = store.add_version(zoo.id, status="ACTIVE", truss_hash="0" * 64)
    store.set_current_version(zoo.id, old.id)
    serving = serving_of(k8s_env)
    serving.wait_ready(
        old.id, serving.deploy(old.id, truss.path, truss.config, model="summarizer"), 10
    )

    report = preflight_capacity(k8s_env, "summarizer", TRUSSES / "iris")  # 1 cpu, 2Gi

    assert report.old_version_id == old.id
    frame = report.to_frame().set_index("what")
    assert frame.loc["cpu", "old_version"] == "1"
    assert frame.loc["memory", "old_version"] == "1Gi"
    assert frame.loc["memory", "requested"] == "2Gi"
    assert report.fits


# --- secrets ---------------------------------------------------------------------------------


def test_secrets_preflight_reads_the_keys_of_the_kubernetes_secret(
    k8s_env: Environment, kube_api: KubeApiStandIn
) -> None:
    config = read_truss(TRUSSES / "sentiment").config  # declares hf_access_token
    missing = preflight_secrets(k8s_env, config)
    assert not missing.ok
    assert missing.to_frame().to_dict("records") == [
        {"secret": "hf_access_token", "present": False}
    ]
    assert f"Secret {BASETEN_NAMESPACE}/{SECRET_NAME}" in missing.summary()

    value = "hf_secret_value_never_shown"
    kube_api.seed(
        [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": SECRET_NAME, "namespace": BASETEN_NAMESPACE},
                "data": {
                    "hf_access_token": base64.b64encode(value.encode()).decode(),
                    "other": base64.b64encode(b"x").decode(),
                },
            }
        ]
    )
    present = preflight_secrets(k8s_env, config)

    assert present.ok
    assert present.to_frame().to_dict("records") == [{"secret": "hf_access_token", "present": True}]
    shown = present.to_frame().to_string() + present.summary() + repr(present)
    assert value not in shown
    assert k8s_env.secrets.names() == {"hf_access_token", "other"}
    assert k8s_env.secrets.values()["hf_access_token"] == value


# --- the automation on a cluster -----------------------------------------------------------


def test_reconcile_deploys_to_the_cluster_and_refuses_when_no_gpu_is_free(
    k8s_env: Environment, kube_api: KubeApiStandIn
) -> None:
    from zoo_ops.commands.demo import build_demo
    from zoo_ops.services.automation import reconcile
    from zoo_ops.services.settings import set_whitelist_entry

    build_demo(k8s_env, apps=0)
    set_whitelist_entry(k8s_env, "resnet50", True)
    kube_api.seed([pod("gpu-hog", "gpu-node-1", {"cpu": "1", GPU_RESOURCE: "1"})])

    refused = reconcile(k8s_env, wait_timeout_s=10).row("resnet50")

    assert refused.action == "failed"
    assert refused.detail.startswith("no room: fits on no node")
    assert f"{GPU_RESOURCE} 1 requested, 0 free" in refused.detail
    assert k8s_env.platform.find_zoo_model("resnet50_copy") is None  # nothing created

    kube_api.seed(
        [{**pod("gpu-hog", "gpu-node-1", {"cpu": "1"}), "status": {"phase": "Succeeded"}}]
    )
    deployed = reconcile(k8s_env, wait_timeout_s=10).row("resnet50")

    assert deployed.action == "deployed", deployed.detail
    version = k8s_env.platform.version(deployed.version_id)
    assert version.status == "ACTIVE"
    assert version.artifact == f"kubernetes:{BASETEN_NAMESPACE}/zoo-{version.id}"
    dep = kube_api.get_object("Deployment", BASETEN_NAMESPACE, f"zoo-{version.id}")
    assert dep is not None
    assert dep["metadata"]["labels"]["zoo-ops/model"] == "resnet50_copy"
    assert reconcile(k8s_env).row("resnet50").action == "skipped-duplicate"
