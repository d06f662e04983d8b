"""The API verbs, independent of HTTP: get, list (selectors, ``limit``/``continue``),
create, update, patch (merge, strategic, JSON), delete and deletecollection over the
cluster state, with preconditions, dry runs, field validation and the apiserver's errors."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from zoo_ops.testing.kube_api.controller import _Cluster
from zoo_ops.testing.kube_api.errors import (
    STALE_OBJECT,
    ApiError,
    _decode_error,
    _details,
    already_exists,
    bad_request,
    conflict,
    forbidden,
    invalid,
    invalid_value,
    not_found,
    required_value,
)
from zoo_ops.testing.kube_api.kinds import apply_defaults, check_decodable, validate
from zoo_ops.testing.kube_api.patching import (
    PatchError,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from zoo_ops.testing.kube_api.resource_types import _BY_KIND, RESOURCE_TYPES, Obj, ResourceType
from zoo_ops.testing.kube_api.routing import Route, _one
from zoo_ops.testing.kube_api.selectors import (
    _matches,
    parse_field_selector,
    parse_label_selector,
)
from zoo_ops.testing.kube_api.store import _without_rv
from zoo_ops.testing.kube_api.validation import _json_type, drop_unknown_fields
from zoo_ops.testing.kube_api.values import _random_suffix, now_rfc3339


def _external(rt: ResourceType, obj: Obj) -> Obj:
    """A stored object as served: a copy with kind and apiVersion first."""
    body = {"apiVersion": rt.api_version, "kind": rt.kind}
    body.update({k: copy.deepcopy(v) for k, v in obj.items() if k not in ("apiVersion", "kind")})
    return body


def _visible(obj: Obj) -> Obj:
    """Drop the stand-in's internal bookkeeping annotation from a served object."""
    annotations = obj.get("metadata", {}).get("annotations")
    if annotations and "zoo-ops.test/deployment-uid" in annotations:
        annotations = {k: v for k, v in annotations.items() if k != "zoo-ops.test/deployment-uid"}
        obj["metadata"]["annotations"] = annotations
        if not annotations:
            del obj["metadata"]["annotations"]
    return obj


@dataclass
class WriteOptions:
    """Query options of a write: ``dryRun=All``, ``fieldValidation``; warnings to return."""

    dry_run: bool = False
    field_validation: str = "Warn"
    warnings: list[str] = field(default_factory=list)


class Api:
    """The verbs, independent of HTTP: each takes a route and plain values and returns the
    response body (or raises :class:`ApiError`)."""

    def __init__(self, cluster: _Cluster) -> None:
        self.cluster = cluster

    # -- reads ---------------------------------------------------------------------------------

    def get(self, route: Route) -> Obj:
        with self.cluster.lock:
            obj = self.cluster.get(route.rt, route.namespace, route.name)
            if obj is None:
                raise not_found(route.rt, route.name)
            if route.subresource == "scale":
                return self._scale(obj)
            return _visible(_external(route.rt, obj))

    def select(self, route: Route, query: Mapping[str, list[str]]) -> tuple[list[Obj], Obj]:
        """Matching objects and the list metadata (resourceVersion, continue)."""
        rt = route.rt
        labels = parse_label_selector(_one(query, "labelSelector"))
        fields = parse_field_selector(rt, _one(query, "fieldSelector"))
        with self.cluster.lock:
            namespace = route.namespace if rt.namespaced and route.namespace else None
            items = [o for o in self.cluster.items(rt, namespace) if _matches(o, labels, fields)]
            list_rv = str(self.cluster.rv)
        start = _decode_continue(_one(query, "continue"))
        if start is not None:
            items = [o for o in items if _sort_key(o) > start]
        meta: Obj = {"resourceVersion": list_rv}
        limit = int(_one(query, "limit") or 0)
        if limit > 0 and len(items) > limit:
            meta["continue"] = _encode_continue(_sort_key(items[limit - 1]))
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        return [_visible(copy.deepcopy(o)) for o in items], meta

    def list_body(self, route: Route, query: Mapping[str, list[str]]) -> Obj:
        items, meta = self.select(route, query)
        for item in items:  # list items carry no kind/apiVersion, as from the real server
            item.pop("kind", None)
            item.pop("apiVersion", None)
        return {
            "kind": f"{route.rt.kind}List",
            "apiVersion": route.rt.api_version,
            "metadata": meta,
            "items": items,
        }

    # -- writes --------------------------------------------------------------------------------

    def create(self, route: Route, body: Any, opts: WriteOptions) -> Obj:
        rt = route.rt
        obj = self._decode(rt, body)
        self._check_fields(rt, obj, opts, patch=False)
        meta = obj.setdefault("metadata", {})
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != route.namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = route.namespace
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            if meta.get("generateName"):
                meta["name"] = meta["generateName"] + _random_suffix()
            else:
                raise invalid(
                    rt, "", [required_value("metadata.name", "name or generateName is required")]
                )
        with self.cluster.lock:
            if rt.namespaced:
                self._require_namespace(route.namespace)
            if self.cluster.get(rt, route.namespace, meta["name"]) is not None:
                raise already_exists(rt, meta["name"])
            self.cluster.new_metadata(rt, obj)
            meta.pop("resourceVersion", None)
            if rt.kind == "Deployment":
                obj.pop("status", None)
            apply_defaults(rt, obj, None, self.cluster.service_ip)
            errors = validate(rt, obj, None)
            if errors:
                raise invalid(rt, meta["name"], errors)
            if opts.dry_run:
                return _external(rt, obj)
            if rt.kind == "Pod":
                self.cluster.place_pod(obj, "ready")
            self.cluster.commit(rt, obj, "ADDED")
            if rt.kind == "Deployment":
                self.cluster.reconcile_deployment(obj)
            if rt.kind == "Namespace":
                self.cluster.publish_root_ca(meta["name"])
            return _visible(_external(rt, obj))

    def update(self, route: Route, body: Any, opts: WriteOptions) -> Obj:
        """PUT: a full replacement, conditional on metadata.resourceVersion when it is set."""
        rt = route.rt
        obj = self._decode(rt, body)
        if route.subresource != "scale":
            self._check_fields(rt, obj, opts, patch=False)
        meta = obj.setdefault("metadata", {})
        if meta.get("name") != route.name:
            raise bad_request(
                f"the name of the object ({meta.get('name', '')}) does not match the name on the URL ({route.name})"
            )
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != route.namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = route.namespace
        with self.cluster.lock:
            current = self.cluster.get(rt, route.namespace, route.name)
            if current is None:
                raise not_found(rt, route.name)
            return self._store_update(route, current, obj, opts.dry_run)

    def patch(self, route: Route, content_type: str, raw: bytes, opts: WriteOptions) -> Obj:
        """PATCH: the patch applied to the current object, then stored as an update (so a
        resourceVersion in the patch is a precondition, as on the real server)."""
        rt = route.rt
        kind = content_type.split(";")[0].strip().lower()
        if kind not in (
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
            "application/json-patch+json",
        ):
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json",
            )
        try:
            patch = json.loads(raw or b"null")
        except ValueError as exc:
            raise bad_request(f"error decoding patch: {exc}") from None
        with self.cluster.lock:
            current = self.cluster.get(rt, route.namespace, route.name)
            if current is None:
                raise not_found(rt, route.name)
            original = (
                self._scale(current) if route.subresource == "scale" else _external(rt, current)
            )
            if kind == "application/json-patch+json":
                try:
                    patched = json_patch(original, patch)
                except ValueError as exc:
                    raise bad_request(str(exc)) from None
                except PatchError:
                    raise ApiError(
                        422,
                        "Invalid",
                        "the server rejected our request due to an error in our request",
                        {},
                    ) from None
            elif not isinstance(patch, dict):
                raise bad_request(
                    "json: cannot unmarshal into Go value of type map[string]interface {}"
                )
            elif kind == "application/merge-patch+json":
                patched = merge_patch(original, patch)
            else:
                patched = strategic_merge_patch(original, patch)
            if not isinstance(patched, dict):
                raise bad_request("the patched object is not a JSON object")
            if route.subresource != "scale":
                self._check_fields(rt, patched, opts, patch=True)
            pmeta = patched.setdefault("metadata", {})
            if pmeta.get("name") != route.name:
                raise bad_request(
                    f"the name of the object ({pmeta.get('name', '')}) does not match the name on the URL ({route.name})"
                )
            if rt.namespaced and pmeta.get("namespace") != route.namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            return self._store_update(route, current, patched, opts.dry_run)

    def delete(self, route: Route, body: Any, query: Mapping[str, list[str]], dry_run: bool) -> Obj:
        rt = route.rt
        options = body if isinstance(body, dict) else {}
        # kubectl sends DeleteOptions in the body: dryRun there counts as in the query.
        dry_run = dry_run or "All" in (options.get("dryRun") or [])
        with self.cluster.lock:
            current = self.cluster.get(rt, route.namespace, route.name)
            if current is None:
                raise not_found(rt, route.name)
            pre = options.get("preconditions") or {}
            meta = current["metadata"]
            if pre.get("uid") and pre["uid"] != meta["uid"]:
                raise conflict(
                    rt,
                    route.name,
                    f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {meta['uid']}",
                )
            if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
                raise conflict(
                    rt,
                    route.name,
                    f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, ResourceVersion in object meta: {meta['resourceVersion']}",
                )
            gone = copy.deepcopy(current)
            if rt.kind in ("Pod", "Namespace"):
                # Graceful deletion: the server answers with the object being deleted.
                gone["metadata"]["deletionTimestamp"] = now_rfc3339()
                grace = _one(query, "gracePeriodSeconds") or options.get("gracePeriodSeconds")
                if rt.kind == "Pod":
                    gone["metadata"]["deletionGracePeriodSeconds"] = (
                        int(grace) if grace not in (None, "") else 30
                    )
                else:
                    gone["status"] = {"phase": "Terminating"}
            if dry_run:
                return self._deleted_response(rt, route.name, gone)
            if rt.kind == "Namespace":
                for other in RESOURCE_TYPES:
                    if other.namespaced:
                        for o in self.cluster.items(other, route.name):
                            self.cluster.commit(other, copy.deepcopy(o), "DELETED")
            if rt.kind == "Deployment":
                for pod in self.cluster._owned_pods(current):
                    self.cluster.commit(_BY_KIND["Pod"], copy.deepcopy(pod), "DELETED")
            self.cluster.commit(rt, copy.deepcopy(gone), "DELETED")
            gone["metadata"]["resourceVersion"] = str(self.cluster.rv)
            if rt.kind == "Pod":
                self._after_pod_change(gone)
            return self._deleted_response(rt, route.name, gone)

    def delete_collection(self, route: Route, query: Mapping[str, list[str]], dry_run: bool) -> Obj:
        items, _ = self.select(route, query)
        deleted = []
        for item in items:
            name = item["metadata"]["name"]
            ns = item["metadata"].get("namespace", "")
            try:
                self.delete(Route(route.rt, ns, name, ""), None, query, dry_run)
            except ApiError as exc:
                if exc.code != 404:
                    raise
            item.pop("kind", None)
            item.pop("apiVersion", None)
            deleted.append(item)
        return {
            "kind": f"{route.rt.kind}List",
            "apiVersion": route.rt.api_version,
            "metadata": {"resourceVersion": str(self.cluster.rv)},
            "items": deleted,
        }

    # -- helpers ---------------------------------------------------------------------------------

    def _deleted_response(self, rt: ResourceType, name: str, gone: Obj) -> Obj:
        # Pods and Namespaces (graceful deletion) and Services (their REST storage) answer
        # with the deleted object, as the real apiserver does; the official client decodes
        # delete_namespaced_service's body as a V1Service.
        if rt.kind in ("Pod", "Namespace", "Service"):
            return _visible(_external(rt, gone))
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": _details(rt, name, uid=gone["metadata"]["uid"]),
        }

    def _decode(self, rt: ResourceType, body: Any) -> Obj:
        if not isinstance(body, dict):
            raise bad_request(f"the object provided is unrecognized (must be of type {rt.kind})")
        if body.get("kind") not in (None, "", rt.kind):
            raise bad_request(
                f'the object provided is unrecognized (must be of type {rt.kind}): {body.get("kind")} in version "{body.get("apiVersion", "")}" cannot be handled as a {rt.kind}'
            )
        if body.get("apiVersion") not in (None, "", rt.api_version):
            raise bad_request(
                f"the API version in the data ({body['apiVersion']}) does not match the expected API version ({rt.api_version})"
            )
        if body.get("metadata") is not None and not isinstance(body["metadata"], dict):
            raise _decode_error(
                rt,
                f"json: cannot unmarshal {_json_type(body['metadata'])} into Go struct field {rt.kind}.metadata of type v1.ObjectMeta",
            )
        check_decodable(rt, body)
        obj = copy.deepcopy(body)
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        return obj

    def _check_fields(self, rt: ResourceType, obj: Obj, opts: WriteOptions, patch: bool) -> None:
        """Field validation of unknown fields, which the typed server never stores:
        ``Strict`` refuses them (400 on create and update, 422 on patch), ``Warn`` (the
        default) drops them with a warning, ``Ignore`` drops them silently."""
        unknown = drop_unknown_fields(rt, obj)
        if not unknown:
            return
        if opts.field_validation == "Strict":
            detail = "strict decoding error: " + ", ".join(f'unknown field "{f}"' for f in unknown)
            if patch:
                error = invalid_value("patch", json.dumps(obj), detail)
                raise ApiError(
                    422,
                    "Invalid",
                    f' "" is invalid: {error.field}: {error.message()}',
                    {
                        "causes": [
                            {
                                "reason": error.reason,
                                "message": error.message(),
                                "field": error.field,
                            }
                        ]
                    },
                )
            raise _decode_error(rt, detail)
        if opts.field_validation != "Ignore":
            opts.warnings.extend(f'unknown field "{f}"' for f in unknown)

    def _require_namespace(self, namespace: str) -> None:
        if self.cluster.get(_BY_KIND["Namespace"], "", namespace) is None:
            raise not_found(_BY_KIND["Namespace"], namespace)

    def _scale(self, dep: Obj) -> Obj:
        meta = dep["metadata"]
        status = dep.get("status") or {}
        selector = ",".join(
            f"{k}={v}"
            for k, v in sorted(
                ((dep["spec"].get("selector") or {}).get("matchLabels") or {}).items()
            )
        )
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: meta[k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            },
            "spec": {"replicas": dep["spec"].get("replicas", 1)},
            "status": {"replicas": status.get("replicas", 0), "selector": selector},
        }

    def _store_update(self, route: Route, current: Obj, obj: Obj, dry_run: bool) -> Obj:
        """The common end of PUT and PATCH (called under the lock): preconditions, the
        fields the server owns, defaults, validation, then a no-op check or a commit."""
        rt = route.rt
        meta = obj.setdefault("metadata", {})
        cur_meta = current["metadata"]
        if route.subresource == "scale":
            replicas = (obj.get("spec") or {}).get("replicas")
            if (
                meta.get("resourceVersion")
                and meta["resourceVersion"] != cur_meta["resourceVersion"]
            ):
                raise conflict(rt, route.name, STALE_OBJECT)
            obj = copy.deepcopy(current)
            obj["spec"]["replicas"] = replicas
            meta = obj["metadata"]
        rv = meta.get("resourceVersion")
        if rv and rv != cur_meta["resourceVersion"]:
            raise conflict(rt, route.name, STALE_OBJECT)
        if meta.get("uid") and meta["uid"] != cur_meta["uid"]:
            raise conflict(
                rt,
                route.name,
                f"Precondition failed: UID in precondition: {meta['uid']}, UID in object meta: {cur_meta['uid']}",
            )
        check_decodable(rt, obj)
        for owned in (
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ):
            if owned in cur_meta:
                meta[owned] = cur_meta[owned]
            else:
                meta.pop(owned, None)
        internal = (cur_meta.get("annotations") or {}).get("zoo-ops.test/deployment-uid")
        if internal:
            meta.setdefault("annotations", {})["zoo-ops.test/deployment-uid"] = internal
        if route.subresource == "status":
            # The status subresource changes status only; the main resource everything else.
            status = obj.get("status")
            obj = copy.deepcopy(current)
            obj["status"] = status
        elif rt.has_status:
            obj["status"] = copy.deepcopy(current.get("status"))
            if obj["status"] is None:
                obj.pop("status")
        if rt.kind == "Pod":
            # Pod spec is immutable but for a few fields; the status belongs to the kubelet
            # unless set through the status subresource.
            if route.subresource != "status":
                obj["status"] = copy.deepcopy(current.get("status"))
            if (obj.get("spec") or {}).get("nodeName") is None and current["spec"].get("nodeName"):
                obj.setdefault("spec", {})["nodeName"] = current["spec"]["nodeName"]
        apply_defaults(rt, obj, current, self.cluster.service_ip)
        errors = validate(rt, obj, current)
        if rt.kind == "Pod" and _pod_spec_mutable_view(obj) != _pod_spec_mutable_view(current):
            errors.append(
                forbidden(
                    "spec",
                    "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
                )
            )
        if errors:
            raise invalid(rt, route.name, errors)
        if rt.kind == "Deployment" and obj.get("spec") != current.get("spec"):
            meta["generation"] = int(cur_meta.get("generation", 1)) + 1
        meta["resourceVersion"] = cur_meta["resourceVersion"]
        if _without_rv(obj) == _without_rv(_external(rt, current)):
            result = current  # nothing changed: no write, the resourceVersion stays
        elif dry_run:
            result = obj
        else:
            result = self.cluster.commit(rt, obj, "MODIFIED")
            if rt.kind == "Deployment":
                self.cluster.reconcile_deployment(result)
        if route.subresource == "scale":
            return self._scale(result)
        return _visible(_external(rt, result))

    def _after_pod_change(self, pod: Obj) -> None:
        """A controller notices a deleted pod: its Deployment replaces it."""
        uid = (pod["metadata"].get("annotations") or {}).get("zoo-ops.test/deployment-uid")
        if not uid:
            return
        for dep in self.cluster.items(_BY_KIND["Deployment"], pod["metadata"]["namespace"]):
            if dep["metadata"]["uid"] == uid:
                self.cluster.reconcile_deployment(dep)


def _pod_spec_mutable_view(pod: Obj) -> Obj:
    spec = copy.deepcopy(pod.get("spec") or {})
    for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        c.pop("image", None)
    for mutable in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
        spec.pop(mutable, None)
    return spec


def _sort_key(obj: Obj) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


def _encode_continue(key: str) -> str:
    return base64.urlsafe_b64encode(
        json.dumps({"v": "meta.k8s.io/v1", "start": key}).encode()
    ).decode()


def _decode_continue(token: str) -> str | None:
    if not token:
        return None
    try:
        start = json.loads(base64.urlsafe_b64decode(token.encode()))["start"]
    except (ValueError, KeyError, TypeError):
        raise bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
        ) from None
    return str(start)
