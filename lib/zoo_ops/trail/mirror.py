"""The local read cache of a remote trail: every reader works on local files.

A remote trail (``s3://BUCKET/PREFIX``) is read through a folder that mirrors it,
:func:`zoo_ops.config.trail_cache_path` of its URL, so the readers written for a folder
(the trail index, the notebook reader) serve it unchanged.

Never stale: :func:`sync` lists the bucket under ``ENV/MODEL`` (the listing carries each
object's size and ETag), downloads every object whose size or ETag differs from what the
cache recorded beside its copy (``.NAME.etag``), and removes copies whose object is gone.
A download lands in a temporary file renamed into place, so a reader of the cache never
sees a part of a notebook either. :func:`local_copy` does the same for one URL (a run the
runs table names). A bucket that cannot be listed is an error, never an old answer.
"""

from __future__ import annotations

import os
from pathlib import Path

from zoo_ops.config import trail_cache_path
from zoo_ops.files import write_atomic
from zoo_ops.trail.stores import Stored, TrailStoreError, is_remote, store_for

TAG_SUFFIX = ".etag"


def _tag_file(path: Path) -> Path:
    return path.with_name(f".{path.name}{TAG_SUFFIX}")


def _cached_tag(path: Path) -> str | None:
    try:
        return _tag_file(path).read_text(encoding="utf-8") if path.exists() else None
    except OSError:
        return None


def _tag_text(stored: Stored) -> str:
    return f"{stored.size} {stored.tag}"


def _download(url: str, path: Path, stored: Stored) -> None:
    data = store_for(url).get_bytes(url)
    write_atomic(path, data)
    # The tag is written after the copy: a crash between leaves a copy with an old or no
    # tag, which the next sync downloads again.
    _tag_file(path).write_text(_tag_text(stored), encoding="utf-8")


def sync(root_url: str, env: str | None = None, model: str | None = None) -> Path:
    """Bring the cache of ``root_url`` (under ENV/MODEL when given) up to date; its folder."""
    local_root = trail_cache_path(root_url)
    listed = store_for(root_url).listing(root_url, env, model)
    wanted: set[Path] = set()
    for url, stored in listed.items():
        path = trail_cache_path(url)
        wanted.add(path)
        if _cached_tag(path) != _tag_text(stored):
            try:
                _download(url, path, stored)
            except FileNotFoundError:
                wanted.discard(path)  # deleted between the listing and the read
    for path in local_root.glob(f"{env or '*'}/{model or '*'}/*.ipynb"):
        if path not in wanted:
            path.unlink(missing_ok=True)
            _tag_file(path).unlink(missing_ok=True)
    return local_root


def local_copy(location: str | os.PathLike[str]) -> Path:
    """A readable local file for a notebook location the runs table holds: a path as it
    is; an object URL downloaded into the cache when its size or ETag changed. A missing
    object is :class:`FileNotFoundError`; an unreachable store :class:`TrailStoreError`."""
    text = str(location)
    if not is_remote(text):
        return Path(text)
    stored = store_for(text).stat(text)
    path = trail_cache_path(text)
    if stored is None:
        path.unlink(missing_ok=True)
        _tag_file(path).unlink(missing_ok=True)
        raise FileNotFoundError(text)
    if _cached_tag(path) != _tag_text(stored):
        _download(text, path, stored)
    return path


def url_of(root_url: str, cached: Path) -> str:
    """The object URL a file of the cache of ``root_url`` mirrors."""
    relative = Path(cached).relative_to(trail_cache_path(root_url)).as_posix()
    return f"{root_url.rstrip('/')}/{relative}"


__all__ = ["TrailStoreError", "local_copy", "sync", "url_of"]
