"""Seed data: manifests from YAML files (multi-document, lists, ``kind: List``) and the
cluster zoo-ops's tests start from (namespace ``baseten``, its dynamic-settings ConfigMap,
a CPU node and a GPU node), with the names and labels the tests share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from zoo_ops.testing.kube_api.resource_types import Obj


def load_manifests(path: str | Path) -> list[Obj]:
    """Manifests from a YAML file: multi-document, a top-level list, or ``kind: List``."""
    manifests: list[Obj] = []
    with open(path, encoding="utf-8") as fh:
        for doc in yaml.safe_load_all(fh):
            manifests.extend(_flatten(doc))
    return manifests


def _flatten(doc: Any) -> list[Obj]:
    if doc is None:
        return []
    if isinstance(doc, list):
        return [m for item in doc for m in _flatten(item)]
    if (
        isinstance(doc, dict)
        and doc.get("kind") == "List"
        or (isinstance(doc, dict) and str(doc.get("kind", "")).endswith("List") and "items" in doc)
    ):
        return [m for item in doc.get("items") or [] for m in _flatten(item)]
    if not isinstance(doc, dict):
        raise ValueError(f"a manifest must be a mapping, got {type(doc).__name__}")
    return [doc]


BASETEN_NAMESPACE = "baseten"
SETTINGS_CONFIGMAP = "baseten-django-dynamic-settings"
# The node label naming a node's GPU model (GKE's key); the serving adapter puts it in a
# Deployment's nodeSelector to land a GPU model on a node with that accelerator.
ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"
GPU_RESOURCE = "nvidia.com/gpu"


def default_seed_manifests() -> list[Obj]:
    """The namespace ``baseten`` with the dynamic-settings ConfigMap as the seed shows it, a
    CPU node (8 cpu, 32Gi) and a GPU node (8 cpu, 32Gi, one nvidia-tesla-t4)."""
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": BASETEN_NAMESPACE}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": SETTINGS_CONFIGMAP, "namespace": BASETEN_NAMESPACE},
            "data": {
                "ratelimitEnabled": "true",
                "modelZooDeploymentAutomationEnabled": "true",
                "automaticallyDeployedModelZooModelsWhitelist": "{}",
            },
        },
        _node("cpu-node-1", {"cpu": "8", "memory": "32Gi", "ephemeral-storage": "100Gi"}, {}),
        _node(
            "gpu-node-1",
            {"cpu": "8", "memory": "32Gi", "ephemeral-storage": "100Gi", GPU_RESOURCE: "1"},
            {ACCELERATOR_LABEL: "nvidia-tesla-t4"},
        ),
    ]


def _node(name: str, allocatable: dict[str, str], labels: dict[str, str]) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", **labels},
        },
        "spec": {},
        "status": {"capacity": dict(allocatable), "allocatable": dict(allocatable)},
    }
