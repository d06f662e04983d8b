"""Kind-independent checks: ``metadata.name`` rules (DNS-1035 label, DNS-1123 label or
subdomain), the JSON decoder's string-map checks (400 BadRequest), and the unknown fields a
typed server drops (or refuses, with ``fieldValidation=Strict``)."""

from __future__ import annotations

import re
from typing import Any

from zoo_ops.testing.kube_api.errors import FieldError, _decode_error, invalid_value
from zoo_ops.testing.kube_api.resource_types import Obj, ResourceType

_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


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
