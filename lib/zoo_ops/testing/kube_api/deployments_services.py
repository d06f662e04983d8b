"""Deployments and Services: Deployment validation (selector matching the template,
replicas, immutable selector) and defaults (replicas, strategy, the template's PodSpec);
Service validation (ports) and defaults (type, ports, an allocated cluster IP)."""

from __future__ import annotations

from collections.abc import Callable

from zoo_ops.testing.kube_api.errors import FieldError, invalid_value, required_value
from zoo_ops.testing.kube_api.nodes_pods import _default_pod_spec, _pod_spec_errors
from zoo_ops.testing.kube_api.resource_types import Obj
from zoo_ops.testing.kube_api.selectors import selector_requirements


def _selector_errors(dep: Obj) -> list[FieldError]:
    spec = dep.get("spec") or {}
    selector = spec.get("selector")
    if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        return [required_value("spec.selector")]
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not all(r.matches(labels) for r in selector_requirements(selector)):
        return [
            invalid_value(
                "spec.template.metadata.labels",
                labels,
                "`selector` does not match template `labels`",
            )
        ]
    return []


def deployment_errors(obj: Obj, old: Obj | None) -> list[FieldError]:
    """A Deployment's selector, pod template, replicas, and (on update) immutable selector."""
    errors: list[FieldError] = []
    spec = obj.get("spec") or {}
    errors += _selector_errors(obj)
    errors += _pod_spec_errors((spec.get("template") or {}).get("spec"), "spec.template.spec")
    replicas = spec.get("replicas", 1)
    if not isinstance(replicas, int) or replicas < 0:
        errors.append(
            invalid_value("spec.replicas", replicas, "must be greater than or equal to 0")
        )
    if old is not None and (old.get("spec") or {}).get("selector") != spec.get("selector"):
        errors.append(invalid_value("spec.selector", spec.get("selector"), "field is immutable"))
    return errors


def service_errors(obj: Obj) -> list[FieldError]:
    """A Service's ports: required unless ExternalName, each between 1 and 65535."""
    errors: list[FieldError] = []
    ports = (obj.get("spec") or {}).get("ports") or []
    if not ports and (obj.get("spec") or {}).get("type", "ClusterIP") != "ExternalName":
        errors.append(required_value("spec.ports"))
    for i, port in enumerate(ports):
        if not isinstance(port.get("port"), int) or not 0 < port["port"] < 65536:
            errors.append(
                invalid_value(
                    f"spec.ports[{i}].port",
                    port.get("port"),
                    "must be between 1 and 65535, inclusive",
                )
            )
    return errors


def default_deployment(obj: Obj) -> None:
    """A Deployment's defaults: replicas, history, deadline, RollingUpdate 25%/25%, and the
    template's PodSpec defaults."""
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        strategy.setdefault("type", "RollingUpdate")
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxUnavailable", "25%")
        rolling.setdefault("maxSurge", "25%")
    template = spec.setdefault("template", {})
    template.setdefault("metadata", {})
    if isinstance(template.get("spec"), dict):
        _default_pod_spec(template["spec"])


def default_service(obj: Obj, old: Obj | None, service_ip: Callable[[], str]) -> None:
    """A Service's defaults: ClusterIP type, TCP ports targeting themselves, and a cluster IP
    (the one already allocated on an update that leaves it empty, else a new one)."""
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
    if spec["type"] != "ExternalName":
        old_ip = ((old or {}).get("spec") or {}).get("clusterIP")
        if not spec.get("clusterIP"):
            # The apiserver keeps an allocated IP when an update leaves it empty.
            spec["clusterIP"] = old_ip or service_ip()
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    obj.setdefault("status", {}).setdefault("loadBalancer", {})
