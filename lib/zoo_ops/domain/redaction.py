"""What may be written to a trail: parameters with secrets and URL passwords removed."""

from __future__ import annotations

import re
from typing import Any

REDACTED = "***"
_SECRET_NAME = re.compile(r"(secret|password|passwd|token|api[_-]?key|credential)", re.I)
_URL_PASSWORD = re.compile(
    r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]+)(?P<tail>@)", re.I
)


def redact_text(text: str) -> str:
    """``scheme://user:PASSWORD@host`` becomes ``scheme://user:***@host`` anywhere in text."""
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}{REDACTED}{m['tail']}", text)


def redact_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """A copy safe for a trail: secret-named values masked, URL passwords masked.

    Values are kept JSON-simple (str, int, float, bool, None); anything else is shown
    by its ``repr`` so the record never holds a live object.
    """
    safe: dict[str, Any] = {}
    for name, value in parameters.items():
        if _SECRET_NAME.search(name) and value not in ("", None):
            safe[name] = REDACTED
        elif isinstance(value, str):
            safe[name] = redact_text(value)
        elif value is None or isinstance(value, bool | int | float):
            safe[name] = value
        else:
            safe[name] = redact_text(repr(value))
    return safe
