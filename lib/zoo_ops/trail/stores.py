"""Where executed notebooks are kept: a registry of trail stores keyed by URL scheme.

Like papermill's ``iorw`` handlers, one small store per scheme -- a local folder (no
scheme) and object storage (``s3://``, through fsspec/s3fs) -- each with the same few
operations: ``put_bytes`` (atomic: readers see the old object or the whole new one, never
a part: tmp + rename on a folder, one PUT of the final bytes on S3), ``get_bytes``,
``stat`` (size and ETag, the read-back of a write), ``listing`` under ``ENV/MODEL`` and
``probe`` (reachable and writable, proved by writing and deleting a small object).

Endpoint and credentials of object storage come only from the standard AWS variables and
files (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
``AWS_PROFILE``, ``~/.aws``), read by botocore: zoo_ops.toml never holds them, so no
papermill parameter (recorded in every notebook) can carry them.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from zoo_ops.errors import TrailUnwritable
from zoo_ops.files import write_atomic


@dataclass(frozen=True)
class Stored:
    """What a store holds under one name: its size and a version tag (ETag or mtime)."""

    size: int
    tag: str


class TrailStoreError(OSError):
    """The store could not be reached or refused the operation."""


class TrailStore(Protocol):
    def put_bytes(self, url: str, data: bytes) -> Stored: ...
    def get_bytes(self, url: str) -> bytes: ...
    def stat(self, url: str) -> Stored | None: ...
    def listing(self, root: str, env: str | None, model: str | None) -> dict[str, Stored]: ...
    def probe(self, root: str) -> None: ...


def scheme_of(url: str) -> str:
    return url.partition("://")[0].lower() if "://" in url else ""


def join_url(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts])


class LocalStore:
    """A folder on this machine."""

    def put_bytes(self, url: str, data: bytes) -> Stored:
        write_atomic(url, data)
        stored = self.stat(url)
        if stored is None:
            raise TrailStoreError(f"{url} is missing right after it was written")
        return stored

    def get_bytes(self, url: str) -> bytes:
        return Path(url).read_bytes()

    def stat(self, url: str) -> Stored | None:
        try:
            st = Path(url).stat()
        except FileNotFoundError:
            return None
        return Stored(st.st_size, str(st.st_mtime_ns))

    def listing(self, root: str, env: str | None, model: str | None) -> dict[str, Stored]:
        found: dict[str, Stored] = {}
        for path in Path(root).glob(f"{env or '*'}/{model or '*'}/*.ipynb"):
            stored = self.stat(str(path))
            if stored is not None:
                found[str(path)] = stored
        return found

    def probe(self, root: str) -> None:
        probe = Path(root) / f".zoo-ops-probe-{uuid.uuid4().hex}"
        try:
            probe.parent.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"zoo-ops probe\n")
            probe.unlink()
        except OSError as exc:
            raise TrailUnwritable(
                f"the trail folder {root} is not writable ({exc.strerror or exc}); "
                "fix its permissions or space, then rerun"
            ) from exc


class S3Store:
    """An S3 bucket (or any S3-protocol server), through s3fs; no caching of listings."""

    def _fs(self) -> Any:
        import s3fs

        # A new filesystem per store (no instance cache): a listing is never served from
        # a previous answer, and a change of the AWS variables takes effect.
        fs = s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False)
        _quiet_orphaned_io_errors()
        return fs

    def put_bytes(self, url: str, data: bytes) -> Stored:
        fs = self._fs()
        try:
            fs.pipe_file(url, data)  # one PUT of the whole body: all or nothing
            info = fs.info(url, refresh=True)
        except Exception as exc:  # noqa: BLE001 - botocore/aiohttp errors of every kind
            raise TrailStoreError(f"cannot write {url}: {_reason(exc)}") from exc
        stored = _stored(info)
        if stored.size != len(data):
            raise TrailStoreError(f"{url} reads back {stored.size} bytes, not {len(data)}")
        return stored

    def get_bytes(self, url: str) -> bytes:
        try:
            return bytes(self._fs().cat_file(url))
        except FileNotFoundError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise TrailStoreError(f"cannot read {url}: {_reason(exc)}") from exc

    def stat(self, url: str) -> Stored | None:
        try:
            return _stored(self._fs().info(url, refresh=True))
        except FileNotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001
            raise TrailStoreError(f"cannot read {url}: {_reason(exc)}") from exc

    def listing(self, root: str, env: str | None, model: str | None) -> dict[str, Stored]:
        fs = self._fs()
        base = join_url(root, *[p for p in (env, model) if p])
        try:
            found = fs.find(base, detail=True, withdirs=False)
        except FileNotFoundError:
            return {}
        except Exception as exc:  # noqa: BLE001
            raise TrailStoreError(f"cannot list {base}: {_reason(exc)}") from exc
        depth = 3 - len([p for p in (env, model) if p])
        result: dict[str, Stored] = {}
        for key, info in found.items():
            relative = key[len(base.partition("://")[2]) :].strip("/").split("/")
            if len(relative) == depth and relative[-1].endswith(".ipynb"):
                result[f"s3://{key}"] = _stored(info)
        return result

    def probe(self, root: str) -> None:
        """Write and delete a small object under ``root``: reachable, credentials valid,
        writable. Anything else is :class:`TrailUnwritable` (exit 2)."""
        url = join_url(root, f".zoo-ops-probe-{uuid.uuid4().hex}")
        fs = self._fs()
        try:
            fs.pipe_file(url, b"zoo-ops probe\n")
            fs.rm_file(url)
        except Exception as exc:  # noqa: BLE001
            raise TrailUnwritable(
                f"the trail {root} cannot be written ({_reason(exc)}); check AWS_ENDPOINT_URL, "
                "the AWS credentials and the bucket, then rerun"
            ) from exc


def _quiet_orphaned_io_errors() -> None:
    """fsspec's I/O loop: a request that failed on a dropped connection leaves aiohttp's
    body-writing task with the same error, which asyncio would print as "Task exception
    was never retrieved" -- a traceback per retry, for a failure the store has already
    reported in one line. Those (connection errors of orphaned tasks) are dropped."""
    from fsspec.asyn import get_loop

    loop = get_loop()
    if getattr(loop, "_zoo_ops_quiet", False):
        return

    def handler(loop: Any, context: dict[str, Any]) -> None:
        orphaned = "never retrieved" in str(context.get("message", ""))
        if orphaned and isinstance(context.get("exception"), ConnectionError | OSError):
            return
        loop.default_exception_handler(context)

    loop.call_soon_threadsafe(loop.set_exception_handler, handler)
    loop._zoo_ops_quiet = True


def _stored(info: dict[str, Any]) -> Stored:
    tag = str(info.get("ETag") or info.get("etag") or info.get("LastModified") or "")
    return Stored(int(info.get("size") or 0), tag.strip('"'))


def _reason(exc: BaseException) -> str:
    """One line about a failure, without the endpoint's credentials (none are in it)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


TRAIL_STORES: dict[str, TrailStore] = {"": LocalStore(), "file": LocalStore(), "s3": S3Store()}


def store_for(url: str) -> TrailStore:
    """The store that serves ``url`` (config.remote_trail_root refused any other scheme)."""
    try:
        return TRAIL_STORES[scheme_of(url)]
    except KeyError:
        raise TrailUnwritable(f"{url}: no trail store serves {scheme_of(url)}://") from None


def is_remote(path: str | os.PathLike[str] | None) -> bool:
    return path is not None and scheme_of(str(path)) in ("s3",)
