"""One rule for the names zoo-ops joins into paths and sends to the platform.

A model zoo model, an environment and a runbook step are all named by the caller
(``-m``, ``-e``, ``zoo_ops.toml``, a rollout plan, a notebook parameter) and all become
folder names (``executed/ENV/MODEL/``, ``truss_root/MODEL``), platform names
(``MODEL_copy``), Kubernetes label values and table rows. One rule, checked before any
use, keeps every one of those uses safe.

The rule: a name matches ``[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?`` in full, and is at
most :data:`NAME_MAX` (63) characters long -- :data:`MODEL_NAME_MAX` (58) for a model
zoo model. That is:

- ASCII letters, digits, ``_`` and ``-`` only. No ``.`` (so no ``.``, ``..`` or hidden
  files), no ``/`` or ``\\`` (no path separators on any platform), no ``:`` (no Windows
  drive), no whitespace and no control characters (a newline cannot forge an output
  line or a status row), and nothing outside ASCII: a Cyrillic ``а`` (U+0430) or a
  fullwidth ``ｉ`` looks like an ASCII letter but is another name. Such names are
  refused, not normalized (NFKC would quietly make two spellings one name).
- It starts and ends with a letter or digit, so it is never an option (``-x``), never
  hidden, and is a valid Kubernetes label value as it stands.
- Case is kept (``Iris`` and ``iris`` are two names, as on the platform); note that on a
  case-insensitive filesystem their trail folders coincide.
- 63 characters is the length bound of a Kubernetes label value and a DNS label, the
  strictest place a name goes (labels ``zoo-ops/model``); it is far below a filesystem's
  255-byte file name limit, so ``YYYYmmddTHHMMSSZ-STEP.ipynb`` files and ``NAME_copy``
  folders always fit. A model zoo model's bound is 63 minus ``len("_copy")`` = 58, so
  that its copy ``NAME_copy`` obeys the same rule.

The check is a full match (``re.fullmatch`` with ``re.ASCII``), not ``re.match`` with
``$``: ``$`` also matches before a trailing newline, and without ``re.ASCII`` classes
like ``\\w`` accept non-ASCII letters. The explicit class ``[A-Za-z0-9_-]`` is used so
the rule does not depend on either flag.

The platform itself may accept more in an oracle's name (dots, spaces, Unicode); zoo-ops
deliberately manages only zoo models whose names obey this rule, since each one becomes
a folder, a label and a whitelist key. A zoo model with another name is refused, not
renamed.

Anything else -- the whitelist's "not ending in ``_copy``", a step being one of the five
runbooks -- is a rule of its own module, applied after this one.

Steps come in two kinds, both recorded as runs (runs table and trail):

- the five runbook steps (:data:`RUNBOOK_STEPS`, ``NN_word``), run by papermill, the only
  steps the staging gate, ``rollout`` and ``zoo-ops run`` know;
- the mutating commands (:data:`COMMAND_STEPS`: ``whitelist-set``, ``whitelist-remove``,
  ``whitelist-edit``, ``reconcile``), recorded by the CLI. Their names have a ``-`` and no
  digits, so no command step can be taken for a runbook step by any reader (a gate that
  looks for ``01_copy`` never counts a ``whitelist-set``).
"""

from __future__ import annotations

import re
import unicodedata

from zoo_ops.errors import BadInput

NAME_MAX = 63
COPY_SUFFIX = "_copy"
MODEL_NAME_MAX = NAME_MAX - len(COPY_SUFFIX)

RUNBOOK_STEPS = ("01_copy", "02_verify", "03_migrate", "04_revert", "05_retire")
WHITELIST_SET, WHITELIST_REMOVE, WHITELIST_EDIT, RECONCILE = (
    "whitelist-set",
    "whitelist-remove",
    "whitelist-edit",
    "reconcile",
)
COMMAND_STEPS = (WHITELIST_SET, WHITELIST_REMOVE, WHITELIST_EDIT, RECONCILE)

# The bound of each kind of name; ``check_name`` refuses a kind not listed here (a typo
# in a caller must not quietly get a weaker rule).
NAME_BOUNDS: dict[str, int] = {
    "model": MODEL_NAME_MAX,
    "environment": NAME_MAX,
    "step": NAME_MAX,
}

# The rule as a pattern (for documentation and other checkers); ``name_problem`` states the
# same rule character by character so that it can say which character is wrong.
NAME_PATTERN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?", re.ASCII)
_ALLOWED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_ALNUM = _ALLOWED - {"_", "-"}
_SHOWN_MAX = 40  # characters of a bad value shown in a message


def shown(value: str) -> str:
    """``value`` safe to print inside one line: escaped, quoted, and cut when long.

    ``ascii()`` escapes control characters (``\\n``, ``\\x1b``), non-ASCII letters
    (``\\u0430``, so a lookalike is visible as such) and lone surrogates; a value longer
    than 40 characters shows its first 40 and its length.
    """
    if len(value) <= _SHOWN_MAX:
        return ascii(value)
    return f"{ascii(value[:_SHOWN_MAX])}... ({len(value)} characters)"


def _describe(ch: str) -> tuple[str, str]:
    """(what, why) for one character that is not allowed in a name."""
    if ch in "/\\":
        return f"a path separator {ascii(ch)}", ""
    if ch == ".":
        return "'.'", " (a dot makes '.', '..' and hidden names possible)"
    if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
        return f"a control or unprintable character {ascii(ch)}", ""
    if ch.isspace():
        return f"whitespace {ascii(ch)}", ""
    if not ch.isascii():
        return f"the non-ASCII character {ascii(ch)}", f" ({unicodedata.name(ch, 'unnamed')})"
    return f"the character {ascii(ch)}", ""


def name_problem(kind: str, value: object) -> str | None:
    """Why ``value`` is not a valid name of ``kind``, or None when it is.

    Checks, in order: a string; not empty; within the kind's bound; every character in
    ``[A-Za-z0-9_-]`` (the first bad one is named); a letter or digit at both ends.
    """
    bound = NAME_BOUNDS.get(kind)
    if bound is None:
        raise ValueError(f"unknown kind of name {kind!r}; one of {sorted(NAME_BOUNDS)}")
    if not isinstance(value, str):
        return f"{kind} name must be text, not {type(value).__name__}"
    if value == "":
        return f"{kind} name is empty"
    if len(value) > bound:
        return f"{kind} name {shown(value)} is {len(value)} characters long, more than {bound}"
    for position, ch in enumerate(value):
        if ch not in _ALLOWED:
            what, why = _describe(ch)
            return f"{kind} name {shown(value)} contains {what} at position {position}{why}"
    if value[0] not in _ALNUM or value[-1] not in _ALNUM:
        return f"{kind} name {shown(value)} must start and end with a letter or digit"
    return None


def rule(kind: str) -> str:
    """The rule for ``kind`` in words: the "what to do" half of an error message."""
    bound = NAME_BOUNDS[kind]
    return (
        f"use 1 to {bound} ASCII letters, digits, '_' or '-', "
        "starting and ending with a letter or digit"
    )


def is_valid_name(kind: str, value: object) -> bool:
    """True when ``value`` is a valid name of ``kind`` (see the module's rule)."""
    return name_problem(kind, value) is None


def check_name(kind: str, value: object) -> str:
    """``value`` when it is a valid name of ``kind``, else :class:`BadInput` in one line.

    The message says what is wrong (the value shown escaped, see :func:`shown`) and what
    to do (the rule). ``kind`` is one of ``model``, ``environment``, ``step``.
    """
    problem = name_problem(kind, value)
    if problem is not None:
        raise BadInput(f"{problem}; {rule(kind)}")
    assert isinstance(value, str)  # name_problem returned None: it is a str
    return value
