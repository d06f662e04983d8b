"""Compare two models' answers: exact for strings, ints, booleans and structure;
floats within a relative tolerance.

Two JSON values match when they have the same shape (same keys, same lengths) and
every leaf matches: numbers that are both integral (and not bool) must be equal; a
float matches when ``|a - b| <= rtol * max(|a|, |b|)`` or ``|a - b| <= ATOL`` (so that
0.0 and 1e-17 agree); everything else must be equal. The first difference found is
reported as a path like ``predictions[2].probability``.
"""

from __future__ import annotations

import math
from typing import Any

ATOL = 1e-12


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def numbers_match(expected: float, actual: float, rtol: float) -> bool:
    if isinstance(expected, int) and isinstance(actual, int):
        return expected == actual
    if math.isnan(expected) or math.isnan(actual):
        return math.isnan(expected) and math.isnan(actual)
    diff = abs(expected - actual)
    return diff <= ATOL or diff <= rtol * max(abs(expected), abs(actual))


def first_difference(expected: Any, actual: Any, rtol: float, path: str = "") -> str | None:
    """Where ``actual`` first departs from ``expected``, or None when they match."""
    here = path or "answer"
    if _is_number(expected) and _is_number(actual):
        if numbers_match(expected, actual, rtol):
            return None
        return f"{here}: {expected!r} != {actual!r}"
    if isinstance(expected, dict) and isinstance(actual, dict):
        if set(expected) != set(actual):
            missing = sorted(set(expected) - set(actual))
            extra = sorted(set(actual) - set(expected))
            return f"{here}: keys differ (missing {missing}, extra {extra})"
        for key in sorted(expected):
            found = first_difference(
                expected[key], actual[key], rtol, f"{path}.{key}" if path else str(key)
            )
            if found:
                return found
        return None
    if isinstance(expected, list | tuple) and isinstance(actual, list | tuple):
        if len(expected) != len(actual):
            return f"{here}: length {len(expected)} != {len(actual)}"
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            found = first_difference(e, a, rtol, f"{path}[{i}]")
            if found:
                return found
        return None
    if type(expected) is not type(actual) or expected != actual:
        return f"{here}: {expected!r} != {actual!r}"
    return None


class _Missing:
    """The side of a pair whose answer has no such key: equal to nothing but itself."""

    def __repr__(self) -> str:
        return "(missing)"

    __str__ = __repr__


MISSING = _Missing()


def leaf_pairs(expected: Any, actual: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """The two answers side by side, one ``(path, expected, actual)`` per leaf, depth first
    in :func:`first_difference`'s order and paths. Where the shapes part (other lengths,
    other kinds), the two sub-values are one pair at that path; a key only one side has is
    paired with :data:`MISSING`."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        pairs: list[tuple[str, Any, Any]] = []
        for key in sorted(set(expected) | set(actual), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key in expected and key in actual:
                pairs.extend(leaf_pairs(expected[key], actual[key], sub))
            else:
                pairs.append((sub, expected.get(key, MISSING), actual.get(key, MISSING)))
        return pairs
    if (
        isinstance(expected, list | tuple)
        and isinstance(actual, list | tuple)
        and len(expected) == len(actual)
    ):
        pairs = []
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            pairs.extend(leaf_pairs(e, a, f"{path}[{i}]"))
        return pairs
    return [(path or "answer", expected, actual)]
