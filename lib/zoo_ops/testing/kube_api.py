"""A Kubernetes API stand-in: a real HTTP server that behaves as the apiserver does.

No real apiserver can run where zoo-ops is tested, so this is the one sanctioned fake, and
it is written against the apiserver's observable contract, not against zoo-ops's needs:

* resources: core/v1 Namespaces, ConfigMaps, Secrets, Nodes, Pods, Services; apps/v1
  Deployments (with ``status`` and ``scale`` subresources);
* verbs: get, list (namespaced and across namespaces, label and field selectors, ``limit`` and
  ``continue``), watch (chunked JSON event stream), create (409 AlreadyExists), update (409
  Conflict on a stale ``metadata.resourceVersion``, unconditional when it is empty), patch
  (JSON merge patch, strategic merge patch with the patch-merge keys of these kinds, RFC 6902
  JSON patch including ``test``), delete and deletecollection, ``dryRun=All``;
* one global ``resourceVersion`` counter bumped on every write; a write that changes nothing
  is a no-op and keeps the version, as etcd3's GuaranteedUpdate does;
* ``Status`` bodies with the apiserver's reasons, codes, details and messages;
* discovery (``/version``, ``/api``, ``/api/v1``, ``/apis``, ``/apis/apps``, ``/apis/apps/v1``)
  in the legacy form, which kubectl falls back to when a server answers its aggregated
  discovery ``Accept`` header with plain ``application/json``; server-side ``Table`` output
  for ``kubectl get``;
* a small Deployment controller and scheduler: a Deployment gets Pods built from its
  template, placed on a Node whose labels match the nodeSelector, whose ``NoSchedule`` taints
  are tolerated and whose allocatable resources (cpu, memory, ``nvidia.com/gpu``, ...) still
  fit; the Deployment becomes ready (``readyReplicas``, ``availableReplicas``, condition
  ``Available=True``, ``observedGeneration``) after ``ready_delay_s`` seconds, never
  (annotation ``zoo-ops.test/never-ready: "true"``), or fails
  (``zoo-ops.test/fail: "true"``: Progressing=False, ProgressDeadlineExceeded).

Every request is recorded in ``request_log`` as a :class:`KubeRequest` with the Kubernetes
authorization verb, so that tests can check a client's calls against an RBAC Role.

Run it: ``python -m zoo_ops.testing.kube_api --port 0 --seed FILE --kubeconfig OUT``.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import json
import random
import re
import signal
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

import yaml

Obj = dict[str, Any]

NEVER_READY_ANNOTATION = "zoo-ops.test/never-ready"
FAIL_ANNOTATION = "zoo-ops.test/fail"
READY_AFTER_ANNOTATION = "zoo-ops.test/ready-after-seconds"
DEFAULT_TOKEN = "zoo-ops-standin-token"
DEFAULT_SERVER_VERSION = "v1.34.0"
# Watch history kept for resuming a watch from a resourceVersion; older ones get 410 Gone.
WATCH_HISTORY = 20000
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
_STANDIN_CA = "-----BEGIN CERTIFICATE-----\nMIIBstandinstandinstandinstandinstandinstandinstandinstandin\n-----END CERTIFICATE-----\n"


# --------------------------------------------------------------------------------------------
# Resource types


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
    ResourceType("Pod", "pods", "pod", "", "v1", True, ("po",), ("all",), ("status",), True),
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
)
_BY_KIND = {rt.kind: rt for rt in RESOURCE_TYPES}
_BY_PLURAL = {(rt.group, rt.plural): rt for rt in RESOURCE_TYPES}
_GROUP_VERSIONS = {"": "v1", "apps": "v1"}


def resource_type(kind_or_plural: str) -> ResourceType:
    """The served type named by its kind (``ConfigMap``), plural (``configmaps``) or short name."""
    lowered = kind_or_plural.lower()
    for rt in RESOURCE_TYPES:
        if lowered in (rt.kind.lower(), rt.plural, rt.singular, *rt.short_names):
            return rt
    raise KeyError(f"the stand-in does not serve {kind_or_plural!r}")


# Every request any stand-in of this process served, for a check over a whole test
# session (zoo_ops.testing.kube_fixtures checks zoo-ops's own calls against deploy/rbac.yaml).
PROCESS_REQUEST_LOG: list[KubeRequest] = []
_PROCESS_LOG_LOCK = threading.Lock()


class KubeRequest(NamedTuple):
    """One request as RBAC sees it: verb, URL path, resource (``deployments/status`` for a
    subresource, empty for a non-resource URL), namespace and object name."""

    verb: str
    path: str
    resource: str
    namespace: str
    name: str
    user_agent: str = ""  # the client's User-Agent header: who made the call

    @property
    def api_group(self) -> str:
        """The API group from the path: ``apps`` for ``/apis/apps/...``, ``""`` for core."""
        parts = self.path.strip("/").split("/")
        return parts[1] if parts[0] == "apis" and len(parts) > 1 else ""


# --------------------------------------------------------------------------------------------
# Errors: the apiserver's Status bodies


class ApiError(Exception):
    """A failure the server answers with a ``Status`` body."""

    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> Obj:
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def _details(rt: ResourceType, name: str, **extra: Any) -> Obj:
    details: Obj = {"name": name}
    if rt.group:
        details["group"] = rt.group
    details["kind"] = rt.plural
    details.update(extra)
    return details


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{rt.group_resource} "{name}" not found', _details(rt, name))


def already_exists(rt: ResourceType, name: str) -> ApiError:
    msg = f'{rt.group_resource} "{name}" already exists'
    return ApiError(409, "AlreadyExists", msg, _details(rt, name))


def conflict(rt: ResourceType, name: str, cause: str) -> ApiError:
    msg = f'Operation cannot be fulfilled on {rt.group_resource} "{name}": {cause}'
    return ApiError(409, "Conflict", msg, _details(rt, name))


STALE_OBJECT = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


class FieldError(NamedTuple):
    """One validation failure, as ``field.Error`` renders it."""

    reason: str  # FieldValueInvalid, FieldValueRequired, ...
    field: str
    detail: str

    def message(self) -> str:
        return self.detail


def _go_repr(value: Any) -> str:
    """The value as Go's %#v prints the common cases in validation messages."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        inner = ", ".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in value.items())
        return "map[string]string{" + inner + "}"
    return json.dumps(value)


def invalid_value(path: str, value: Any, detail: str) -> FieldError:
    return FieldError("FieldValueInvalid", path, f"Invalid value: {_go_repr(value)}: {detail}")


def required_value(path: str, detail: str = "") -> FieldError:
    return FieldError(
        "FieldValueRequired", path, "Required value" + (f": {detail}" if detail else "")
    )


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError("FieldValueForbidden", path, f"Forbidden: {detail}")


def invalid(rt: ResourceType, name: str, errors: list[FieldError]) -> ApiError:
    """422 Invalid: ``ConfigMap "x" is invalid: <field>: <message>`` (several: ``[a, b]``)."""
    rendered = [f"{e.field}: {e.message()}" for e in errors]
    joined = rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"
    details: Obj = {"name": name}
    if rt.group:
        details["group"] = rt.group
    details["kind"] = rt.kind
    details["causes"] = [
        {"reason": e.reason, "message": e.message(), "field": e.field} for e in errors
    ]
    return ApiError(422, "Invalid", f'{rt.group_kind} "{name}" is invalid: {joined}', details)


def _decode_error(rt: ResourceType, detail: str) -> ApiError:
    return bad_request(
        f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: {detail}'
    )


# --------------------------------------------------------------------------------------------
# Small pure helpers: time, quantities, names


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_rfc3339(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def human_duration(seconds: float) -> str:
    """Age as kubectl prints it (apimachinery ``duration.HumanDuration``): seconds under two
    minutes, ``XmYs`` under ten minutes, minutes under three hours, ``XhYm`` under eight
    hours, hours under two days, ``XdYh`` under eight days, days under two years, then years."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    years = hours // (24 * 365)
    if years < 8:
        days = (hours // 24) % 365
        return f"{years}y{days}d" if days else f"{years}y"
    return f"{years}y"


_SUFFIXES: dict[str, Decimal | int] = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}
_QUANTITY = re.compile(
    r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$"
)


def parse_quantity(value: Any) -> Decimal:
    """A resource quantity (``500m``, ``32Gi``, ``1e3``, ``2``) as an exact decimal of base units."""
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise ValueError(f"quantities must match the regular expression '{_QUANTITY.pattern}'")
    try:
        number = Decimal(match.group(1))
    except InvalidOperation as exc:
        raise ValueError(f"invalid quantity {value!r}") from exc
    return number * Decimal(_SUFFIXES[match.group(2) or ""])


_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def _name_errors(rt: ResourceType, name: str) -> list[FieldError]:
    """metadata.name rules: Services a DNS-1035 label, Namespaces a DNS-1123 label, the rest a
    DNS-1123 subdomain (the messages are the apimachinery validation messages)."""
    path = "metadata.name"
    if rt.kind == "Service":
        if len(name) > 63 or not _DNS1035_LABEL.match(name):
            return [
                invalid_value(
                    path,
                    name,
                    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
                )
            ]
    elif rt.kind == "Namespace":
        if len(name) > 63 or not _DNS1123_LABEL.match(name):
            return [
                invalid_value(
                    path,
                    name,
                    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                )
            ]
    elif len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        return [
            invalid_value(
                path,
                name,
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            )
        ]
    return []


_RANDOM_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's rand.String alphabet


def _random_suffix(n: int = 5) -> str:
    return "".join(random.choice(_RANDOM_ALPHABET) for _ in range(n))


def _template_hash(template: Obj) -> str:
    """A stable short hash of a pod template, spelt with the pod-template-hash alphabet."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return "".join(_RANDOM_ALPHABET[b % len(_RANDOM_ALPHABET)] for b in digest[:10])


# --------------------------------------------------------------------------------------------
# Patches: RFC 7386 merge patch, strategic merge patch, RFC 6902 JSON patch


class PatchError(Exception):
    """A JSON patch that does not apply (the apiserver answers 422)."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: a patch object merges key by key into the target (``null`` deletes a key);
    anything else, lists included, replaces the target."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# patchMergeKey of the list fields of the served kinds (k8s.io/api struct tags); ``ports`` is
# keyed by containerPort in a container and by port in a Service, told apart by the elements.
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "ownerReferences": "uid",
    "taints": "key",
    "addresses": "type",
    "resourceClaims": "name",
    "ports": "containerPort|port",
}
_PRIMITIVE_MERGE_LISTS = {"finalizers"}


def _merge_key(field_name: str, items: list[Any]) -> str | None:
    key = _MERGE_KEYS.get(field_name)
    if key == "containerPort|port":
        has_container_port = any(isinstance(i, dict) and "containerPort" in i for i in items)
        return "containerPort" if has_container_port else "port"
    return key


def strategic_merge_patch(original: Any, patch: Any) -> Any:
    """Strategic merge patch for the served kinds: as a merge patch, except that lists with a
    patch-merge key (containers by name, env by name, ports by port, ...) merge element by
    element, ``finalizers`` merges as a set, and the directives ``$patch`` (replace, delete),
    ``$setElementOrder/<list>``, ``$deleteFromPrimitiveList/<list>`` and ``$retainKeys`` act
    as kubectl's computed patches expect."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    result: Obj = copy.deepcopy(original) if isinstance(original, dict) else {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            list_name = key.split("/", 1)[1]
            result[list_name] = [x for x in result.get(list_name) or [] if x not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            order = patch.get(f"$setElementOrder/{key}")
            result[key] = _merge_list(key, result.get(key), value, order)
        elif isinstance(value, dict):
            merged = strategic_merge_patch(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = copy.deepcopy(value)
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(name: str, original: Any, patch: list[Any], order: list[Any] | None) -> list[Any]:
    """One list of a strategic merge patch: merge by key, union a primitive merge list, or
    replace (lists without a merge key, or ``{"$patch": "replace"}`` among the elements)."""
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    if not isinstance(original, list):
        original = []
    if name in _PRIMITIVE_MERGE_LISTS:
        merged = list(original)
        merged.extend(x for x in patch if x not in merged)
        return merged
    key = _merge_key(name, original + patch)
    if key is None:
        return copy.deepcopy(patch)
    result = copy.deepcopy(original)
    for element in patch:
        if not isinstance(element, dict) or key not in element:
            result.append(copy.deepcopy(element))
            continue
        index = next(
            (i for i, e in enumerate(result) if isinstance(e, dict) and e.get(key) == element[key]),
            None,
        )
        if element.get("$patch") == "delete":
            if index is not None:
                result.pop(index)
            continue
        if index is None:
            result.append(strategic_merge_patch({}, element))
        else:
            result[index] = strategic_merge_patch(result[index], element)
    if order:
        rank = {
            json.dumps(o.get(key) if isinstance(o, dict) else o): i for i, o in enumerate(order)
        }
        result.sort(
            key=lambda e: rank.get(json.dumps(e.get(key) if isinstance(e, dict) else e), len(rank))
        )
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"JSON pointer must be empty or start with '/': {path!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _list_index(token: str, length: int, allow_end: bool) -> int:
    if allow_end and token == "-":
        return length
    if not re.fullmatch(r"0|[1-9][0-9]*", token):
        raise PatchError(f"invalid array index {token!r}")
    index = int(token)
    if index > length or (index == length and not allow_end):
        raise PatchError(f"array index {index} out of bounds")
    return index


def _get(doc: Any, tokens: list[str]) -> Any:
    for token in tokens:
        if isinstance(doc, dict):
            if token not in doc:
                raise PatchError("doc is missing path")
            doc = doc[token]
        elif isinstance(doc, list):
            doc = doc[_list_index(token, len(doc), allow_end=False)]
        else:
            raise PatchError("doc is missing path")
    return doc


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: unlike Python's ``==``, ``true`` is not ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b or (_is_number(a) and _is_number(b) and a == b)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _get(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_list_index(last, len(parent), allow_end=True), value)
    else:
        raise PatchError("doc is missing path")
    return doc


def _remove(doc: Any, tokens: list[str]) -> tuple[Any, Any]:
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _get(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"unable to remove nonexistent key: {last}: missing value")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_list_index(last, len(parent), allow_end=False))
    raise PatchError("doc is missing path")


def json_patch(document: Any, operations: Any) -> Any:
    """RFC 6902: apply add, remove, replace, move, copy and test in order to a copy of the
    document; any operation that does not apply (a missing path, a failed test) fails all."""
    if not isinstance(operations, list):
        raise ValueError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(document)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise ValueError(f"invalid JSON patch operation: {json.dumps(op)}")
        kind, tokens = op["op"], _pointer(op["path"])
        if kind in ("add", "replace", "test") and "value" not in op:
            raise ValueError(f"missing value in {kind} operation")
        if kind == "add":
            doc = _add(doc, tokens, copy.deepcopy(op["value"]))
        elif kind == "remove":
            doc, _ = _remove(doc, tokens)
        elif kind == "replace":
            _get(doc, tokens)  # must exist
            if tokens:
                doc, _ = _remove(doc, tokens)
            doc = _add(doc, tokens, copy.deepcopy(op["value"]))
        elif kind == "move":
            source = _pointer(op.get("from", ""))
            if tokens[: len(source)] == source and len(tokens) > len(source):
                raise PatchError("cannot move a value into one of its children")
            doc, value = _remove(doc, source)
            doc = _add(doc, tokens, value)
        elif kind == "copy":
            doc = _add(doc, tokens, copy.deepcopy(_get(doc, _pointer(op.get("from", "")))))
        elif kind == "test":
            if not _json_equal(_get(doc, tokens), op["value"]):
                raise PatchError(f"testing value {op['path']} failed: test failed")
        else:
            raise ValueError(f"unexpected kind: {kind}")
    return doc


# --------------------------------------------------------------------------------------------
# Selectors


class Requirement(NamedTuple):
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "=":
            return present and labels[self.key] == self.values[0]
        if self.op == "!=":
            return not present or labels[self.key] != self.values[0]
        if self.op == "in":
            return present and labels[self.key] in self.values
        if self.op == "notin":
            return not present or labels[self.key] not in self.values
        if self.op == "exists":
            return present
        return not present


_SET_TERM = re.compile(r"^\s*([^\s!=(),]+)\s+(in|notin)\s*\(([^)]*)\)\s*$")
_EQ_TERM = re.compile(r"^\s*([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)\s*$")
_KEY_TERM = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s*$")


def _split_terms(text: str) -> list[str]:
    """Split a selector on the commas that are not inside ``in (a, b)``."""
    terms: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(ch)
    terms.append("".join(current))
    return [t for t in terms if t.strip()]


def parse_label_selector(text: str) -> list[Requirement]:
    """A label selector string: ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x)``,
    ``a``, ``!a``, comma-separated (all must hold)."""
    requirements = []
    for term in _split_terms(text):
        if m := _SET_TERM.match(term):
            values = tuple(v.strip() for v in m.group(3).split(",") if v.strip())
            requirements.append(Requirement(m.group(1), m.group(2), values))
        elif m := _EQ_TERM.match(term):
            op = "!=" if m.group(2) == "!=" else "="
            requirements.append(Requirement(m.group(1), op, (m.group(3),)))
        elif m := _KEY_TERM.match(term):
            requirements.append(Requirement(m.group(2), "!" if m.group(1) else "exists", ()))
        else:
            raise bad_request(
                f"unable to parse requirement: found '{term.strip()}', expected: !, =, ==, !=, in, notin"
            )
    return requirements


def selector_requirements(selector: Obj | None) -> list[Requirement]:
    """A LabelSelector object (``matchLabels`` and ``matchExpressions``) as requirements."""
    if not selector:
        return []
    reqs = [Requirement(k, "=", (v,)) for k, v in (selector.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in selector.get("matchExpressions") or []:
        reqs.append(
            Requirement(expr["key"], ops[expr["operator"]], tuple(expr.get("values") or ()))
        )
    return reqs


_FIELD_LABELS: dict[str, tuple[str, ...]] = {
    "pods": (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    "secrets": ("type",),
    "nodes": ("spec.unschedulable",),
    "namespaces": ("status.phase",),
    "events": (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
}


def parse_field_selector(rt: ResourceType, text: str) -> list[tuple[str, bool, str]]:
    """A field selector as (field, equal?, value); only the fields the apiserver indexes for
    the resource (``metadata.name``, ``metadata.namespace`` and a few per kind)."""
    allowed = ("metadata.name", "metadata.namespace", *_FIELD_LABELS.get(rt.plural, ()))
    terms = []
    for term in _split_terms(text):
        m = re.match(r"^\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*$", term)
        if not m:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        if m.group(1) not in allowed:
            raise bad_request(f"field label not supported: {m.group(1)}")
        terms.append((m.group(1), m.group(2) != "!=", m.group(3)))
    return terms


def _field_value(obj: Obj, dotted: str) -> str:
    value: Any = obj
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


# --------------------------------------------------------------------------------------------
# Server-side tables for kubectl get


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


# --------------------------------------------------------------------------------------------
# Defaulting and validation per kind


def _image_pull_policy(image: str) -> str:
    tail = image.rsplit("/", 1)[-1]
    if "@" in tail:
        return "IfNotPresent"
    return "Always" if ":" not in tail or tail.endswith(":latest") else "IfNotPresent"


def _default_pod_spec(spec: Obj) -> None:
    """The scheme defaults of a PodSpec that show up in read-backs."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if not isinstance(container, dict):
            continue
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        if isinstance(container.get("image"), str):
            container.setdefault("imagePullPolicy", _image_pull_policy(container["image"]))
        resources = container.setdefault("resources", {})
        limits = resources.get("limits") or {}
        if limits:  # requests default to limits, resource by resource
            requests = resources.setdefault("requests", {})
            for name, value in limits.items():
                requests.setdefault(name, value)
        for port in container.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")


def _pod_spec_errors(spec: Any, path: str) -> list[FieldError]:
    if not isinstance(spec, dict):
        return [required_value(path)]
    containers = spec.get("containers")
    if not containers:
        return [required_value(f"{path}.containers")]
    errors = []
    seen: set[str] = set()
    for i, c in enumerate(containers):
        cpath = f"{path}.containers[{i}]"
        if not isinstance(c, dict) or not c.get("name"):
            errors.append(required_value(f"{cpath}.name"))
            continue
        if c["name"] in seen:
            errors.append(
                FieldError(
                    "FieldValueDuplicate",
                    f"{cpath}.name",
                    f"Duplicate value: {_go_repr(c['name'])}",
                )
            )
        seen.add(c["name"])
        if not c.get("image"):
            errors.append(required_value(f"{cpath}.image"))
        for kind in ("requests", "limits"):
            for res, qty in ((c.get("resources") or {}).get(kind) or {}).items():
                try:
                    parse_quantity(qty)
                except ValueError as exc:
                    errors.append(invalid_value(f"{cpath}.resources.{kind}[{res}]", qty, str(exc)))
    return errors


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


def _check_string_map(rt: ResourceType, obj: Obj, path: tuple[str, ...], go_field: str) -> None:
    value: Any = obj
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return
    if not isinstance(value, dict):
        raise _decode_error(
            rt,
            f"json: cannot unmarshal {_json_type(value)} into Go struct field {go_field} of type map[string]string",
        )
    for v in value.values():
        if not isinstance(v, str):
            raise _decode_error(
                rt,
                f"json: cannot unmarshal {_json_type(v)} into Go struct field {go_field} of type string",
            )


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


def check_decodable(rt: ResourceType, obj: Obj) -> None:
    """Reject what the apiserver's JSON decoder rejects (400): string maps with non-strings."""
    _check_string_map(rt, obj, ("metadata", "labels"), f"{rt.kind}.metadata.labels")
    _check_string_map(rt, obj, ("metadata", "annotations"), f"{rt.kind}.metadata.annotations")
    if rt.kind == "ConfigMap":
        _check_string_map(rt, obj, ("data",), "ConfigMap.data")
        _check_string_map(rt, obj, ("binaryData",), "ConfigMap.binaryData")
    if rt.kind == "Secret":
        _check_string_map(rt, obj, ("data",), "Secret.data")
        _check_string_map(rt, obj, ("stringData",), "Secret.stringData")
        for key, value in (obj.get("data") or {}).items():
            try:
                base64.b64decode(value, validate=True)
            except ValueError:
                raise _decode_error(
                    rt, f"illegal base64 data at input byte 0 (data[{key}])"
                ) from None


def validate(rt: ResourceType, obj: Obj, old: Obj | None) -> list[FieldError]:
    """The validation the apiserver applies on create (``old`` None) and update."""
    errors = _name_errors(rt, obj["metadata"]["name"]) if old is None else []
    if rt.kind in ("ConfigMap", "Secret"):
        maps = ("data", "binaryData") if rt.kind == "ConfigMap" else ("data",)
        total = 0
        for map_name in maps:
            for key, value in (obj.get(map_name) or {}).items():
                total += len(value)
                if not _CONFIG_KEY.match(key) or key in (".", "..") or len(key) > 253:
                    errors.append(
                        invalid_value(
                            f"{map_name}[{key}]",
                            key,
                            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                        )
                    )
        if total > 1024 * 1024:
            errors.append(
                FieldError("FieldValueTooLong", "[]", "Too long: must have at most 1048576 bytes")
            )
        if old is not None and old.get("immutable"):
            for key in ("data", "binaryData", "immutable"):
                if obj.get(key) != old.get(key) and not (
                    key == "immutable" and obj.get(key) is None
                ):
                    errors.append(forbidden(key, "field is immutable when `immutable` is set"))
    elif rt.kind == "Pod":
        errors += _pod_spec_errors(obj.get("spec"), "spec")
    elif rt.kind == "Deployment":
        spec = obj.get("spec") or {}
        errors += _selector_errors(obj)
        errors += _pod_spec_errors((spec.get("template") or {}).get("spec"), "spec.template.spec")
        replicas = spec.get("replicas", 1)
        if not isinstance(replicas, int) or replicas < 0:
            errors.append(
                invalid_value("spec.replicas", replicas, "must be greater than or equal to 0")
            )
        if old is not None and (old.get("spec") or {}).get("selector") != spec.get("selector"):
            errors.append(
                invalid_value("spec.selector", spec.get("selector"), "field is immutable")
            )
    elif rt.kind == "Service":
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


def apply_defaults(
    rt: ResourceType, obj: Obj, old: Obj | None, service_ip: Callable[[], str]
) -> None:
    """Scheme defaults and the fields the apiserver fills in (Secret stringData folded into
    base64 data, a Service's cluster IP, a Namespace's finalizers and name label)."""
    if rt.kind == "Secret":
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None) or {}
        if string_data:
            data = obj.setdefault("data", {})
            for key, value in string_data.items():
                data[key] = base64.b64encode(value.encode()).decode()
    elif rt.kind == "Namespace":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        labels = obj["metadata"].setdefault("labels", {})
        labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        obj.setdefault("status", {}).setdefault("phase", "Active")
    elif rt.kind == "Pod":
        spec = obj.setdefault("spec", {})
        _default_pod_spec(spec)
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("priority", 0)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        spec.setdefault(
            "tolerations",
            [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
            ],
        )
    elif rt.kind == "Deployment":
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
    elif rt.kind == "Service":
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
    elif rt.kind == "Node":
        status = obj.setdefault("status", {})
        if "allocatable" not in status and "capacity" in status:
            status["allocatable"] = copy.deepcopy(status["capacity"])
        if "capacity" not in status and "allocatable" in status:
            status["capacity"] = copy.deepcopy(status["allocatable"])
        status.setdefault("allocatable", {}).setdefault("pods", "110")
        status.setdefault("capacity", {}).setdefault("pods", "110")
        if not status.get("conditions"):
            status["conditions"] = [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                    "lastHeartbeatTime": now_rfc3339(),
                    "lastTransitionTime": now_rfc3339(),
                }
            ]
        # Every NodeSystemInfo field is required in the API (the Python client checks).
        node_info = status.setdefault("nodeInfo", {})
        name = obj["metadata"]["name"]
        for key, value in {
            "machineID": hashlib.md5(name.encode()).hexdigest(),
            "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)),
            "bootID": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
            "kernelVersion": "6.1.0-standin",
            "osImage": "Ubuntu 22.04.4 LTS",
            "containerRuntimeVersion": "containerd://1.7.20",
            "kubeletVersion": DEFAULT_SERVER_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64",
        }.items():
            node_info.setdefault(key, value)
        if not status.get("addresses"):
            status["addresses"] = [
                {"type": "InternalIP", "address": f"10.0.0.{zlib.crc32(name.encode()) % 250 + 2}"},
                {"type": "Hostname", "address": name},
            ]


# --------------------------------------------------------------------------------------------
# Scheduling and the Deployment controller (pure parts)


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


def _int_or_percent(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        scaled = Decimal(value[:-1]) * total / 100
        return int(
            scaled.to_integral_value(rounding="ROUND_CEILING" if round_up else "ROUND_FLOOR")
        )
    return int(value)


# --------------------------------------------------------------------------------------------
# The cluster state


@dataclass
class _Event:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    rt: ResourceType
    old: Obj | None
    new: Obj


@dataclass
class _Deadline:
    """A Deployment's pods of one template that become ready at ``due`` (monotonic time)."""

    namespace: str
    name: str
    template_hash: str
    due: float


def _key(rt: ResourceType, namespace: str, name: str) -> tuple[str, str, str]:
    return (rt.plural, namespace if rt.namespaced else "", name)


def _without_rv(obj: Obj) -> Obj:
    copied = copy.deepcopy(obj)
    copied.get("metadata", {}).pop("resourceVersion", None)
    return copied


@dataclass
class _Cluster:
    """All objects, the global resourceVersion and the watch history, behind one lock."""

    ready_delay_s: float = 0.0
    objects: dict[tuple[str, str, str], Obj] = field(default_factory=dict)
    rv: int = 1000
    events: list[_Event] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    changed: threading.Condition = field(init=False)
    deadlines: list[_Deadline] = field(default_factory=list)
    next_ip: int = 10

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    # -- storage ---------------------------------------------------------------------------

    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj | None:
        return self.objects.get(_key(rt, namespace, name))

    def items(self, rt: ResourceType, namespace: str | None = None) -> list[Obj]:
        """Objects of a type in etcd key order (namespace, name); ``None``: all namespaces."""
        keys = sorted(
            k
            for k in self.objects
            if k[0] == rt.plural and (namespace is None or k[1] == namespace)
        )
        return [self.objects[k] for k in keys]

    def commit(self, rt: ResourceType, obj: Obj, event_type: str) -> Obj:
        """Store (or, for DELETED, drop) an object under a freshly bumped resourceVersion and
        record the watch event."""
        meta = obj["metadata"]
        key = _key(rt, meta.get("namespace", ""), meta["name"])
        old = self.objects.get(key)
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        if event_type == "DELETED":
            self.objects.pop(key, None)
        else:
            self.objects[key] = obj
        self.events.append(
            _Event(self.rv, event_type, rt, copy.deepcopy(old) if old else None, copy.deepcopy(obj))
        )
        if len(self.events) > WATCH_HISTORY:
            del self.events[: len(self.events) - WATCH_HISTORY]
        self.changed.notify_all()
        return obj

    def service_ip(self) -> str:
        self.next_ip += 1
        return f"10.96.{self.next_ip // 250}.{self.next_ip % 250 + 1}"

    def new_metadata(self, rt: ResourceType, obj: Obj) -> None:
        meta = obj["metadata"]
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if rt.kind == "Deployment":
            meta["generation"] = 1
        for system_field in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(system_field, None)

    # -- pods and deployments --------------------------------------------------------------

    def _pod_status(self, pod: Obj, node: str | None, message: str, mode: str) -> Obj:
        """A pod's status as the kubelet would report it: Pending/Unschedulable with no node;
        otherwise Running with containers ready (``ready``), not yet ready (``starting``,
        ``never``) or crash-looping (``fail``)."""
        now = now_rfc3339()
        if node is None:
            return {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": message,
                        "lastProbeTime": None,
                        "lastTransitionTime": now,
                    }
                ],
                "qosClass": "Burstable",
            }
        ready = mode == "ready"
        statuses = []
        for c in (pod.get("spec") or {}).get("containers") or []:
            state: Obj = {"running": {"startedAt": now}}
            if mode == "fail":
                state = {
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": f"back-off 5m0s restarting failed container={c['name']}",
                    }
                }
            statuses.append(
                {
                    "name": c["name"],
                    "image": c.get("image", ""),
                    "imageID": "",
                    "ready": ready,
                    "restartCount": 3 if mode == "fail" else 0,
                    "started": mode != "fail",
                    "state": state,
                }
            )
        condition = "True" if ready else "False"
        return {
            "phase": "Running",
            "hostIP": "10.0.0.1",
            "podIP": f"10.244.0.{random.randint(2, 254)}",
            "startTime": now,
            "conditions": [
                {
                    "type": "Initialized",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": now,
                },
                {
                    "type": "Ready",
                    "status": condition,
                    "lastProbeTime": None,
                    "lastTransitionTime": now,
                },
                {
                    "type": "ContainersReady",
                    "status": condition,
                    "lastProbeTime": None,
                    "lastTransitionTime": now,
                },
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": now,
                },
            ],
            "containerStatuses": statuses,
            "qosClass": "Burstable",
        }

    def place_pod(self, pod: Obj, mode: str) -> None:
        """Bind a new pod to a node (unless it names one) and give it the matching status."""
        pods_rt = _BY_KIND["Pod"]
        spec = pod["spec"]
        node: str | None = spec.get("nodeName")
        message = ""
        if not node:
            nodes = self.items(_BY_KIND["Node"])
            node, message = schedule(pod, nodes, self.items(pods_rt))
            if node:
                spec["nodeName"] = node
        pod["status"] = self._pod_status(pod, node, message, mode)

    def _deployment_mode(self, dep: Obj) -> str:
        annotations = dep["metadata"].get("annotations") or {}
        if annotations.get(FAIL_ANNOTATION) == "true":
            return "fail"
        if annotations.get(NEVER_READY_ANNOTATION) == "true":
            return "never"
        return "starting" if self._ready_delay(dep) > 0 else "ready"

    def _ready_delay(self, dep: Obj) -> float:
        value = (dep["metadata"].get("annotations") or {}).get(READY_AFTER_ANNOTATION)
        try:
            return float(value) if value is not None else self.ready_delay_s
        except ValueError:
            return self.ready_delay_s

    def _owned_pods(self, dep: Obj) -> list[Obj]:
        uid = dep["metadata"]["uid"]
        return [
            p
            for p in self.items(_BY_KIND["Pod"], dep["metadata"]["namespace"])
            if (p["metadata"].get("annotations") or {}).get("zoo-ops.test/deployment-uid") == uid
        ]

    def reconcile_deployment(self, dep: Obj) -> None:
        """The Deployment and ReplicaSet controllers in one step: delete pods of an older
        template (an immediate rollout), create or delete pods of the current template until
        there are ``spec.replicas``, then write the status those pods imply."""
        pods_rt = _BY_KIND["Pod"]
        spec = dep["spec"]
        template = spec.get("template") or {}
        tpl_hash = _template_hash(template)
        desired = int(spec.get("replicas", 1))
        mode = self._deployment_mode(dep)
        owned = self._owned_pods(dep)
        current = []
        for pod in owned:
            if pod["metadata"].get("labels", {}).get("pod-template-hash") == tpl_hash:
                current.append(pod)
            else:
                self.commit(pods_rt, copy.deepcopy(pod), "DELETED")
        for pod in current[desired:]:
            self.commit(pods_rt, copy.deepcopy(pod), "DELETED")
        for _ in range(desired - len(current)):
            self.commit(pods_rt, self._new_pod(dep, template, tpl_hash, mode), "ADDED")
        if mode == "starting":
            due = time.monotonic() + self._ready_delay(dep)
            meta = dep["metadata"]
            self.deadlines.append(_Deadline(meta["namespace"], meta["name"], tpl_hash, due))
        self.write_deployment_status(dep, mode)

    def _new_pod(self, dep: Obj, template: Obj, tpl_hash: str, mode: str) -> Obj:
        meta = dep["metadata"]
        tmeta = copy.deepcopy(template.get("metadata") or {})
        labels = {**(tmeta.get("labels") or {}), "pod-template-hash": tpl_hash}
        annotations = {
            **(tmeta.get("annotations") or {}),
            "zoo-ops.test/deployment-uid": meta["uid"],
        }
        rs_name = f"{meta['name']}-{tpl_hash}"
        pod: Obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{rs_name}-{_random_suffix()}",
                "generateName": f"{rs_name}-",
                "namespace": meta["namespace"],
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "name": rs_name,
                        "uid": str(uuid.uuid5(uuid.NAMESPACE_OID, meta["uid"] + tpl_hash)),
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": copy.deepcopy(template.get("spec") or {}),
        }
        apply_defaults(_BY_KIND["Pod"], pod, None, self.service_ip)
        self.new_metadata(_BY_KIND["Pod"], pod)
        self.place_pod(pod, mode)
        return pod

    def write_deployment_status(self, dep: Obj, mode: str) -> None:
        """Status from the owned pods: replica counts, observedGeneration, and the Available
        and Progressing conditions as the deployment controller sets them."""
        spec = dep["spec"]
        desired = int(spec.get("replicas", 1))
        tpl_hash = _template_hash(spec.get("template") or {})
        pods = self._owned_pods(dep)
        ready = [
            p
            for p in pods
            if any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in p["status"].get("conditions", [])
            )
        ]
        updated = [p for p in pods if p["metadata"]["labels"].get("pod-template-hash") == tpl_hash]
        rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
        max_unavailable = _int_or_percent(
            rolling.get("maxUnavailable", "25%"), desired, round_up=False
        )
        available = len(ready) >= desired - max_unavailable and (
            desired == 0 or len(ready) > 0 or max_unavailable >= desired
        )
        old_status = dep.get("status") or {}
        old_conditions = {c["type"]: c for c in old_status.get("conditions") or []}
        rs_name = f"{dep['metadata']['name']}-{tpl_hash}"
        complete = len(ready) == desired and len(updated) == desired == len(pods)

        def condition(type_: str, status: str, reason: str, message: str) -> Obj:
            now = now_rfc3339()
            old: Obj = old_conditions.get(type_) or {}
            changed = not old or old.get("status") != status
            return {
                "type": type_,
                "status": status,
                "lastUpdateTime": now
                if changed or old.get("reason") != reason
                else old.get("lastUpdateTime", now),
                "lastTransitionTime": now if changed else old.get("lastTransitionTime", now),
                "reason": reason,
                "message": message,
            }

        if available:
            avail = condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )
        else:
            avail = condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        if mode == "fail":
            prog = condition(
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{rs_name}" has timed out progressing.',
            )
        elif complete:
            prog = condition(
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
            )
        else:
            prog = condition(
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                f'ReplicaSet "{rs_name}" is progressing.',
            )
        status: Obj = {"observedGeneration": dep["metadata"].get("generation", 1)}
        if pods:
            status["replicas"] = len(pods)
            status["updatedReplicas"] = len(updated)
        if ready:
            status["readyReplicas"] = len(ready)
            status["availableReplicas"] = len(ready)
        if len(pods) - len(ready) > 0:
            status["unavailableReplicas"] = len(pods) - len(ready)
        status["conditions"] = [avail, prog]
        if _strip_times(status) != _strip_times(old_status):
            dep["status"] = status
            self.commit(_BY_KIND["Deployment"], dep, "MODIFIED")

    def fire_due_deadlines(self) -> None:
        """Make the pods whose readiness delay has passed ready, and update their Deployment."""
        now = time.monotonic()
        due = [d for d in self.deadlines if d.due <= now]
        self.deadlines = [d for d in self.deadlines if d.due > now]
        deps_rt, pods_rt = _BY_KIND["Deployment"], _BY_KIND["Pod"]
        for deadline in due:
            dep = self.get(deps_rt, deadline.namespace, deadline.name)
            if dep is None or self._deployment_mode(dep) != "starting":
                continue
            for pod in self._owned_pods(dep):
                labels = pod["metadata"]["labels"]
                status = pod.get("status") or {}
                starting = status.get("phase") == "Running" and not all(
                    s.get("ready") for s in status.get("containerStatuses") or []
                )
                if labels.get("pod-template-hash") == deadline.template_hash and starting:
                    updated = copy.deepcopy(pod)
                    updated["status"] = self._pod_status(pod, pod["spec"]["nodeName"], "", "ready")
                    self.commit(pods_rt, updated, "MODIFIED")
            self.write_deployment_status(copy.deepcopy(dep), "ready")

    def publish_root_ca(self, namespace: str) -> None:
        """The root-ca-cert-publisher controller: every namespace gets ``kube-root-ca.crt``."""
        rt = _BY_KIND["ConfigMap"]
        if self.get(rt, namespace, ROOT_CA_CONFIGMAP) is None:
            cm: Obj = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": ROOT_CA_CONFIGMAP,
                    "namespace": namespace,
                    "annotations": {
                        "kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."
                    },
                },
                "data": {"ca.crt": _STANDIN_CA},
            }
            self.new_metadata(rt, cm)
            self.commit(rt, cm, "ADDED")

    def next_deadline(self) -> float | None:
        return min((d.due for d in self.deadlines), default=None)


def _strip_times(status: Obj) -> Obj:
    stripped = copy.deepcopy(status)
    for c in stripped.get("conditions") or []:
        c.pop("lastUpdateTime", None)
        c.pop("lastTransitionTime", None)
    return stripped


# --------------------------------------------------------------------------------------------
# The API: verbs over the cluster state


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


_COMMON_TOP_FIELDS = {"apiVersion", "kind", "metadata"}
_TOP_FIELDS = {
    "ConfigMap": {"data", "binaryData", "immutable"},
    "Secret": {"data", "stringData", "type", "immutable"},
}
_META_FIELDS = {
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
    "annotations", "ownerReferences", "finalizers", "managedFields",
}  # fmt: skip


def drop_unknown_fields(rt: ResourceType, obj: Obj) -> list[str]:
    """Remove the top-level and metadata fields the kind does not declare; return their
    paths (``foo``, ``metadata.bar``) in the order the decoder reports them."""
    allowed = _COMMON_TOP_FIELDS | _TOP_FIELDS.get(rt.kind, {"spec", "status"})
    unknown = [k for k in obj if k not in allowed]
    for k in unknown:
        del obj[k]
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        unknown_meta = [k for k in meta if k not in _META_FIELDS]
        for k in unknown_meta:
            del meta[k]
        unknown += [f"metadata.{k}" for k in unknown_meta]
    return unknown


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


def _matches(obj: Obj, labels: list[Requirement], fields: list[tuple[str, bool, str]]) -> bool:
    obj_labels = obj.get("metadata", {}).get("labels") or {}
    if not all(r.matches(obj_labels) for r in labels):
        return False
    return all((_field_value(obj, f) == v) == eq for f, eq, v in fields)


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


# --------------------------------------------------------------------------------------------
# Discovery


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


# --------------------------------------------------------------------------------------------
# HTTP


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    standin: KubeApiStandIn


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's algorithm and
    # the client's delayed ACK add ~40 ms to every response.
    disable_nagle_algorithm = True
    server: _Server
    _warnings: list[str] = []

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # the request log is kept structurally in KubeApiStandIn.request_log

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, code: int, body: Obj | str, content_type: str = "application/json") -> None:
        data = (json.dumps(body) if isinstance(body, dict) else body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for warning in self._warnings:
            self.send_header("Warning", f"299 - {json.dumps(warning)}")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _dispatch(self, method: str) -> None:
        standin = self.server.standin
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        raw = self._read_body()
        self._warnings = []
        route = parse_route(url.path)
        verb = rbac_verb(method, route, query)
        agent = self.headers.get("User-Agent", "")
        if route is None:
            standin._log(KubeRequest(verb, url.path, "", "", "", agent))
        else:
            resource = route.rt.plural + (f"/{route.subresource}" if route.subresource else "")
            standin._log(KubeRequest(verb, url.path, resource, route.namespace, route.name, agent))
        try:
            standin._authenticate(self.headers.get("Authorization"))
            if route is None:
                self._non_resource(method, url.path)
                return
            if verb == "watch":
                self._watch(route, query)
                return
            code, body = self._resource(method, verb, route, query, raw)
            self._send(code, body)
        except ApiError as exc:
            self._send(exc.code, exc.status())
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # the apiserver answers 500 InternalError, never drops
            self._send(
                500,
                ApiError(
                    500,
                    "InternalError",
                    f"Internal error occurred: {exc!r}",
                    {"causes": [{"message": repr(exc)}]},
                ).status(),
            )

    def _non_resource(self, method: str, path: str) -> None:
        standin = self.server.standin
        docs = standin._discovery()
        path = path.rstrip("/") or "/"
        if method != "GET":
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
                {},
            )
        if path in docs:
            # Legacy discovery: kubectl asks for the aggregated form first, and reads a plain
            # application/json answer as the legacy documents.
            self._send(200, docs[path])
        elif path in ("/healthz", "/livez", "/readyz"):
            self._send(200, "ok", "text/plain; charset=utf-8")
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})

    def _resource(
        self, method: str, verb: str, route: Route, query: Mapping[str, list[str]], raw: bytes
    ) -> tuple[int, Obj]:
        api = self.server.standin._api
        dry_run = "All" in (query.get("dryRun") or [])
        opts = WriteOptions(dry_run, _one(query, "fieldValidation") or "Warn")
        if opts.field_validation not in ("Strict", "Warn", "Ignore"):
            raise bad_request(
                f"fieldValidation parameter unsupported: {opts.field_validation!r}. Supported values are Strict, Warn, Ignore"
            )
        self._warnings = opts.warnings
        content_type = self.headers.get("Content-Type", "application/json")
        if route.subresource and verb not in ("get", "update", "patch"):
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
                {},
            )
        if verb == "get":
            obj = api.get(route)
            return 200, self._maybe_table(
                route, [obj], obj["metadata"]
            ) if route.subresource == "" else obj
        if verb == "list":
            if self._wants_table():
                items, meta = api.select(route, query)
                return 200, as_table(route.rt, items, meta, _one(query, "includeObject"))
            return 200, api.list_body(route, query)
        if verb == "create":
            if route.name:
                raise ApiError(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                    {},
                )
            return 201, api.create(route, _parse_body(raw, content_type), opts)
        if verb == "update":
            return 200, api.update(route, _parse_body(raw, content_type), opts)
        if verb == "patch":
            return 200, api.patch(route, content_type, raw, opts)
        if verb == "delete":
            try:
                body = _parse_body(raw, content_type) if raw.strip() else None
            except ApiError:  # a protobuf DeleteOptions: delete without options
                body = None
            return 200, api.delete(route, body, query, dry_run)
        if verb == "deletecollection":
            return 200, api.delete_collection(route, query, dry_run)
        raise ApiError(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            {},
        )

    def _wants_table(self) -> bool:
        return "as=Table" in self.headers.get("Accept", "").replace(" ", "")

    def _maybe_table(self, route: Route, objs: list[Obj], meta: Obj) -> Obj:
        if not self._wants_table():
            return objs[0]
        query = parse_qs(urlsplit(self.path).query)
        return as_table(
            route.rt,
            objs,
            {"resourceVersion": meta.get("resourceVersion", "")},
            _one(query, "includeObject"),
        )

    def _watch(self, route: Route, query: Mapping[str, list[str]]) -> None:
        """A watch: chunked JSON lines of {type, object}. From resourceVersion "" or "0" it
        starts with ADDED for every matching object; from a given version it replays the
        history after it (410 Gone if that history is no longer kept). Objects that start or
        stop matching the selectors arrive as ADDED or DELETED. Ends at timeoutSeconds."""
        standin = self.server.standin
        cluster = standin._cluster
        rt = route.rt
        labels = parse_label_selector(_one(query, "labelSelector"))
        fields = parse_field_selector(rt, _one(query, "fieldSelector"))
        timeout = float(_one(query, "timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout
        start_rv = _one(query, "resourceVersion")
        table = self._wants_table()
        namespace = route.namespace if rt.namespaced and route.namespace else None
        if route.name:
            fields.append(("metadata.name", True, route.name))

        def wanted(obj: Obj | None) -> bool:
            if obj is None:
                return False
            if namespace is not None and obj["metadata"].get("namespace") != namespace:
                return False
            return _matches(obj, labels, fields)

        initial: list[tuple[str, Obj]] = []
        # A streaming list (client-go's WatchList): the current objects, then a BOOKMARK
        # annotated k8s.io/initial-events-end, then the changes.
        watch_list = _flag(query, "sendInitialEvents")
        with cluster.lock:
            if watch_list or start_rv in ("", "0"):
                initial = [
                    ("ADDED", copy.deepcopy(o)) for o in cluster.items(rt, namespace) if wanted(o)
                ]
                cursor = cluster.rv
            else:
                try:
                    cursor = int(start_rv)
                except ValueError:
                    raise bad_request(f"invalid resource version: {start_rv}") from None
                if cluster.events and cursor < cluster.events[0].rv - 1:
                    raise ApiError(
                        410,
                        "Expired",
                        f"too old resource version: {cursor} ({cluster.events[0].rv})",
                    )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()

        def send(event_type: str, obj: Obj) -> None:
            body = _visible(_external(rt, obj))
            if table:
                body = as_table(
                    rt, [body], {"resourceVersion": body["metadata"].get("resourceVersion", "")}, ""
                )
            line = (json.dumps({"type": event_type, "object": body}) + "\n").encode()
            self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            self.wfile.flush()

        try:
            for event_type, obj in initial:
                send(event_type, obj)
            if watch_list:
                bookmark = {
                    "kind": rt.kind,
                    "apiVersion": rt.api_version,
                    "metadata": {
                        "resourceVersion": str(cursor),
                        "annotations": {"k8s.io/initial-events-end": "true"},
                    },
                }
                line = (json.dumps({"type": "BOOKMARK", "object": bookmark}) + "\n").encode()
                self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                self.wfile.flush()
            while not standin._closing.is_set() and time.monotonic() < deadline:
                with cluster.lock:
                    if cluster.rv <= cursor:
                        cluster.changed.wait(timeout=min(0.5, max(deadline - time.monotonic(), 0)))
                    pending = [e for e in cluster.events if e.rv > cursor and e.rt is rt]
                    cursor = max(cursor, cluster.rv)
                for e in pending:
                    was, now = wanted(e.old), wanted(e.new)
                    if e.type == "DELETED" and was:
                        send("DELETED", e.new)
                    elif e.type != "DELETED" and now:
                        send("MODIFIED" if was and e.type == "MODIFIED" else "ADDED", e.new)
                    elif e.type != "DELETED" and was:
                        send("DELETED", e.new)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True


def _parse_body(raw: bytes, content_type: str) -> Any:
    if not raw.strip():
        return None
    media = content_type.split(";")[0].strip().lower()
    if media in ("application/yaml", "application/x-yaml", "text/yaml"):
        try:
            return yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise bad_request(f"error decoding YAML: {exc}") from None
    if media == "application/vnd.kubernetes.protobuf":
        return decode_protobuf(raw)
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from None


# --------------------------------------------------------------------------------------------
# Protobuf bodies: kubectl's typed clients (``kubectl create configmap|secret|namespace``)
# send application/vnd.kubernetes.protobuf; the server decodes it as it decodes JSON.


def _pb_fields(buf: bytes) -> Iterator[tuple[int, Any]]:
    """The (field number, value) pairs of one protobuf message: varints as int, 64- and
    32-bit fields as raw bytes, length-delimited fields as bytes."""
    pos = 0

    def varint() -> int:
        nonlocal pos
        result, shift = 0, 0
        while True:
            byte = buf[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7

    while pos < len(buf):
        tag = varint()
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            yield number, varint()
        elif wire == 2:
            length = varint()
            yield number, buf[pos : pos + length]
            pos += length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            yield number, buf[pos : pos + size]
            pos += size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


# Field numbers from k8s.io/api generated.proto: name -> (number, how to decode).
_PB_OWNER_REF = {
    1: ("kind", "str"),
    3: ("name", "str"),
    4: ("uid", "str"),
    5: ("apiVersion", "str"),
    6: ("controller", "bool"),
    7: ("blockOwnerDeletion", "bool"),
}
_PB_OBJECT_META = {
    1: ("name", "str"), 2: ("generateName", "str"), 3: ("namespace", "str"), 5: ("uid", "str"),
    6: ("resourceVersion", "str"), 7: ("generation", "int"), 11: ("labels", "map"),
    12: ("annotations", "map"), 13: ("ownerReferences", ("list", _PB_OWNER_REF)),
    14: ("finalizers", "strlist"),
}  # fmt: skip
_PB_KINDS: dict[str, dict[int, tuple[str, Any]]] = {
    "ConfigMap": {
        1: ("metadata", _PB_OBJECT_META),
        2: ("data", "map"),
        3: ("binaryData", "bytesmap"),
        4: ("immutable", "bool"),
    },
    "Secret": {
        1: ("metadata", _PB_OBJECT_META),
        2: ("data", "bytesmap"),
        3: ("type", "str"),
        4: ("stringData", "map"),
        5: ("immutable", "bool"),
    },
    "Namespace": {1: ("metadata", _PB_OBJECT_META), 2: ("spec", {1: ("finalizers", "strlist")})},
}


def _pb_message(buf: bytes, schema: Mapping[int, tuple[str, Any]]) -> Obj:
    out: Obj = {}
    for number, value in _pb_fields(buf):
        if number not in schema:
            continue
        name, how = schema[number]
        if how == "str":
            if value:  # generated protobuf writes empty strings; JSON omits them
                out[name] = value.decode()
        elif how == "int":
            if value:
                out[name] = value
        elif how == "bool":
            out[name] = bool(value)
        elif how == "strlist":
            out.setdefault(name, []).append(value.decode())
        elif how in ("map", "bytesmap"):
            entry = dict(_pb_fields(value))
            raw_value = entry.get(2, b"")
            decoded = (
                base64.b64encode(raw_value).decode() if how == "bytesmap" else raw_value.decode()
            )
            out.setdefault(name, {})[entry.get(1, b"").decode()] = decoded
        elif isinstance(how, tuple):
            out.setdefault(name, []).append(_pb_message(value, how[1]))
        else:
            out[name] = _pb_message(value, how)
    return out


def decode_protobuf(raw: bytes) -> Obj:
    """A ``k8s\\x00``-framed runtime.Unknown holding a ConfigMap, Secret or Namespace, as
    the JSON object it stands for; other kinds get 415 (send them as JSON)."""
    if not raw.startswith(b"k8s\x00"):
        raise bad_request("the protobuf body does not start with the k8s magic number")
    envelope = dict(_pb_fields(raw[4:]))
    type_meta = dict(_pb_fields(envelope.get(1, b"")))
    api_version, kind = type_meta.get(1, b"").decode(), type_meta.get(2, b"").decode()
    if kind not in _PB_KINDS:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the stand-in decodes protobuf only for {', '.join(_PB_KINDS)}, not {kind or 'this body'}; send application/json",
        )
    obj: Obj = {"apiVersion": api_version, "kind": kind}
    obj.update(_pb_message(envelope.get(2, b""), _PB_KINDS[kind]))
    return obj


# --------------------------------------------------------------------------------------------
# The public object


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


class KubeApiStandIn:
    """The stand-in server. ``start()`` serves on ``host:port`` (port 0: a free one) in a
    background thread; ``url`` is then ``http://host:port``. The kubeconfig it writes
    carries ``token``; a request with another bearer token gets 401, one without any is
    served unless ``require_token`` (kubectl sends no token over plain http)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ready_delay_s: float = 0.0,
        token: str | None = DEFAULT_TOKEN,
        require_token: bool = False,
        server_version: str = DEFAULT_SERVER_VERSION,
    ) -> None:
        self.host = host
        self.port = port
        self.token = token
        self.require_token = require_token
        self.server_version = server_version
        self.request_log: list[KubeRequest] = []
        self._log_lock = threading.Lock()
        self._cluster = _Cluster(ready_delay_s=ready_delay_s)
        self._api = Api(self._cluster)
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._closing = threading.Event()
        self._docs: dict[str, Obj] | None = None
        with self._cluster.lock:
            # What every cluster has: its system namespaces and the `kubernetes` Service.
            for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
                self._seed_one({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
            self._seed_one(
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {
                        "name": "kubernetes",
                        "namespace": "default",
                        "labels": {"component": "apiserver", "provider": "kubernetes"},
                    },
                    "spec": {
                        "clusterIP": "10.96.0.1",
                        "ports": [
                            {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}
                        ],
                    },
                }
            )

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> KubeApiStandIn:
        server = _Server((self.host, self.port), _Handler)
        server.standin = self
        self._server = server
        self.port = server.server_address[1]
        self._closing.clear()
        serving = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="kube-api-standin", daemon=True
        )
        ticking = threading.Thread(
            target=self._tick, name="kube-api-standin-controller", daemon=True
        )
        self._threads = [serving, ticking]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()
        with self._cluster.lock:
            self._cluster.changed.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    def __enter__(self) -> KubeApiStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _tick(self) -> None:
        """The controller loop: make Deployments ready when their readiness delay is over."""
        cluster = self._cluster
        while not self._closing.is_set():
            with cluster.lock:
                cluster.fire_due_deadlines()
                nxt = cluster.next_deadline()
                wait = 0.5 if nxt is None else min(max(nxt - time.monotonic(), 0.005), 0.5)
            self._closing.wait(wait)

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the stand-in is not started; call start() first")
        return f"http://{self.host}:{self.port}"

    # -- clients -----------------------------------------------------------------------------

    def kubeconfig(self, context: str = "standin", namespace: str = "default") -> Obj:
        user: Obj = {"token": self.token} if self.token else {}
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": context, "user": user}],
            "contexts": [
                {
                    "name": context,
                    "context": {"cluster": context, "user": context, "namespace": namespace},
                }
            ],
            "current-context": context,
            "preferences": {},
        }

    def write_kubeconfig(
        self, path: str | Path, context: str = "standin", namespace: str = "default"
    ) -> Path:
        """Write a kubeconfig whose current context (``context``) points at this server."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(yaml.safe_dump(self.kubeconfig(context, namespace), sort_keys=False))
        out.chmod(0o600)
        return out

    # -- state for tests ---------------------------------------------------------------------

    def seed(self, manifests: Iterable[Mapping[str, Any]]) -> list[Obj]:
        """Store objects as given (their status kept; a missing namespace created), filling
        in what the server owns; Deployments get their pods. Returns the stored objects."""
        stored = []
        with self._cluster.lock:
            for manifest in manifests:
                for doc in _flatten(copy.deepcopy(dict(manifest))):
                    stored.append(self._seed_one(doc))
        return stored

    def seed_file(self, path: str | Path) -> list[Obj]:
        return self.seed(load_manifests(path))

    def _seed_one(self, doc: Obj) -> Obj:
        try:
            rt = resource_type(str(doc.get("kind", "")))
        except KeyError:
            raise ValueError(
                f"cannot seed kind {doc.get('kind')!r}: the stand-in serves {', '.join(_BY_KIND)}"
            ) from None
        cluster = self._cluster
        obj = copy.deepcopy(doc)
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            raise ValueError(f"a seeded {rt.kind} needs metadata.name")
        if rt.namespaced:
            meta.setdefault("namespace", "default")
            ns_rt = _BY_KIND["Namespace"]
            if cluster.get(ns_rt, "", meta["namespace"]) is None:
                self._seed_one(
                    {
                        "apiVersion": "v1",
                        "kind": "Namespace",
                        "metadata": {"name": meta["namespace"]},
                    }
                )
        else:
            meta.pop("namespace", None)
        check_decodable(rt, obj)
        cluster.new_metadata(rt, obj)
        meta.pop("resourceVersion", None)
        given_status = "status" in obj
        apply_defaults(rt, obj, None, cluster.service_ip)
        errors = validate(rt, obj, None)
        if errors:
            raise ValueError(str(invalid(rt, meta["name"], errors)))
        if rt.kind == "Pod" and not given_status:
            cluster.place_pod(obj, "ready")
        existing = cluster.get(rt, meta.get("namespace", ""), meta["name"])
        cluster.commit(rt, obj, "MODIFIED" if existing else "ADDED")
        if rt.kind == "Deployment":
            cluster.reconcile_deployment(obj)
        if rt.kind == "Namespace":
            cluster.publish_root_ca(meta["name"])
        return _external(rt, obj)

    def get_object(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        """The stored object as the server would serve it, or None. ``kind`` is a kind,
        plural or short name; ``namespace`` is ignored for cluster-scoped kinds."""
        rt = resource_type(kind)
        with self._cluster.lock:
            obj = self._cluster.get(rt, namespace or "", name)
            return _visible(_external(rt, obj)) if obj is not None else None

    def list_objects(self, kind: str, namespace: str | None = None) -> list[Obj]:
        rt = resource_type(kind)
        with self._cluster.lock:
            return [
                _visible(_external(rt, o))
                for o in self._cluster.items(rt, namespace if rt.namespaced else None)
            ]

    @property
    def resource_version(self) -> int:
        """The global resourceVersion: that of the latest write."""
        with self._cluster.lock:
            return self._cluster.rv

    def requests_for(
        self, verb: str | None = None, resource: str | None = None
    ) -> list[KubeRequest]:
        with self._log_lock:
            return [
                r
                for r in self.request_log
                if (verb is None or r.verb == verb) and (resource is None or r.resource == resource)
            ]

    def _authenticate(self, authorization: str | None) -> None:
        """401 for a wrong bearer token, or for none when ``require_token``. (client-go, and so
        kubectl, sends no bearer token to a plain-http server, hence not required by default.)"""
        if self.token is None:
            return
        if authorization is None and not self.require_token:
            return
        if authorization != f"Bearer {self.token}":
            raise ApiError(401, "Unauthorized", "Unauthorized")

    def _log(self, request: KubeRequest) -> None:
        with self._log_lock:
            self.request_log.append(request)
        with _PROCESS_LOG_LOCK:
            PROCESS_REQUEST_LOG.append(request)

    def _discovery(self) -> dict[str, Obj]:
        if self._docs is None:
            self._docs = discovery_documents(self.server_version, f"{self.host}:{self.port}")
        return self._docs


# --------------------------------------------------------------------------------------------
# The seed zoo-ops's tests start from


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


# --------------------------------------------------------------------------------------------
# CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m zoo_ops.testing.kube_api",
        description="Serve the Kubernetes API stand-in until killed; prints its URL first.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: pick a free port")
    parser.add_argument(
        "--seed",
        action="append",
        default=[],
        metavar="FILE",
        help="YAML manifests to load (repeatable)",
    )
    parser.add_argument(
        "--default-seed",
        action="store_true",
        help="also load zoo-ops's default seed (namespace baseten, its settings ConfigMap, a CPU and a GPU node)",
    )
    parser.add_argument(
        "--kubeconfig", metavar="OUT", help="write a kubeconfig for the server here"
    )
    parser.add_argument("--context", default="standin")
    parser.add_argument(
        "--ready-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="delay before a Deployment becomes ready",
    )
    args = parser.parse_args(argv)

    standin = KubeApiStandIn(
        args.host,
        args.port,
        ready_delay_s=args.ready_delay,
        token=DEFAULT_TOKEN,
    )
    try:
        if args.default_seed:
            standin.seed(default_seed_manifests())
        for path in args.seed:
            standin.seed_file(path)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"error: cannot seed the stand-in: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    standin.start()
    if args.kubeconfig:
        standin.write_kubeconfig(args.kubeconfig, context=args.context)
    print(standin.url, flush=True)
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    while not stopped.wait(0.5):
        pass
    standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
