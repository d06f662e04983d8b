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

from pathlib import Path

from zoo_ops.domain.names import shown
from zoo_ops.errors import BadInput


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
