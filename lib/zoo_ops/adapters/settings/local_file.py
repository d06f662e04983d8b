"""The local environment's dynamic settings: a ConfigMap manifest file on disk.

Same shape as the seed's ``kubectl edit`` view::

    apiVersion: v1
    kind: ConfigMap
    metadata: {name: baseten-django-dynamic-settings, namespace: baseten, resourceVersion: "7"}
    data: {automaticallyDeployedModelZooModelsWhitelist: '{"iris": {"copy": true}}', ...}

Writers serialise on an inter-process file lock (plus a per-path thread lock) held from
read to write, so zoo-ops writers never conflict; the write is still conditional, as the
apiserver's PUT is — the file must be byte-for-byte what was read (a hand edit without
the lock is a conflict, re-read and re-applied) — and the file is replaced atomically (temp file in the same directory, fsync, rename, fsync of the
directory) with ``metadata.resourceVersion`` bumped. Readers take no lock: a rename is
atomic, so a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import copy
import os
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import filelock
import yaml

from zoo_ops.adapters.settings import ConditionalStore, SettingsSnapshot, WriteConflict
from zoo_ops.errors import BadInput, ConflictError, NotFound, SettingsError

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


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (PyYAML keeps the last silently)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen[key] = loader.construct_object(value_node, deep=True)
    return seen


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


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
        manifest = yaml.load(raw.decode("utf-8"), Loader=_StrictLoader)  # noqa: S506 - safe subclass
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        problem = " ".join(str(exc).split())
        raise SettingsError(
            f"{where}: not a valid YAML ConfigMap manifest ({problem}); fix the file"
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
                f"{value!r}; quote the value"
            )
    rv = metadata.get("resourceVersion", "")
    return manifest, SettingsSnapshot(
        data=dict(data), resource_version="" if rv is None else str(rv)
    )


def next_resource_version(rv: str) -> str:
    """The resourceVersion after ``rv``: +1 for a decimal one, else start again at 1."""
    return str(int(rv) + 1) if rv.isdigit() else "1"


def dump_manifest(manifest: Mapping[str, Any]) -> bytes:
    """YAML as kubectl shows it: keys in manifest order, long strings on one line."""
    text = yaml.safe_dump(
        dict(manifest), sort_keys=False, default_flow_style=False, allow_unicode=True, width=1 << 30
    )
    return text.encode("utf-8")


def atomic_write(path: Path, content: bytes) -> None:
    """Replace ``path`` with ``content`` atomically and durably.

    Temp file in the same directory (a rename across filesystems is not atomic), written
    and fsynced, given the old file's mode, renamed over ``path``, then the directory
    fsynced so the rename itself survives a crash.
    """
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


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
            atomic_write(store.path, dump_manifest(manifest))
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
        if self._read_bytes() != token.raw:
            raise WriteConflict(str(self.path))
        manifest = copy.deepcopy(token.manifest)
        metadata = manifest.get("metadata") or {}
        new_rv = next_resource_version(snapshot.resource_version)
        metadata["resourceVersion"] = new_rv
        manifest["metadata"] = metadata
        manifest["data"] = dict(new_data)
        atomic_write(self.path, dump_manifest(manifest))
        return new_rv

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
