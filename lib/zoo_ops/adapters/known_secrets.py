"""The secret values this process knows, and the one redaction every error text goes through.

Rule: a text zoo-ops prints, records or stores (an error on stderr, a run row's error, a
``run`` scrap, a deploy log reason, a table cell) first goes through :func:`redact`:
every value registered here is scrubbed in every spelling
(:func:`zoo_ops.domain.redaction.scrub`), then every credential *form* is redacted
(:func:`zoo_ops.domain.redaction.redact_text`).

Who registers (the layers that hold secret values, and only they):

- the secret stores (:mod:`zoo_ops.adapters.secrets`), each value they load for a model;
- the database engine factory (:func:`zoo_ops.adapters.platform.engine.make_engine`),
  the passwords of every database URL it connects to (userinfo, ``?password=``, DSN
  keywords: :func:`zoo_ops.domain.redaction.credential_values`).

Who consults: the CLI's one error printer and table printer, the run recorder
(``runbook``/``execute``), the deploy log writer, and every
:class:`~zoo_ops.errors.ZooOpsError` -- importing this module installs :func:`redact` as
the errors' message filter (:func:`zoo_ops.errors.add_message_filter`), so that an
error raised after a secret was loaded never holds it, wherever it is shown later (a
notebook's error output included).

The registry is process-wide: a runbook's kernel registers what it loads, the
``zoo-ops run`` process what it connects to. Values are only added, never listed to a
caller; the set lives as long as the process.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

from zoo_ops.domain.redaction import (
    REDACTED,
    credential_values,
    redact_text,
    scrub_pattern,
    scrubbable,
)
from zoo_ops.errors import add_message_filter

_LOCK = threading.Lock()
_VALUES: set[str] = set()
# The compiled scrub of _VALUES, rebuilt on the next redact after a value is added.
_PATTERN: list[re.Pattern[str] | None] = [None]


def add(values: Iterable[str]) -> None:
    """Make ``values`` known: from now on they are scrubbed from every text."""
    new = set(scrubbable(values)) - _VALUES
    if not new:
        return
    with _LOCK:
        _VALUES.update(new)
        _PATTERN[0] = None


def add_url(url: str) -> None:
    """Make the passwords in a database URL or DSN known (every form the rules find)."""
    add(credential_values(url))


def _pattern() -> re.Pattern[str] | None:
    with _LOCK:
        if _PATTERN[0] is None and _VALUES:
            _PATTERN[0] = scrub_pattern(_VALUES)
        return _PATTERN[0]


def redact(text: str) -> str:
    """``text`` safe to print, record or store: known values scrubbed, credentials redacted."""
    pattern = _pattern()
    scrubbed = text if pattern is None else pattern.sub(REDACTED, text)
    return redact_text(scrubbed)


def knows(value: str) -> bool:
    """True when ``value`` is scrubbed (for tests and the secret scan's self-check)."""
    with _LOCK:
        return value in _VALUES


add_message_filter(redact)
