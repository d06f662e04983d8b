"""Discovery documents served at fixed paths: ``/version``, legacy discovery (``/api``,
``/api/v1``, ``/apis``, ``/apis/apps``, ``/apis/apps/v1``) and the OpenAPI v3 index and
per-group-version operation lists kubectl reads to learn about ``fieldValidation``."""

from __future__ import annotations

import base64
import hashlib
import json

from zoo_ops.testing.kube_api.resource_types import (
    _ALL_VERBS,
    _GROUP_VERSIONS,
    RESOURCE_TYPES,
    Obj,
    ResourceType,
)


def discovery_documents(server_version: str, address: str) -> dict[str, Obj]:
    """The documents served at fixed paths: ``/version``, legacy discovery (``/api``,
    ``/apis``, each group and group-version) and the OpenAPI v3 operation index."""
    docs: dict[str, Obj] = {}
    major, minor = server_version.lstrip("v").split(".")[:2]
    docs["/version"] = {
        "major": major,
        "minor": minor,
        "emulationMajor": major,
        "emulationMinor": minor,
        "minCompatibilityMajor": major,
        "minCompatibilityMinor": str(max(int(minor) - 1, 0)),
        "gitVersion": server_version,
        "gitCommit": "0" * 40,
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }
    docs["/api"] = {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
    }
    groups = []
    for group, version in _GROUP_VERSIONS.items():
        gv = f"{group}/{version}" if group else version
        resources = []
        for rt in (r for r in RESOURCE_TYPES if r.group == group):
            entry: Obj = {
                "name": rt.plural,
                "singularName": rt.singular,
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": list(_ALL_VERBS),
            }
            if rt.short_names:
                entry["shortNames"] = list(rt.short_names)
            if rt.categories:
                entry["categories"] = list(rt.categories)
            entry["storageVersionHash"] = base64.b64encode(
                hashlib.sha256(f"{gv}/{rt.kind}".encode()).digest()[:8]
            ).decode()
            resources.append(entry)
            for sub in rt.subresources:
                sub_entry: Obj = {
                    "name": f"{rt.plural}/{sub}",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": ["get", "patch", "update"],
                }
                if sub == "scale":
                    sub_entry.update(group="autoscaling", version="v1", kind="Scale")
                resources.append(sub_entry)
        docs[f"/api/{gv}" if not group else f"/apis/{gv}"] = {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": gv,
            "resources": resources,
        }
        if group:
            api_group = {
                "name": group,
                "versions": [{"groupVersion": gv, "version": version}],
                "preferredVersion": {"groupVersion": gv, "version": version},
            }
            docs[f"/apis/{group}"] = {"kind": "APIGroup", "apiVersion": "v1", **api_group}
            groups.append(api_group)
    docs["/apis"] = {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
    docs.update(openapi_v3_documents(server_version))
    return docs


_WRITE_PARAMS = ("dryRun", "fieldManager", "fieldValidation")


def _operation(rt: ResourceType, action: str, params: tuple[str, ...]) -> Obj:
    return {
        "operationId": f"{action}{rt.kind}",
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {
            "group": rt.group,
            "version": rt.version,
            "kind": rt.kind,
        },
        "parameters": [
            {"name": p, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
            for p in params
        ],
        "responses": {"200": {"description": "OK"}},
    }


def openapi_v3_documents(server_version: str) -> dict[str, Obj]:
    """``/openapi/v3`` and one document per group-version listing the operations of each
    resource. kubectl reads them to learn that PATCH, PUT and POST take ``fieldValidation``
    (then it validates server-side and needs no client-side schema); without them
    ``kubectl edit`` refuses to save."""
    docs: dict[str, Obj] = {}
    index: Obj = {}
    for group, version in _GROUP_VERSIONS.items():
        gv_path = f"apis/{group}/{version}" if group else f"api/{version}"
        paths: Obj = {}
        for rt in (r for r in RESOURCE_TYPES if r.group == group):
            prefix = (
                f"/{gv_path}/namespaces/{{namespace}}/{rt.plural}"
                if rt.namespaced
                else f"/{gv_path}/{rt.plural}"
            )
            paths[prefix] = {
                "get": _operation(
                    rt,
                    "list",
                    (
                        "labelSelector",
                        "fieldSelector",
                        "limit",
                        "continue",
                        "watch",
                        "resourceVersion",
                        "timeoutSeconds",
                    ),
                ),
                "post": _operation(rt, "post", _WRITE_PARAMS),
                "delete": _operation(
                    rt, "deletecollection", ("labelSelector", "fieldSelector", "dryRun")
                ),
            }
            paths[f"{prefix}/{{name}}"] = {
                "get": _operation(rt, "get", ()),
                "put": _operation(rt, "put", _WRITE_PARAMS),
                "patch": _operation(rt, "patch", (*_WRITE_PARAMS, "force")),
                "delete": _operation(
                    rt, "delete", ("dryRun", "gracePeriodSeconds", "propagationPolicy")
                ),
            }
        digest = hashlib.sha256(json.dumps(paths, sort_keys=True).encode()).hexdigest()[:16].upper()
        index[gv_path] = {"serverRelativeURL": f"/openapi/v3/{gv_path}?hash={digest}"}
        docs[f"/openapi/v3/{gv_path}"] = {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": server_version},
            "paths": paths,
            "components": {"schemas": {}},
        }
    docs["/openapi/v3"] = {"paths": index}
    return docs
