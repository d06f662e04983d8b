"""Server-side ``Table`` output for ``kubectl get``: the columns kubectl prints for each
served kind (and for Events), and the rows built from the objects."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from zoo_ops.testing.kube_api.resource_types import Obj, ResourceType
from zoo_ops.testing.kube_api.values import _parse_rfc3339, human_duration

_NAME_DOC = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
_AGE_DOC = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"


def _column(
    name: str, type_: str = "string", priority: int = 0, fmt: str = "", doc: str = ""
) -> Obj:
    return {"name": name, "type": type_, "format": fmt, "description": doc, "priority": priority}


def _age(obj: Obj) -> str:
    created = obj.get("metadata", {}).get("creationTimestamp")
    return human_duration(time.time() - _parse_rfc3339(created)) if created else "<unknown>"


def _pod_cells(pod: Obj) -> list[Any]:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    total = len(pod.get("spec", {}).get("containers") or [])
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(int(s.get("restartCount", 0)) for s in statuses)
    reason = pod.get("status", {}).get("phase", "Pending")
    for s in statuses:
        waiting = (s.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            reason = waiting["reason"]
    if pod.get("metadata", {}).get("deletionTimestamp"):
        reason = "Terminating"
    return [f"{ready}/{total}", reason, restarts, _age(pod)]


def _node_cells(node: Obj) -> list[Any]:
    conditions = node.get("status", {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    status = "Ready" if ready else "NotReady"
    if node.get("spec", {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    prefix = "node-role.kubernetes.io/"
    roles = sorted(
        k[len(prefix) :] for k in node.get("metadata", {}).get("labels", {}) if k.startswith(prefix)
    )
    version = node.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", "")
    return [status, ",".join(roles) or "<none>", _age(node), version]


def _service_cells(svc: Obj) -> list[Any]:
    spec = svc.get("spec", {})
    ports = ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or [])
    external = ",".join(spec.get("externalIPs") or []) or "<none>"
    return [
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP", "<none>"),
        external,
        ports or "<none>",
        _age(svc),
    ]


def _deployment_cells(dep: Obj) -> list[Any]:
    status = dep.get("status", {})
    desired = dep.get("spec", {}).get("replicas", 1)
    return [
        f"{status.get('readyReplicas', 0)}/{desired}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        _age(dep),
    ]


_TABLES: dict[str, tuple[list[Obj], Callable[[Obj], list[Any]]]] = {
    "configmaps": (
        [_column("Data", "integer")],
        lambda o: [len(o.get("data") or {}) + len(o.get("binaryData") or {}), _age(o)],
    ),
    "secrets": (
        [_column("Type"), _column("Data", "integer")],
        lambda o: [o.get("type", "Opaque"), len(o.get("data") or {}), _age(o)],
    ),
    "namespaces": (
        [_column("Status")],
        lambda o: [o.get("status", {}).get("phase", "Active"), _age(o)],
    ),
    "nodes": ([_column("Status"), _column("Roles")], _node_cells),
    "pods": ([_column("Ready"), _column("Status"), _column("Restarts", "string")], _pod_cells),
    "services": (
        [_column("Type"), _column("Cluster-IP"), _column("External-IP"), _column("Port(s)")],
        _service_cells,
    ),
    "deployments": (
        [_column("Ready"), _column("Up-to-date", "integer"), _column("Available", "integer")],
        _deployment_cells,
    ),
}


def _event_cells(event: Obj) -> list[Any]:
    involved = event.get("involvedObject") or {}
    last = (
        event.get("lastTimestamp")
        or event.get("eventTime")
        or event["metadata"].get("creationTimestamp")
    )
    age = human_duration(time.time() - _parse_rfc3339(last[:19] + "Z")) if last else "<unknown>"
    target = f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"
    return [age, event.get("type", ""), event.get("reason", ""), target, event.get("message", "")]


def as_table(rt: ResourceType, objects: list[Obj], list_meta: Obj, include_object: str) -> Obj:
    """The objects as a meta.k8s.io/v1 Table: the columns kubectl get prints for the kind,
    each row carrying the object's metadata (``includeObject=Metadata``, the default)."""
    cells: Callable[[Obj], list[Any]]
    if rt.plural == "events":
        columns = [_column(c) for c in ("Last Seen", "Type", "Reason", "Object", "Message")]
        cells = _event_cells
    else:
        extra_columns, row_cells = _TABLES[rt.plural]
        columns = [_column("Name", fmt="name", doc=_NAME_DOC), *extra_columns]
        columns.append(_column("Age", doc=_AGE_DOC))
        if rt.plural == "nodes":
            columns.append(_column("Version"))

        def named_cells(obj: Obj) -> list[Any]:
            return [obj["metadata"]["name"], *row_cells(obj)]

        cells = named_cells

    rows = []
    for obj in objects:
        row: Obj = {"cells": cells(obj)}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            }
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns,
        "rows": rows,
    }
