"""The two dynamic settings zoo-ops owns (DESIGN §4): parse, validate, serialize.

``automaticallyDeployedModelZooModelsWhitelist`` is a JSON object string: a model zoo
model name -> ``{"copy": <JSON boolean>}``; ``modelZooDeploymentAutomationEnabled`` is
the string ``"true"`` or ``"false"``. Everything else is refused with a
:class:`~zoo_ops.errors.SettingsError` whose one-line message names the key and the
problem, because the platform's automation would otherwise act on a value nobody meant.

Pure: values in, values out. The stores that hold these strings live in
``zoo_ops.adapters.settings``.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from zoo_ops.errors import BadInput, SettingsError

WHITELIST_KEY = "automaticallyDeployedModelZooModelsWhitelist"
AUTOMATION_KEY = "modelZooDeploymentAutomationEnabled"
COPY_SUFFIX = "_copy"

# json.dumps' default separators: the form the seed's ConfigMap already uses
# ('{"iris": {"copy": true}}'), so a canonical value reads as a hand-written one.
# Unicode categories a name may not hold: control, format (bidi overrides, zero-width),
# surrogate.
_NOT_TEXT = frozenset({"Cc", "Cf", "Cs"})
_SEPARATORS = (", ", ": ")
_SHOWN_CHARS = 60
_FIX = "fix the value in the ConfigMap, then retry"
_NAME_HINT = "give the model zoo model's own name (copy true deploys it as NAME_copy)"


# -- names -------------------------------------------------------------------------------


def name_problem(model: str) -> str | None:
    """Why ``model`` cannot be a whitelist key, or None when it can.

    A key is a model zoo model name: non-empty, no whitespace (a stray space makes a name
    that never matches), no control or format character (Unicode Cc, Cf: they forge
    lines and reorder text in a table), no lone surrogate (Cs: not UTF-8, it crashes the
    first print), and not ending in ``_copy`` (that is the *target* of
    ``copy: true``; whitelisting it would deploy ``NAME_copy_copy``).
    """
    if model == "":
        return "model name is empty"
    if any(ch.isspace() for ch in model):
        return f"model name {model!r} contains whitespace"
    bad = next((ch for ch in model if unicodedata.category(ch) in _NOT_TEXT), None)
    if bad is not None:
        return (
            f"model name {model!r} contains {ascii(bad)}, a control, format or lone "
            "surrogate character"
        )
    if model.endswith(COPY_SUFFIX):
        return f"model name {model!r} ends in {COPY_SUFFIX!r} (that is a copy's name, not a zoo model's)"
    return None


def check_model_name(model: str) -> str:
    """``model`` if it can be a whitelist key, else :class:`BadInput` saying why."""
    problem = name_problem(model)
    if problem is not None:
        raise BadInput(f"{problem}; {_NAME_HINT}")
    return model


# -- entries and the whitelist -----------------------------------------------------------


@dataclass(frozen=True, order=True)
class WhitelistEntry:
    """One whitelisted model: deploy ``truss_root/model`` to ``target_zoo_model(self)``."""

    model: str
    copy: bool


def target_zoo_model(entry: WhitelistEntry) -> str:
    """The zoo model the automation deploys to: ``NAME_copy`` when copy, else ``NAME``."""
    return entry.model + COPY_SUFFIX if entry.copy else entry.model


class Whitelist(Mapping[str, WhitelistEntry]):
    """An immutable mapping model name -> :class:`WhitelistEntry`.

    ``set`` and ``remove`` return a new Whitelist; names are checked on the way in, so a
    Whitelist value is always one the platform can act on.
    """

    __slots__ = ("_entries",)

    def __init__(self, entries: Iterable[WhitelistEntry] = ()) -> None:
        built: dict[str, WhitelistEntry] = {}
        for entry in entries:
            problem = name_problem(entry.model)
            if problem is not None:
                raise BadInput(f"{problem}; {_NAME_HINT}")
            if not isinstance(entry.copy, bool):
                raise BadInput(f"copy for {entry.model!r} must be true or false")
            built[entry.model] = entry
        self._entries = dict(sorted(built.items()))

    def __getitem__(self, model: str) -> WhitelistEntry:
        return self._entries[model]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Whitelist):
            return self._entries == other._entries
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self._entries.values()))

    def __repr__(self) -> str:
        return f"Whitelist({serialize_whitelist(self)})"

    def set(self, model: str, copy: bool) -> Whitelist:
        """A whitelist with ``model`` mapped to ``{"copy": copy}`` (added or replaced)."""
        check_model_name(model)
        return Whitelist([*self.values(), WhitelistEntry(model, copy)])

    def remove(self, model: str) -> Whitelist:
        """A whitelist without ``model``; the same whitelist when it is not there."""
        if model not in self._entries:
            return self
        return Whitelist(e for e in self.values() if e.model != model)

    def as_json_object(self) -> dict[str, dict[str, bool]]:
        return {e.model: {"copy": e.copy} for e in self.values()}


# -- parsing -----------------------------------------------------------------------------


def _shown(value: Any) -> str:
    """A short one-line rendering of a bad value for an error message."""
    text = value if isinstance(value, str) else json.dumps(value)
    text = " ".join(text.split())
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """object_pairs_hook: json keeps the last of two equal keys silently; we refuse."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def _refuse_constant(name: str) -> Any:
    # NaN / Infinity are not JSON (RFC 8259), though Python's json accepts them.
    raise ValueError(f"{name} is not valid JSON")


def _entry_problem(value: Any) -> str | None:
    """Why a whitelist value is not exactly ``{"copy": <JSON boolean>}``, or None."""
    if not isinstance(value, dict):
        return f'must be an object {{"copy": true|false}}, got {_shown(value)}'
    if set(value) != {"copy"}:
        extra = sorted(set(value) - {"copy"})
        if extra:
            return f"has unexpected key(s) {', '.join(map(repr, extra))}; only 'copy' is allowed"
        return "is missing the key 'copy'"
    if not isinstance(value["copy"], bool):
        return f"copy must be a JSON boolean true or false, got {_shown(value['copy'])}"
    return None


def parse_whitelist(raw: str | None) -> Whitelist:
    """Parse the whitelist setting's string, refusing anything but the documented shape.

    Algorithm: ``None`` (key absent) is the empty whitelist. Otherwise ``json.loads`` with
    an ``object_pairs_hook`` that refuses duplicate keys at any depth and a
    ``parse_constant`` that refuses NaN/Infinity; the result must be an object whose keys
    pass :func:`name_problem` and whose values are exactly ``{"copy": <bool>}``. The first
    problem found, in key order, is raised as one line naming the key.
    """
    if raw is None:
        return Whitelist()
    if not isinstance(raw, str):
        raise SettingsError(f"{WHITELIST_KEY}: must be a string holding a JSON object; {_FIX}")
    try:
        value = json.loads(
            raw, object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant
        )
    except _DuplicateKey as dup:
        raise SettingsError(f"{WHITELIST_KEY}: duplicate key {dup.key!r}; {_FIX}") from None
    except RecursionError:
        raise SettingsError(f"{WHITELIST_KEY}: not JSON (nested too deeply); {_FIX}") from None
    except ValueError as exc:
        shown = _shown(raw) if raw.strip() else "an empty string"
        detail = str(exc).split(":")[0] if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise SettingsError(f"{WHITELIST_KEY}: not JSON ({detail}) in {shown!r}; {_FIX}") from None
    if not isinstance(value, dict):
        raise SettingsError(
            f'{WHITELIST_KEY}: must be a JSON object of model -> {{"copy": true|false}}, '
            f"got {_shown(value)}; {_FIX}"
        )
    entries = []
    for model in sorted(value):
        problem = name_problem(model)
        if problem is not None:
            raise SettingsError(f"{WHITELIST_KEY}: {problem}; {_FIX}")
        problem = _entry_problem(value[model])
        if problem is not None:
            raise SettingsError(f"{WHITELIST_KEY}: entry {model!r} {problem}; {_FIX}")
        entries.append(WhitelistEntry(model, value[model]["copy"]))
    return Whitelist(entries)


def serialize_whitelist(whitelist: Whitelist) -> str:
    """The canonical string: keys sorted, json.dumps' default separators, ASCII-escaped.

    Canonical so that parse -> serialize of a value already in this form is byte-identical
    and an unchanged whitelist never produces a write.
    """
    return json.dumps(whitelist.as_json_object(), sort_keys=True, separators=_SEPARATORS)


def parse_automation_flag(raw: str | None) -> bool:
    """``"true"`` -> True, ``"false"`` (or the key absent) -> False; anything else refused.

    Absent means the automation is off: the platform does nothing it was not told to.
    """
    if raw is None:
        return False
    if raw == "true":
        return True
    if raw == "false":
        return False
    shown = _shown(raw) if isinstance(raw, str) else repr(raw)
    raise SettingsError(
        f'{AUTOMATION_KEY}: must be the string "true" or "false", got {shown!r}; {_FIX}'
    )


@dataclass(frozen=True)
class DynamicSettings:
    """The settings zoo-ops reads from the ConfigMap's data; other keys are not its business."""

    automation_enabled: bool
    whitelist: Whitelist

    @classmethod
    def from_data(cls, data: Mapping[str, str]) -> DynamicSettings:
        """Parse both keys of a ConfigMap ``data`` dict; the first problem is raised."""
        return cls(
            automation_enabled=parse_automation_flag(data.get(AUTOMATION_KEY)),
            whitelist=parse_whitelist(data.get(WHITELIST_KEY)),
        )


def with_whitelist(data: Mapping[str, str], whitelist: Whitelist) -> dict[str, str]:
    """``data`` with the whitelist key set to ``whitelist``'s canonical form, others as given."""
    new = dict(data)
    new[WHITELIST_KEY] = serialize_whitelist(whitelist)
    return new


# -- diffs for display -------------------------------------------------------------------


@dataclass(frozen=True)
class WhitelistDiffRow:
    """One model's line in a before/after table; ``before``/``after`` None means absent."""

    model: str
    before: bool | None
    after: bool | None
    change: str  # "added", "removed", "changed", "unchanged"

    @property
    def before_target(self) -> str:
        return (
            "" if self.before is None else target_zoo_model(WhitelistEntry(self.model, self.before))
        )

    @property
    def after_target(self) -> str:
        return (
            "" if self.after is None else target_zoo_model(WhitelistEntry(self.model, self.after))
        )


def diff_whitelists(
    before: Whitelist, after: Whitelist, *, include_unchanged: bool = True
) -> list[WhitelistDiffRow]:
    """One row per model in either whitelist, sorted by name, saying what changed."""
    rows = []
    for model in sorted(set(before) | set(after)):
        b = before[model].copy if model in before else None
        a = after[model].copy if model in after else None
        if b is None:
            change = "added"
        elif a is None:
            change = "removed"
        elif a != b:
            change = "changed"
        else:
            change = "unchanged"
        if change != "unchanged" or include_unchanged:
            rows.append(WhitelistDiffRow(model, b, a, change))
    return rows


# -- `zoo-ops whitelist edit`: the text an operator edits -----------------------------------

EDIT_COMMENT = "#"


def edit_text(whitelist: Whitelist, notes: Iterable[str] = ()) -> str:
    """The whitelist as an operator edits it: ``# `` note lines, then pretty JSON.

    Algorithm: each note becomes a line starting with ``#`` (comments are not JSON: they
    are removed again by :func:`parse_edit_text`); the whitelist is ``json.dumps`` of
    its JSON object, keys sorted, indented by 2, ending with a newline.
    """
    lines = [f"{EDIT_COMMENT} {note}".rstrip() for note in notes]
    body = json.dumps(whitelist.as_json_object(), sort_keys=True, indent=2)
    return "\n".join([*lines, body]) + "\n"


def parse_edit_text(text: str) -> Whitelist | None:
    """What an operator saved: None when nothing but comments and blanks (abort), else
    the whitelist, validated by :func:`parse_whitelist` (SettingsError naming the problem).

    Algorithm: drop every line whose first non-blank character is ``#``; what is left,
    stripped, is the whitelist's JSON.
    """
    kept = [line for line in text.splitlines() if not line.lstrip().startswith(EDIT_COMMENT)]
    body = "\n".join(kept).strip()
    if not body:
        return None
    return parse_whitelist(body)


def lost_entry_problem(whitelist: Whitelist, model: str, copy: bool) -> str | None:
    """Why ``whitelist`` no longer holds ``{model: {"copy": copy}}`` (None: it does).

    A concurrent write (``kubectl edit``, which patches without a resourceVersion) can
    remove or change an entry zoo-ops wrote and is waiting on.
    """
    wanted = f'{model}: {{"copy": {"true" if copy else "false"}}}'
    if model not in whitelist:
        return f"the whitelist entry {wanted} was removed by another write"
    if whitelist[model].copy != copy:
        now = "true" if whitelist[model].copy else "false"
        return f"the whitelist entry {wanted} was changed to copy {now} by another write"
    return None
