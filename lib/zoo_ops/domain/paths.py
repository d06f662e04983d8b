"""Lexical path confinement: a path built from parts never leaves its root.

zoo-ops derives paths by joining names under a configured root
(``executed_root/ENV/MODEL/STAMP-STEP.ipynb``, ``truss_root/MODEL``,
``state_dir/...``). :func:`confined` is that join, refusing every part that could make
the result leave the root *as written*. The algorithm, per part:

1. it must be a ``str``, not empty, and not ``.`` or ``..``;
2. it must contain no ``/`` and no ``\\`` (a separator on POSIX or on Windows), no NUL
   and no other control character, and no ``:`` (a Windows drive, ``C:x``);
3. it must be exactly one path component under both flavours:
   ``PurePosixPath(part).parts == (part,)`` and likewise ``PureWindowsPath`` -- this
   catches absolute parts, drives, UNC prefixes and anything the first two steps missed.

Then the parts are joined to the root with the root's own type (a ``Path`` root gives
a ``Path``), and, as a final guard, the result must be the root followed by exactly those
parts.

This is lexical only: it does not look at the filesystem, so a symlink inside the root
may still point outside. Where the filesystem matters, resolve with
:func:`zoo_ops.adapters.paths.resolve_inside` as well.
"""

from __future__ import annotations

from pathlib import PurePath, PurePosixPath, PureWindowsPath
from typing import TypeVar

from zoo_ops.domain.names import shown
from zoo_ops.errors import BadInput

P = TypeVar("P", bound=PurePath)

_FORBIDDEN = frozenset("/\\:\x00")


def part_problem(part: object) -> str | None:
    """Why ``part`` cannot be one component under a root, or None when it can."""
    if not isinstance(part, str):
        return f"path part must be text, not {type(part).__name__}"
    if part == "":
        return "path part is empty"
    if part in (".", ".."):
        return f"path part {shown(part)} would leave or skip its folder"
    for ch in part:
        if ch in _FORBIDDEN or not ch.isprintable():
            return f"path part {shown(part)} contains {ascii(ch)}"
    for flavour in (PurePosixPath, PureWindowsPath):
        if flavour(part).parts != (part,):
            return f"path part {shown(part)} is not a single file or folder name"
    return None


def confined(root: P, *parts: str) -> P:
    """``root / part / ...``, refusing with :class:`BadInput` any part that could leave root.

    Each part is checked by :func:`part_problem`; pass names already checked by
    :func:`zoo_ops.domain.names.check_name` and file names zoo-ops made itself.
    """
    for part in parts:
        problem = part_problem(part)
        if problem is not None:
            raise BadInput(f"{problem} (under {shown(str(root))}); use a plain name")
    result = root.joinpath(*parts)
    if result.parts != root.parts + tuple(parts):  # unreachable after the checks above
        raise BadInput(f"path {shown(str(result))} is not inside {shown(str(root))}")
    return result


def lexically_inside(root: PurePath, path: PurePath) -> bool:
    """True when ``path`` as written lies in ``root`` (or is root) without any ``..``.

    Both are compared as written: no resolving, no case folding. A relative path is
    never inside an absolute root and vice versa.
    """
    if not path.is_relative_to(root):
        return False
    return ".." not in path.relative_to(root).parts
