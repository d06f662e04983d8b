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

Each notebook is read by :func:`zoo_ops.trail.notebook.read_indexed`, the trail's one reader.

Nothing in the trail is trusted, the index file included: a file under ``ENV/MODEL/``
named ``*.ipynb`` that is not a trail name (``20261399T000000Z-03_migrate.ipynb``), and
every notebook the reader finds unreadable (bad JSON, a scrap of the wrong type, a FIFO,
a directory, no permission), is listed in :attr:`TrailIndex.unreadable` with the reason
and skipped by every reader; a row of the index that does not hold what a row must hold
is a cache miss, never an entry.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo_ops.config import EnvironmentConfig
from zoo_ops.domain.names import name_problem
from zoo_ops.domain.scrap_schema import run_scrap_problem, scrap_problem
from zoo_ops.trail.names import parse_trail_name
from zoo_ops.trail.notebook import (
    OK,
    RUNNING,
    UNREADABLE,
    Fingerprint,
    TrailEntry,
    fingerprint_of,
    read_indexed,
)

INDEX_FILE_NAME = ".index.sqlite"
# Bump when what a row holds changes: an index of another version is rebuilt.
# 2: scraps are checked against their schema before a row is written.
INDEX_FORMAT = 2
NOT_A_TRAIL_NAME = "not named YYYYmmddTHHMMSSZ-STEP.ipynb with a real UTC time"
RECENT_S = 2.0
BUSY_TIMEOUT_MS = 15_000

# The scalar scraps kept besides `run` (DESIGN §5): enough for status, history and the
# gate; anything else is read from the notebook itself.

# --- the index ----------------------------------------------------------------------------


def _to_row(entry: TrailEntry, relpath: str) -> tuple[Any, ...]:
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


@dataclass(frozen=True)
class UnreadableFile:
    """A file of the trail no reader uses, and why."""

    path: Path
    reason: str

    def line(self) -> str:
        """One line for an operator: the file (escaped when its name holds a control or
        undecodable character: one line stays one line), what is wrong, that it was skipped."""
        text = str(self.path)
        shown = text if text.isprintable() else ascii(text)
        return f"unreadable trail file {shown}: {self.reason}; skipped"


def stray_reason(path: Path) -> str | None:
    """Why ``ENV/MODEL/NAME.ipynb`` is no trail notebook (None: it is one): its folders must
    be an environment and a model name, its name ``STAMP-STEP.ipynb`` with a real time."""
    problem = name_problem("environment", path.parent.parent.name) or name_problem(
        "model", path.parent.name
    )
    if problem is not None:
        return f"its folder is not ENV/MODEL: {problem}"
    return None if parse_trail_name(path) is not None else NOT_A_TRAIL_NAME


def _row_payload(payload: str) -> dict[str, Any] | None:
    """A row's payload when it holds what :func:`_to_row` writes; else None (re-read)."""
    try:
        data = json.loads(payload)
    except (TypeError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("state") not in (OK, RUNNING, UNREADABLE):
        return None
    run, problem = data.get("run"), data.get("problem")
    shapes_ok = (
        isinstance(data.get("scraps"), dict)
        and isinstance(data.get("names"), list)
        and all(isinstance(n, str) for n in data["names"])
        and isinstance(data.get("parameters"), dict)
        and (problem is None or isinstance(problem, str))
    )
    if not shapes_ok or (run is None) != (data["state"] != OK):
        return None
    if run is not None and run_scrap_problem(run) is not None:
        return None
    if any(scrap_problem(name, value) for name, value in data["scraps"].items()):
        return None
    return data


def _from_row(
    root: Path, relpath: str, fingerprint: Fingerprint, payload: str
) -> TrailEntry | None:
    """The entry a row caches; None when the row is not one this version wrote."""
    path = root / relpath
    parsed = parse_trail_name(path)
    data = _row_payload(payload)
    if parsed is None or data is None:
        return None
    return TrailEntry(
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

    @classmethod
    def of(cls, config: EnvironmentConfig) -> TrailIndex:
        """The index of an environment's trail, a local folder or a remote one's cache."""
        return cls(config.executed_root_path, remote=config.executed_root_url)

    def __init__(
        self, executed_root: Path, index_path: Path | None = None, *, remote: str | None = None
    ) -> None:
        """``remote``: the object-storage URL ``executed_root`` is the local cache of;
        every listing first brings that cache up to date (zoo_ops.trail.mirror.sync)."""
        self.root = Path(executed_root)
        self.remote = remote
        self.index_path = index_path or self.root / INDEX_FILE_NAME
        self.last = RefreshStats()
        self.unreadable: list[UnreadableFile] = []

    def listing(
        self, env: str | None = None, model: str | None = None
    ) -> tuple[list[Path], list[UnreadableFile]]:
        """(trail notebooks oldest first by name, ``*.ipynb`` files that are not trail names)."""
        if self.remote is not None:
            from zoo_ops.trail.mirror import sync

            sync(self.remote, env, model)
        if not self.root.is_dir():
            return [], []
        paths: list[Path] = []
        strays: list[UnreadableFile] = []
        for path in self.root.glob(f"{env or '*'}/{model or '*'}/*.ipynb"):
            reason = stray_reason(path)
            if reason is not None:
                strays.append(UnreadableFile(path, reason))
            else:
                paths.append(path)
        paths.sort(key=lambda p: (p.name, str(p)))
        strays.sort(key=lambda u: str(u.path))
        return paths, strays

    def entries(self, env: str | None = None, model: str | None = None) -> list[TrailEntry]:
        """Every executed notebook under the root (filtered), oldest first by name; what
        cannot be read is also in :attr:`unreadable`, with the reason."""
        paths, strays = self.listing(env, model)
        stats = RefreshStats(listed=len(paths))
        conn = self._connect() if paths or self.index_path.exists() else None
        stats.index_used = conn is not None
        try:
            rows = self._rows(conn, env, model) if conn is not None else {}
            now_ns = time.time_ns()
            recent_ns = now_ns - int(RECENT_S * 1e9)
            result: list[TrailEntry] = []
            upserts: list[tuple[Any, ...]] = []
            seen: set[str] = set()
            for path in paths:
                relpath = path.relative_to(self.root).as_posix()
                try:
                    fingerprint: Fingerprint | None = fingerprint_of(path.stat())
                except FileNotFoundError:
                    continue  # deleted between listing and stat: gone
                except OSError:
                    fingerprint = None  # the reader says why it cannot be read
                seen.add(relpath)
                cached = rows.get(relpath)
                if cached is not None and cached[0] == fingerprint:
                    hit = _from_row(self.root, relpath, fingerprint, cached[1])
                    if hit is not None:
                        result.append(hit)
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
        self.unreadable = sorted(
            strays
            + [
                UnreadableFile(e.path, e.problem or "unreadable")
                for e in result
                if e.state == UNREADABLE
            ],
            key=lambda u: str(u.path),
        )
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
) -> list[TrailEntry]:
    """Every executed notebook under ``executed_root`` (filtered), current, via the index."""
    return TrailIndex(executed_root).entries(env, model)
