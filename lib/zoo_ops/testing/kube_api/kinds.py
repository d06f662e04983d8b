"""Decoding checks, defaulting and validation of any served kind: the entry points the API
and the seeding call, dispatching to the per-kind modules (:mod:`.configmaps_secrets`,
:mod:`.nodes_pods`, :mod:`.deployments_services`); Namespace defaults live here."""

from __future__ import annotations

from collections.abc import Callable

from zoo_ops.testing.kube_api.configmaps_secrets import (
    check_config_decodable,
    config_data_errors,
    default_secret,
)
from zoo_ops.testing.kube_api.deployments_services import (
    default_deployment,
    default_service,
    deployment_errors,
    service_errors,
)
from zoo_ops.testing.kube_api.errors import FieldError
from zoo_ops.testing.kube_api.nodes_pods import _pod_spec_errors, default_node, default_pod
from zoo_ops.testing.kube_api.resource_types import Obj, ResourceType
from zoo_ops.testing.kube_api.validation import _check_string_map, _name_errors


def check_decodable(rt: ResourceType, obj: Obj) -> None:
    """Reject what the apiserver's JSON decoder rejects (400): string maps with non-strings."""
    _check_string_map(rt, obj, ("metadata", "labels"), f"{rt.kind}.metadata.labels")
    _check_string_map(rt, obj, ("metadata", "annotations"), f"{rt.kind}.metadata.annotations")
    if rt.kind in ("ConfigMap", "Secret"):
        check_config_decodable(rt, obj)


def validate(rt: ResourceType, obj: Obj, old: Obj | None) -> list[FieldError]:
    """The validation the apiserver applies on create (``old`` None) and update."""
    errors = _name_errors(rt, obj["metadata"]["name"]) if old is None else []
    if rt.kind in ("ConfigMap", "Secret"):
        errors += config_data_errors(rt, obj, old)
    elif rt.kind == "Pod":
        errors += _pod_spec_errors(obj.get("spec"), "spec")
    elif rt.kind == "Deployment":
        errors += deployment_errors(obj, old)
    elif rt.kind == "Service":
        errors += service_errors(obj)
    elif rt.kind == "Job":
        errors += _job_errors(obj)
    return errors


def _job_errors(obj: Obj) -> list[FieldError]:
    """A Job's pod template as a Pod's spec, with the restart policies a Job allows."""
    template = (obj.get("spec") or {}).get("template") or {}
    spec = template.get("spec")
    errors = _pod_spec_errors(spec, "spec.template.spec")
    policy = (spec or {}).get("restartPolicy")
    if policy not in ("Never", "OnFailure"):
        errors.append(
            FieldError(
                "FieldValueNotSupported",
                "spec.template.spec.restartPolicy",
                f'Unsupported value: {policy!r}: supported values: "OnFailure", "Never"',
            )
        )
    return errors


def apply_defaults(
    rt: ResourceType, obj: Obj, old: Obj | None, service_ip: Callable[[], str]
) -> None:
    """Scheme defaults and the fields the apiserver fills in (Secret stringData folded into
    base64 data, a Service's cluster IP, a Namespace's finalizers and name label)."""
    if rt.kind == "Secret":
        default_secret(obj)
    elif rt.kind == "Namespace":
        _default_namespace(obj)
    elif rt.kind == "Pod":
        default_pod(obj)
    elif rt.kind == "Deployment":
        default_deployment(obj)
    elif rt.kind == "Service":
        default_service(obj, old, service_ip)
    elif rt.kind == "Node":
        default_node(obj)
    elif rt.kind == "Job":
        spec = obj.setdefault("spec", {})
        for key, value in (("backoffLimit", 6), ("completions", 1), ("parallelism", 1)):
            spec.setdefault(key, value)
        obj.setdefault("status", {})


def _default_namespace(obj: Obj) -> None:
    """A Namespace's ``kubernetes`` finalizer, its name label and phase Active."""
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    labels = obj["metadata"].setdefault("labels", {})
    labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    obj.setdefault("status", {}).setdefault("phase", "Active")
