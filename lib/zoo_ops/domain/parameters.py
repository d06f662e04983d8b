"""The runbooks' own parameters, checked before a run writes anything (pure).

Each step's rules are here, in one table, so that a wrong value is refused in the
runbook's first cell -- not after the whitelist was set and a version deployed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zoo_ops.errors import BadInput
from zoo_ops.migration.plan import check_batch_size, check_scope

Rule = Callable[[str, Any], None]


def _text(name: str, value: Any) -> None:
    if not isinstance(value, str):
        raise BadInput(f"parameter {name}={value!r}: must be a string")


def _flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise BadInput(f"parameter {name}={value!r}: must be True or False")


def _number(minimum: float, *, whole: bool = False, above: bool = False) -> Rule:
    def check(name: str, value: Any) -> None:
        kinds = (int,) if whole else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            kind = "a whole number" if whole else "a number"
            raise BadInput(f"parameter {name}={value!r}: must be {kind}")
        if value < minimum or (above and value == minimum):
            bound = f"> {minimum:g}" if above else f">= {minimum:g}"
            raise BadInput(f"parameter {name}={value!r}: must be {bound}")

    return check


def _one_of(*choices: str) -> Rule:
    def check(name: str, value: Any) -> None:
        if value not in choices:
            shown = " or ".join(repr(c) for c in choices)
            raise BadInput(f"parameter {name}={value!r}: must be {shown}")

    return check


def _batch_size(name: str, value: Any) -> None:
    check_batch_size(value)


def _scope(name: str, value: Any) -> None:
    if not isinstance(value, str):
        raise BadInput(f"parameter {name}={value!r}: must be 'all' or 'recorded'")
    check_scope(value)


STEP_PARAMETERS: dict[str, dict[str, Rule]] = {
    "01_copy": {"truss_dir": _text, "wait_timeout_s": _number(0, above=True)},
    "02_verify": {
        "target": _one_of("copy", "new"),
        "user_email": _text,
        "oracle_id": _text,
        "inputs": _text,
        "rtol": _number(0),
        "restore": _flag,
    },
    "03_migrate": {
        "batch_size": _batch_size,
        "user_email": _text,
        "auto_revert": _flag,
        "affected_inline_limit": _number(0, whole=True),
        "wait_timeout_s": _number(0, above=True),
    },
    "04_revert": {
        "forward_run": _text,
        "scope": _scope,
        "batch_size": _batch_size,
        "affected_inline_limit": _number(0, whole=True),
    },
    "05_retire": {"min_age_days": _number(0), "delete_copy": _flag},
}


def check_step_parameters(step: str, parameters: dict[str, Any]) -> None:
    """Refuse the first parameter of ``step`` that breaks its rule, or is unknown."""
    rules = STEP_PARAMETERS.get(step, {})
    for name, value in parameters.items():
        rule = rules.get(name)
        if rule is None:
            raise BadInput(f"{step} has no parameter {name!r}; known: {', '.join(sorted(rules))}")
        rule(name, value)
