"""Room in a Kubernetes cluster: nodes' allocatable minus their pods' requests.

A node counts when it is Ready, not cordoned, and carries no NoSchedule/NoExecute taint
other than ``nvidia.com/gpu`` (GKE's GPU-node taint, which GPU model pods tolerate and
CPU-only pods do not). Requests are summed over pods bound to the node whose phase is
neither Succeeded nor Failed, with the scheduler's rule for init containers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zoo_ops.adapters.kube_client import LazyClient, call_api, parse_quantity
from zoo_ops.domain.capacity import (
    GPU_RESOURCE,
    Amounts,
    CapacityRequest,
    NodeRoom,
    accelerator_type_of_label,
)

# The node label naming a node's GPU model (GKE's key); the serving adapter's node
# selector uses the same key (zoo_ops.testing.kube_api.ACCELERATOR_LABEL).
ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"
VERSION_LABEL = "zoo-ops/version"
LIST_PAGE = 500
_NON_TERMINAL = "status.phase!=Succeeded,status.phase!=Failed"


def amounts_of(quantities: Mapping[str, object]) -> Amounts:
    """The cpu, memory and GPU amounts of a ``requests``/``allocatable`` map (other
    resources ignored); BadInput for a value that is not a Kubernetes quantity."""
    return Amounts.from_decimals(
        cpu=parse_quantity(quantities.get("cpu", 0)),
        memory=parse_quantity(quantities.get("memory", 0)),
        gpus=parse_quantity(quantities.get(GPU_RESOURCE, 0)),
    )


def pod_request_amounts(pod: Any) -> Amounts:
    """A pod's effective requests: the sum over containers, or the largest init
    container's where that is larger (per resource), as the scheduler counts them."""
    spec = pod.spec
    total = Amounts()
    for container in spec.containers or []:
        total = total.plus(_container_requests(container))
    for container in spec.init_containers or []:
        init = _container_requests(container)
        total = Amounts(
            max(total.cpu_millicores, init.cpu_millicores),
            max(total.memory_bytes, init.memory_bytes),
            max(total.gpus, init.gpus),
        )
    return total


def _container_requests(container: Any) -> Amounts:
    resources = container.resources
    requests = dict(resources.requests or {}) if resources else {}
    if resources and resources.limits:
        # A resource with only a limit is requested at the limit (the apiserver defaults it).
        for name, value in resources.limits.items():
            requests.setdefault(name, value)
    return amounts_of(requests)


def node_room(node: Any, pods: list[Any]) -> NodeRoom:
    """A node's :class:`NodeRoom` from the API's Node and the pods bound to it."""
    labels = node.metadata.labels or {}
    status = node.status
    conditions = (status.conditions if status else None) or []
    # A node without conditions is one a test seeded bare; treat it as Ready.
    ready = not conditions or any(c.type == "Ready" and c.status == "True" for c in conditions)
    spec = node.spec
    taints = [
        t
        for t in ((spec.taints if spec else None) or [])
        if t.effect in ("NoSchedule", "NoExecute")
    ]
    gpu_only = any(t.key == GPU_RESOURCE for t in taints)
    blocked = any(t.key != GPU_RESOURCE for t in taints)
    cordoned = bool(spec and spec.unschedulable)
    requested = Amounts()
    for pod in pods:
        requested = requested.plus(pod_request_amounts(pod))
    return NodeRoom(
        name=node.metadata.name,
        accelerator=accelerator_type_of_label(labels.get(ACCELERATOR_LABEL, "")),
        allocatable=amounts_of((status.allocatable if status else None) or {}),
        requested=requested,
        schedulable=ready and not cordoned and not blocked,
        gpu_only=gpu_only,
    )


class KubernetesCluster:
    """The :class:`~zoo_ops.adapters.cluster.Cluster` of a ``serving = "kubernetes"`` env."""

    enforced = True
    no_gpu_note = ""

    def __init__(self, *, context: str = "", namespace: str = "baseten", api: Any = None) -> None:
        self.context = context
        self.namespace = namespace
        self._api = api
        self._client = LazyClient(self.context)

    @property
    def location(self) -> str:
        return (
            f"Kubernetes nodes ({'context ' + self.context if self.context else 'current context'})"
        )

    @property
    def api(self) -> Any:
        """A CoreV1Api, built on first use so that configuring an env never needs a cluster."""
        return self._api if self._api is not None else self._client.api("CoreV1Api")

    def _list(self, what: str, fn: Any, **kwargs: Any) -> list[Any]:
        """Every item of a list call, page by page."""
        items: list[Any] = []
        token = None
        while True:
            page = call_api(
                self.location, f"list {what}", fn, limit=LIST_PAGE, _continue=token, **kwargs
            )
            items.extend(page.items or [])
            token = page.metadata._continue if page.metadata else None
            if not token:
                return items

    def nodes(self) -> list[NodeRoom]:
        nodes = self._list("nodes", self.api.list_node)
        pods = self._list(
            "pods", self.api.list_pod_for_all_namespaces, field_selector=_NON_TERMINAL
        )
        by_node: dict[str, list[Any]] = {}
        for pod in pods:
            phase = pod.status.phase if pod.status else None
            node_name = pod.spec.node_name if pod.spec else None
            if node_name and phase not in ("Succeeded", "Failed"):
                by_node.setdefault(node_name, []).append(pod)
        return [node_room(n, by_node.get(n.metadata.name, [])) for n in nodes]

    def version_footprint(self, version_id: str) -> CapacityRequest | None:
        """The requests of one replica of the version's pods (label zoo-ops/version), and
        the accelerator type from its node selector; None when it has no pods here."""
        pods = self._list(
            "pods",
            self.api.list_namespaced_pod,
            namespace=self.namespace,
            label_selector=f"{VERSION_LABEL}={version_id}",
            field_selector=_NON_TERMINAL,
        )
        if not pods:
            return None
        pod = pods[0]
        amounts = pod_request_amounts(pod)
        selector = (pod.spec.node_selector if pod.spec else None) or {}
        label = selector.get(ACCELERATOR_LABEL)
        accelerator = None if not amounts.gpus else accelerator_type_of_label(label or "")
        return CapacityRequest(amounts, accelerator)
