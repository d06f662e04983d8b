"""URLs to resources: parsing ``/api/v1/...`` and ``/apis/GROUP/VERSION/...`` paths into a
:class:`Route`, the RBAC verb of a request, and the query-string helpers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from zoo_ops.testing.kube_api.resource_types import _BY_PLURAL, _GROUP_VERSIONS, ResourceType


@dataclass
class Route:
    """A resource URL: type, namespace ('' when none), name ('' for a collection), subresource."""

    rt: ResourceType
    namespace: str
    name: str
    subresource: str


def parse_route(path: str) -> Route | None:
    """``/api/v1[/namespaces/NS]/PLURAL[/NAME[/SUB]]`` or the same under ``/apis/GROUP/VERSION``;
    None for any other path. A namespaced type under no namespace is a list across them all."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api" and parts[1] == "v1":
        group, rest = "", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis" and _GROUP_VERSIONS.get(parts[1]) == parts[2]:
        group, rest = parts[1], parts[3:]
    else:
        return None
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces" and (group, rest[2]) in _BY_PLURAL:
        rt = _BY_PLURAL[(group, rest[2])]
        if not rt.namespaced:
            return None
        namespace, rest = rest[1], rest[2:]
    if not rest or (group, rest[0]) not in _BY_PLURAL or len(rest) > 3:
        return None
    rt = _BY_PLURAL[(group, rest[0])]
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    if name and rt.namespaced and not namespace:
        return None
    if sub and sub not in rt.subresources:
        return None
    return Route(rt, namespace, name, sub)


def rbac_verb(method: str, route: Route | None, query: Mapping[str, list[str]]) -> str:
    """The authorization verb the apiserver derives from the method and URL."""
    collection = route is not None and not route.name
    if method in ("GET", "HEAD"):
        if route is None:
            return "get"
        if _flag(query, "watch"):
            return "watch"
        return "list" if collection else "get"
    if method == "DELETE" and collection:
        return "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(
        method, method.lower()
    )


def _flag(query: Mapping[str, list[str]], name: str) -> bool:
    return (query.get(name) or [""])[0].lower() in ("true", "1")


def _one(query: Mapping[str, list[str]], name: str) -> str:
    return (query.get(name) or [""])[0]
