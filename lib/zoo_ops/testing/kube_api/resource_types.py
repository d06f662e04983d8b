"""The served resource types: how each kind is named in URLs, discovery, RBAC and error
messages (plural, singular, short names, group/version, scope, subresources), the lookups by
kind, plural or short name, and the ``Obj`` alias every module of the stand-in uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
DEFAULT_SERVER_VERSION = "v1.34.0"


@dataclass(frozen=True)
class ResourceType:
    """One served resource: how it is named in URLs, discovery, RBAC and error messages."""

    kind: str
    plural: str
    singular: str
    group: str
    version: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    has_status: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """``configmaps`` or ``deployments.apps``: the name used in Status messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def group_kind(self) -> str:
        """``ConfigMap`` or ``Deployment.apps``: the name used in Invalid messages."""
        return f"{self.kind}.{self.group}" if self.group else self.kind


_ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
RESOURCE_TYPES: tuple[ResourceType, ...] = (
    ResourceType(
        "Namespace", "namespaces", "namespace", "", "v1", False, ("ns",), (), ("status",), True
    ),
    ResourceType("ConfigMap", "configmaps", "configmap", "", "v1", True, ("cm",)),
    ResourceType("Secret", "secrets", "secret", "", "v1", True),
    ResourceType("Event", "events", "event", "", "v1", True, ("ev",)),
    ResourceType("Node", "nodes", "node", "", "v1", False, ("no",), (), ("status",), True),
    ResourceType("Pod", "pods", "pod", "", "v1", True, ("po",), ("all",), ("status", "log"), True),
    ResourceType(
        "Service", "services", "service", "", "v1", True, ("svc",), ("all",), ("status",), True
    ),
    ResourceType(
        "Deployment",
        "deployments",
        "deployment",
        "apps",
        "v1",
        True,
        ("deploy",),
        ("all",),
        ("status", "scale"),
        True,
    ),
    ResourceType("Job", "jobs", "job", "batch", "v1", True, (), ("all",), ("status",), True),
)
_BY_KIND = {rt.kind: rt for rt in RESOURCE_TYPES}
_BY_PLURAL = {(rt.group, rt.plural): rt for rt in RESOURCE_TYPES}
_GROUP_VERSIONS = {"": "v1", "apps": "v1", "batch": "v1"}


def resource_type(kind_or_plural: str) -> ResourceType:
    """The served type named by its kind (``ConfigMap``), plural (``configmaps``) or short name."""
    lowered = kind_or_plural.lower()
    for rt in RESOURCE_TYPES:
        if lowered in (rt.kind.lower(), rt.plural, rt.singular, *rt.short_names):
            return rt
    raise KeyError(f"the stand-in does not serve {kind_or_plural!r}")
