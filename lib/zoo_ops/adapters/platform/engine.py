"""Database engines: SQLite (the embedded default) and PostgreSQL (psycopg 3).

Every engine registers its URL's passwords with :mod:`zoo_ops.adapters.known_secrets`
before anything can fail, and turns a failure to *connect* (refused, unknown host, wrong
port, a SQLite file that cannot be opened) into one
:class:`~zoo_ops.errors.DatabaseUnreachable` line naming the redacted URL, so that no
command shows a driver's traceback for a database that is not there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError

from zoo_ops.adapters import known_secrets
from zoo_ops.domain.redaction import redact_url
from zoo_ops.errors import ConfigError, DatabaseUnreachable

SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalize_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3, the driver we ship."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def database_missing(url: str) -> str | None:
    """Why the database at ``url`` is not there to read, else None: a SQLite file never
    created ("no database yet"), a URL that does not parse. Reading must never create the
    file, and connecting to SQLite would."""
    try:
        parsed = make_url(normalize_url(url))
    except Exception:  # noqa: BLE001 - a bad URL is the same verdict: not read
        return "database URL not readable"
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        if not Path(parsed.database).exists():
            return "no database yet"
    return None


def make_engine(url: str, *, read_only: bool = False, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys.

    WAL and the busy timeout let several processes (a runbook kernel, the CLI, a test)
    share the local database without "database is locked" errors.

    ``read_only``: the database itself refuses every write on the engine's connections
    (:func:`read_only_url`), whatever the caller executes -- the interactive session's
    engine (``%load_ext zoo_ops``).
    """
    known_secrets.add_url(url)
    configured, url = url, normalize_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(
            f"database_url {redact_url(url)!r} is not a URL; fix zoo_ops.toml"
        ) from exc
    if read_only:
        parsed = read_only_url(parsed)
    if parsed.get_backend_name() == "sqlite":
        if read_only:
            return _sqlite_read_only(parsed, configured, **kwargs)
        if parsed.database and parsed.database != ":memory:":
            try:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise _unreachable(configured, f"{exc.strerror or exc}") from None
        engine = create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs
        )
        _report_connect_failures(engine, configured)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy, not pysqlite, issue BEGIN so that BEGIN IMMEDIATE works.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # IMMEDIATE takes the write lock up front: two writers queue on the busy
            # timeout instead of one failing later with SQLITE_BUSY on upgrade.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if parsed.get_backend_name() == "postgresql":
        engine = create_engine(parsed, pool_pre_ping=True, **kwargs)
        _report_connect_failures(engine, configured)
        return engine
    raise ConfigError(
        f"database_url {redact_url(url)!r}: unsupported database; use sqlite:/// or postgresql://"
    )


READ_ONLY_OPTION = "-c default_transaction_read_only=on"


def read_only_url(parsed: URL) -> URL:
    """``parsed`` opened so that the server refuses writes.

    PostgreSQL: libpq's ``options`` gains ``-c default_transaction_read_only=on`` (kept
    after any options the URL has, e.g. a ``search_path``); a write then fails with
    "cannot execute UPDATE in a read-only transaction". SQLite: the file is opened as the
    URI ``file:PATH?mode=ro``; a write fails with "attempt to write a readonly database".
    """
    if parsed.get_backend_name() == "postgresql":
        given = parsed.query.get("options", "")
        options = " ".join([*(given if isinstance(given, tuple) else [given]), READ_ONLY_OPTION])
        return parsed.update_query_dict({"options": options.strip()})
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        if not parsed.database or parsed.database == ":memory:":
            raise ConfigError("a read-only session needs a SQLite file, not an in-memory database")
        return parsed.set(database=f"file:{quote(str(path.resolve()))}?mode=ro").update_query_dict(
            {"uri": "true"}
        )
    return parsed


def _sqlite_read_only(parsed: URL, configured: str, **kwargs: Any) -> Engine:
    """A SQLite engine on ``mode=ro``: no directory is created, no pragma writes, no
    ``BEGIN IMMEDIATE`` (which asks for the write lock a reader never gets)."""
    engine = create_engine(
        parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs
    )
    _report_connect_failures(engine, configured)

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.close()

    return engine


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def _unreachable(url: str, reason: str) -> DatabaseUnreachable:
    shown = known_secrets.redact(redact_url(url))  # the error's attribute too: never a secret
    return DatabaseUnreachable(
        f"database {shown} cannot be reached ({reason}); check database_url in "
        "zoo_ops.toml and that the database server is running",
        url=shown,
    )


def _report_connect_failures(engine: Engine, url: str) -> None:
    """A failed *connect* raises :class:`DatabaseUnreachable` instead of the driver's error.

    Only a new connection that could not be made: an error on a working connection (a
    lock timeout, a deadlock, a lost backend mid-batch) stays the driver's, for the code
    that handles it; a failed pre-ping is left to the pool, which reconnects.
    """

    @event.listens_for(engine, "handle_error")
    def _connect_failed(context: Any) -> None:
        if context.connection is not None or context.is_pre_ping:
            return
        original = context.original_exception
        lines = str(original).strip().splitlines()
        first = lines[0] if lines else type(original).__name__
        raise _unreachable(url, first.removeprefix("connection failed: ")) from None
