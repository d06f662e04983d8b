"""The Kubernetes client as a real operator tool uses it (adapters/kube_client.py), over
real HTTPS against the stand-in with a bearer token: timeouts, retries with backoff on
429 (Retry-After), 5xx, resets and stalls within the call's deadline, one line when a
fault persists, no hidden urllib3 retries, and in-cluster credentials in a pod."""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path
from typing import Any

import pytest

from zoo_ops.adapters.kube_client import (
    LazyClient,
    api_client,
    call_api,
    credential_source,
    user_agent,
)
from zoo_ops.adapters.serving.kubernetes import KubernetesServing
from zoo_ops.adapters.truss_runtime import read_truss
from zoo_ops.errors import ConfigError, StepFailed
from zoo_ops.testing.kube_api import FAULT_KINDS, KubeApiStandIn, KubeRequest
from zoo_ops.testing.kube_fixtures import BASETEN_NAMESPACE, SETTINGS_CONFIGMAP

REPO = Path(__file__).resolve().parent.parent
CM_PATH = f"/api/v1/namespaces/{BASETEN_NAMESPACE}/configmaps/{SETTINGS_CONFIGMAP}"
DEADLINE_S = 4.0


@pytest.fixture
def core(kube_api: KubeApiStandIn, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A CoreV1Api of zoo-ops's own client; a 1 s read timeout and a 4 s call deadline."""
    assert kube_api.url.startswith("https://")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("ZOO_OPS_KUBE_READ_TIMEOUT_S", "1")
    monkeypatch.setenv("ZOO_OPS_KUBE_CALL_DEADLINE_S", str(DEADLINE_S))
    return LazyClient("standin").api("CoreV1Api")


def read_settings(core: Any) -> Any:
    return call_api(
        f"ConfigMap {BASETEN_NAMESPACE}/{SETTINGS_CONFIGMAP}",
        "read",
        core.read_namespaced_config_map,
        SETTINGS_CONFIGMAP,
        BASETEN_NAMESPACE,
    )


def zoo_ops_calls(api: KubeApiStandIn, path: str = CM_PATH) -> list[KubeRequest]:
    return [r for r in api.request_log if r.user_agent == user_agent() and r.path == path]


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_a_transient_fault_is_retried_and_the_call_succeeds(
    kube_api: KubeApiStandIn, core: Any, kind: str
) -> None:
    kube_api.fault(kind, path=CM_PATH, times=2, retry_after_s=1, stall_s=3)
    started = time.monotonic()
    assert read_settings(core).metadata.name == SETTINGS_CONFIGMAP
    assert time.monotonic() - started < DEADLINE_S
    # Two faulted attempts and the good one, each one request: no hidden urllib3 retry.
    assert len(zoo_ops_calls(kube_api)) == 3
    assert [f.kind for f in kube_api.faults.served] == [kind, kind]


def test_429_waits_for_retry_after(kube_api: KubeApiStandIn, core: Any) -> None:
    kube_api.fault("429", path=CM_PATH, times=1, retry_after_s=2)
    started = time.monotonic()
    read_settings(core)
    assert time.monotonic() - started >= 2.0


@pytest.mark.parametrize("kind", ["429", "503", "reset", "stall"])
def test_a_fault_that_persists_fails_in_one_line_within_the_deadline(
    kube_api: KubeApiStandIn, core: Any, kind: str
) -> None:
    kube_api.fault(kind, path=CM_PATH, times=None, retry_after_s=1, stall_s=3)
    started = time.monotonic()
    with pytest.raises(StepFailed) as caught:
        read_settings(core)
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert elapsed <= DEADLINE_S + 0.5, elapsed
    assert "\n" not in message
    assert message.startswith(f"ConfigMap {BASETEN_NAMESPACE}/{SETTINGS_CONFIGMAP}: ")
    assert kube_api.token and kube_api.token not in message and "Bearer" not in message
    attempts = int(message.split(" attempts in ")[0].rsplit(" ", 1)[1])
    assert attempts >= 2
    # Every attempt is one request: urllib3's own retries are off.
    assert len(zoo_ops_calls(kube_api)) == attempts


def test_the_documented_timeouts_without_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo_ops.adapters import kube_client

    for name in ("CONNECT_TIMEOUT_S", "READ_TIMEOUT_S", "CALL_DEADLINE_S"):
        monkeypatch.delenv(f"ZOO_OPS_KUBE_{name}", raising=False)
    assert kube_client.timeouts() == (10.0, 30.0, 60.0)
    monkeypatch.setenv("ZOO_OPS_KUBE_READ_TIMEOUT_S", "soon")
    with pytest.raises(ConfigError, match="ZOO_OPS_KUBE_READ_TIMEOUT_S='soon'"):
        kube_client.timeouts()


def test_the_client_has_its_own_retries_off(
    kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    assert api_client("standin").configuration.retries == 0


def test_a_create_that_may_have_happened_is_not_repeated_blindly(
    kube_api: KubeApiStandIn, core: Any
) -> None:
    """A create whose caller does not handle AlreadyExists is retried only when the
    apiserver surely did not take it (429), not after a 503 or a lost answer. (zoo-ops
    itself makes no such create: a harness client, so that the session's RBAC check does
    not count it.)"""
    from kubernetes import client

    harness = api_client("standin")
    harness.user_agent = "harness/1"
    configmaps = client.CoreV1Api(harness)
    path = f"/api/v1/namespaces/{BASETEN_NAMESPACE}/configmaps"
    body = {"metadata": {"name": "scratch"}, "data": {"a": "1"}}

    def create() -> Any:
        return call_api(
            "ConfigMap baseten/scratch",
            "create",
            configmaps.create_namespaced_config_map,
            BASETEN_NAMESPACE,
            body,
        )

    def creates() -> int:
        return len([r for r in kube_api.request_log if r.path == path and r.verb == "create"])

    kube_api.fault("503", verb="create", path=path, times=1, agent="harness/")
    with pytest.raises(StepFailed, match="HTTP 503"):
        create()
    assert creates() == 1
    kube_api.fault("429", verb="create", path=path, times=1, agent="harness/", retry_after_s=1)
    assert create().metadata.name == "scratch"
    assert creates() == 3


def test_a_deploy_whose_create_answers_are_lost_makes_one_deployment(
    kube_api: KubeApiStandIn, core: Any
) -> None:
    """The Deployment and Service creates happen but their answers are lost (connection
    reset): the retried create meets 409 AlreadyExists, reads and replaces -- one of each."""
    kube_api.fault("reset-after", verb="create", path="/apis/apps/v1/*", times=1)
    kube_api.fault("reset-after", verb="create", path="/api/v1/*", times=1)
    truss = read_truss(REPO / "truss_models" / "iris")
    serving = KubernetesServing(
        namespace=BASETEN_NAMESPACE, context="standin", predict_url_template="http://x/{service}"
    )
    serving.deploy("v-lost", truss.path, truss.config, model="iris_copy")
    assert [f.kind for f in kube_api.faults.served] == ["reset-after", "reset-after"]
    names = [d["metadata"]["name"] for d in kube_api.list_objects("Deployment", BASETEN_NAMESPACE)]
    services = [s["metadata"]["name"] for s in kube_api.list_objects("Service", BASETEN_NAMESPACE)]
    assert names == ["zoo-v-lost"] and services == ["zoo-v-lost"]


def test_a_wrong_token_is_refused_in_one_line(kube_api: KubeApiStandIn, core: Any) -> None:
    kube_api.token = "not-the-one-in-the-kubeconfig"
    with pytest.raises(ConfigError, match=r"HTTP 401 \(Unauthorized") as caught:
        read_settings(core)
    assert "zoo-ops-standin-token" not in str(caught.value)
    assert len(zoo_ops_calls(kube_api)) == 1  # a 401 is not retried


# -- credentials ---------------------------------------------------------------------------


@pytest.fixture
def in_a_pod(kube_api: KubeApiStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A pod's view: KUBERNETES_SERVICE_HOST/PORT at the stand-in, a service-account token
    and CA in the pod's account directory, and no kubeconfig at all."""
    from kubernetes.config import incluster_config

    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(str(kube_api.token))
    (account / "ca.crt").write_bytes(kube_api.ca_pem)
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(account / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(account / "ca.crt"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", kube_api.host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(kube_api.port))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig-here"))
    yield account
    (account / "token").unlink()


@pytest.mark.parametrize("context", ["", "staging"])
def test_in_a_pod_without_a_kubeconfig_the_service_account_is_used(
    in_a_pod: Path, kube_api: KubeApiStandIn, context: str
) -> None:
    assert credential_source(context) == "in-cluster"
    core = LazyClient(context).api("CoreV1Api")
    assert read_settings(core).metadata.name == SETTINGS_CONFIGMAP
    assert zoo_ops_calls(kube_api)


def test_in_a_pod_a_kubeconfig_with_the_context_wins(
    in_a_pod: Path, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    assert credential_source("standin") == "kubeconfig"
    assert credential_source("") == "in-cluster"


def test_no_kubeconfig_and_not_in_a_pod_is_one_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(ConfigError) as caught:
        api_client("staging")
    message = str(caught.value)
    assert "\n" not in message and "context 'staging'" in message and "missing" in message


def test_a_pod_whose_token_is_wrong_gets_401_not_a_retry_storm(
    in_a_pod: Path, kube_api: KubeApiStandIn
) -> None:
    (in_a_pod / "token").write_text(base64.b64encode(b"forged").decode())
    with pytest.raises(ConfigError, match="HTTP 401"):
        read_settings(LazyClient("").api("CoreV1Api"))


# -- waiting: a watch where RBAC allows, polling otherwise -----------------------------------

DEPLOYMENTS = f"/apis/apps/v1/namespaces/{BASETEN_NAMESPACE}/deployments"


def deploy_and_wait(name: str, ready_after_s: str = "1") -> None:
    truss = read_truss(REPO / "truss_models" / "iris")
    serving = KubernetesServing(
        namespace=BASETEN_NAMESPACE,
        context="standin",
        predict_url_template="http://x/{service}",
        extra_annotations={"zoo-ops.test/ready-after-seconds": ready_after_s},
    )
    artifact = serving.deploy(name, truss.path, truss.config, model="iris_copy")
    serving.wait_ready(name, artifact, timeout_s=20)


def wait_calls(api: KubeApiStandIn, name: str) -> tuple[int, int]:
    """(watches of the Deployment, reads of its status) zoo-ops made."""
    mine = [r for r in api.request_log if r.user_agent == user_agent()]
    watches = [r for r in mine if r.verb == "watch" and r.resource == "deployments"]
    reads = [r for r in mine if r.resource == "deployments/status" and r.name == f"zoo-{name}"]
    return len(watches), len(reads)


def test_a_rollout_is_waited_for_with_a_watch(kube_api: KubeApiStandIn, core: Any) -> None:
    started = time.monotonic()
    deploy_and_wait("v-watched")
    assert time.monotonic() - started < 5
    # One status read (it was not ready yet), then the watch told when it was.
    assert wait_calls(kube_api, "v-watched") == (1, 1)


@pytest.mark.parametrize("kind", ["403", "reset", "503", "stall"])
def test_a_watch_that_is_refused_or_breaks_falls_back_to_polling(
    kube_api: KubeApiStandIn, core: Any, kind: str
) -> None:
    kube_api.fault(kind, verb="watch", path=DEPLOYMENTS, times=None, stall_s=2)
    deploy_and_wait("v-polled")
    watches, reads = wait_calls(kube_api, "v-polled")
    assert watches == 1  # refused or broken once: the rest of the wait polls
    assert reads >= 2
    assert kube_api.get_object("Deployment", BASETEN_NAMESPACE, "zoo-v-polled")


def test_a_refused_connection_is_a_wrong_address_said_at_once(
    kubeconfig: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    cfg = yaml.safe_load(kubeconfig.read_text())
    cfg["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:9"  # discard port: refused
    dead = tmp_path / "kubeconfig-dead"
    dead.write_text(yaml.safe_dump(cfg))
    monkeypatch.setenv("KUBECONFIG", str(dead))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    started = time.monotonic()
    with pytest.raises(StepFailed) as caught:
        read_settings(LazyClient("standin").api("CoreV1Api"))
    assert time.monotonic() - started < 2
    message = str(caught.value)
    assert "cannot read (" in message and "attempts" not in message and "\n" not in message


def test_two_clusters_by_context_one_merged_kubeconfig_or_a_kubeconfig_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """staging and prod: two TLS stand-ins with their own CA and token, reached by
    context, from one kubeconfig or from KUBECONFIG listing two files."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    staging = KubeApiStandIn(tls=True, token="staging-token")
    prod = KubeApiStandIn(tls=True, token="prod-token")
    for name, standin in (("staging", staging), ("prod", prod)):
        standin.seed(
            [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": SETTINGS_CONFIGMAP, "namespace": BASETEN_NAMESPACE},
                    "data": {"cluster": name},
                }
            ]
        )
        standin.start()
    try:
        merged = KubeApiStandIn.write_kubeconfig_for(
            tmp_path / "kubeconfig", {"staging": staging, "prod": prod}
        )
        listed = os.pathsep.join(
            str(s.write_kubeconfig(tmp_path / f"kubeconfig-{n}", context=n))
            for n, s in (("staging", staging), ("prod", prod))
        )
        for kubeconfig in (str(merged), listed):
            monkeypatch.setenv("KUBECONFIG", kubeconfig)
            for context in ("staging", "prod"):
                core = LazyClient(context).api("CoreV1Api")
                assert read_settings(core).data == {"cluster": context}
    finally:
        staging.stop()
        prod.stop()
