"""Path confinement on the real filesystem: symlinks followed, then checked.

:func:`zoo_ops.domain.paths.confined` keeps a path inside its root as written; a
symlink inside the root (``executed/staging -> /etc``, ``data/x -> /etc/shadow``) can
still lead out. :func:`resolve_inside` closes that gap. The algorithm:

1. resolve the root and the path with ``Path.resolve()`` (non-strict: a path that does
   not exist yet, a file about to be written, resolves through its existing parents);
   a relative path is taken against the working directory, as ``Path.resolve`` does;
2. refuse a symlink loop, an embedded NUL or an OS error while resolving, in one line;
3. refuse unless the resolved path is inside the resolved root -- by path components,
   so ``/srv/zoo-evil`` is not inside ``/srv/zoo`` -- and, unless ``allow_root``, is
   not the root itself (deleting "the state folder" must never delete its parent).

It returns the resolved path: use that path for the operation, not the one passed in.
The check is a snapshot: whoever can write inside the root can swap a folder for a link
after it. That is outside zoo-ops's threat model (hostile names and configuration, not
a hostile local user racing the tool).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from zoo_ops.domain.names import shown
from zoo_ops.errors import BadInput

_NONE: Mapping[str, Path] = MappingProxyType({})


def _resolve(path: Path, what: str) -> Path:
    """``path.resolve()``, its failures as one-line :class:`BadInput`."""
    try:
        return path.resolve()
    except RuntimeError as err:  # Python 3.11: "Symlink loop from ..."
        raise BadInput(f"{what} {shown(str(path))} is in a symlink loop ({err})") from None
    except ValueError as err:  # embedded NUL byte
        raise BadInput(f"{what} {shown(str(path))} is not a valid path ({err})") from None
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise BadInput(f"{what} {shown(str(path))} cannot be resolved: {reason}") from None


def resolve_inside(root: Path, path: Path, *, allow_root: bool = False) -> Path:
    """``path`` resolved, when it resolves to a place inside ``root``'s resolution.

    Raises :class:`BadInput` (one line naming both) when the resolved path lies outside
    the resolved root, is the root itself (unless ``allow_root``), or cannot be resolved.
    """
    real_root = _resolve(root, "root")
    real = _resolve(path, "path")
    if real == real_root:
        if allow_root:
            return real
        raise BadInput(
            f"path {shown(str(path))} is the folder {shown(str(root))} itself; "
            "name something inside it"
        )
    if not real.is_relative_to(real_root):
        raise BadInput(
            f"path {shown(str(path))} resolves to {shown(str(real))}, outside "
            f"{shown(str(real_root))}; remove the symlink or use a path inside it"
        )
    return real


def resolved(path: Path, what: str = "path") -> Path:
    """``path.resolve()``; a loop, a NUL or an OS error is one-line :class:`BadInput`."""
    return _resolve(path, what)


def check_removable(
    target: Path,
    root: Path,
    *,
    keep: Mapping[str, Path],
    outside: Mapping[str, Path] = _NONE,
) -> Path:
    """``target`` resolved, when deleting it cannot delete anything zoo-ops must keep.

    The rule for a destructive operation (``demo --reset``): the target resolves inside
    ``root`` (never ``root`` itself, see :func:`resolve_inside`); it is not, and does not
    contain, any path of ``keep`` (the repository, the config's folder, truss_root...);
    and it does not lie inside any path of ``outside`` (a state folder inside truss_root
    would delete part of a truss). Each refusal is one line naming both paths.
    """
    real = resolve_inside(root, target)
    check_apart(real, keep=keep, outside=outside)
    return real


def check_apart(
    folder: Path, *, keep: Mapping[str, Path], outside: Mapping[str, Path] = _NONE
) -> Path:
    """``folder`` resolved, when it neither is nor contains a ``keep`` path and lies in no
    ``outside`` path (the second half of :func:`check_removable`)."""
    real = _resolve(folder, "folder")
    for what, path in keep.items():
        kept = _resolve(path, what)
        if kept == real or kept.is_relative_to(real):
            raise BadInput(
                f"{ascii(str(real))} is or contains the {what} {ascii(str(kept))}, so "
                "zoo-ops may not delete in it; point the environment's folders elsewhere"
            )
    for what, path in outside.items():
        other = _resolve(path, what)
        if real.is_relative_to(other):
            raise BadInput(
                f"{ascii(str(real))} lies inside the {what} {ascii(str(other))}, so "
                "zoo-ops may not delete in it; point the environment's folders elsewhere"
            )
    return real
