"""An index cache of the audit trail: what `zoo-ops status`, `history` and `report` read.

Reading an executed runbook with scrapbook costs tens of milliseconds (nbformat parses
and validates the whole notebook; importing scrapbook pulls in pandas and pyarrow), so
a trail of a thousand notebooks would take a minute to summarise. The index keeps, per
executed notebook, what those commands need -- the ``run`` scrap, a few scalar scraps,
the names of all scraps and the papermill parameters -- in a small SQLite file
``<executed_root>/.index.sqlite`` (git-ignored with the rest of ``executed/``).

Never stale: a row is keyed by the notebook's relative path and holds the file's
fingerprint ``(size, mtime_ns, ctime_ns, inode)`` taken *before* the file was read. Every
lookup lists the trail and stats every notebook (cheap: no file is opened), re-reads
each notebook whose fingerprint differs from its row, and drops rows whose file is gone.
Because the fingerprint is taken before the read, content newer than its fingerprint can
only cause a needless re-read later, never a stale row. A notebook modified in the last
``RECENT_S`` seconds is read every time and not stored: a file rewritten twice inside one
timestamp tick (papermill saves after every cell) must not hide its last write.

Concurrent processes: WAL mode and a busy timeout; each process reads rows, parses what
changed without holding a lock, and writes its rows in one short transaction. Two writers
of the same row write what they each read with the fingerprint they each saw, so
whichever lands last is still checked against the file next time. An index that cannot be
opened or written (read-only trail, corrupt file) is rebuilt or bypassed, never trusted.

Scraps are decoded from the notebook JSON directly, the way scrapbook 0.5 does it
(``Notebook._fetch_scraps``): outputs in cell order, later scraps of a name replacing
earlier ones, the payload checked against scrap schema v1, ``json`` and ``text``
payloads decoded as scrapbook's ``JsonEncoder``/``TextEncoder`` do. Only scalar scraps are
decoded here; tables (``pandas`` payloads) are left to :func:`zoo_ops.trail.read_scraps`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from json import JSONDecodeError
from pathlib import Path
from typing import Any

from zoo_ops.trail import TrailEntry, parse_trail_name, trail_notebooks

INDEX_FILE_NAME = ".index.sqlite"
# Bump when what a row holds changes: an index of another version is rebuilt.
INDEX_FORMAT = 1
RECENT_S = 2.0
BUSY_TIMEOUT_MS = 15_000

# The scalar scraps kept besides `run` (DESIGN §5): enough for status, history and the
# gate; anything else is read from the notebook itself.
INDEXED_SCRAPS = frozenset(
    {
        "truss_hash",
        "copy_model",
        "copy_version_id",
        "deployed",
        "oracle_id",
        "original_version_id",
        "candidate_version_id",
        "passed",
        "old_version_id",
        "new_version_id",
        "migration_id",
        "forward_run",
        "affected_count",
        "reverted_count",
        "remaining_on_old",
        "remaining_on_new",
        "deleted_version_id",
        "deleted_copy_versions",
    }
)

OK, RUNNING, UNREADABLE = "ok", "running", "unreadable"

_GLUE_PREFIX = "application/scrapbook.scrap"
_RECORD_PREFIX = "application/papermill.record"
_KNOWN_ENCODERS = frozenset({"json", "text", "pandas", "display"})
_DATA_TYPES = (dict, list, bool, str, int, float)

Fingerprint = tuple[int, int, int, int]


class UnreadableNotebook(Exception):
    """The notebook is not JSON, not a notebook, or holds a scrap scrapbook would refuse."""


@dataclass(frozen=True)
class IndexedNotebook:
    """One executed runbook as the index knows it."""

    path: Path
    env: str
    model: str
    step: str
    stamp: datetime
    state: str  # ok | running (no `run` scrap, papermill not finished) | unreadable
    run: dict[str, Any] | None
    scraps: dict[str, Any] = field(default_factory=dict)  # INDEXED_SCRAPS present
    scrap_names: tuple[str, ...] = ()
    parameters: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None
    fingerprint: Fingerprint = (0, 0, 0, 0)

    @property
    def outcome(self) -> str:
        """succeeded | failed | dry_run from `run`; else running or unreadable."""
        if self.run is None:
            return RUNNING if self.state == RUNNING else UNREADABLE
        return str(self.run.get("outcome") or RUNNING)

    @property
    def dry_run(self) -> bool:
        if self.run is None:
            return bool(self.parameters.get("dry_run") is True)
        return self.run.get("dry_run") is True or self.run.get("outcome") == "dry_run"

    @property
    def run_id(self) -> str | None:
        value = (self.run or {}).get("run_id")
        return str(value) if value else None

    def to_entry(self) -> TrailEntry:
        return TrailEntry(
            path=self.path,
            env=self.env,
            model=self.model,
            step=self.step,
            stamp=self.stamp,
            run=self.run,
        )


# --- reading one notebook ---------------------------------------------------------------


def decode_scrap_payload(payload: Any) -> tuple[str, str, Any]:
    """(name, encoder, data) of a ``application/scrapbook.scrap.*+json`` payload.

    Algorithm (scrapbook ``payload_to_scrap`` + ``registry.decode``): the payload must
    carry ``version``; for version 1 it must match schema v1 (name and encoder strings,
    data a non-null JSON value, version an integer); an unknown encoder is refused.
    ``json`` data that is a string is parsed when it is valid JSON; ``text`` data that is
    not a string becomes ``str(data)``. Other encoders' data is returned undecoded.
    """
    if not isinstance(payload, dict) or "version" not in payload:
        raise UnreadableNotebook("scrap payload has no version")
    version = payload["version"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise UnreadableNotebook("scrap payload version is not an integer")
    if version <= 1:
        for key in ("name", "data", "encoder"):
            if key not in payload:
                raise UnreadableNotebook(f"scrap payload lacks {key}")
        if not isinstance(payload["name"], str) or not isinstance(payload["encoder"], str):
            raise UnreadableNotebook("scrap payload name/encoder is not a string")
        if not isinstance(payload["data"], _DATA_TYPES):
            raise UnreadableNotebook(f"scrap {payload['name']!r} data has no JSON type")
    name, encoder, data = payload.get("name"), payload.get("encoder"), payload.get("data")
    if encoder not in _KNOWN_ENCODERS:
        raise UnreadableNotebook(f"scrap {name!r} has unknown encoder {encoder!r}")
    if encoder == "json" and isinstance(data, str):
        try:
            data = json.loads(data)
        except JSONDecodeError:
            pass
    elif encoder == "text" and not isinstance(data, str):
        data = str(data)
    return str(name), str(encoder), data


def _output_scraps(output: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """Scraps one cell output holds, as scrapbook's ``_fetch_scraps`` sees them."""
    found: dict[str, tuple[str, str, Any]] = {}
    for mime, payload in (output.get("data") or {}).items():
        if mime.startswith(_RECORD_PREFIX) and isinstance(payload, dict):
            # papermill's record(): {name: data}, first key only, encoder from the mime.
            encoder = mime.split(_RECORD_PREFIX, 1)[1][1:]
            for name, data in payload.items():
                found[name] = decode_scrap_payload(
                    {"name": name, "data": data, "encoder": encoder, "version": 1}
                )
                break
        elif mime.startswith(_GLUE_PREFIX):
            scrap = decode_scrap_payload(payload)
            found[scrap[0]] = scrap
    metadata = output.get("metadata") or {}
    display_name = None
    if "papermill" in metadata:
        display_name = (metadata.get("papermill") or {}).get("name")
    elif (metadata.get("scrapbook") or {}).get("display"):
        display_name = metadata["scrapbook"].get("name")
    if display_name and display_name not in found:
        # A display-only output names a scrap with no data; it replaces an earlier one.
        found[display_name] = (display_name, "display", None)
    return list(found.values())


def read_notebook_scraps(
    text: str | bytes, names: Collection[str] | None = None
) -> tuple[dict[str, Any], tuple[str, ...], dict[str, Any]]:
    """(scraps named in ``names`` -- all when None --, every scrap name, papermill metadata).

    Raises UnreadableNotebook for text that is not a notebook or holds a bad scrap.
    ``pandas`` scraps are returned as their encoded payload string: use
    :func:`zoo_ops.trail.read_scraps` for tables.
    """
    try:
        nb = json.loads(text)
    except (JSONDecodeError, UnicodeDecodeError) as exc:
        raise UnreadableNotebook(f"not JSON ({exc.__class__.__name__})") from exc
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise UnreadableNotebook("not a notebook (no cells)")
    scraps: dict[str, Any] = {}
    all_names: dict[str, None] = {}
    for cell in nb["cells"]:
        if not isinstance(cell, dict):
            raise UnreadableNotebook("not a notebook (a cell is not an object)")
        for output in cell.get("outputs") or ():
            if not isinstance(output, dict):
                continue
            for name, _encoder, data in _output_scraps(output):
                all_names[name] = None
                if names is None or name in names:
                    scraps[name] = data
    metadata = nb.get("metadata")
    papermill = metadata.get("papermill") if isinstance(metadata, dict) else None
    return scraps, tuple(all_names), papermill if isinstance(papermill, dict) else {}


def read_indexed(path: Path) -> IndexedNotebook:
    """Read one executed notebook into an IndexedNotebook (fingerprint taken first)."""
    parsed = parse_trail_name(path)
    if parsed is None:
        raise ValueError(f"{path}: not a trail name")
    step, stamp = parsed
    try:
        fingerprint = fingerprint_of(path.stat())
    except FileNotFoundError:
        fingerprint = (0, 0, 0, 0)
    base = IndexedNotebook(
        path=path,
        env=path.parent.parent.name,
        model=path.parent.name,
        step=step,
        stamp=stamp,
        state=UNREADABLE,
        run=None,
        fingerprint=fingerprint,
    )
    try:
        scraps, names, papermill = read_notebook_scraps(path.read_bytes(), INDEXED_SCRAPS | {"run"})
    except (OSError, UnreadableNotebook) as exc:
        return replace(base, problem=str(exc))
    run = scraps.pop("run", None)
    parameters = papermill.get("parameters")
    if isinstance(run, dict):
        state, problem = OK, None
    elif papermill.get("end_time") is None and papermill.get("exception") is None:
        run, state, problem = None, RUNNING, "no run scrap yet"
    else:
        run, state, problem = None, UNREADABLE, "no run scrap"
    return replace(
        base,
        state=state,
        run=run,
        scraps=scraps,
        scrap_names=names,
        parameters=dict(parameters) if isinstance(parameters, dict) else {},
        problem=problem,
    )


def fingerprint_of(st: os.stat_result) -> Fingerprint:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


# --- the index ----------------------------------------------------------------------------


def _to_row(entry: IndexedNotebook, relpath: str) -> tuple[Any, ...]:
    payload = {
        "state": entry.state,
        "run": entry.run,
        "scraps": entry.scraps,
        "names": list(entry.scrap_names),
        "parameters": entry.parameters,
        "problem": entry.problem,
    }
    size, mtime_ns, ctime_ns, ino = entry.fingerprint
    return (
        relpath,
        entry.env,
        entry.model,
        size,
        mtime_ns,
        ctime_ns,
        ino,
        json.dumps(payload, default=str),
    )


def _from_row(root: Path, relpath: str, fingerprint: Fingerprint, payload: str) -> IndexedNotebook:
    path = root / relpath
    parsed = parse_trail_name(path)
    assert parsed is not None  # only trail names are stored
    data = json.loads(payload)
    return IndexedNotebook(
        path=path,
        env=path.parent.parent.name,
        model=path.parent.name,
        step=parsed[0],
        stamp=parsed[1],
        state=data["state"],
        run=data["run"],
        scraps=data["scraps"],
        scrap_names=tuple(data["names"]),
        parameters=data["parameters"],
        problem=data["problem"],
        fingerprint=fingerprint,
    )


_SCHEMA = (
    "CREATE TABLE notebooks (relpath TEXT PRIMARY KEY, env TEXT NOT NULL, model TEXT NOT NULL,"
    " size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,"
    " ino INTEGER NOT NULL, payload TEXT NOT NULL)",
    "CREATE INDEX notebooks_env_model ON notebooks (env, model)",
)


@dataclass
class RefreshStats:
    """What the last lookup did: notebooks listed, read from disk, served from the index."""

    listed: int = 0
    read: int = 0
    cached: int = 0
    dropped: int = 0
    index_used: bool = True


class TrailIndex:
    """The index of one executed root. ``entries()`` is always current (see module doc)."""

    def __init__(self, executed_root: Path, index_path: Path | None = None) -> None:
        self.root = Path(executed_root)
        self.index_path = index_path or self.root / INDEX_FILE_NAME
        self.last = RefreshStats()

    def entries(self, env: str | None = None, model: str | None = None) -> list[IndexedNotebook]:
        """Every executed notebook under the root (filtered), oldest first by name."""
        paths = trail_notebooks(self.root, env, model)
        stats = RefreshStats(listed=len(paths))
        conn = self._connect() if paths or self.index_path.exists() else None
        stats.index_used = conn is not None
        try:
            rows = self._rows(conn, env, model) if conn is not None else {}
            now_ns = time.time_ns()
            recent_ns = now_ns - int(RECENT_S * 1e9)
            result: list[IndexedNotebook] = []
            upserts: list[tuple[Any, ...]] = []
            seen: set[str] = set()
            for path in paths:
                relpath = path.relative_to(self.root).as_posix()
                try:
                    fingerprint = fingerprint_of(path.stat())
                except FileNotFoundError:
                    continue  # deleted between listing and stat: gone
                seen.add(relpath)
                cached = rows.get(relpath)
                if cached is not None and cached[0] == fingerprint:
                    result.append(_from_row(self.root, relpath, fingerprint, cached[1]))
                    stats.cached += 1
                    continue
                entry = read_indexed(path)
                stats.read += 1
                result.append(entry)
                if entry.fingerprint[1] < recent_ns and entry.fingerprint == fingerprint:
                    upserts.append(_to_row(entry, relpath))
            gone = [relpath for relpath in rows if relpath not in seen]
            stats.dropped = len(gone)
            if conn is not None and (upserts or gone):
                self._write(conn, upserts, gone)
        finally:
            if conn is not None:
                conn.close()
        self.last = stats
        return result

    # --- sqlite ---------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection | None:
        """The index, created or rebuilt as needed; None when it cannot be used."""
        for _attempt in range(2):
            try:
                self.index_path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(
                    str(self.index_path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
                )
            except (OSError, sqlite3.Error):
                return None
            try:
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version != INDEX_FORMAT:
                    conn.execute("BEGIN IMMEDIATE")
                    conn.execute("DROP TABLE IF EXISTS notebooks")
                    for statement in _SCHEMA:
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {INDEX_FORMAT}")
                    conn.execute("COMMIT")
                return conn
            except sqlite3.DatabaseError as exc:
                conn.close()
                if not _is_corrupt(exc):
                    return None
                # Not a database: it is only a cache, so start a new one.
                _remove_index_files(self.index_path)
        return None

    def _rows(
        self, conn: sqlite3.Connection, env: str | None, model: str | None
    ) -> dict[str, tuple[Fingerprint, str]]:
        query = "SELECT relpath, size, mtime_ns, ctime_ns, ino, payload FROM notebooks"
        where, args = [], []
        if env is not None:
            where.append("env = ?")
            args.append(env)
        if model is not None:
            where.append("model = ?")
            args.append(model)
        if where:
            query += " WHERE " + " AND ".join(where)
        try:
            fetched = conn.execute(query, args).fetchall()
        except sqlite3.Error:
            return {}
        return {r[0]: ((r[1], r[2], r[3], r[4]), r[5]) for r in fetched}

    def _write(
        self, conn: sqlite3.Connection, upserts: Iterable[tuple[Any, ...]], gone: list[str]
    ) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT OR REPLACE INTO notebooks "
                "(relpath, env, model, size, mtime_ns, ctime_ns, ino, payload) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                upserts,
            )
            conn.executemany("DELETE FROM notebooks WHERE relpath = ?", [(g,) for g in gone])
            conn.execute("COMMIT")
        except sqlite3.Error:
            # A read-only trail or a writer holding the lock past the timeout: the answer
            # is already computed from the files; only the cache misses this update.
            if conn.in_transaction:
                conn.execute("ROLLBACK")


def _is_corrupt(exc: sqlite3.DatabaseError) -> bool:
    message = str(exc).lower()
    return "not a database" in message or "malformed" in message


def _remove_index_files(index_path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        try:
            Path(f"{index_path}{suffix}").unlink()
        except FileNotFoundError:
            pass
        except OSError:
            return


def trail_entries(
    executed_root: Path, env: str | None = None, model: str | None = None
) -> list[IndexedNotebook]:
    """Every executed notebook under ``executed_root`` (filtered), current, via the index."""
    return TrailIndex(executed_root).entries(env, model)
