"""ConfigMaps and Secrets: what the decoder rejects in their data maps (non-strings,
Secret data that is not base64), data key and size validation, ``immutable``, and the
Secret defaults (``type: Opaque``, ``stringData`` folded into base64 ``data``)."""

from __future__ import annotations

import base64
import re

from zoo_ops.testing.kube_api.errors import FieldError, _decode_error, forbidden, invalid_value
from zoo_ops.testing.kube_api.resource_types import Obj, ResourceType
from zoo_ops.testing.kube_api.validation import _check_string_map

_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def check_config_decodable(rt: ResourceType, obj: Obj) -> None:
    """The decoder's checks of a ConfigMap's or Secret's data maps (400 BadRequest)."""
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


def config_data_errors(rt: ResourceType, obj: Obj, old: Obj | None) -> list[FieldError]:
    """Validation of a ConfigMap's or Secret's data: key names, total size, ``immutable``."""
    errors: list[FieldError] = []
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
            if obj.get(key) != old.get(key) and not (key == "immutable" and obj.get(key) is None):
                errors.append(forbidden(key, "field is immutable when `immutable` is set"))
    return errors


def default_secret(obj: Obj) -> None:
    """``type`` defaults to Opaque; ``stringData`` is folded into base64 ``data``."""
    obj.setdefault("type", "Opaque")
    string_data = obj.pop("stringData", None) or {}
    if string_data:
        data = obj.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(value.encode()).decode()
