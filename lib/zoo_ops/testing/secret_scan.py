"""pytest plugin: after the whole session, no file a test left behind holds a secret.

Enable it with ``pytest_plugins = ["zoo_ops.testing.secret_scan"]`` in ``conftest.py``
(or ``-p zoo_ops.testing.secret_scan``). At session finish -- on the xdist controller,
whose base temp directory holds every worker's (``popen-gwN``), or in a run without
xdist -- it scans every file under the session's base temp directory (executed
notebooks, HTML reports, logs, parquet, JSON, SQLite databases) for every value of
:func:`zoo_ops.testing.test_secrets.all_secret_values`, and fails the session (exit
status 1) with one line per leak naming the file and a 4-character prefix of the value.

Algorithm, per file:

1. skip credential files by design -- a name matching ``CREDENTIAL_FILE_PATTERNS``, or a
   kubeconfig whatever its name (YAML with ``kind: Config`` and ``users``) -- and a
   SQLite database's ``-wal``/``-shm``/``-journal`` companions (their content is read
   through the database in step 3);
2. search the raw bytes for each needle: the value, its base64 encoding (how a
   Kubernetes Secret carries it), its percent-encodings (how a password sits in a URL's
   userinfo or ``?password=`` query parameter, ``quote`` and ``quote_plus``, either hex
   case) and its HTML escape (how a report shows it) -- the forms that differ from the
   value, each once;
3. a SQLite database is then searched table by table with SQL ``instr`` over every text
   column, for every needle of step 2, skipping the secret-store table (``SECRET_STORE_TABLES``), so that the local
   secret store holding its secrets is not a leak but a secret copied into
   ``zoo_ops_run`` is; the raw search of step 2 is skipped for it (pages of the secret
   store would match);
4. a parquet file is decoded (its pages are compressed) and every column searched as text.

tmp_path directories must be kept until the end of the session: the default
``tmp_path_retention_policy = "all"``; with another policy the plugin says it cannot
see everything.
"""

from __future__ import annotations

import base64
import fnmatch
import html
import re
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

SQLITE_HEADER = b"SQLite format 3\x00"
PARQUET_MAGIC = b"PAR1"
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
CHUNK = 8 << 20


@dataclass(frozen=True)
class Leak:
    path: Path
    value: str
    where: str  # "bytes", "base64", "table zoo_ops_run", "parquet column x"

    def line(self, root: Path) -> str:
        try:
            shown = self.path.relative_to(root)
        except ValueError:
            shown = self.path
        return f"secret leak: {shown}: {self.value[:4]}... ({self.where})"


def needles(values: Iterable[str]) -> list[tuple[str, bytes, str]]:
    """(value, bytes to find, how it is encoded) for each value: raw, base64, and the
    URL and HTML encodings that differ from the raw value."""
    out = []
    for value in values:
        raw = value.encode()
        out.append((value, raw, "bytes"))
        out.append((value, base64.b64encode(raw), "base64"))
        encoded = {
            "url-encoded": quote(value, safe=""),
            "url-encoded (lower-case hex)": _lower_hex(quote(value, safe="")),
            "form-encoded": quote_plus(value),
            "html-escaped": html.escape(value),
        }
        seen = {value}
        for how, form in encoded.items():
            if form not in seen:
                seen.add(form)
                out.append((value, form.encode(), how))
    return out


def _lower_hex(text: str) -> str:
    """``%2F`` as ``%2f``: a percent-encoding a hand-written URL may use."""
    return re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(), text)


def find_in_bytes(path: Path, wanted: list[tuple[str, bytes, str]]) -> list[tuple[str, str]]:
    """(value, encoding) of every needle in the file, read in overlapping chunks."""
    overlap = max((len(n) for _, n, _ in wanted), default=1)
    found: dict[tuple[str, str], None] = {}
    tail = b""
    with path.open("rb") as fh:
        while True:
            block = fh.read(CHUNK)
            if not block:
                break
            window = tail + block
            for value, needle, how in wanted:
                if needle in window:
                    found[(value, how)] = None
            tail = window[-overlap:]
    return list(found)


def is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


def sqlite_leaks(path: Path, values: Iterable[str], skip_tables: Iterable[str]) -> list[Leak]:
    """Every (table, value) where a text column of a table other than ``skip_tables``
    contains the value (SQL ``instr``, so big databases are searched in SQLite)."""
    skip = {t.lower() for t in skip_tables}
    leaks: list[Leak] = []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if r[0].lower() not in skip
        ]
        for table in tables:
            columns = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
            if not columns:
                continue
            hit = " OR ".join(f'instr(CAST("{c}" AS TEXT), ?) > 0' for c in columns)
            found: set[str] = set()
            for value, needle, how in needles(values):
                if value in found:
                    continue
                row = conn.execute(
                    f'SELECT 1 FROM "{table}" WHERE {hit} LIMIT 1',
                    [needle.decode()] * len(columns),
                ).fetchone()
                if row is not None:
                    found.add(value)
                    where = f"table {table}" if how == "bytes" else f"table {table}, {how}"
                    leaks.append(Leak(path, value, where))
    except sqlite3.DatabaseError as exc:
        # Unreadable (a test's deliberately broken file): fall back to the raw bytes.
        return [
            Leak(path, v, f"bytes of an unreadable database: {exc}")
            for v, _how in find_in_bytes(path, needles(values))
        ]
    finally:
        conn.close()
    return leaks


def parquet_leaks(path: Path, values: Iterable[str]) -> list[Leak]:
    """Decode the parquet file and search every column's values as text."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception:  # noqa: BLE001 - not a readable parquet file: bytes were searched
        return []
    leaks = []
    for name in table.column_names:
        text = "\n".join(str(x) for x in table.column(name).to_pylist())
        for value in values:
            if value in text:
                leaks.append(Leak(path, value, f"parquet column {name}"))
    return leaks


def is_parquet(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(4) == PARQUET_MAGIC
    except OSError:
        return False


KUBECONFIG_MAX_BYTES = 1 << 20


def is_kubeconfig(path: Path) -> bool:
    """A kubeconfig: a small YAML mapping with ``kind: Config`` and a ``users`` list."""
    import yaml

    try:
        if path.stat().st_size > KUBECONFIG_MAX_BYTES:
            return False
        head = path.read_bytes()
        if b"kind" not in head or b"users" not in head:
            return False
        doc = yaml.safe_load(head)
    except (OSError, ValueError, yaml.YAMLError):
        return False
    return isinstance(doc, dict) and doc.get("kind") == "Config" and "users" in doc


def iter_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield path


def scan_tree(
    root: Path,
    values: Iterable[str],
    *,
    credential_patterns: Iterable[str] = (),
    secret_store_tables: Iterable[str] = (),
) -> list[Leak]:
    """Every leak of ``values`` in files under ``root`` (algorithm: module docstring)."""
    values = [v for v in values if v]
    wanted = needles(values)
    patterns = tuple(credential_patterns)
    leaks: list[Leak] = []
    for path in iter_files(root):
        if any(fnmatch.fnmatch(path.name, p) for p in patterns) or is_kubeconfig(path):
            continue
        companion_of = next(
            (path.name[: -len(sfx)] for sfx in SQLITE_COMPANIONS if path.name.endswith(sfx)),
            None,
        )
        if companion_of is not None and (path.parent / companion_of).exists():
            continue
        if is_sqlite(path):
            leaks.extend(sqlite_leaks(path, values, secret_store_tables))
            continue
        raw = [Leak(path, v, how) for v, how in find_in_bytes(path, wanted)]
        leaks.extend(raw)
        if is_parquet(path):
            seen = {leak.value for leak in raw}
            leaks.extend(parquet_leaks(path, [v for v in values if v not in seen]))
    return leaks


# --- the plugin ---------------------------------------------------------------------------------

_LEAKS = pytest.StashKey[list[str]]()


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if _is_xdist_worker(config):
        return
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is None:
        return
    from zoo_ops.testing import test_secrets

    root = factory.getbasetemp()
    leaks = scan_tree(
        root,
        test_secrets.all_secret_values(),
        credential_patterns=test_secrets.CREDENTIAL_FILE_PATTERNS,
        secret_store_tables=test_secrets.SECRET_STORE_TABLES,
    )
    lines = [leak.line(root) for leak in leaks]
    policy = str(config.getini("tmp_path_retention_policy"))
    if policy != "all":
        lines.append(
            f"secret scan: tmp_path_retention_policy is {policy!r}; passing tests' files were "
            "removed before the scan, set it to 'all'"
        )
    config.stash[_LEAKS] = lines
    if leaks and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = terminalreporter.config.stash.get(_LEAKS, None)
    if lines is None:
        return
    if not lines:
        terminalreporter.write_line("secret scan: no secret value in any file the tests left")
        return
    terminalreporter.section("secret scan", sep="=", red=True, bold=True)
    for line in lines:
        terminalreporter.write_line(line)
