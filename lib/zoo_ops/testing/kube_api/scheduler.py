"""The scheduler's rules, as pure functions: a pod's effective requests, taint
toleration, and picking a node (Ready, schedulable, matching the nodeSelector, tolerated,
with room) or the scheduler's "0/N nodes are available: ..." message."""

from __future__ import annotations

from decimal import Decimal

from zoo_ops.testing.kube_api.resource_types import Obj
from zoo_ops.testing.kube_api.values import parse_quantity


def pod_requests(pod: Obj) -> dict[str, Decimal]:
    """Effective requests of a pod: the sum over its containers, or the largest init
    container's request where that is larger (the scheduler's rule)."""
    spec = pod.get("spec") or {}
    total: dict[str, Decimal] = {}
    for c in spec.get("containers") or []:
        for name, qty in (((c.get("resources") or {}).get("requests")) or {}).items():
            total[name] = total.get(name, Decimal(0)) + parse_quantity(qty)
    for c in spec.get("initContainers") or []:
        for name, qty in (((c.get("resources") or {}).get("requests")) or {}).items():
            total[name] = max(total.get(name, Decimal(0)), parse_quantity(qty))
    return total


def _tolerated(taint: Obj, tolerations: list[Obj]) -> bool:
    for t in tolerations:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        if t.get("operator") == "Exists" and (not t.get("key") or t.get("key") == taint.get("key")):
            return True
        if t.get("key") == taint.get("key") and t.get("value", "") == taint.get("value", ""):
            return True
    return False


def schedule(pod: Obj, nodes: list[Obj], pods: list[Obj]) -> tuple[str | None, str]:
    """Pick a node for a pod: the first (by name) that is Ready and schedulable, whose labels
    match the nodeSelector, whose NoSchedule taints the pod tolerates, and whose allocatable
    resources cover the requests of the pods already bound to it plus this one. Returns the
    node name, or None and the scheduler's "0/N nodes are available: ..." message."""
    spec = pod.get("spec") or {}
    selector = spec.get("nodeSelector") or {}
    tolerations = spec.get("tolerations") or []
    wanted = pod_requests(pod)
    reasons: dict[str, int] = {}
    for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
        name = node["metadata"]["name"]
        labels = node["metadata"].get("labels") or {}
        conditions = (node.get("status") or {}).get("conditions") or []
        if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            reasons["node(s) were not ready"] = reasons.get("node(s) were not ready", 0) + 1
            continue
        if (node.get("spec") or {}).get("unschedulable"):
            reasons["node(s) were unschedulable"] = reasons.get("node(s) were unschedulable", 0) + 1
            continue
        if any(labels.get(k) != v for k, v in selector.items()):
            why = "node(s) didn't match Pod's node affinity/selector"
            reasons[why] = reasons.get(why, 0) + 1
            continue
        taints = [
            t
            for t in (node.get("spec") or {}).get("taints") or []
            if t.get("effect") in ("NoSchedule", "NoExecute")
        ]
        untolerated = [t for t in taints if not _tolerated(t, tolerations)]
        if untolerated:
            t = untolerated[0]
            why = f"node(s) had untolerated taint {{{t.get('key')}: {t.get('value', '')}}}"
            reasons[why] = reasons.get(why, 0) + 1
            continue
        allocatable = {
            k: parse_quantity(v)
            for k, v in ((node.get("status") or {}).get("allocatable") or {}).items()
        }
        bound = [
            p
            for p in pods
            if (p.get("spec") or {}).get("nodeName") == name
            and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ]
        used: dict[str, Decimal] = {"pods": Decimal(len(bound))}
        for p in bound:
            for res, qty in pod_requests(p).items():
                used[res] = used.get(res, Decimal(0)) + qty
        short = [
            res
            for res, qty in {**wanted, "pods": Decimal(1)}.items()
            if used.get(res, Decimal(0)) + qty > allocatable.get(res, Decimal(0))
        ]
        if short:
            for res in short:
                why = "Too many pods" if res == "pods" else f"Insufficient {res}"
                reasons[why] = reasons.get(why, 0) + 1
            continue
        return name, ""
    detail = ", ".join(f"{n} {why}" for why, n in sorted(reasons.items()))
    return (
        None,
        f"0/{len(nodes)} nodes are available: {detail}."
        if detail
        else f"0/{len(nodes)} nodes are available.",
    )
