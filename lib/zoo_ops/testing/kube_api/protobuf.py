"""Protobuf request bodies: kubectl's typed clients (``kubectl create configmap|secret|
namespace``) send application/vnd.kubernetes.protobuf; this decodes the ``k8s\\x00``-framed
ConfigMap, Secret or Namespace into the JSON object it stands for."""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from typing import Any

from zoo_ops.testing.kube_api.errors import ApiError, bad_request
from zoo_ops.testing.kube_api.resource_types import Obj


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
