"""What may be shown or stored: credentials removed from any text zoo-ops writes.

Two tools, used together by :func:`redact`:

**Pattern redaction** (:func:`redact_text`, :func:`redact_url`) finds credentials by
their *form*, anywhere in a text (a URL alone, or a URL inside an OperationalError's
message, a log line, a parameter). Four rules run in this order over the whole text;
each replaces only the secret value with ``***`` and keeps the rest readable:

1. URL userinfo, every ``scheme://user:PASSWORD@host`` -- the password runs from the
   ``:`` after the user name to the *last* ``@`` before the next ``/``, ``?``, ``#`` or
   whitespace (libpq and SQLAlchemy both stop at the first ``@``, so a raw ``@`` in a
   password is covered too); failing that, to the first ``@`` before whitespace or
   another ``://`` (SQLAlchemy's own reading, where a password may hold a raw ``/``).
2. URL query strings: from ``?`` to the next whitespace, split at ``&``; a
   ``NAME=VALUE`` whose percent-decoded name is secret (see below) has its value, up to
   the next ``&``, replaced -- so encoded, repeated and mixed-case parameters are all
   covered. Any other value is itself searched by these rules, one level deeper (at
   most two): as written (``?next=/a?password=x``), or, when percent-encoded, decoded
   and re-encoded if that changed it (SQLAlchemy's ``?odbc_connect=...PWD%3Dx``).
3. ``NAME=VALUE`` pairs with a secret name, the name not preceded by a name character,
   ``?`` or ``&``:
   libpq DSN strings (``host=x password=secret``, ``password = secret``), environment
   assignments (``PGPASSWORD=x``, ``export DB_PASSWORD="x"``), ODBC
   (``Server=x;PWD={x};``) and options (``--password=x``); (2b) ``&password=x``
   outside a query string is a query parameter, its value ending at ``&``. With a quoted name, ``:`` also separates (JSON and Python reprs:
   ``"password": "x"``, ``'token': 'x'``). The value is a single- or double-quoted
   string with backslash escapes (``'a b\\'c'``; an unterminated one runs to the end
   of the text), a ``{...}`` ODBC value, or else everything up to the next whitespace,
   libpq's own rule (so ``PWD=x;DATABASE=y`` loses ``DATABASE=y`` too: over- rather
   than under-redaction). The quote style is kept: ``password='***'``.
4. ``Bearer TOKEN`` with a token of 16 or more token characters.

A name is secret when it contains ``password``, ``passwd``, ``pwd``, ``secret``,
``token``, ``apikey``/``api_key``/``api-key``, ``credential``, ``private_key``,
``signature`` or ``authorization``, or is exactly ``pass`` or ``sig`` (any case):
libpq's ``password`` and ``sslpassword``, ``PGPASSWORD``, S3 presigned
``X-Amz-Signature``/``X-Amz-Security-Token``, Azure's ``sig``. ``passfile`` and
``sslkey`` name files and stay visible. Redaction is idempotent.

**Value scrubbing** (:func:`scrub`) replaces the values zoo-ops *knows* are secret (the
admin organization's secrets, the passwords :func:`credential_values` finds in the
configured database URL) wherever they occur, in whatever form: as is, URL-encoded
(``quote``, ``quote_plus``, either hex case), as Python ``repr``/``ascii`` and JSON
escape them, HTML-escaped (the report), libpq-quoted (``\\'`` and ``\\\\``), and base64
(how a Kubernetes Secret carries it). Values shorter than :data:`MIN_SECRET_LENGTH` (6)
characters, or only whitespace, are not scrubbed: replacing ``true``, ``1234`` or
``admin`` everywhere would shred the text, and every ``***`` would tell a reader where
those letters stood, so it would not even hide them. Such short values are still
removed where they stand in a credential form (the rules above). The longest form
matches first, so a secret that contains another is removed whole.

:func:`redact` is scrubbing, then the rules: scrubbing first, so that a value the rules
would only partly cover (a password with a raw space) is still removed whole.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus

REDACTED = "***"
MIN_SECRET_LENGTH = 6
_MAX_DEPTH = 2  # query values redacted recursively this many levels deep

_SECRET_WORDS = (
    r"passw(?:or)?d|pwd|secret|token|api[_-]?key|credential|private[_-]?key|signature"
    r"|authorization"
)
_SECRET_NAME = re.compile(rf"{_SECRET_WORDS}|^pass$|^sig$", re.IGNORECASE | re.ASCII)

# Rule 1: "://user:" then the password up to the last "@" of the authority, else up to
# the first "@" before whitespace (not across another "://", which keeps a text of many
# "://" linear). The "@" itself stays in place (lookahead).
_USERINFO = re.compile(
    r"(?P<head>://[^:/\s]*:)(?P<pw>[^\s/?#]*(?=@)|(?:[^@\s:]|:(?!//))*(?=@))",
    re.ASCII,
)
# Rule 2: a query string, from "?" to the next whitespace; split in _query.
_QUERY = re.compile(r"\?(?P<query>[^\s?][^\s]*)")
# A secret name in rules 2b and 3: checked by a lookahead confined to name characters,
# then taken possessively, so that only secret names match (their value can be consumed)
# and the scan stays linear in the text.
_SECRET_KEY = rf"(?:(?=[A-Za-z0-9_.-]*?(?:{_SECRET_WORDS}))[A-Za-z0-9_.-]++|pass|sig)"
# Rule 2b: "&NAME=VALUE" outside a query string ("a=1&password=x"); the value ends at "&".
_AMP_PARAM = re.compile(
    rf"(?<=&)(?P<name>{_SECRET_KEY})=(?P<value>[^&\s]*)", re.IGNORECASE | re.ASCII
)
# Rule 3: NAME=VALUE, or "NAME": VALUE with a quoted name (not after "?" or "&": rule 2's).
_KEY_VALUE = re.compile(
    rf"""
    (?<![A-Za-z0-9_.?&-])
    (?P<q>['"]?)
    (?P<name>{_SECRET_KEY})
    (?P=q)
    (?P<sep>\s*=\s*|(?<=['"])\s*:\s*)
    (?P<value>
        '(?:[^'\\]|\\.)*+'?            # single-quoted, backslash escapes
      | "(?:[^"\\]|\\.)*+"?            # double-quoted
      | \{{(?:[^}}]|\}}\}})*+\}}?      # ODBC {{braced}}
      | (?:\\.|[^\s\\])++\\?           # bare: to the next whitespace, libpq's rule
    )?
    """,
    re.VERBOSE | re.ASCII | re.DOTALL | re.IGNORECASE,
)
# Rule 4: an HTTP bearer token.
_BEARER = re.compile(
    r"\b(?P<head>Bearer\s+)(?P<token>[A-Za-z0-9._~+/=-]{16,})", re.IGNORECASE | re.ASCII
)
_BACKSLASH_ESCAPE = re.compile(r"\\(.)", re.DOTALL)

_Found = list[str] | None


def is_secret_name(name: str) -> bool:
    """True when a parameter, keyword or variable called ``name`` holds a secret."""
    return _SECRET_NAME.search(name) is not None


def _note(found: _Found, *values: str) -> None:
    """Record credential values for :func:`credential_values` (when collecting)."""
    if found is not None:
        found.extend(v for v in values if v and v != REDACTED)


def _userinfo(match: re.Match[str], found: _Found) -> str:
    password = match["pw"]
    if password in ("", REDACTED):
        return match[0]
    _note(found, password, unquote(password))
    return match["head"] + REDACTED


def _query_param(param: str, found: _Found, depth: int) -> str:
    """One ``name=value`` of a query string, its value redacted or searched."""
    name, equals, value = param.partition("=")
    if not equals or value in ("", REDACTED):
        return param
    if is_secret_name(unquote_plus(name)):
        _note(found, value, unquote(value), unquote_plus(value))
        return f"{name}={REDACTED}"
    if depth >= _MAX_DEPTH:
        return param
    if "%" in value:  # encoded: a DSN or URL inside a URL (odbc_connect=...)
        decoded = unquote_plus(value)
        inner = _apply(decoded, found, depth + 1)
        return param if inner == decoded else f"{name}={quote_plus(inner, safe='*')}"
    return f"{name}={_apply(value, found, depth + 1)}"  # raw: "next=/a?password=x"


def _query(match: re.Match[str], found: _Found, depth: int) -> str:
    params = match["query"].split("&")
    return "?" + "&".join(_query_param(p, found, depth) for p in params)


def _unquote_value(value: str) -> str:
    """The value a libpq/shell/ODBC parser would read from its quoted form."""
    if value[:1] in ("'", '"'):
        inner = value[1:-1] if len(value) > 1 and value[-1] == value[0] else value[1:]
        return _BACKSLASH_ESCAPE.sub(r"\1", inner)
    if value[:1] == "{":
        inner = value[1:-1] if value.endswith("}") and len(value) > 1 else value[1:]
        return inner.replace("}}", "}")
    return _BACKSLASH_ESCAPE.sub(r"\1", value)


def _key_value(match: re.Match[str], found: _Found) -> str:
    value = match["value"] or ""
    plain = _unquote_value(value)
    if plain in ("", REDACTED):
        return match[0]
    # An ODBC value ends at ";": note that prefix too, so scrubbing finds it elsewhere.
    _note(found, value, plain, plain.split(";", 1)[0])
    shown = {"'": "'***'", '"': '"***"', "{": "{***}"}.get(value[0], REDACTED)
    return f"{match['q']}{match['name']}{match['q']}{match['sep']}{shown}"


def _amp_param(match: re.Match[str], found: _Found) -> str:
    value = match["value"]
    if value in ("", REDACTED):
        return match[0]
    _note(found, value, unquote(value), unquote_plus(value))
    return f"{match['name']}={REDACTED}"


def _bearer(match: re.Match[str], found: _Found) -> str:
    _note(found, match["token"])
    return match["head"] + REDACTED


def _apply(text: str, found: _Found, depth: int = 0) -> str:
    """Rules 1, 2, 2b, 3 and 4 of the module docstring, in order, over the whole text."""
    text = _USERINFO.sub(lambda m: _userinfo(m, found), text)
    text = _QUERY.sub(lambda m: _query(m, found, depth), text)
    text = _AMP_PARAM.sub(lambda m: _amp_param(m, found), text)
    text = _KEY_VALUE.sub(lambda m: _key_value(m, found), text)
    return _BEARER.sub(lambda m: _bearer(m, found), text)


def redact_text(text: str) -> str:
    """``text`` with every credential in a URL, DSN or assignment form replaced by ``***``.

    ``scheme://user:PASSWORD@host`` becomes ``scheme://user:***@host``, and likewise
    every form of the module docstring, anywhere in the text.
    """
    return _apply(text, None)


def redact_url(url: str) -> str:
    """A database URL or libpq DSN in the only form it is ever shown: passwords ``***``.

    The same rules as :func:`redact_text` (a URL is a text); ``config.redact_url`` is
    meant to delegate here.
    """
    return redact_text(url)


def credential_values(text: str) -> tuple[str, ...]:
    """The secret values the rules find in ``text``, as written and decoded.

    Feed a configured URL's values to :func:`scrub` so that a password is removed from a
    message also where it appears outside a credential form (a driver echoing it, a
    password with a raw space). Order of first appearance, without duplicates.
    """
    found: list[str] = []
    _apply(text, found)
    return tuple(dict.fromkeys(found))


# -- scrubbing known values ---------------------------------------------------------


def secret_forms(secret: str) -> set[str]:
    """Every spelling of ``secret`` :func:`scrub` removes (see the module docstring)."""
    libpq = secret.replace("\\", "\\\\").replace("'", "\\'")
    forms = {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        repr(secret)[1:-1],
        ascii(secret)[1:-1],
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        html.escape(secret),
        html.escape(secret, quote=False),
        libpq,
        base64.b64encode(secret.encode("utf-8", "surrogatepass")).decode("ascii"),
    }
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def _form_pattern(form: str) -> str:
    """``form`` as a regular expression; a ``%XX`` escape matches either hex case."""
    pieces = re.split(r"(%[0-9A-Fa-f]{2})", form)
    out = []
    for i, piece in enumerate(pieces):
        if i % 2:
            out.append("%" + "".join(f"[{c.upper()}{c.lower()}]" for c in piece[1:]))
        else:
            out.append(re.escape(piece))
    return "".join(out)


def scrubbable(secrets: Iterable[str]) -> list[str]:
    """The secrets :func:`scrub` acts on: text, at least 6 characters, not only spaces."""
    return [
        s
        for s in dict.fromkeys(secrets)
        if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH and s.strip()
    ]


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every known secret value, in every form, replaced by ``***``.

    One pass of one alternation, longest form first. Values shorter than
    :data:`MIN_SECRET_LENGTH` are ignored (the module docstring says why).
    """
    pattern = scrub_pattern(secrets)
    return text if pattern is None else pattern.sub(REDACTED, text)


def scrub_pattern(secrets: Iterable[str]) -> re.Pattern[str] | None:
    """The one alternation :func:`scrub` applies (None when no secret is scrubbable).

    Built once and kept by a caller that scrubs many texts with the same secrets.
    """
    forms = {form for secret in scrubbable(secrets) for form in secret_forms(secret)}
    if not forms:
        return None
    ordered = sorted(forms, key=lambda f: (-len(f), f))
    return re.compile("|".join(_form_pattern(f) for f in ordered))


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` safe to print, record or store: :func:`scrub`, then :func:`redact_text`."""
    return redact_text(scrub(text, secrets))


def redact_parameters(parameters: dict[str, Any], secrets: Iterable[str] = ()) -> dict[str, Any]:
    """A copy safe for a trail: secret-named values masked, credentials redacted.

    Values are kept JSON-simple (str, int, float, bool, None); anything else is shown
    by its ``repr`` so the record never holds a live object. Strings (and reprs) go
    through :func:`redact` with ``secrets``.
    """
    known = scrubbable(secrets)
    safe: dict[str, Any] = {}
    for name, value in parameters.items():
        if is_secret_name(name) and value not in ("", None):
            safe[name] = REDACTED
        elif isinstance(value, str):
            safe[name] = redact(value, known)
        elif value is None or isinstance(value, bool | int | float):
            safe[name] = value
        else:
            safe[name] = redact(repr(value), known)
    return safe
