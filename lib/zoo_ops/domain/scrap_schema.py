"""What a scrap of an executed runbook must look like before any reader uses it (pure).

A notebook is a file anyone can edit or copy, so every value read from it is checked here,
in one place, before ``status``, ``history``, ``report``, ``rollout``, the gate or
``04_revert`` uses it. A scrap that does not match its schema makes the notebook
*unreadable* with the reason (:func:`scrap_problem`), never a crash further on.

Rules (DESIGN §5):

- ``run``: a mapping; ``step``, ``model``, ``env`` non-empty printable text (no control
  character, no lone surrogate: a status row cannot be forged); ``outcome`` one of
  :data:`RUN_OUTCOMES`; ``run_id``, ``truss_hash``, ``operator``, ``error``,
  ``started_at``, ``finished_at`` and the other text fields text or null (a run refused
  before zoo-ops recorded it has no id); ``dry_run`` and ``recovered`` true, false or null;
  ``exit_code`` an integer or null. Other keys are kept and not checked.
- scalar scraps (:data:`SCALAR_SCRAPS`): text, integer or boolean as listed, or null.
- ``mapping``: exactly one ``OLD_VERSION_ID: NEW_VERSION_ID`` pair of non-empty text.
- ``affected`` / ``reverted``: a table (any object a reader decodes as one), or a parquet
  reference ``{path: text, rows: integer, sha256: 64 hex digits}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# The outcomes a `run` scrap may carry (the runs table's outcomes, zoo_ops_run.outcome).
RUN_OUTCOMES = frozenset(
    {"succeeded", "failed", "dry_run", "refused", "interrupted", "crashed", "trail-unsaved"}
)
_RUN_REQUIRED_TEXT = ("step", "model", "env")
_RUN_OPTIONAL_TEXT = (
    "run_id",
    "truss_hash",
    "operator",
    "error",
    "started_at",
    "finished_at",
    "zoo_ops_version",
    "gate_override_reason",
    "recovered_at",
    "recovered_from",
    "original_notebook",
)
_RUN_OPTIONAL_FLAGS = ("dry_run", "recovered")
# Shown in one line of a table: no newline, control character or lone surrogate.
_PRINTABLE = ("run_id", "truss_hash", "outcome")

TEXT, INTEGER, FLAG = "text", "integer", "true or false"
# The scalar scraps readers use, and the type each must have (null is always allowed).
SCALAR_SCRAPS: Mapping[str, str] = {
    "truss_hash": TEXT,
    "copy_model": TEXT,
    "copy_version_id": TEXT,
    "oracle_id": TEXT,
    "original_version_id": TEXT,
    "candidate_version_id": TEXT,
    "old_version_id": TEXT,
    "new_version_id": TEXT,
    "migration_id": TEXT,
    "forward_run": TEXT,
    "deleted_version_id": TEXT,
    "deployed": FLAG,
    "passed": FLAG,
    "affected_count": INTEGER,
    "reverted_count": INTEGER,
    "remaining_on_old": INTEGER,
    "remaining_on_new": INTEGER,
}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def type_name(value: Any) -> str:
    """How a value's JSON type reads in a message: ``a list``, ``text``, ``null``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, str):
        return "text"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def has_type(value: Any, kind: str) -> bool:
    """Whether ``value`` is of ``kind`` (TEXT, INTEGER, FLAG); a bool is no integer."""
    if kind == TEXT:
        return isinstance(value, str)
    if kind == INTEGER:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, bool)


def run_scrap_problem(run: Any) -> str | None:
    """What is wrong with a ``run`` scrap (None: it follows the rules in the module doc)."""
    if not isinstance(run, dict):
        return f"`run` scrap is {type_name(run)}, not a mapping"
    for key in _RUN_REQUIRED_TEXT:
        value = run.get(key)
        if not isinstance(value, str) or not value:
            return f"`run` scrap {key} is {type_name(value)}, not non-empty text"
    for key in (*_RUN_REQUIRED_TEXT, *_PRINTABLE):
        value = run.get(key)
        if isinstance(value, str) and not value.isprintable():
            return f"`run` scrap {key} holds a control or unprintable character"
    outcome = run.get("outcome")
    if not isinstance(outcome, str) or outcome not in RUN_OUTCOMES:
        shown = repr(outcome) if isinstance(outcome, str) else type_name(outcome)
        return f"`run` scrap outcome is {shown[:40]}, not one of {', '.join(sorted(RUN_OUTCOMES))}"
    for key in _RUN_OPTIONAL_TEXT:
        value = run.get(key)
        if value is not None and not isinstance(value, str):
            return f"`run` scrap {key} is {type_name(value)}, not text"
    for key in _RUN_OPTIONAL_FLAGS:
        value = run.get(key)
        if value is not None and not isinstance(value, bool):
            return f"`run` scrap {key} is {type_name(value)}, not true or false"
    exit_code = run.get("exit_code")
    if exit_code is not None and not has_type(exit_code, INTEGER):
        return f"`run` scrap exit_code is {type_name(exit_code)}, not an integer"
    return None


def mapping_problem(mapping: Any) -> str | None:
    """What is wrong with a ``mapping`` scrap: one ``OLD: NEW`` pair of version ids."""
    if not isinstance(mapping, dict) or len(mapping) != 1:
        return f"`mapping` scrap is {type_name(mapping)}, not one OLD: NEW pair"
    ((old, new),) = mapping.items()
    if not isinstance(old, str) or not old or not isinstance(new, str) or not new:
        return "`mapping` scrap's version ids are not non-empty text"
    return None


def parquet_reference_problem(reference: Mapping[str, Any], name: str = "affected") -> str | None:
    """What is wrong with a parquet reference ``{path, rows, sha256}`` (None: well formed)."""
    path, rows, sha256 = reference.get("path"), reference.get("rows"), reference.get("sha256")
    if not isinstance(path, str) or not path:
        return f"`{name}` scrap path is {type_name(path)}, not a file name"
    if rows is not None and (not has_type(rows, INTEGER) or rows < 0):
        return f"`{name}` scrap rows is {type_name(rows)}, not a row count"
    if not isinstance(sha256, str) or not _SHA256.match(sha256):
        return f"`{name}` scrap sha256 is not 64 hex digits"
    return None


def scrap_problem(name: str, value: Any) -> str | None:
    """What is wrong with scrap ``name`` (None: it follows its rule, or has none)."""
    if name == "run":
        return run_scrap_problem(value)
    if name == "mapping":
        return mapping_problem(value)
    if name in ("affected", "reverted") and isinstance(value, dict):
        return parquet_reference_problem(value, name)
    kind = SCALAR_SCRAPS.get(name)
    if kind is None or value is None or has_type(value, kind):
        return None
    return f"`{name}` scrap is {type_name(value)}, not {kind}"
