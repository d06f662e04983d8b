"""Reading a file zoo-ops did not write: a regular file only, of bounded size.

The algorithm, for every file named by an operator or found in a folder (a rollout plan,
a notebook of the trail, a truss's config.yaml or .truss_ignore):

1. open it with ``O_NONBLOCK``: opening a FIFO returns at once instead of waiting for a
   writer that never comes;
2. ``fstat`` the open descriptor (not the path: nothing can be swapped in between) and
   refuse anything but a regular file -- a FIFO, a socket, a device, a directory --
   before a byte is read;
3. read at most ``limit + 1`` bytes and refuse a larger file instead of exhausting
   memory.

A link to a regular file is followed (whether a link may leave its folder is the
caller's rule). Every refusal is :class:`FileRefused` whose text is one line saying
why, for the caller to put in its own message.

Writing a file zoo-ops owns is :func:`write_atomic`: a reader sees the old file or the new
one, never half of one, and the new one survives a crash once the call returns.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

_READ_CHUNK = 1 << 20


class FileRefused(Exception):
    """Not read: missing, unreadable, not a regular file, or larger than allowed.

    ``not_regular``: it exists but is something else (its kind is the text)."""

    def __init__(self, reason: str, *, not_regular: bool = False) -> None:
        super().__init__(reason)
        self.not_regular = not_regular


def file_kind(mode: int) -> str:
    """What a file that is not a regular file is, in words."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def os_problem(exc: OSError) -> str:
    """Why opening or reading failed, in words."""
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, PermissionError):
        return "cannot be read (permission denied)"
    if isinstance(exc, IsADirectoryError):
        return "a directory"
    return f"cannot be read ({exc.strerror or exc.__class__.__name__})"


def read_regular_bytes(path: Path | str, limit: int) -> bytes:
    """The bytes of ``path``, a regular file of at most ``limit`` bytes; else FileRefused."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError) as exc:  # ValueError: an embedded NUL
        raise FileRefused(
            os_problem(exc) if isinstance(exc, OSError) else "not a valid path"
        ) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise FileRefused(file_kind(mode), not_regular=True)
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(_READ_CHUNK, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise FileRefused(os_problem(exc)) from None
    finally:
        os.close(fd)
    if size > limit:
        raise FileRefused(f"larger than {limit} bytes; not read")
    return b"".join(chunks)


NEW_FILE_MODE = 0o644


def write_atomic(path: Path | str, data: bytes | str, *, mode: int | None = None) -> None:
    """Replace (or create) ``path`` with ``data`` atomically and durably.

    The folder is made if missing; the data goes to a temporary file beside ``path`` (a
    rename across filesystems is not atomic), fsynced and given ``mode`` (None: the old
    file's mode, ``0o644`` for a new file), renamed over ``path``, and the folder fsynced
    so the rename itself survives a crash. The temporary file is removed on any failure.
    ``str`` data is written as UTF-8.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = prepared_temp(path, data, mode=mode)
    try:
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def prepared_temp(path: Path, data: bytes | str, *, mode: int | None = None) -> Path:
    """A hidden temporary file beside ``path`` holding ``data``, fsynced, with ``mode``
    (None: ``path``'s mode, ``0o644`` when it does not exist): the first half of
    :func:`write_atomic`, for a caller that checks something before its own swap."""
    if mode is None:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            mode = NEW_FILE_MODE
    content = data.encode("utf-8") if isinstance(data, str) else data
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(name, mode)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def fsync_dir(directory: Path) -> None:
    """fsync a folder: a rename or a new name in it survives a crash."""
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
