"""The runbooks' parameters: one schema per step, the only place they are declared (pure).

Each step's parameters are a frozen dataclass: the common ones (DESIGN §5) in
:class:`CommonParameters`, a step's own in its subclass. A field's annotation is its type,
its default the runbook's default, and its metadata the meaning (``help``) and the rule
that checks a value. Everything else follows from these classes:

- the runbook's ``parameters`` cell declares exactly these names, types and defaults
  (tests/test_parameters.py reads the cells and compares);
- ``runbook.start(step, globals())`` validates the cell's values with :func:`validate`
  and hands the cells a typed instance (``run.params.batch_size``);
- ``zoo-ops run -p NAME VALUE`` converts text with :func:`convert_text`, and
  ``zoo-ops run STEP --help`` lists :func:`parameters_of`.

A wrong value is refused in the runbook's first cell -- not after the whitelist was set
and a version deployed. ``model`` and ``env`` obey the one name rule
(:mod:`zoo_ops.domain.names`: no ``../x``, no absolute path, no control or non-ASCII
characters, bounded length), also in a plain ``papermill`` run that never went through
``zoo-ops run``. Every number must be finite: ``nan`` passes every comparison
(``nan < 0`` is false) and ``inf`` never times out, so both are refused. Kept light (no pandas, no SQLAlchemy): the CLI imports it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, get_args, get_type_hints

from zoo_ops.domain.names import check_name
from zoo_ops.errors import BadInput
from zoo_ops.migration.plan import check_scope
from zoo_ops.migration.sizing import (
    AUTO,
    DEFAULT_LOCK_BUDGET_MS,
    BatchSize,
    check_batch_size,
    check_lock_budget_ms,
)

Rule = Callable[[str, Any], Any]
"""Checks one value (raising :class:`BadInput`) and returns it, normalised."""

_TRUE = frozenset({"true", "1", "yes", "y", "on"})
_FALSE = frozenset({"false", "0", "no", "n", "off"})


# --- rules ---------------------------------------------------------------------------------


def _text(name: str, value: Any) -> Any:
    if not isinstance(value, str):
        raise BadInput(f"parameter {name}={value!r}: must be a string")
    return value


def _stripped(name: str, value: Any) -> str:
    return str(_text(name, value)).strip()


def _required(name: str, value: Any) -> str:
    value = _stripped(name, value)
    if not value:
        raise BadInput(f"parameter {name} is required; pass -p {name} VALUE")
    return value


def _model(name: str, value: Any) -> str:
    """A model zoo model's name: given, stripped like every text parameter, then the
    name rule (whitespace inside, a ``/`` or a control character is refused)."""
    return check_name("model", _required(name, value))


def _environment(name: str, value: Any) -> str:
    """An environment's name: stripped, then the name rule."""
    return check_name("environment", _required(name, value))


def _flag(name: str, value: Any) -> Any:
    if not isinstance(value, bool):
        raise BadInput(f"parameter {name}={value!r}: must be True or False")
    return value


def _number(minimum: float, *, whole: bool = False, above: bool = False) -> Rule:
    def check(name: str, value: Any) -> Any:
        kinds = (int,) if whole else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            kind = "a whole number" if whole else "a number"
            raise BadInput(f"parameter {name}={value!r}: must be {kind}")
        if isinstance(value, float) and not math.isfinite(value):
            raise BadInput(f"parameter {name}={value!r}: must be a finite number")
        if value < minimum or (above and value == minimum):
            bound = f"> {minimum:g}" if above else f">= {minimum:g}"
            raise BadInput(f"parameter {name}={value!r}: must be {bound}")
        return value

    return check


def _one_of(*choices: str) -> Rule:
    def check(name: str, value: Any) -> Any:
        if value not in choices:
            shown = " or ".join(repr(c) for c in choices)
            raise BadInput(f"parameter {name}={value!r}: must be {shown}")
        return value

    return check


def _batch_size(name: str, value: Any) -> BatchSize:
    return check_batch_size(value)


def _lock_budget_ms(name: str, value: Any) -> int:
    return check_lock_budget_ms(value)


def _scope(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise BadInput(f"parameter {name}={value!r}: must be 'all' or 'recorded'")
    return check_scope(value)


def param(default: Any, help: str, rule: Rule = _text) -> Any:
    """A schema field: its default, its meaning, and the rule a value must pass."""
    return field(default=default, metadata={"help": help, "rule": rule})


def batch_size_param() -> Any:
    """03's and 04's ``batch_size`` (one definition: both move users the same way)."""
    return param(
        AUTO, 'user versions per transaction, or "auto": sized to lock_budget_ms', _batch_size
    )


def lock_budget_param() -> Any:
    """03's and 04's ``lock_budget_ms``."""
    return param(
        DEFAULT_LOCK_BUDGET_MS,
        "auto batches hold their row locks at most this long",
        _lock_budget_ms,
    )


# --- the schemas ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CommonParameters:
    """Every runbook's parameters (DESIGN §5)."""

    model: str = param("", 'model zoo model name, e.g. "iris" (required)', _model)
    env: str = param("local", "environment name from zoo_ops.toml", _environment)
    dry_run: bool = param(False, "compute and show everything, change nothing", _flag)
    confirm: str = param(
        "", "must equal env for a mutating run in a protected environment", _stripped
    )
    operator: str = param("", "who runs it; empty: the OS user", _stripped)
    gate_override_reason: str = param(
        "", "lets a step past the staging gate; recorded in `run`", _stripped
    )


@dataclass(frozen=True)
class CopyParameters(CommonParameters):
    """01_copy: deploy the truss as MODEL_copy."""

    truss_dir: str = param("", "empty, or truss_root/MODEL itself: the folder deployed")
    wait_timeout_s: int = param(
        600, "how long to wait for MODEL_copy to be ACTIVE", _number(0, above=True)
    )


@dataclass(frozen=True)
class VerifyParameters(CommonParameters):
    """02_verify: the candidate answers as the current version does."""

    target: str = param("copy", '"copy" or "new"', _one_of("copy", "new"))
    user_email: str = param("", "empty: the environment's test_user_email")
    oracle_id: str = param("", "empty: create a test application")
    inputs: str = param("", "empty: the truss's examples.yaml")
    rtol: float = param(1e-6, "relative tolerance for floats", _number(0))
    restore: bool = param(True, "put the application's proxy back afterwards", _flag)


@dataclass(frozen=True)
class MigrateParameters(CommonParameters):
    """03_migrate: deploy as a new version and forward-migrate every application."""

    batch_size: BatchSize = batch_size_param()
    lock_budget_ms: int = lock_budget_param()
    user_email: str = param(
        "", "for the new-application check; empty: the environment's test_user_email"
    )
    auto_revert: bool = param(False, "revert what moved when the post-check fails", _flag)
    affected_inline_limit: int = param(
        100000, "above this many moved rows, `affected` is a parquet file", _number(0, whole=True)
    )
    wait_timeout_s: int = param(
        600, "how long to wait for the new version to be ACTIVE", _number(0, above=True)
    )


@dataclass(frozen=True)
class RevertParameters(CommonParameters):
    """04_revert: point the migrated applications back at the old version."""

    forward_run: str = param(
        "", "path or run id of an executed 03_migrate; empty: the latest successful one"
    )
    migration_id: str = param(
        "", "revert this forward migration from the journal alone (no notebook needed)", _stripped
    )
    scope: str = param("all", '"all" or "recorded"', _scope)
    batch_size: BatchSize = batch_size_param()
    lock_budget_ms: int = lock_budget_param()
    affected_inline_limit: int = param(
        100000, "above this many rows, `reverted` is a parquet file", _number(0, whole=True)
    )


@dataclass(frozen=True)
class RetireParameters(CommonParameters):
    """05_retire: delete the old version once nothing needs it."""

    min_age_days: float = param(3.0, "how long after the forward migration", _number(0))
    delete_copy: bool = param(True, "also delete MODEL_copy's versions", _flag)


SCHEMAS: dict[str, type[CommonParameters]] = {
    "01_copy": CopyParameters,
    "02_verify": VerifyParameters,
    "03_migrate": MigrateParameters,
    "04_revert": RevertParameters,
    "05_retire": RetireParameters,
}

P = TypeVar("P", bound=CommonParameters)


# --- reading the schemas -------------------------------------------------------------------


@dataclass(frozen=True)
class Parameter:
    """One parameter as the schema declares it."""

    name: str
    type: Any  # a class, or a union of classes (batch_size: int | str)
    default: Any
    help: str
    rule: Rule
    common: bool

    @property
    def type_name(self) -> str:
        """``int``, ``str``...; a union in one word, ``int|str`` (a column of ``run --help``)."""
        return "|".join(t.__name__ for t in self.types)

    @property
    def types(self) -> tuple[type, ...]:
        """The classes a value may be: one, or each of a union's."""
        return get_args(self.type) or (self.type,)


def schema_of(step: str) -> type[CommonParameters]:
    """The parameter class of ``step`` (a canonical step name, e.g. ``03_migrate``)."""
    try:
        return SCHEMAS[step]
    except KeyError:
        raise BadInput(f"unknown step {step!r}; steps are {', '.join(SCHEMAS)}") from None


def parameters_of(step_or_schema: str | type[CommonParameters]) -> tuple[Parameter, ...]:
    """Every parameter of a step, common ones first, in the order the cell declares them."""
    schema = schema_of(step_or_schema) if isinstance(step_or_schema, str) else step_or_schema
    types = get_type_hints(schema)
    common = {f.name for f in dataclasses.fields(CommonParameters)}
    return tuple(
        Parameter(
            name=f.name,
            type=types[f.name],
            default=f.default,
            help=f.metadata["help"],
            rule=f.metadata["rule"],
            common=f.name in common,
        )
        for f in dataclasses.fields(schema)
    )


def validate(schema: type[P], values: Mapping[str, Any], *, step: str | None = None) -> P:
    """The typed parameters from ``values`` (missing names take their defaults).

    Refuses an unknown name, then the first value (in schema order) that breaks its rule.
    """
    declared = parameters_of(schema)
    names = [p.name for p in declared]
    unknown = [name for name in values if name not in names]
    if unknown:
        label = step or schema.__name__
        raise BadInput(
            f"{label} has no parameter {unknown[0]!r}; known: {', '.join(sorted(names))}"
        )
    checked = {
        p.name: p.rule(p.name, values[p.name] if p.name in values else p.default) for p in declared
    }
    return schema(**checked)


def validate_step(step: str, values: Mapping[str, Any]) -> CommonParameters:
    """:func:`validate` against ``step``'s schema."""
    return validate(schema_of(step), values, step=step)


def convert_text(parameter: Parameter, text: Any) -> Any:
    """A command-line value (``-p NAME VALUE``) as the parameter's type; others unchanged."""
    if not isinstance(text, str):
        return text
    name = parameter.name
    if parameter.type is bool:
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise BadInput(f"parameter {name}={text!r}: expected true or false")
    if parameter.type is int:
        try:
            return int(text)
        except ValueError:
            raise BadInput(f"parameter {name}={text!r}: expected a whole number") from None
    if parameter.type == BatchSize:  # a whole number, or the word "auto"
        if text.strip().lower() == AUTO:
            return AUTO
        try:
            return int(text)
        except ValueError:
            raise BadInput(
                f"parameter {name}={text!r}: expected a whole number or {AUTO!r}"
            ) from None
    if parameter.type is float:
        try:
            number = float(text)
        except ValueError:
            raise BadInput(f"parameter {name}={text!r}: expected a number") from None
        if not math.isfinite(number):
            raise BadInput(f"parameter {name}={text!r}: expected a finite number")
        return number
    return text


def convert_texts(step: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """Every ``-p NAME VALUE`` of ``step`` converted; an unknown name is refused."""
    declared = {p.name: p for p in parameters_of(step)}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise BadInput(
            f"{step}: unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(declared))}"
        )
    return {name: convert_text(declared[name], value) for name, value in given.items()}
