"""Credentials never reach a message, a scrap, a log or a report."""

from __future__ import annotations

import base64
import html
import json
import re
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from zoo_ops.domain.redaction import (
    MIN_SECRET_LENGTH,
    REDACTED,
    credential_values,
    is_secret_name,
    redact,
    redact_parameters,
    redact_text,
    redact_url,
    scrub,
)

# -- examples: every form, exactly what the user sees --------------------------------


@pytest.mark.parametrize(
    "text,shown",
    [
        # userinfo (what config.redact_url's tests pin)
        ("postgresql://zoo:s3cr3t@h:5432/db", "postgresql://zoo:***@h:5432/db"),
        ("postgresql+psycopg://u:p%40ss@h/db", "postgresql+psycopg://u:***@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
        ("postgresql://zoo@h/db", "postgresql://zoo@h/db"),
        ("postgresql://:pw@h/db", "postgresql://:***@h/db"),
        ("postgresql://u:p@ss@h:5432/db", "postgresql://u:***@h:5432/db"),  # raw @
        ("postgresql://u:pa/ss@h/db", "postgresql://u:***@h/db"),  # raw / (SQLAlchemy)
        ("postgresql://u:pw@/db?host=/run/pg", "postgresql://u:***@/db?host=/run/pg"),
        # query parameters: case, encoding, repeats, libpq's sslpassword
        (
            "postgresql://h/db?user=u&password=p%20w&PASSWORD=two&sslmode=require",
            "postgresql://h/db?user=u&password=***&PASSWORD=***&sslmode=require",
        ),
        (
            "postgresql://h/db?sslpassword=k&passwd=a&pwd=b",
            "postgresql://h/db?sslpassword=***&passwd=***&pwd=***",
        ),
        ("postgresql://h/db?passw%6Frd=enc", "postgresql://h/db?passw%6Frd=***"),
        (
            "https://b.s3/x?X-Amz-Signature=abc&X-Amz-Security-Token=t",
            "https://b.s3/x?X-Amz-Signature=***&X-Amz-Security-Token=***",
        ),
        ("https://h/x?next=/a?password=x&y=1", "https://h/x?next=/a?password=***&y=1"),
        (
            "mssql+pyodbc:///?odbc_connect=DRIVER%3D%7Bx%7D%3BPWD%3Dsecret",
            "mssql+pyodbc:///?odbc_connect=DRIVER%3D%7Bx%7D%3BPWD%3D***",
        ),
        # libpq keyword/value DSNs
        ("host=x password=secret dbname=y", "host=x password=*** dbname=y"),
        ("host=x password = secret dbname=y", "host=x password = *** dbname=y"),
        ("host=x password='a b\\'c' dbname=y", "host=x password='***' dbname=y"),
        ("host=x sslpassword=k passfile=/p/.pgpass", "host=x sslpassword=*** passfile=/p/.pgpass"),
        # environment assignments, options, ODBC, reprs and JSON
        ("PGPASSWORD=hunter2 psql -h x", "PGPASSWORD=*** psql -h x"),
        ('export DB_PASSWORD="sec ret"; run', 'export DB_PASSWORD="***"; run'),
        ("--password=hunter2 --user bob", "--password=*** --user bob"),
        ("Server=x;Pwd={a b}};c};Database=z", "Server=x;Pwd={***};Database=z"),
        ("user=bob;password=x", "user=bob;password=***"),
        ("a=1&password=x&b=2&PWD=y", "a=1&password=***&b=2&PWD=***"),
        ("{'password': 'x y', 'user': 'u'}", "{'password': '***', 'user': 'u'}"),
        ('{"HF_TOKEN": "abc", "n": 1}', '{"HF_TOKEN": "***", "n": 1}'),
        ("Authorization: Bearer abcdefghijklmnop1234", "Authorization: Bearer ***"),
        # inside a longer error message: the rest stays readable
        (
            "(psycopg.OperationalError) connection to postgresql://zoo:hunter2@db:5432/zoo"
            "?sslpassword=kk failed: timeout",
            "(psycopg.OperationalError) connection to postgresql://zoo:***@db:5432/zoo"
            "?sslpassword=*** failed: timeout",
        ),
        (
            "database 'postgresql://db:5432/zoo' unreachable; ask dba@example.com",
            "database 'postgresql://db:5432/zoo' unreachable; ask dba@example.com",
        ),
        (
            'password authentication failed for user "zoo"',
            'password authentication failed for user "zoo"',
        ),
    ],
)
def test_every_credential_form_is_redacted(text: str, shown: str) -> None:
    assert redact_text(text) == shown
    assert redact_text(shown) == shown  # idempotent


def test_redact_url_is_the_same_rule() -> None:
    url = "postgresql://u:pw@h/db?password=other"
    assert redact_url(url) == redact_text(url) == "postgresql://u:***@h/db?password=***"


@pytest.mark.parametrize(
    "name", ["password", "PGPASSWORD", "sslpassword", "HF_TOKEN", "api-key", "pass", "sig"]
)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["passfile", "sslkey", "user", "host", "model", "passage"])
def test_not_secret_names(name: str) -> None:
    assert not is_secret_name(name)


def test_credential_values_are_found_as_written_and_decoded() -> None:
    found = credential_values(
        "postgresql://u:p%40ss@h/db?sslpassword=k%20k host=x password='a\\'b'"
    )
    assert {"p%40ss", "p@ss", "k%20k", "k k", "a'b"} <= set(found)
    assert REDACTED not in found


# -- properties: no generated secret survives ----------------------------------------

# Passwords as people (and generators) make them: any printable text, incl. the
# characters that end tokens elsewhere (@ / ? # & ; : ' " = % and spaces).
passwords = st.text(
    st.characters(codec="utf-8", categories=["L", "N", "P", "S", "Zs"]),
    min_size=MIN_SECRET_LENGTH,
    max_size=24,
).filter(lambda s: s.strip() == s and s.strip() != "")
url_safe_passwords = st.text(
    st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$()*,"),
    min_size=MIN_SECRET_LENGTH,
    max_size=24,
)
PREFIXES = ["", "error: ", "(psycopg.OperationalError) cannot connect to ", "url='"]
SUFFIXES = ["", " failed: timeout", "' (ask dba@example.com)", "\nnext line"]


def _libpq_quoted(pw: str) -> str:
    return "'" + pw.replace("\\", "\\\\").replace("'", "\\'") + "'"


def url_forms(pw: str) -> list[str]:
    """Every way a configuration can carry ``pw`` (SQLAlchemy and libpq)."""
    enc = quote(pw, safe="")
    return [
        f"postgresql://zoo:{enc}@db.internal:5432/zoo",
        f"postgresql+psycopg://zoo:{enc}@db.internal/zoo?sslmode=require",
        f"postgresql://db.internal/zoo?user=zoo&password={enc}",
        f"postgresql://db.internal/zoo?PassWord={quote_plus(pw)}&sslmode=require",
        f"postgresql://db.internal/zoo?password=x&password={enc}",
        f"postgresql://db.internal/zoo?sslpassword={enc}",
        f"host=db.internal password={_libpq_quoted(pw)} dbname=zoo",
        f"host=db.internal password = {_libpq_quoted(pw)}",
        f"PGPASSWORD={_libpq_quoted(pw)} psql",
        f"{{'password': {pw!r}}}",
        json.dumps({"password": pw}),
    ]


@settings(max_examples=300)
@given(
    pw=url_safe_passwords,
    form=st.integers(0, 10),
    prefix=st.sampled_from(PREFIXES),
    suffix=st.sampled_from(SUFFIXES),
)
def test_pattern_redaction_leaves_no_generated_password(
    pw: str, form: int, prefix: str, suffix: str
) -> None:
    """The output does not depend on the password at all: it is gone in every form."""
    out = redact_text(prefix + url_forms(pw)[form] + suffix)
    assert out == redact_text(prefix + url_forms("Zz-Zz-Zz")[form] + suffix)
    assert REDACTED in out
    assert redact_text(out) == out


@settings(max_examples=300)
@given(
    pw=passwords,
    form=st.integers(0, 10),
    prefix=st.sampled_from(PREFIXES),
    suffix=st.sampled_from(SUFFIXES),
)
def test_any_password_is_gone_with_the_urls_own_values(
    pw: str, form: int, prefix: str, suffix: str
) -> None:
    """Any printable password, in any form: the rules plus scrubbing what the URL holds."""
    assume(pw not in prefix + url_forms("Zz-Zz-Zz")[form] + suffix)
    url = url_forms(pw)[form]
    text = prefix + url + suffix
    out = redact(text, credential_values(url))
    assert pw not in out
    assert quote(pw, safe="") not in out
    assert quote_plus(pw) not in out


@settings(max_examples=300)
@given(
    secrets=st.lists(passwords, min_size=1, max_size=3),
    filler=st.text(max_size=30),
    form=st.sampled_from(
        ["raw", "quote", "quote_lower", "quote_plus", "repr", "json", "html", "b64"]
    ),
)
def test_scrub_removes_every_generated_secret_in_every_form(
    secrets: list[str], filler: str, form: str
) -> None:
    def spell(s: str) -> str:
        return {
            "raw": s,
            "quote": quote(s, safe=""),
            "quote_lower": re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(), quote(s, safe="")),
            "quote_plus": quote_plus(s),
            "repr": repr(s),
            "json": json.dumps(s),
            "html": html.escape(s),
            "b64": base64.b64encode(s.encode()).decode(),
        }[form]

    text = filler.join(f"<{spell(s)}>" for s in secrets) + filler
    out = scrub(text, secrets)
    for s in secrets:
        assert spell(s) not in out
        assert s not in out


def test_scrub_ignores_short_and_blank_values_and_keeps_the_text() -> None:
    text = "deploy of iris failed: true, 1234 (admin)"
    assert scrub(text, ["true", "1234", "admin", "", "      "]) == text
    assert scrub("token hf_0123456789 leaked", ["hf_0123456789"]) == "token *** leaked"


def test_scrub_removes_a_secret_containing_another_whole() -> None:
    assert scrub("x=abcdef-ghijkl;", ["abcdef", "abcdef-ghijkl"]) == "x=***;"


def test_redact_scrubs_first_so_a_spaced_password_is_gone_whole() -> None:
    url = "postgresql://zoo:pass word 99@db/zoo"
    out = redact(f"cannot connect to {url}", credential_values(url) + ("pass word 99",))
    assert "pass" not in out and "word" not in out and "99@" not in out


def test_redact_parameters_keeps_its_contract_and_scrubs() -> None:
    params = {
        "model": "iris",
        "db_password": "hunter2",
        "confirm": "",
        "url": "postgresql://u:pw@h/db?password=x",
        "note": "secret value hf_abcdefgh inside",
        "rtol": 1e-6,
        "flag": True,
        "obj": {"token": "zzz"},
    }
    safe = redact_parameters(params, secrets=["hf_abcdefgh"])
    assert safe == {
        "model": "iris",
        "db_password": REDACTED,
        "confirm": "",
        "url": "postgresql://u:***@h/db?password=***",
        "note": "secret value *** inside",
        "rtol": 1e-6,
        "flag": True,
        "obj": "{'token': '***'}",
    }
