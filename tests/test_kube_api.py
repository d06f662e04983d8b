"""The Kubernetes API stand-in, checked with the real kubectl and the official Python client
over HTTP: what they send, and what the apiserver would answer."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from zoo_ops.testing.kube_api import (
    FAIL_ANNOTATION,
    NEVER_READY_ANNOTATION,
    KubeApiStandIn,
    json_patch,
    merge_patch,
    parse_label_selector,
    strategic_merge_patch,
)
from zoo_ops.testing.kube_fixtures import (
    ACCELERATOR_LABEL,
    BASETEN_NAMESPACE,
    GPU_RESOURCE,
    SETTINGS_CONFIGMAP,
    Kubectl,
    kubectl_binary,
)

NS = BASETEN_NAMESPACE
WHITELIST = "automaticallyDeployedModelZooModelsWhitelist"
STALE = (
    'Operation cannot be fulfilled on configmaps "baseten-django-dynamic-settings": the object '
    "has been modified; please apply your changes to the latest version and try again"
)


@pytest.fixture
def api_client(kubeconfig: Path) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def apps(api_client: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api_client)


def settings(core: client.CoreV1Api) -> client.V1ConfigMap:
    return core.read_namespaced_config_map(SETTINGS_CONFIGMAP, NS)


def status_body(exc: ApiException) -> dict[str, Any]:
    return json.loads(exc.body)


def deployment(name: str, replicas: int = 1, **pod_spec: Any) -> dict[str, Any]:
    requests = pod_spec.pop("requests", {"cpu": "500m", "memory": "512Mi"})
    annotations = pod_spec.pop("annotations", None)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, **({"annotations": annotations} if annotations else {})},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "model",
                            "image": f"zoo/{name}:1",
                            "resources": {"requests": requests},
                        }
                    ],
                    **pod_spec,
                },
            },
        },
    }


def condition(dep: client.V1Deployment, type_: str) -> client.V1DeploymentCondition:
    return next(c for c in dep.status.conditions if c.type == type_)


# --------------------------------------------------------------------------------------------
# kubectl


def test_kubectl_get_lists_the_settings_configmap_as_a_table(kubectl: Kubectl) -> None:
    result = kubectl("get", "cm", "-n", NS)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows[0] == ["NAME", "DATA", "AGE"]
    assert [SETTINGS_CONFIGMAP, "3"] in [row[:2] for row in rows[1:]]
    # The root-CA publisher puts kube-root-ca.crt in every namespace, as on a real cluster.
    assert ["kube-root-ca.crt", "1"] in [row[:2] for row in rows[1:]]


def test_kubectl_get_json_returns_the_stored_object(
    kubectl: Kubectl, kube_api: KubeApiStandIn
) -> None:
    result = kubectl("get", "cm", SETTINGS_CONFIGMAP, "-n", NS, "-o", "json")
    assert result.returncode == 0, result.stderr
    obj = json.loads(result.stdout)
    stored = kube_api.get_object("ConfigMap", NS, SETTINGS_CONFIGMAP)
    assert stored is not None
    assert obj == stored
    assert obj["data"] == {
        "ratelimitEnabled": "true",
        "modelZooDeploymentAutomationEnabled": "true",
        WHITELIST: "{}",
    }


def test_kubectl_get_missing_object_says_not_found(kubectl: Kubectl) -> None:
    result = kubectl("get", "cm", "nope", "-n", NS)
    assert result.returncode == 1
    assert result.stderr.strip() == 'Error from server (NotFound): configmaps "nope" not found'


def test_kubectl_edit_as_in_the_seed_changes_the_whitelist(
    kubectl: Kubectl, core: client.CoreV1Api, kube_api: KubeApiStandIn, tmp_path: Path
) -> None:
    editor = tmp_path / "editor.py"
    editor.write_text(
        "import re, sys\n"
        "path = sys.argv[1]\n"
        "text = open(path).read()\n"
        "new = re.sub(r'automaticallyDeployedModelZooModelsWhitelist: .*',\n"
        "             'automaticallyDeployedModelZooModelsWhitelist: \\'{\"iris\": {\"copy\": true}}\\'', text)\n"
        "assert new != text\n"
        "open(path, 'w').write(new)\n"
    )
    before = settings(core).metadata.resource_version
    # The seed's command, word for word (with the ConfigMap's real name).
    result = kubectl(
        "edit", "cm", "-n", NS, SETTINGS_CONFIGMAP,
        env={"KUBE_EDITOR": f"{sys.executable} {editor}"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"configmap/{SETTINGS_CONFIGMAP} edited"
    after = settings(core)
    assert json.loads(after.data[WHITELIST]) == {"iris": {"copy": True}}
    assert after.data["ratelimitEnabled"] == "true"
    assert int(after.metadata.resource_version) > int(before)
    calls = [(r.verb, r.resource, r.name) for r in kube_api.request_log if r.resource]
    assert ("get", "configmaps", SETTINGS_CONFIGMAP) in calls
    assert ("patch", "configmaps", SETTINGS_CONFIGMAP) in calls


def test_kubectl_patch_merge_is_seen_by_the_python_client(
    kubectl: Kubectl, core: client.CoreV1Api
) -> None:
    patch = json.dumps({"data": {WHITELIST: '{"iris": {"copy": false}}'}})
    result = kubectl("patch", "cm", SETTINGS_CONFIGMAP, "-n", NS, "--type", "merge", "-p", patch)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"configmap/{SETTINGS_CONFIGMAP} patched"
    data = settings(core).data
    assert data[WHITELIST] == '{"iris": {"copy": false}}'
    assert data["modelZooDeploymentAutomationEnabled"] == "true"


def test_kubectl_patch_json_with_a_failing_test_changes_nothing(
    kubectl: Kubectl, core: client.CoreV1Api
) -> None:
    before = settings(core)
    ops = [
        {"op": "test", "path": f"/data/{WHITELIST}", "value": '{"other": {"copy": true}}'},
        {"op": "replace", "path": f"/data/{WHITELIST}", "value": '{"iris": {"copy": true}}'},
    ]
    result = kubectl("patch", "cm", SETTINGS_CONFIGMAP, "-n", NS, "--type", "json", "-p", json.dumps(ops))  # fmt: skip
    assert result.returncode == 1
    assert "the server rejected our request due to an error in our request" in result.stderr
    after = settings(core)
    assert after.metadata.resource_version == before.metadata.resource_version
    assert after.data == before.data

    ops[0]["value"] = "{}"
    result = kubectl("patch", "cm", SETTINGS_CONFIGMAP, "-n", NS, "--type", "json", "-p", json.dumps(ops))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert settings(core).data[WHITELIST] == '{"iris": {"copy": true}}'


def test_kubectl_replace_with_a_stale_object_gets_the_servers_conflict(
    kubectl: Kubectl, core: client.CoreV1Api, tmp_path: Path
) -> None:
    snapshot = tmp_path / "cm.yaml"
    snapshot.write_text(kubectl("get", "cm", SETTINGS_CONFIGMAP, "-n", NS, "-o", "yaml", check=True).stdout)  # fmt: skip
    kubectl("patch", "cm", SETTINGS_CONFIGMAP, "-n", NS, "--type", "merge", "-p", '{"data":{"x":"1"}}', check=True)  # fmt: skip
    result = kubectl("replace", "-f", str(snapshot))
    assert result.returncode == 1
    assert result.stderr.strip() == f'Error from server (Conflict): error when replacing "{snapshot}": {STALE}'  # fmt: skip
    assert settings(core).data["x"] == "1"


def test_kubectl_apply_creates_then_is_a_no_op(kubectl: Kubectl, kube_api: KubeApiStandIn) -> None:
    manifest = yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "extra", "namespace": NS}, "data": {"a": "1"}})  # fmt: skip
    first = kubectl("apply", "-f", "-", input=manifest)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "configmap/extra created"
    stored = kube_api.get_object("cm", NS, "extra")
    assert stored is not None
    second = kubectl("apply", "-f", "-", input=manifest)
    assert second.stdout.strip() == "configmap/extra unchanged"
    again = kube_api.get_object("cm", NS, "extra")
    assert again is not None
    assert again["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]


def test_kubectl_strict_field_validation_refuses_unknown_fields(kubectl: Kubectl) -> None:
    manifest = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad", "namespace": NS}, "data": {}, "dta": {}})  # fmt: skip
    result = kubectl("create", "-f", "-", input=manifest)
    assert result.returncode == 1
    assert 'strict decoding error: unknown field "dta"' in result.stderr


def test_kubectl_create_configmap_sends_protobuf_and_gets_already_exists(
    kubectl: Kubectl, kube_api: KubeApiStandIn
) -> None:
    ok = kubectl("create", "configmap", "lit", "-n", NS, "--from-literal=k=v")
    assert ok.returncode == 0, ok.stderr
    stored = kube_api.get_object("cm", NS, "lit")
    assert stored is not None and stored["data"] == {"k": "v"}
    again = kubectl("create", "configmap", "lit", "-n", NS, "--from-literal=k=v")
    assert again.returncode == 1
    assert 'configmaps "lit" already exists' in again.stderr


def test_kubectl_rollout_status_waits_for_a_delayed_deployment(
    kubectl: Kubectl, apps: client.AppsV1Api, kube_api: KubeApiStandIn
) -> None:
    dep = deployment("iris", replicas=2, annotations={"zoo-ops.test/ready-after-seconds": "0.5"})
    apps.create_namespaced_deployment(NS, dep)
    started = time.monotonic()
    result = kubectl("rollout", "status", "deployment/iris", "-n", NS, "--timeout=20s")
    assert result.returncode == 0, result.stderr
    assert 'deployment "iris" successfully rolled out' in result.stdout
    assert time.monotonic() - started >= 0.4
    assert any(r.verb == "watch" and r.resource == "deployments" for r in kube_api.request_log)


def test_kubectl_strategic_patch_merges_containers_by_name(
    kubectl: Kubectl, apps: client.AppsV1Api
) -> None:
    dep = deployment("two")
    dep["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "proxy:1"})
    apps.create_namespaced_deployment(NS, dep)
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "model", "image": "zoo/two:2"}]}}}}  # fmt: skip
    result = kubectl("patch", "deployment", "two", "-n", NS, "-p", json.dumps(patch))
    assert result.returncode == 0, result.stderr
    got = apps.read_namespaced_deployment("two", NS)
    images = {c.name: c.image for c in got.spec.template.spec.containers}
    assert images == {"model": "zoo/two:2", "sidecar": "proxy:1"}
    assert got.metadata.generation == 2
    assert got.status.observed_generation == 2


def test_kubectl_server_dry_run_changes_nothing(kubectl: Kubectl, kube_api: KubeApiStandIn) -> None:
    before = kube_api.resource_version
    patched = kubectl("patch", "cm", SETTINGS_CONFIGMAP, "-n", NS, "--type", "merge", "-p", '{"data":{"d":"1"}}', "--dry-run=server", "-o", "jsonpath={.data.d}")  # fmt: skip
    assert (patched.returncode, patched.stdout) == (0, "1"), patched.stderr
    deleted = kubectl("delete", "cm", SETTINGS_CONFIGMAP, "-n", NS, "--dry-run=server")
    assert deleted.returncode == 0, deleted.stderr
    stored = kube_api.get_object("cm", NS, SETTINGS_CONFIGMAP)
    assert stored is not None and "d" not in stored["data"]
    assert kube_api.resource_version == before


def test_kubectl_api_resources_come_from_discovery(kubectl: Kubectl) -> None:
    result = kubectl("api-resources", "--no-headers")
    assert result.returncode == 0, result.stderr
    names = {line.split()[0]: line.split() for line in result.stdout.splitlines()}
    assert names["configmaps"][1] == "cm"
    assert names["deployments"][1:3] == ["deploy", "apps/v1"]
    assert {"nodes", "pods", "secrets", "services", "namespaces"} <= set(names)


# --------------------------------------------------------------------------------------------
# The official Python client


def test_not_found_is_the_servers_status_body(
    core: client.CoreV1Api, apps: client.AppsV1Api
) -> None:
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("nope", NS)
    assert err.value.status == 404
    assert status_body(err.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'configmaps "nope" not found',
        "reason": "NotFound",
        "details": {"name": "nope", "kind": "configmaps"},
        "code": 404,
    }
    with pytest.raises(ApiException) as err:
        apps.read_namespaced_deployment("nope", NS)
    body = status_body(err.value)
    assert body["message"] == 'deployments.apps "nope" not found'
    assert body["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}


def test_create_existing_is_409_already_exists(core: client.CoreV1Api) -> None:
    body = {"metadata": {"name": SETTINGS_CONFIGMAP}, "data": {}}
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(NS, body)
    assert err.value.status == 409
    assert status_body(err.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'configmaps "{SETTINGS_CONFIGMAP}" already exists',
        "reason": "AlreadyExists",
        "details": {"name": SETTINGS_CONFIGMAP, "kind": "configmaps"},
        "code": 409,
    }


def test_create_in_a_missing_namespace_is_not_found(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("nowhere", {"metadata": {"name": "x"}})
    assert err.value.status == 404
    assert status_body(err.value)["message"] == 'namespaces "nowhere" not found'


def test_replace_with_stale_resource_version_is_409_and_empty_is_unconditional(
    core: client.CoreV1Api,
) -> None:
    cm = settings(core)
    cm.data["a"] = "1"
    core.replace_namespaced_config_map(SETTINGS_CONFIGMAP, NS, cm)  # cm's version is now stale
    cm.data["b"] = "2"
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map(SETTINGS_CONFIGMAP, NS, cm)
    assert err.value.status == 409
    body = status_body(err.value)
    assert (body["reason"], body["message"]) == ("Conflict", STALE)
    assert "b" not in settings(core).data

    cm.metadata.resource_version = None
    replaced = core.replace_namespaced_config_map(SETTINGS_CONFIGMAP, NS, cm)
    assert replaced.data["b"] == "2"


def test_merge_patch_with_a_stale_resource_version_is_a_conflict(core: client.CoreV1Api) -> None:
    stale = settings(core).metadata.resource_version
    core.patch_namespaced_config_map(SETTINGS_CONFIGMAP, NS, {"data": {"a": "1"}})
    patch = {"metadata": {"resourceVersion": stale}, "data": {"a": "2"}}
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map(SETTINGS_CONFIGMAP, NS, patch)
    assert err.value.status == 409
    assert settings(core).data["a"] == "1"


def test_invalid_configmap_key_is_422_naming_the_field(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(NS, {"metadata": {"name": "bad"}, "data": {"a b": "1"}})
    assert err.value.status == 422
    body = status_body(err.value)
    assert body["reason"] == "Invalid"
    assert body["message"].startswith('ConfigMap "bad" is invalid: data[a b]: Invalid value: "a b"')
    assert body["details"]["causes"][0]["field"] == "data[a b]"


def test_configmap_values_must_be_strings(core: client.CoreV1Api, kube_api: KubeApiStandIn) -> None:
    before = kube_api.resource_version
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map(SETTINGS_CONFIGMAP, NS, {"data": {"n": 1}})
    assert err.value.status == 400
    assert "cannot unmarshal number into Go struct field ConfigMap.data of type string" in status_body(err.value)["message"]  # fmt: skip
    assert kube_api.resource_version == before


def test_secret_string_data_is_stored_as_base64_data(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_secret(
        NS,
        client.V1Secret(metadata=client.V1ObjectMeta(name="hf"), string_data={"token": "hunter2"}),
    )
    assert created.string_data is None
    assert created.type == "Opaque"
    assert base64.b64decode(created.data["token"]) == b"hunter2"
    assert core.read_namespaced_secret("hf", NS).data == created.data


def test_resource_version_is_global_and_strictly_increasing(
    core: client.CoreV1Api, kube_api: KubeApiStandIn
) -> None:
    seen = [int(settings(core).metadata.resource_version)]
    for i in range(3):
        cm = core.create_namespaced_config_map(NS, {"metadata": {"name": f"c{i}"}})
        seen.append(int(cm.metadata.resource_version))
        secret = core.create_namespaced_secret(NS, {"metadata": {"name": f"s{i}"}})
        seen.append(int(secret.metadata.resource_version))
        patched = core.patch_namespaced_config_map(f"c{i}", NS, {"data": {"k": str(i)}})
        seen.append(int(patched.metadata.resource_version))
    assert seen == sorted(set(seen))
    assert kube_api.resource_version == seen[-1]
    # A write that changes nothing is no write: the version stays.
    same = core.patch_namespaced_config_map("c2", NS, {"data": {"k": "2"}})
    assert int(same.metadata.resource_version) == seen[-1]


def test_delete_returns_status_then_the_object_is_gone(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map(NS, {"metadata": {"name": "gone"}})
    result = core.delete_namespaced_config_map("gone", NS)
    status = result if isinstance(result, dict) else result.to_dict()  # client versions differ
    assert status["kind"] == "Status" and status["status"] == "Success"
    assert status["details"]["name"] == "gone" and status["details"]["kind"] == "configmaps"
    with pytest.raises(ApiException) as err:
        core.delete_namespaced_config_map("gone", NS)
    assert err.value.status == 404


def test_list_with_label_and_field_selectors(core: client.CoreV1Api) -> None:
    for name, labels in [("a", {"tier": "x"}), ("b", {"tier": "y"}), ("c", {})]:
        core.create_namespaced_config_map(NS, {"metadata": {"name": name, "labels": labels}})

    def names(**kwargs: Any) -> list[str]:
        return [i.metadata.name for i in core.list_namespaced_config_map(NS, **kwargs).items]

    assert names(label_selector="tier=x") == ["a"]
    # Items come in name order (etcd key order), as from the real server.
    assert names(label_selector="tier!=x") == ["b", SETTINGS_CONFIGMAP, "c", "kube-root-ca.crt"]
    assert names(label_selector="tier in (x, y)") == ["a", "b"]
    assert names(label_selector="!tier") == [SETTINGS_CONFIGMAP, "c", "kube-root-ca.crt"]
    assert names(field_selector="metadata.name=b") == ["b"]
    with pytest.raises(ApiException) as err:
        names(field_selector="data.x=1")
    assert err.value.status == 400


def test_list_pages_with_limit_and_continue(core: client.CoreV1Api) -> None:
    for i in range(5):
        core.create_namespaced_config_map(NS, {"metadata": {"name": f"p{i}"}})
    first = core.list_namespaced_config_map(NS, limit=3)
    assert len(first.items) == 3 and first.metadata._continue
    rest = core.list_namespaced_config_map(NS, limit=10, _continue=first.metadata._continue)
    all_names = [i.metadata.name for i in first.items + rest.items]
    assert all_names == sorted(all_names) and len(all_names) == 7


def test_watch_streams_changes(core: client.CoreV1Api) -> None:
    rv = settings(core).metadata.resource_version

    def later() -> None:
        time.sleep(0.2)
        core.patch_namespaced_config_map(SETTINGS_CONFIGMAP, NS, {"data": {"w": "1"}})

    threading.Thread(target=later).start()
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_config_map, NS, resource_version=rv, timeout_seconds=5):  # fmt: skip
        assert event["type"] == "MODIFIED"
        assert event["object"].data["w"] == "1"
        w.stop()
        break
    else:
        pytest.fail("no watch event")


def test_wrong_bearer_token_is_unauthorized(kube_api: KubeApiStandIn, tmp_path: Path) -> None:
    path = kube_api.write_kubeconfig(tmp_path / "kc")
    data = yaml.safe_load(path.read_text())
    data["users"][0]["user"]["token"] = "wrong"
    path.write_text(yaml.safe_dump(data))
    api = client.CoreV1Api(config.new_client_from_config(config_file=str(path)))
    with pytest.raises(ApiException) as err:
        api.list_namespace()
    assert err.value.status == 401


# --------------------------------------------------------------------------------------------
# Deployments, pods and capacity


def test_deployment_becomes_ready_with_pods_on_nodes(
    apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    created = apps.create_namespaced_deployment(NS, deployment("iris", replicas=2))
    assert created.metadata.generation == 1
    dep = apps.read_namespaced_deployment_status("iris", NS)
    assert dep.status.ready_replicas == dep.spec.replicas == 2
    assert dep.status.available_replicas == 2
    assert dep.status.observed_generation == 1
    assert condition(dep, "Available").status == "True"
    pods = core.list_namespaced_pod(NS, label_selector="app=iris").items
    assert len(pods) == 2
    assert all(p.status.phase == "Running" and p.spec.node_name for p in pods)
    assert all(p.spec.containers[0].resources.requests["cpu"] == "500m" for p in pods)


def test_deleted_pod_is_replaced_and_deleting_the_deployment_removes_its_pods(
    apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    apps.create_namespaced_deployment(NS, deployment("iris"))
    (pod,) = core.list_namespaced_pod(NS, label_selector="app=iris").items
    deleted = core.delete_namespaced_pod(pod.metadata.name, NS)
    assert deleted.metadata.deletion_timestamp is not None  # graceful: the object comes back
    (replacement,) = core.list_namespaced_pod(NS, label_selector="app=iris").items
    assert replacement.metadata.name != pod.metadata.name
    apps.delete_namespaced_deployment("iris", NS)
    assert core.list_namespaced_pod(NS, label_selector="app=iris").items == []


def test_gpu_deployment_lands_on_the_accelerator_node_until_it_is_full(
    apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    gpu = {"cpu": "1", "memory": "4Gi", GPU_RESOURCE: "1"}
    selector = {ACCELERATOR_LABEL: "nvidia-tesla-t4"}
    apps.create_namespaced_deployment(NS, deployment("first", requests=gpu, nodeSelector=selector))
    (pod,) = core.list_namespaced_pod(NS, label_selector="app=first").items
    node = core.read_node(pod.spec.node_name)
    assert node.metadata.labels[ACCELERATOR_LABEL] == "nvidia-tesla-t4"
    assert node.status.allocatable[GPU_RESOURCE] == "1"

    apps.create_namespaced_deployment(NS, deployment("second", requests=gpu, nodeSelector=selector))
    (pending,) = core.list_namespaced_pod(NS, label_selector="app=second").items
    assert pending.status.phase == "Pending" and pending.spec.node_name is None
    scheduled = next(c for c in pending.status.conditions if c.type == "PodScheduled")
    assert scheduled.reason == "Unschedulable"
    assert "Insufficient nvidia.com/gpu" in scheduled.message
    dep = apps.read_namespaced_deployment("second", NS)
    assert not dep.status.ready_replicas
    assert condition(dep, "Available").status == "False"


def test_never_ready_and_failing_deployments(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment("stuck", annotations={NEVER_READY_ANNOTATION: "true"}))  # fmt: skip
    apps.create_namespaced_deployment(NS, deployment("broken", annotations={FAIL_ANNOTATION: "true"}))  # fmt: skip
    time.sleep(0.3)
    stuck = apps.read_namespaced_deployment("stuck", NS)
    assert not stuck.status.ready_replicas and stuck.status.unavailable_replicas == 1
    assert condition(stuck, "Available").status == "False"
    assert condition(stuck, "Progressing").status == "True"
    broken = apps.read_namespaced_deployment("broken", NS)
    progressing = condition(broken, "Progressing")
    assert (progressing.status, progressing.reason) == ("False", "ProgressDeadlineExceeded")


@pytest.mark.parametrize("kube_ready_delay_s", [0.4])
def test_ready_delay_makes_a_deployment_ready_later(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment("slow"))
    assert not apps.read_namespaced_deployment("slow", NS).status.ready_replicas
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if apps.read_namespaced_deployment("slow", NS).status.ready_replicas == 1:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the deployment never became ready")


def test_deployment_selector_must_match_template(apps: client.AppsV1Api) -> None:
    dep = deployment("odd")
    dep["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    with pytest.raises(ApiException) as err:
        apps.create_namespaced_deployment(NS, dep)
    assert err.value.status == 422
    assert "`selector` does not match template `labels`" in status_body(err.value)["message"]


def test_request_log_records_rbac_verbs(core: client.CoreV1Api, kube_api: KubeApiStandIn) -> None:
    kube_api.request_log.clear()
    cm = settings(core)
    core.list_namespaced_config_map(NS)
    core.replace_namespaced_config_map(SETTINGS_CONFIGMAP, NS, cm)
    core.patch_namespaced_config_map(SETTINGS_CONFIGMAP, NS, {"data": {"x": "1"}})
    core.create_namespaced_config_map(NS, {"metadata": {"name": "n"}})
    core.delete_namespaced_config_map("n", NS)
    core.list_node()
    assert [(r.verb, r.resource, r.namespace, r.name) for r in kube_api.request_log] == [
        ("get", "configmaps", NS, SETTINGS_CONFIGMAP),
        ("list", "configmaps", NS, ""),
        ("update", "configmaps", NS, SETTINGS_CONFIGMAP),
        ("patch", "configmaps", NS, SETTINGS_CONFIGMAP),
        ("create", "configmaps", NS, ""),
        ("delete", "configmaps", NS, "n"),
        ("list", "nodes", "", ""),
    ]


# --------------------------------------------------------------------------------------------
# Concurrency, the CLI, and the pure patch functions


def test_fifty_concurrent_conditional_writers_lose_nothing(kubeconfig: Path) -> None:
    """Read-modify-write with a conditional PUT, retrying on 409: all 50 keys survive."""
    conflicts = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(50)

    def writer(i: int) -> None:
        api_client = config.new_client_from_config(config_file=str(kubeconfig))
        api = client.CoreV1Api(api_client)
        try:
            barrier.wait()
            for _ in range(200):
                cm = api.read_namespaced_config_map(SETTINGS_CONFIGMAP, NS)
                cm.data[f"model-{i}"] = "true"
                try:
                    api.replace_namespaced_config_map(SETTINGS_CONFIGMAP, NS, cm)
                    return
                except ApiException as exc:
                    if exc.status != 409:
                        raise
                    conflicts.append(i)
            raise AssertionError(f"writer {i} never won")
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)
        finally:
            api_client.close()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:3]
    core = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
    data = settings(core).data
    assert {f"model-{i}" for i in range(50)} <= set(data)
    assert data["ratelimitEnabled"] == "true"
    assert conflicts, "the writers never raced; the test proves nothing"


def test_kubectl_processes_and_python_writers_at_once_lose_nothing(
    kubectl: Kubectl, kubeconfig: Path
) -> None:
    """16 kubectl processes (merge patches) racing 16 threads (conditional PUTs + retry)."""
    procs = [
        subprocess.Popen(
            kubectl.argv("patch", "cm", SETTINGS_CONFIGMAP, "-n", NS, "--type", "merge", "-p", json.dumps({"data": {f"cli-{i}": "true"}})),
            env=kubectl.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(16)
    ]  # fmt: skip

    def writer(i: int) -> None:
        api_client = config.new_client_from_config(config_file=str(kubeconfig))
        api = client.CoreV1Api(api_client)
        try:
            while True:
                cm = api.read_namespaced_config_map(SETTINGS_CONFIGMAP, NS)
                cm.data[f"py-{i}"] = "true"
                try:
                    api.replace_namespaced_config_map(SETTINGS_CONFIGMAP, NS, cm)
                    return
                except ApiException as exc:
                    if exc.status != 409:
                        raise
        finally:
            api_client.close()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    core = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
    keys = set(settings(core).data)
    assert {f"cli-{i}" for i in range(16)} | {f"py-{i}" for i in range(16)} <= keys


def test_cli_serves_kubectl_from_a_seed_file(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: baseten}\n"
        "data: {a: '1'}\n---\n"
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nstatus: {allocatable: {cpu: '4'}}\n"
    )
    kubeconfig = tmp_path / "kubeconfig"
    proc = subprocess.Popen(
        [sys.executable, "-m", "zoo_ops.testing.kube_api", "--port", "0", "--seed", str(seed), "--kubeconfig", str(kubeconfig)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"] == url
        kubectl = Kubectl(kubectl_binary(), kubeconfig, tmp_path / "cache")
        result = kubectl("get", "cm", "settings", "-n", "baseten", "-o", "jsonpath={.data.a}")
        assert (result.returncode, result.stdout) == (0, "1"), result.stderr
        nodes = kubectl("get", "nodes", "-o", "name")
        assert nodes.stdout.split() == ["node/n1"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0


def test_cli_with_tls_serves_kubectl_over_https_with_its_ca_and_token(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    proc = subprocess.Popen(
        [sys.executable, "-m", "zoo_ops.testing.kube_api", "--port", "0", "--default-seed", "--tls", "--kubeconfig", str(kubeconfig)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("https://127.0.0.1:")
        cluster = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]
        assert (
            cluster["server"] == url
            and "BEGIN CERTIFICATE"
            in base64.b64decode(cluster["certificate-authority-data"]).decode()
        )
        kubectl = Kubectl(kubectl_binary(), kubeconfig, tmp_path / "cache")
        result = kubectl("get", "cm", SETTINGS_CONFIGMAP, "-n", "baseten", "-o", "name")
        assert (result.returncode, result.stdout.strip()) == (
            0,
            f"configmap/{SETTINGS_CONFIGMAP}",
        ), result.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0


def test_kubectl_over_tls_with_a_wrong_token_is_unauthorized(
    kube_api: KubeApiStandIn, kubeconfig: Path, tmp_path: Path
) -> None:
    assert kube_api.url.startswith("https://")  # the fixtures' default: TLS and a token
    data = yaml.safe_load(kubeconfig.read_text())
    data["users"][0]["user"] = {"token": "not-the-token"}
    forged = tmp_path / "kubeconfig-forged"
    forged.write_text(yaml.safe_dump(data))
    kubectl = Kubectl(kubectl_binary(), forged, tmp_path / "cache")
    result = kubectl("get", "cm", "-n", "baseten")
    assert result.returncode == 1
    assert "error: You must be logged in to the server" in result.stderr, result.stderr
    with_token = Kubectl(kubectl_binary(), kubeconfig, tmp_path / "cache2")
    assert with_token("get", "cm", "-n", "baseten").returncode == 0


def test_tls_requires_the_token_and_serves_a_certificate_of_its_ca(
    kube_api: KubeApiStandIn,
) -> None:
    import ssl
    import urllib.error
    import urllib.request

    trusting = ssl.create_default_context(cadata=kube_api.ca_pem.decode())
    url = f"{kube_api.url}/api/v1/namespaces"
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(url, context=trusting, timeout=10)
    assert anonymous.value.code == 401
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {kube_api.token}"})
    with urllib.request.urlopen(request, context=trusting, timeout=10) as response:
        assert json.loads(response.read())["kind"] == "NamespaceList"
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(url, context=ssl.create_default_context(), timeout=10)


def test_cli_refuses_a_bad_seed_with_exit_2(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text("apiVersion: v1\nkind: Widget\nmetadata: {name: w}\n")
    result = subprocess.run(
        [sys.executable, "-m", "zoo_ops.testing.kube_api", "--seed", str(seed)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert "cannot seed kind 'Widget'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_kubectl_binary_is_the_wheels_not_the_systems() -> None:
    path = kubectl_binary()
    assert path.parent == Path(sys.executable).parent or "site-packages" not in str(path)
    assert os.access(path, os.X_OK)


@pytest.mark.parametrize(
    ("doc", "ops", "expected"),
    [
        ({"a": 1}, [{"op": "add", "path": "/b", "value": 2}], {"a": 1, "b": 2}),
        ({"a": [1, 2]}, [{"op": "add", "path": "/a/1", "value": 9}], {"a": [1, 9, 2]}),
        ({"a": [1]}, [{"op": "add", "path": "/a/-", "value": 2}], {"a": [1, 2]}),
        ({"a": {"b~c/d": 1}}, [{"op": "remove", "path": "/a/b~0c~1d"}], {"a": {}}),
        ({"a": 1}, [{"op": "replace", "path": "/a", "value": "x"}], {"a": "x"}),
        ({"a": {"b": 1}}, [{"op": "move", "from": "/a/b", "path": "/c"}], {"a": {}, "c": 1}),
        ({"a": [1]}, [{"op": "copy", "from": "/a", "path": "/b"}], {"a": [1], "b": [1]}),
        ({"a": True}, [{"op": "test", "path": "/a", "value": True}], {"a": True}),
    ],
)
def test_json_patch_follows_rfc_6902(doc: Any, ops: Any, expected: Any) -> None:
    assert json_patch(doc, ops) == expected


@pytest.mark.parametrize(
    "ops",
    [
        [{"op": "test", "path": "/a", "value": 1}],  # true is not 1 in JSON
        [{"op": "remove", "path": "/missing"}],
        [{"op": "replace", "path": "/missing", "value": 1}],
        [{"op": "add", "path": "/x/y", "value": 1}],
    ],
)
def test_json_patch_that_does_not_apply_fails(ops: Any) -> None:
    with pytest.raises(Exception, match=r"test failed|missing|nonexistent"):
        json_patch({"a": True}, ops)


def test_merge_and_strategic_patch_semantics() -> None:
    assert merge_patch({"a": {"b": 1, "c": 2}, "l": [1, 2]}, {"a": {"b": None}, "l": [3]}) == {
        "a": {"c": 2},
        "l": [3],
    }
    original = {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]}
    patched = strategic_merge_patch(
        original,
        {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
            "containers": [{"name": "a", "image": "2"}, {"name": "b", "$patch": "delete"}],
        },
    )
    assert patched == {"containers": [{"name": "a", "image": "2"}]}
    assert parse_label_selector("a=b,c in (d, e),!f")[1].values == ("d", "e")
