"""Failures as the apiserver reports them: :class:`ApiError` and its ``Status`` bodies
(NotFound, AlreadyExists, Conflict, BadRequest, Invalid with ``details.causes``) and the
``field.Error``-style :class:`FieldError` causes of a 422 Invalid."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from zoo_ops.testing.kube_api.resource_types import Obj, ResourceType


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
