"""Pods and Nodes: the PodSpec defaults that show up in read-backs and its validation
(containers, names, images, resource quantities), the Pod defaults (service account,
priority, tolerations), and the Node defaults (allocatable/capacity, Ready condition,
``nodeInfo``, addresses)."""

from __future__ import annotations

import copy
import hashlib
import uuid
import zlib
from typing import Any

from zoo_ops.testing.kube_api.errors import FieldError, _go_repr, invalid_value, required_value
from zoo_ops.testing.kube_api.resource_types import DEFAULT_SERVER_VERSION, Obj
from zoo_ops.testing.kube_api.values import now_rfc3339, parse_quantity


def _image_pull_policy(image: str) -> str:
    tail = image.rsplit("/", 1)[-1]
    if "@" in tail:
        return "IfNotPresent"
    return "Always" if ":" not in tail or tail.endswith(":latest") else "IfNotPresent"


def _default_pod_spec(spec: Obj) -> None:
    """The scheme defaults of a PodSpec that show up in read-backs."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if not isinstance(container, dict):
            continue
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        if isinstance(container.get("image"), str):
            container.setdefault("imagePullPolicy", _image_pull_policy(container["image"]))
        resources = container.setdefault("resources", {})
        limits = resources.get("limits") or {}
        if limits:  # requests default to limits, resource by resource
            requests = resources.setdefault("requests", {})
            for name, value in limits.items():
                requests.setdefault(name, value)
        for port in container.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")


def _pod_spec_errors(spec: Any, path: str) -> list[FieldError]:
    if not isinstance(spec, dict):
        return [required_value(path)]
    containers = spec.get("containers")
    if not containers:
        return [required_value(f"{path}.containers")]
    errors = []
    seen: set[str] = set()
    for i, c in enumerate(containers):
        cpath = f"{path}.containers[{i}]"
        if not isinstance(c, dict) or not c.get("name"):
            errors.append(required_value(f"{cpath}.name"))
            continue
        if c["name"] in seen:
            errors.append(
                FieldError(
                    "FieldValueDuplicate",
                    f"{cpath}.name",
                    f"Duplicate value: {_go_repr(c['name'])}",
                )
            )
        seen.add(c["name"])
        if not c.get("image"):
            errors.append(required_value(f"{cpath}.image"))
        for kind in ("requests", "limits"):
            for res, qty in ((c.get("resources") or {}).get(kind) or {}).items():
                try:
                    parse_quantity(qty)
                except ValueError as exc:
                    errors.append(invalid_value(f"{cpath}.resources.{kind}[{res}]", qty, str(exc)))
    return errors


def default_pod(obj: Obj) -> None:
    """A Pod's defaults: its PodSpec's, then service account, priority and the
    not-ready/unreachable tolerations."""
    spec = obj.setdefault("spec", {})
    _default_pod_spec(spec)
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault(
        "tolerations",
        [
            {
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
            {
                "key": "node.kubernetes.io/unreachable",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
        ],
    )


def default_node(obj: Obj) -> None:
    """A Node's defaults: allocatable and capacity from each other, a Ready condition, every
    NodeSystemInfo field, and an InternalIP and Hostname address."""
    status = obj.setdefault("status", {})
    if "allocatable" not in status and "capacity" in status:
        status["allocatable"] = copy.deepcopy(status["capacity"])
    if "capacity" not in status and "allocatable" in status:
        status["capacity"] = copy.deepcopy(status["allocatable"])
    status.setdefault("allocatable", {}).setdefault("pods", "110")
    status.setdefault("capacity", {}).setdefault("pods", "110")
    if not status.get("conditions"):
        status["conditions"] = [
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
                "lastHeartbeatTime": now_rfc3339(),
                "lastTransitionTime": now_rfc3339(),
            }
        ]
    # Every NodeSystemInfo field is required in the API (the Python client checks).
    node_info = status.setdefault("nodeInfo", {})
    name = obj["metadata"]["name"]
    for key, value in {
        "machineID": hashlib.md5(name.encode()).hexdigest(),
        "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)),
        "bootID": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
        "kernelVersion": "6.1.0-standin",
        "osImage": "Ubuntu 22.04.4 LTS",
        "containerRuntimeVersion": "containerd://1.7.20",
        "kubeletVersion": DEFAULT_SERVER_VERSION,
        "kubeProxyVersion": "",
        "operatingSystem": "linux",
        "architecture": "amd64",
    }.items():
        node_info.setdefault(key, value)
    if not status.get("addresses"):
        status["addresses"] = [
            {"type": "InternalIP", "address": f"10.0.0.{zlib.crc32(name.encode()) % 250 + 2}"},
            {"type": "Hostname", "address": name},
        ]
