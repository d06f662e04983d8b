"""The local environment's dynamic settings: a ConfigMap manifest file on disk.

Same shape as the seed's ``kubectl edit`` view::

    apiVersion: v1
    kind: ConfigMap
    metadata: {name: baseten-django-dynamic-settings, namespace: baseten, resourceVersion: "7"}
    data: {automaticallyDeployedModelZooModelsWhitelist: '{"iris": {"copy": true}}', ...}

Writers serialise on an inter-process file lock (plus a per-path thread lock) held from
read to write, so zoo-ops writers never conflict. A human editor or a script takes no
lock, so every write is also a compare-and-swap on CONTENT (:func:`conditional_replace`):
the new file is prepared and fsynced beside the old one, the file is re-read and must be
byte-for-byte what was read, and only then swapped in (an exchange that hands back the
displaced file, checked, where the kernel offers one). A hand edit caught this way is never
overwritten: if it touched only other ``data`` keys the change is re-read and re-applied;
if it touched a key this write changes, the write is refused in one line ("the settings
file changed while writing ... rerun"). ``metadata.resourceVersion`` is bumped on every
write. Readers take no lock: a rename is atomic, so a reader sees the old file or the new
one, never half of one.

What no lock-free protocol can give: an editor that read the file BEFORE a zoo-ops write
and saves AFTER it replaces zoo-ops's change (the read-back catches it when it is already
there: the command fails, "a later write undid the change"); and a writer holding the old
file open across the swap writes into the displaced copy (see :func:`conditional_replace`
for the microseconds this leaves).

YAML zoo-ops did not write is loaded through :mod:`zoo_ops.domain.bounded_yaml` (aliases
bounded, numbers finite, strings valid text, no duplicate keys).
"""

from __future__ import annotations

import copy
import ctypes
import errno
import functools
import json
import os
import reprlib
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import filelock
import yaml

from zoo_ops.adapters.settings import ConditionalStore, SettingsSnapshot, WriteConflict
from zoo_ops.domain.bounded_yaml import DocumentRefused, load_bounded, one_line
from zoo_ops.errors import BadInput, ConflictError, NotFound, SettingsError
from zoo_ops.files import fsync_dir, prepared_temp, write_atomic

DEFAULT_NAME = "baseten-django-dynamic-settings"
DEFAULT_NAMESPACE = "baseten"
DEFAULT_LOCK_TIMEOUT_S = 30.0
# How often a process waiting for the file lock retries (filelock's default, 50 ms, makes
# a queue of writers crawl: each hand-over costs a poll interval).
_LOCK_POLL_S = 0.002

_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


def _thread_lock(path: Path) -> threading.Lock:
    """One lock per settings file per process: threads queue here before the file lock."""
    key = str(path.resolve())
    with _thread_locks_guard:
        return _thread_locks.setdefault(key, threading.Lock())


@dataclass(frozen=True)
class _FileState:
    """What a write needs from the read: the exact bytes (the precondition) and the manifest."""

    raw: bytes
    manifest: dict[str, Any]


def parse_manifest(raw: bytes, where: str) -> tuple[dict[str, Any], SettingsSnapshot]:
    """Parse a ConfigMap manifest; ``data`` must map strings to strings, as the API requires.

    A YAML boolean or number where a string belongs (``enabled: true`` unquoted) is refused
    rather than coerced: the real apiserver refuses it too.
    """
    try:
        manifest = load_bounded(raw)
    except DocumentRefused as exc:
        raise SettingsError(
            f"{where}: not a valid YAML ConfigMap manifest: {exc}; fix the file"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("kind") != "ConfigMap":
        raise SettingsError(
            f"{where}: not a ConfigMap manifest (kind: ConfigMap expected); fix the file"
        )
    metadata = manifest.get("metadata") or {}
    data = manifest.get("data") or {}
    if not isinstance(metadata, dict) or not isinstance(data, dict):
        raise SettingsError(f"{where}: metadata and data must be mappings; fix the file")
    for key, value in data.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise SettingsError(
                f"{where}: data.{key} must be a string, got YAML {type(value).__name__} "
                f"{_shown(value)}; quote the value"
            )
    rv = metadata.get("resourceVersion", "")
    return manifest, SettingsSnapshot(
        data=dict(data), resource_version="" if rv is None else str(rv)
    )


def _shown(value: object) -> str:
    """A bad value for a one-line message: its repr, cut short (it may be a huge list)."""
    text = reprlib.repr(value)
    return one_line(text)


def next_resource_version(rv: str) -> str:
    """The resourceVersion after ``rv``: +1 for a decimal one, else start again at 1."""
    return str(int(rv) + 1) if rv.isdigit() else "1"


def dump_manifest(manifest: Mapping[str, Any]) -> bytes:
    """YAML as kubectl shows it: keys in manifest order, long strings on one line."""
    text = yaml.safe_dump(
        dict(manifest), sort_keys=False, default_flow_style=False, allow_unicode=True, width=1 << 30
    )
    return text.encode("utf-8")


def _prepared_temp(path: Path, content: bytes) -> Path:
    """A temp file beside ``path`` holding ``content``, fsynced, with ``path``'s mode.

    Everything slow (writing, fsync) happens here, BEFORE the last comparison, so the
    window between "the file is still what we read" and the swap is a few syscalls.
    """
    return prepared_temp(path, content)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap the files at ``a`` and ``b`` (Linux renameat2 RENAME_EXCHANGE).

    False when the platform or filesystem cannot (not Linux, old glibc, EINVAL/ENOSYS),
    and the caller falls back to a plain rename. The exchange is what lets a writer see
    WHICH file its swap displaced: a plain rename unlinks it unseen.
    """
    renameat2 = getattr(_libc(), "renameat2", None) if sys.platform == "linux" else None
    if renameat2 is None:
        return False
    done = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if done == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def conditional_replace(path: Path, expected: bytes, content: bytes) -> None:
    """Replace ``path`` with ``content`` only if it still holds exactly ``expected``.

    Compare-and-swap on CONTENT for writers that take no lock (an editor, a script). The
    new file is prepared and fsynced first; then, as the last steps: compare, swap. Where
    the kernel can exchange two paths atomically (Linux, RENAME_EXCHANGE), the swap hands
    back the file it displaced: if that is not ``expected`` (an edit landed between the
    compare and the swap, by rename or written in place) it is swapped straight back and
    :class:`WriteConflict` raised — the edit survives. Elsewhere a plain rename follows the
    compare, and the inode that was compared is re-read after it: an in-place edit that
    reached it is written back. What remains: a writer holding the file open from before
    the swap and writing to it after the re-read (microseconds) writes into the displaced
    file; and, without the exchange, a rename-style save in the two syscalls between
    compare and rename. Raises :class:`WriteConflict` when the file is not ``expected``.
    """
    tmp = _prepared_temp(path, content)
    try:
        if _read_or_none(path) != expected:
            raise WriteConflict(str(path))
        if _exchange(tmp, path):
            displaced = tmp.read_bytes()
            if displaced != expected:
                _put_back(path, tmp, content)
                raise WriteConflict(str(path))
        else:
            _replace_then_check(path, tmp, expected, content)
    except FileNotFoundError:  # deleted under us: the re-read says so in one line
        raise WriteConflict(str(path)) from None
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def _put_back(path: Path, displaced: Path, ours: bytes) -> None:
    """Swap an edit that our exchange displaced back into place; ours must come out."""
    _exchange(displaced, path)
    if displaced.read_bytes() != ours:
        # A third write landed between the two swaps: keep what came out, for the operator.
        kept = displaced.with_name(f"{path.name}.conflict-{os.getpid()}")
        os.replace(displaced, kept)
        raise ConflictError(
            f"{path}: the settings file changed twice while writing; compare it with {kept} "
            "and rerun"
        )


def _replace_then_check(path: Path, tmp: Path, expected: bytes, content: bytes) -> None:
    """Rename over ``path``; then re-read the replaced inode and restore an in-place edit."""
    with open(path, "rb") as old:
        if old.read() != expected:
            raise WriteConflict(str(path))
        os.replace(tmp, path)
        old.seek(0)
        edited = old.read()
    if edited != expected and _read_or_none(path) == content:
        write_atomic(path, edited)
        raise WriteConflict(str(path))


def changed_parts(before: Mapping[str, str], after: Mapping[str, str]) -> set[tuple[str, str]]:
    """What differs between two ConfigMap ``data`` dicts, as (key, entry) pairs.

    A value that is a JSON object on both sides (the whitelist) is compared entry by
    entry: ``(key, entry)`` for each top-level entry added, removed or changed. Any other
    changed value is ``(key, "")``, the whole key. Two edits conflict when their parts
    overlap (see :func:`overlap`).
    """
    parts: set[tuple[str, str]] = set()
    for key in set(before) | set(after):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        old_obj, new_obj = _json_object(old), _json_object(new)
        if old_obj is None or new_obj is None:
            parts.add((key, ""))
            continue
        parts |= {
            (key, entry)
            for entry in set(old_obj) | set(new_obj)
            if old_obj.get(entry, _ABSENT) != new_obj.get(entry, _ABSENT)
        }
    return parts


def overlap(ours: set[tuple[str, str]], theirs: set[tuple[str, str]]) -> list[str]:
    """The parts both edits changed, for a message; a whole key overlaps any entry of it."""
    return sorted(
        {
            f"{key}.{entry}" if entry and other else key
            for key, entry in ours
            for other_key, other in theirs
            if key == other_key and (entry == other or not entry or not other)
        }
    )


_ABSENT = object()


def _json_object(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return {}
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


class LocalConfigMapFile(ConditionalStore):
    """A :class:`~zoo_ops.adapters.settings.SettingsStore` over a ConfigMap manifest file."""

    def __init__(
        self,
        path: Path | str,
        *,
        name: str = DEFAULT_NAME,
        namespace: str = DEFAULT_NAMESPACE,
        lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.path = Path(path)
        self.name = name
        self.namespace = namespace
        self.lock_timeout_s = lock_timeout_s
        self.location = str(self.path)

    def __repr__(self) -> str:
        return f"LocalConfigMapFile({self.location!r})"

    @classmethod
    def create(
        cls,
        path: Path | str,
        data: Mapping[str, str],
        *,
        name: str = DEFAULT_NAME,
        namespace: str = DEFAULT_NAMESPACE,
        overwrite: bool = False,
    ) -> LocalConfigMapFile:
        """Write a new manifest holding ``data`` at resourceVersion "1" (``zoo-ops demo``).

        Refuses an existing file unless ``overwrite``; an overwrite continues the old
        file's resourceVersion sequence so a reader never sees a version go backwards.
        """
        store = cls(path, name=name, namespace=namespace)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
            raise BadInput("ConfigMap data must map strings to strings")
        store.path.parent.mkdir(parents=True, exist_ok=True)
        with store._locked():
            rv = "1"
            if store.path.exists():
                if not overwrite:
                    raise BadInput(f"{store.path} already exists; pass --reset to overwrite it")
                try:
                    rv = next_resource_version(store.read().resource_version)
                except SettingsError:
                    rv = "1"
            manifest = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": namespace, "resourceVersion": rv},
                "data": dict(data),
            }
            write_atomic(store.path, dump_manifest(manifest))
        return store

    # -- ConditionalStore --------------------------------------------------------------

    def _read_bytes(self) -> bytes:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            raise NotFound(
                f"settings file {self.path} does not exist; run `zoo-ops demo` to create the "
                "local environment or fix `settings` in zoo_ops.toml"
            ) from None

    def _read_state(self) -> tuple[SettingsSnapshot, object]:
        raw = self._read_bytes()
        manifest, snapshot = parse_manifest(raw, str(self.path))
        return snapshot, _FileState(raw=raw, manifest=manifest)

    def _replace(self, token: object, snapshot: SettingsSnapshot, new_data: dict[str, str]) -> str:
        # Called under _attempt_guard's lock, so no zoo-ops writer got in since the read.
        # The precondition is for everyone else: the file must be exactly what was read.
        # Comparing bytes, not just resourceVersion, also catches a hand edit (an editor,
        # `kubectl edit`-style tooling) that did not bump the version.
        assert isinstance(token, _FileState)
        manifest = copy.deepcopy(token.manifest)
        metadata = manifest.get("metadata") or {}
        new_rv = next_resource_version(snapshot.resource_version)
        metadata["resourceVersion"] = new_rv
        manifest["metadata"] = metadata
        manifest["data"] = dict(new_data)
        try:
            conditional_replace(self.path, token.raw, dump_manifest(manifest))
        except WriteConflict:
            self._refuse_if_same_keys(snapshot.data, new_data)
            raise
        return new_rv

    def _refuse_if_same_keys(self, base: Mapping[str, str], new_data: Mapping[str, str]) -> None:
        """After a hand edit got in: re-applying is safe only if it touched other parts.

        A hand edit of a key (or whitelist entry) this write changes is a decision someone
        made after zoo-ops read the file; recomputing over it would silently override
        them, so refuse. Edits of other keys or entries are re-read and re-applied.
        """
        _, now = parse_manifest(self._read_bytes(), str(self.path))
        both = overlap(changed_parts(base, new_data), changed_parts(base, now.data))
        if both:
            raise ConflictError(
                f"{self.path}: the settings file changed while writing ({', '.join(both)} "
                "edited by someone else); nothing written, check it and rerun"
            )

    def _attempt_guard(self) -> _Locked:
        # Pessimistic for zoo-ops's own writers: read -> change -> write under the lock.
        # (Optimistic retries among 50 local writers cost O(n^2) attempts; a lock costs n.)
        # The change function must not write to this same store: the lock is not reentrant.
        return self._locked()

    def _locked(self) -> _Locked:
        return _Locked(self.path, self.lock_timeout_s)


class _Locked:
    """Thread lock then file lock for one settings file; a timeout is a one-line error."""

    def __init__(self, path: Path, timeout_s: float) -> None:
        self._path = path
        self._thread = _thread_lock(path)
        self._timeout_s = timeout_s
        self._file = filelock.FileLock(
            str(path.with_name(path.name + ".lock")),
            timeout=timeout_s,
            preserve_lock_file=True,
            poll_interval=_LOCK_POLL_S,
        )

    def __enter__(self) -> None:
        if not self._thread.acquire(timeout=self._timeout_s):
            raise ConflictError(
                f"{self._path}: another writer in this process held it for {self._timeout_s:.0f}s; retry"
            )
        try:
            self._file.acquire()
        except filelock.Timeout:
            self._thread.release()
            raise ConflictError(
                f"{self._path}: locked by another process for {self._timeout_s:.0f}s "
                f"({self._file.lock_file}); retry, or remove a stale lock holder"
            ) from None
        except BaseException:
            self._thread.release()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            self._file.release()
        finally:
            self._thread.release()
