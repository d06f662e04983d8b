"""The filesystem side of the truss content hash: walk, read, digest, remember.

The algorithm is ``zoo_ops.domain.truss_hash`` (truss 0.18.36's ``directory_content_hash``,
bit for bit). This module feeds it from disk as fast as the bytes can be read:

- One ``os.scandir`` walk that classifies entries from ``d_type`` (no stat per entry),
  prunes ignored directories and never enters symlinked directories.
- Ignore patterns folded into one regex tried on the entry's name (see ``IgnoreRules``),
  not ~80 regex calls per path as pathspec makes them.
- Large files (``LARGE_FILE_BYTES`` and up) are hashed one at a time with blake3's own
  multithreading over an mmap of the file: every core works on one file, which is
  the throughput limit for a big weights file.
- Small files are read and hashed by a thread pool, in batches, with raw ``os.read``
  calls; blake3 and file reads release the GIL.
- ``HashCache``: a per-environment SQLite table of (path, size, mtime_ns, inode,
  ctime_ns) -> file digest, so an unchanged file is not read again, plus one row per
  truss of (fingerprint of its listing and stamps) -> hash, so an unchanged tree costs
  a walk and a ``stat`` per file and nothing else.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import marshal
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from blake3 import blake3

from zoo_ops.domain.truss_content import (
    LINK_BROKEN,
    LINK_LOOP,
    TARGET_DIRECTORY,
    TARGET_FILE,
    LinkTarget,
    SpecialFile,
    check_truss_content,
    followed_files,
    link_text,
)
from zoo_ops.domain.truss_hash import (
    DEFAULT_TRUSS_IGNORE_PATTERNS,
    TRUSS_IGNORE_FILENAME,
    EntryKind,
    IgnoreRules,
    directory_content_hash,
    parse_truss_ignore,
    path_sort_key,
    select_children,
)
from zoo_ops.errors import TrussError
from zoo_ops.files import FileRefused, read_regular_bytes

log = logging.getLogger(__name__)

# At this size a file is worth all cores to itself (blake3 splits it into chunks across
# threads); below it, hashing several files at once parallelises better.
LARGE_FILE_BYTES = 8 * 1024 * 1024
# Read size for medium files: big sequential reads keep syscalls off the profile.
READ_CHUNK_BYTES = 1024 * 1024
# First read of every file: most truss files fit, so a file costs open, read, close.
FIRST_READ_BYTES = 256 * 1024
# config.yaml, examples.yaml, .truss_ignore: text a person wrote, never this large.
MAX_TRUSS_TEXT_BYTES = 16 * 1024 * 1024
# Small files per thread-pool task: one task per file costs more than reading the file.
FILES_PER_TASK = 64
# A cached digest is trusted only for files whose mtime and ctime are at least this much
# older than the moment the digest was computed. Filesystem timestamps are coarse (a
# kernel tick on ext4, 2 s on FAT, server clocks on NFS): a file rewritten within the
# same tick keeps its mtime, so an entry taken that close to the last change could hide
# a later same-size edit. Git calls these entries "racy" and re-reads them; so do we.
RACY_WINDOW_NS = 2_000_000_000


def load_ignore_patterns(truss_dir: str | os.PathLike[str]) -> list[str]:
    """The ignore patterns truss archives ``truss_dir`` with.

    The truss's own ``.truss_ignore`` if it exists (it replaces, not extends, the
    default), else truss's fixed default list.
    """
    ignore_file = Path(truss_dir) / TRUSS_IGNORE_FILENAME
    if not ignore_file.exists():
        return list(DEFAULT_TRUSS_IGNORE_PATTERNS)
    return parse_truss_ignore(read_regular_text(ignore_file))


def read_regular_text(path: Path) -> str:
    """The UTF-8 text of ``path``, which must be a regular file (a link to one counts), read
    by :func:`zoo_ops.files.read_regular_bytes`: a FIFO or a device named config.yaml or
    .truss_ignore is refused in one line (TrussError) instead of hanging the preflight."""
    try:
        data = read_regular_bytes(path, MAX_TRUSS_TEXT_BYTES)
    except FileRefused as exc:
        if exc.not_regular:
            raise TrussError(
                f"{path}: not a regular file ({exc}); replace it with a file"
            ) from None
        raise TrussError(f"{path}: {exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TrussError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


# What must be unchanged for a cached digest to still be the file's digest:
# (size, mtime_ns, inode, ctime_ns) of the file (following symlinks). A plain tuple:
# the walk makes one per file and the fingerprint marshals them.
FileStamp = tuple[int, int, int, int]


def _stamp(st: os.stat_result) -> FileStamp:
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


class HashCache:
    """Persistent (path, size, mtime_ns, inode, ctime_ns) -> blake3 file digest.

    One SQLite file per environment (e.g. ``.zoo/<env>/hash-cache.sqlite``). Rows are
    keyed by the file's absolute path (the truss root resolved once), so several trusses
    share one cache. A second table keeps, per truss root, the fingerprint of its last
    listing (every unignored path, its kind, and each file's stamp, plus the patterns)
    with the hash it had: a re-hash whose walk gives the same fingerprint returns it.

    Safe for concurrent processes: WAL journal, a busy timeout, and every write is one
    transaction of self-consistent rows (a stamp with the digest computed for that very
    stamp); when two writers race, either row is right for its stamp, and a stale stamp
    never matches again.

    Never wrong after an in-place change: a row hits only when size, mtime_ns, inode and
    ctime_ns all match, and rows are written only for files that did not change while
    being read and whose mtime and ctime were older than ``racy_window_ns`` when the
    hash started (so any later write, even a same-size one, moves the stamp). The cache
    is an accelerator: if the database cannot be read or written, the hash is computed
    anyway and a warning is logged.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, racy_window_ns: int = RACY_WINDOW_NS
    ) -> None:
        self.path = Path(path)
        self.racy_window_ns = racy_window_ns
        # One connection per process, opened on first use; a lock serialises threads.
        self._conn: sqlite3.Connection | None = None
        self._conn_pid = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None or self._conn_pid != os.getpid():
                # A connection must not cross a fork: the child opens its own.
                self._conn = self._connect()
                self._conn_pid = os.getpid()
            try:
                yield self._conn
            except sqlite3.Error:
                self._conn.close()
                self._conn = None  # reopen next time: the file may have been repaired
                raise

    def close(self) -> None:
        """Close this process's connection (it reopens on next use)."""
        with self._lock:
            if self._conn is not None and self._conn_pid == os.getpid():
                self._conn.close()
            self._conn = None

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS file_digest ("
            " path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
            " ino INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, digest BLOB NOT NULL"
            ") WITHOUT ROWID"
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS tree_hash ("
            " root TEXT PRIMARY KEY, fingerprint BLOB NOT NULL, hash TEXT NOT NULL"
            ") WITHOUT ROWID"
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS ignore_memo ("
            " root TEXT PRIMARY KEY, patterns BLOB NOT NULL, decisions BLOB NOT NULL"
            ") WITHOUT ROWID"
        )
        return conn

    def ignore_decisions(self, root: str, patterns: Sequence[str]) -> dict[str, bool]:
        """The ignore decisions last recorded for ``root`` under exactly ``patterns``."""
        try:
            with self._connection() as conn:
                row = conn.execute(
                    "SELECT decisions FROM ignore_memo WHERE root = ? AND patterns = ?",
                    (root, _patterns_key(patterns)),
                ).fetchone()
            decisions = marshal.loads(row[0]) if row is not None else {}
        except (sqlite3.Error, ValueError, EOFError, TypeError) as exc:
            log.warning("truss hash cache %s unreadable (%s); hashing without it", self.path, exc)
            return {}
        return decisions if isinstance(decisions, dict) else {}

    def tree_hash(self, root: str, fingerprint: bytes) -> str | None:
        """The hash recorded for ``root`` if its recorded fingerprint is ``fingerprint``."""
        try:
            with self._connection() as conn:
                row = conn.execute(
                    "SELECT hash FROM tree_hash WHERE root = ? AND fingerprint = ?",
                    (root, fingerprint),
                ).fetchone()
        except sqlite3.Error as exc:
            log.warning("truss hash cache %s unreadable (%s); hashing without it", self.path, exc)
            return None
        return None if row is None else str(row[0])

    def load_under(self, root: str) -> dict[str, tuple[FileStamp, bytes]]:
        """Every cached file row whose path lies below the absolute directory ``root``."""
        prefix = root.rstrip("/") + "/"
        # "/" is 0x2F and "0" is 0x30: [prefix, prefix-with-"0") is exactly the subtree.
        upper = prefix[:-1] + "0"
        try:
            with self._connection() as conn:
                rows = conn.execute(
                    "SELECT path, size, mtime_ns, ino, ctime_ns, digest FROM file_digest"
                    " WHERE path >= ? AND path < ?",
                    (prefix, upper),
                ).fetchall()
        except sqlite3.Error as exc:
            log.warning("truss hash cache %s unreadable (%s); hashing without it", self.path, exc)
            return {}
        return {
            path: ((size, mtime_ns, ino, ctime_ns), bytes(digest))
            for path, size, mtime_ns, ino, ctime_ns, digest in rows
        }

    def store(
        self,
        rows: Sequence[tuple[str, FileStamp, bytes]],
        tree: tuple[str, bytes, str] | None = None,
        decisions: tuple[str, Sequence[str], dict[str, bool]] | None = None,
    ) -> None:
        """Record (absolute path, stamp, digest) rows, a (root, fingerprint, hash), and a
        (root, patterns, ignore decisions) memo, in one transaction."""
        if not rows and tree is None and decisions is None:
            return
        try:
            with self._connection() as conn, conn:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(
                    "INSERT OR REPLACE INTO file_digest"
                    " (path, size, mtime_ns, ino, ctime_ns, digest) VALUES (?, ?, ?, ?, ?, ?)",
                    [(path, *stamp, digest) for path, stamp, digest in rows],
                )
                if tree is not None:
                    conn.execute(
                        "INSERT OR REPLACE INTO tree_hash (root, fingerprint, hash)"
                        " VALUES (?, ?, ?)",
                        tree,
                    )
                if decisions is not None:
                    root, patterns, memo = decisions
                    conn.execute(
                        "INSERT OR REPLACE INTO ignore_memo (root, patterns, decisions)"
                        " VALUES (?, ?, ?)",
                        (root, _patterns_key(patterns), marshal.dumps(memo)),
                    )
        except sqlite3.Error as exc:
            log.warning("truss hash cache %s not updated (%s)", self.path, exc)

    def settled(self, stamp: FileStamp, started_ns: int) -> bool:
        """Whether a file with ``stamp`` had not changed for ``racy_window_ns`` when a hash
        started at ``started_ns``: then any later write moves its stamp."""
        _size, mtime_ns, _ino, ctime_ns = stamp
        return max(mtime_ns, ctime_ns) + self.racy_window_ns <= started_ns


def _list_children(abs_dir: str, dir_fd: int) -> tuple[list[tuple[str, EntryKind]], set[str]]:
    """(name, kind) of each entry of an open directory, as ``os.walk`` and truss see it,
    and the names of the entries that are symlinks (from ``d_type``: no extra call).

    ``is_dir()`` follows symlinks and a symlinked directory is listed but not entered
    (DIRECTORY_LINK); ``is_file()`` follows symlinks, so a symlink to a file is a FILE
    hashed by its target's bytes; anything else (broken link, FIFO, socket) is OTHER.
    """
    listed: list[tuple[str, EntryKind]] = []
    links: set[str] = set()
    with os.scandir(dir_fd) as it:
        for entry in it:
            name = entry.name
            if not name.isascii():
                _require_utf8(name, os.path.join(abs_dir, name))
            if entry.is_symlink():
                links.add(name)
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                link = name in links
                listed.append((name, EntryKind.DIRECTORY_LINK if link else EntryKind.DIRECTORY))
                continue
            try:
                is_file = entry.is_file()
            except OSError:
                is_file = False
            listed.append((name, EntryKind.FILE if is_file else EntryKind.OTHER))
    return listed, links


_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "FIFO"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
)


def _special_kind(mode: int) -> str:
    for test, name in _SPECIAL_KINDS:
        if test(mode):
            return name
    return "special file"


def _resolve_link(abs_path: str, kind: EntryKind, rel: str) -> LinkTarget:
    """What the symlink at ``abs_path`` resolves to (its whole chain), for the rule."""
    try:
        resolved = os.path.realpath(abs_path, strict=True)
    except OSError as exc:
        return LinkTarget(rel, LINK_LOOP if exc.errno == errno.ELOOP else LINK_BROKEN)
    if kind is EntryKind.FILE:
        return LinkTarget(rel, resolved, TARGET_FILE)
    if kind is EntryKind.DIRECTORY_LINK:
        return LinkTarget(rel, resolved, TARGET_DIRECTORY)
    try:
        mode = os.stat(resolved).st_mode
    except OSError:
        return LinkTarget(rel, LINK_BROKEN)
    return LinkTarget(rel, resolved, _special_kind(mode))


@dataclass(frozen=True)
class TrussTree:
    """One walk of a truss folder: what the hash reads and the deploy writes.

    ``entries``: every kept (relative path, kind), in walk order; ``stamps``: each FILE's
    stamp when asked for; ``dir_links``: each directory link's target, relative to the
    truss folder; ``followed``: the file links (hashed and deployed as their target's
    bytes). See ``zoo_ops.domain.truss_content`` for the rule the walk enforces.
    """

    root: str
    entries: list[tuple[str, EntryKind]]
    stamps: dict[str, FileStamp | None]
    dir_links: dict[str, str]
    followed: frozenset[str]


def walk_truss(root: str, rules: IgnoreRules, *, want_stamps: bool = False) -> TrussTree:
    """The domain's ``walk_unignored`` on disk, with the content rule applied.

    Same steps as ``walk_unignored`` (``select_children`` decides), inlined so a kept
    file is ``stat``-ed relative to its open directory while the walk is there. Each kept
    symlink is resolved and each kept special file named, then
    ``domain.truss_content.check_truss_content`` refuses (TrussError, one line) a link
    that leaves the truss, a broken link, a loop or a special file.
    """
    entries: list[tuple[str, EntryKind]] = []
    stamps: dict[str, FileStamp | None] = {}
    links: list[LinkTarget] = []
    specials: list[SpecialFile] = []
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        abs_dir = f"{root}/{rel_dir}" if rel_dir else root
        try:
            dir_fd = os.open(abs_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise TrussError(f"cannot list {abs_dir}: {exc.strerror or exc}") from exc
        try:
            listed, link_names = _list_children(abs_dir, dir_fd)
            children = select_children(rel_dir, listed, rules)
            for rel, kind in children:
                name = rel.rpartition("/")[2]
                if kind is EntryKind.DIRECTORY:
                    pending.append(rel)
                    continue
                if name in link_names:
                    links.append(_resolve_link(f"{abs_dir}/{name}", kind, rel))
                elif kind is EntryKind.OTHER:
                    mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
                    specials.append(SpecialFile(rel, _special_kind(mode)))
                if want_stamps and kind is EntryKind.FILE:
                    try:
                        stamps[rel] = _stamp(os.stat(name, dir_fd=dir_fd))
                    except OSError:
                        stamps[rel] = None  # vanished: reading it will say so
        except OSError as exc:
            raise TrussError(f"cannot list {abs_dir}: {exc.strerror or exc}") from exc
        finally:
            os.close(dir_fd)
        entries.extend(children)
    dir_links: dict[str, str] = {}
    if links or specials:
        kept_dirs = {rel for rel, kind in entries if kind is EntryKind.DIRECTORY}
        dir_links = check_truss_content(os.path.realpath(root), root, links, specials, kept_dirs)
    return TrussTree(root, entries, stamps, dir_links, followed_files(links))


def walk_truss_folder(path: str | os.PathLike[str]) -> TrussTree:
    """``walk_truss`` of a truss folder with the patterns truss archives it with: what
    the deploy copies. TrussError (one line) when the folder or its content is refused."""
    root = _truss_root(path)
    return walk_truss(root, IgnoreRules(load_ignore_patterns(root)))


def _truss_root(path: str | os.PathLike[str]) -> str:
    root = os.fspath(path)
    if not os.path.isdir(root):
        what = "does not exist" if not os.path.lexists(root) else "is not a directory"
        raise TrussError(f"truss folder {root} {what}; pass the folder that holds config.yaml")
    return root


def _patterns_key(patterns: Sequence[str]) -> bytes:
    return blake3("\n".join(["truss-ignore-memo-v1", *patterns]).encode("utf-8")).digest()


def _require_utf8(name: str, path: str) -> None:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise TrussError(
            f"{path!r} has a name that is not UTF-8, which truss cannot hash; rename it"
        ) from exc


@dataclass
class _FileJob:
    """One file to read: where it is, what the walk saw, what reading found."""

    rel: str
    abs_path: str
    stamp: FileStamp | None  # from the walk, when a cache is in use
    digest: bytes | None = None
    large: bool = False
    # Whether the file's stamp after reading equals ``stamp``: the bytes are the stamp's.
    stable: bool = False


_thread_buffers = threading.local()


def _read_buffer() -> memoryview:
    buffer = getattr(_thread_buffers, "buffer", None)
    if buffer is None:
        buffer = _thread_buffers.buffer = memoryview(bytearray(READ_CHUNK_BYTES))
    return buffer  # type: ignore[no-any-return]


def _digest_small(job: _FileJob) -> None:
    """Read and hash one file on this thread, or mark it large for the big-file pass.

    A file is regular here (the walk's ``is_file()``), so a short read is its end: a
    file under ``FIRST_READ_BYTES`` costs open, read, close.
    """
    try:
        fd = os.open(job.abs_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise TrussError(f"cannot read {job.abs_path}: {exc.strerror or exc}") from exc
    try:
        data = os.read(fd, FIRST_READ_BYTES)
        if len(data) < FIRST_READ_BYTES:
            digest = blake3(data).digest()
        elif os.fstat(fd).st_size >= LARGE_FILE_BYTES:
            job.large = True
            return
        else:
            hasher = blake3(data)
            view = _read_buffer()
            while n := os.readv(fd, [view]):
                hasher.update(view[:n])
            digest = hasher.digest()
        job.digest = digest
        if job.stamp is not None:
            job.stable = _stamp(os.fstat(fd)) == job.stamp
    except OSError as exc:
        raise TrussError(f"cannot read {job.abs_path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)


def _digest_large(job: _FileJob) -> None:
    """Hash one big file with every core: blake3's multithreaded mode over an mmap."""
    try:
        hasher = blake3(max_threads=blake3.AUTO)
        hasher.update_mmap(job.abs_path)
        job.digest = hasher.digest()
        if job.stamp is not None:
            job.stable = _stamp(os.stat(job.abs_path)) == job.stamp
    except OSError as exc:
        raise TrussError(f"cannot read {job.abs_path}: {exc.strerror or exc}") from exc


def _digest_jobs(jobs: list[_FileJob], workers: int) -> None:
    """Fill ``job.digest`` for every job: small files on a thread pool, then large ones."""
    batches = [jobs[i : i + FILES_PER_TASK] for i in range(0, len(jobs), FILES_PER_TASK)]

    def run_batch(batch: list[_FileJob]) -> None:
        for job in batch:
            _digest_small(job)

    if len(batches) <= 1 or workers <= 1:
        for batch in batches:
            run_batch(batch)
    else:
        with ThreadPoolExecutor(max_workers=min(workers, len(batches))) as pool:
            for _ in pool.map(run_batch, batches):
                pass
    for job in jobs:
        if job.large:
            _digest_large(job)


def default_workers() -> int:
    """Threads for small files: reads and blake3 release the GIL, so a few per core."""
    return min(8, 2 * (os.cpu_count() or 1))


def _tree_fingerprint(
    patterns: Sequence[str],
    entries: list[tuple[str, EntryKind]],
    stamps: dict[str, FileStamp | None],
) -> bytes | None:
    """blake3 of the patterns, every kept (path, kind) and every file's stamp, in walk
    order: equal fingerprints mean equal hashes. A different walk order only costs a
    miss. None when a file has no stamp (it vanished during the walk)."""
    if None in stamps.values():
        return None
    listing = [(rel, kind.value) for rel, kind in entries if kind is not EntryKind.FILE]
    record = ("truss-hash-tree-v1", tuple(patterns), listing, list(stamps.items()))
    return blake3(marshal.dumps(record)).digest()


def truss_content_hash(
    path: str | os.PathLike[str],
    *,
    ignore: bool = True,
    cache: HashCache | None = None,
    patterns: Sequence[str] | None = None,
    workers: int | None = None,
) -> str:
    """truss 0.18.36's content hash of the truss folder ``path`` (64 hex characters).

    ``ignore``: apply the patterns truss archives with (the truss's ``.truss_ignore``,
    else truss's default list); off, every file and directory counts. ``patterns``
    replaces those patterns when given. ``cache``: skip reading files (and, when nothing
    changed, everything but the walk) whose stamps it knows. ``workers``: threads for
    small files (default ``default_workers()``).
    """
    root = _truss_root(path)
    if patterns is None:
        patterns = load_ignore_patterns(root) if ignore else []
    root_key = os.path.realpath(root)
    memo = cache.ignore_decisions(root_key, patterns) if cache is not None else None
    rules = IgnoreRules(patterns, memo)
    started_ns = time.time_ns()

    tree = walk_truss(root, rules, want_stamps=cache is not None)
    entries, stamps = tree.entries, tree.stamps
    digests: dict[str, bytes] = {}
    fingerprint: bytes | None = None
    cached: dict[str, tuple[FileStamp, bytes]] = {}
    new_memo = None
    if cache is not None and rules.new_decisions:
        new_memo = (root_key, patterns, {key: rules.decisions[key] for key in rules.asked})
    if cache is not None:
        fingerprint = _tree_fingerprint(patterns, entries, stamps)
        if fingerprint is not None and (known := cache.tree_hash(root_key, fingerprint)):
            if new_memo is not None:
                cache.store([], decisions=new_memo)
            return known
        cached = cache.load_under(root_key)
    jobs = []
    for rel, kind in entries:
        if kind is not EntryKind.FILE:
            continue
        stamp = stamps.get(rel)
        hit = cached.get(_cache_key(root_key, rel)) if cached else None
        if hit is not None and stamp is not None and hit[0] == stamp:
            digests[rel] = hit[1]
        else:
            jobs.append(_FileJob(rel, f"{root}/{rel}", stamp))

    _digest_jobs(jobs, workers if workers is not None else default_workers())
    for job in jobs:
        assert job.digest is not None
        digests[job.rel] = job.digest
    result = directory_content_hash(entries, digests.__getitem__)

    if cache is not None:
        trusted = [
            job
            for job in jobs
            if job.stable and job.stamp is not None and cache.settled(job.stamp, started_ns)
        ]
        rows = [(_cache_key(root_key, j.rel), j.stamp, j.digest) for j in trusted]
        everything_trusted = len(trusted) == len(jobs) and fingerprint is not None
        cache.store(
            rows,  # type: ignore[arg-type]  # stamp and digest are set on trusted jobs
            tree=(root_key, fingerprint, result) if everything_trusted and fingerprint else None,
            decisions=new_memo,
        )
    return result


def _cache_key(root_key: str, rel: str) -> str:
    return f"{root_key.rstrip('/')}/{rel}"


# --- the deploy's copy: exactly what the hash reads ------------------------------------------


def copy_truss_content(source: str | os.PathLike[str], destination: str | os.PathLike[str]) -> str:
    """Copy what truss archives of the truss folder ``source`` into ``destination`` (which
    must not exist; its parent must) and return the content hash of what was written.

    Algorithm: one ``walk_truss`` with the truss's ignore patterns, the walk the hash
    makes, so its content rule refuses the same entries; then, parents first: a kept
    directory is made, a directory link is written as a relative link to the same
    directory of the copy, a file (a followed file link too) is copied byte for byte
    with its permission bits while its blake3 digest is taken from the bytes written.
    The hash of the copy is ``directory_content_hash`` of the walk's entries with those
    digests: equal to ``truss_content_hash(source)`` unless the folder changed since it
    was hashed, which the caller checks.
    """
    root = _truss_root(source)
    tree = walk_truss(root, IgnoreRules(load_ignore_patterns(root)))
    target = os.fspath(destination)
    os.mkdir(target)
    digests: dict[str, bytes] = {}
    for rel, kind in sorted(tree.entries, key=lambda entry: path_sort_key(entry[0])):
        written = f"{target}/{rel}"
        if kind is EntryKind.DIRECTORY:
            os.mkdir(written)
        elif kind is EntryKind.DIRECTORY_LINK:
            os.symlink(link_text(rel, tree.dir_links[rel]), written)
        elif kind is EntryKind.FILE:
            digests[rel] = _copy_file(f"{root}/{rel}", written, follow=rel in tree.followed)
    return directory_content_hash(tree.entries, digests.__getitem__)


def _copy_file(source: str, target: str, *, follow: bool) -> bytes:
    """Copy one regular file, returning the blake3 digest of the bytes written.

    The source is opened without following a link unless the walk accepted it as a
    followed link, and non-blocking, so a file swapped for a link or a FIFO since the
    walk is refused rather than followed outside or waited on.
    """
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | (0 if follow else os.O_NOFOLLOW)
    try:
        src = os.open(source, flags)
    except OSError as exc:
        raise TrussError(f"cannot read {source}: {exc.strerror or exc}") from exc
    try:
        info = os.fstat(src)
        if not stat.S_ISREG(info.st_mode):
            raise TrussError(f"{source} is no longer a regular file; hash and deploy again")
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            hasher = blake3()
            view = _read_buffer()
            while n := os.readv(src, [view]):
                chunk = view[:n]
                hasher.update(chunk)
                while chunk:
                    chunk = chunk[os.write(dst, chunk) :]
            os.fchmod(dst, info.st_mode & 0o777)  # permissions only: no setuid in a deploy
        finally:
            os.close(dst)
    except OSError as exc:
        raise TrussError(f"cannot copy {source}: {exc.strerror or exc}") from exc
    finally:
        os.close(src)
    return hasher.digest()
