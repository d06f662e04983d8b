"""What a truss folder may hold: one confinement rule for hashing and for deploying.

zoo-ops hashes a truss (truss's ``directory_content_hash``, see ``truss_hash``) and then
copies it into the deployed artifact. Both go through one walk
(``zoo_ops.adapters.truss_files.walk_truss``) that applies this rule to every entry the
walk keeps, so that what is hashed is exactly what is deployed:

1. Only entries truss keeps are judged: an ignored entry (a FIFO in ``__pycache__/``, a
   link named ``*.log``) is neither hashed nor deployed, so it is left alone.
2. A regular file or a directory is accepted.
3. A symlink is accepted only when its whole chain resolves to a path inside the truss
   folder (both resolved, so a truss folder that is itself a link works):

   - to a regular file: FOLLOWED. truss hashes the target's bytes under the link's path;
     the deploy writes those bytes as a regular file at the link's path.
   - to a directory: KEPT AS A LINK. truss hashes the link's path only and does not
     enter it; the deploy writes a relative link to the same directory of the copy. So
     the target must be a directory the walk keeps (not ignored, not reached through
     another link) and neither the truss folder nor an ancestor of the link, nor a
     folder from which other directory links lead back to the link (a cycle).

   Any other link is refused: one that leaves the truss (``data/x -> /etc/shadow``,
   ``../other``, an absolute path outside), a broken one, a loop.
4. Special files (FIFO, socket, character or block device) are refused, directly or
   through a link: reading one hangs or yields bytes that are not content.

Every refusal is one line naming the entry and what to do. Pure: the adapter resolves
links and reports what it found as :class:`LinkTarget` and :class:`SpecialFile`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass

from zoo_ops.errors import TrussError

LINK_LOOP = "loop"
LINK_BROKEN = "broken"
TARGET_FILE = "file"
TARGET_DIRECTORY = "directory"


@dataclass(frozen=True)
class LinkTarget:
    """What a kept symlink resolves to, as the adapter found it.

    ``resolved``: the absolute resolved target, or ``LINK_LOOP`` / ``LINK_BROKEN`` when
    the chain does not resolve. ``kind``: ``TARGET_FILE``, ``TARGET_DIRECTORY`` or the
    name of a special file type (``"FIFO"``...), for a resolved target.
    """

    rel: str
    resolved: str
    kind: str = ""


@dataclass(frozen=True)
class SpecialFile:
    """A kept entry that is neither a file, a directory nor a symlink."""

    rel: str
    kind: str  # "FIFO", "socket", "character device", "block device", "special file"


def inside_path(root: str, target: str) -> str | None:
    """``target``'s POSIX path relative to ``root`` ("" for the root itself), or None when
    it is not at or below ``root``. Both must be absolute and resolved (no ``..``, no
    links): the comparison is on whole path components, so ``/t/iris2`` is not inside
    ``/t/iris``."""
    root = posixpath.normpath(root)
    target = posixpath.normpath(target)
    if target == root:
        return ""
    prefix = root if root.endswith("/") else root + "/"
    return target[len(prefix) :] if target.startswith(prefix) else None


def link_problem(link: LinkTarget, root: str, kept_dirs: frozenset[str] | set[str]) -> str | None:
    """Why the kept symlink ``link`` breaks the rule (the module doc, point 3), or None.

    ``root`` is the resolved truss folder; ``kept_dirs`` the relative paths of every
    directory the walk keeps (real directories, not links)."""
    if link.resolved == LINK_LOOP:
        return "is a symlink loop; replace it with the file or folder it should be"
    if link.resolved == LINK_BROKEN:
        return "is a broken symlink; remove it or point it at a file inside the truss"
    target_rel = inside_path(root, link.resolved)
    if target_rel is None:
        return (
            f"is a symlink to {link.resolved}, outside the truss folder; copy what it "
            "needs into the truss or remove the link"
        )
    if link.kind == TARGET_FILE:
        return None
    if link.kind != TARGET_DIRECTORY:
        return f"is a symlink to a {link.kind} ({link.resolved}); remove it"
    if target_rel == "" or link.rel.startswith(target_rel + "/"):
        return "is a symlink to the truss folder or one of its parents, a cycle; remove it"
    if target_rel not in kept_dirs:
        return (
            f"is a symlink to folder {target_rel}, which the truss's ignore patterns leave "
            "out of the deploy; point it at a deployed folder or remove it"
        )
    return None


def special_problem(special: SpecialFile) -> str:
    """Why a special file is refused (the module doc, point 4)."""
    return f"is a {special.kind}, not a file; remove it from the truss folder"


def link_text(link_rel: str, target_rel: str) -> str:
    """The relative link a deploy writes at ``link_rel`` for a directory link resolving to
    ``target_rel`` (both relative to the truss folder): it resolves to the same directory
    inside the copy, wherever the copy is."""
    start = posixpath.dirname(link_rel) or "."
    return posixpath.relpath(target_rel, start)


def check_truss_content(
    root: str,
    display_root: str,
    links: Iterable[LinkTarget],
    specials: Iterable[SpecialFile],
    kept_dirs: frozenset[str] | set[str],
) -> dict[str, str]:
    """Apply the rule to a walk's findings; TrussError naming the first entry (by path)
    that breaks it. Returns each accepted directory link's target, relative to the truss
    folder, by the link's relative path (what the deploy needs to write it).

    ``root``: the resolved truss folder; ``display_root``: the folder as the user named
    it, for the message."""
    problems: list[tuple[str, str]] = [(s.rel, special_problem(s)) for s in specials]
    dir_links: dict[str, str] = {}
    for link in links:
        problem = link_problem(link, root, kept_dirs)
        if problem is not None:
            problems.append((link.rel, problem))
        elif link.kind == TARGET_DIRECTORY:
            dir_links[link.rel] = inside_path(root, link.resolved) or ""
    problems.extend(
        (
            rel,
            "is a symlink that leads back to itself through other folder links, a cycle; remove it",
        )
        for rel in links_in_cycles(dir_links)
    )
    if problems:
        rel, problem = min(problems)
        where = f"{display_root.rstrip('/')}/{rel}"
        raise TrussError(f"{where} {problem}")
    return dir_links


def links_in_cycles(dir_links: dict[str, str]) -> list[str]:
    """The directory links from which following links leads back to the link itself.

    ``dir_links`` maps each directory link to its target (relative paths). Following a
    link to T reaches T's subtree, hence every link located in it, hence their targets'
    subtrees, and so on; the link is in a cycle when one reached folder holds it (e.g.
    ``a/up -> b`` with ``b/back -> a``). truss's walk never follows them, but a tool
    walking the deployed copy with links followed would never end."""
    in_cycles = []
    for link, target in dir_links.items():
        reached = {target}
        frontier = [target]
        while frontier:
            folder = frontier.pop()
            for other, other_target in dir_links.items():
                if _within(other, folder) and other_target not in reached:
                    reached.add(other_target)
                    frontier.append(other_target)
        if any(_within(link, folder) for folder in reached):
            in_cycles.append(link)
    return in_cycles


def _within(path: str, folder: str) -> bool:
    """Whether relative ``path`` lies in relative ``folder``'s subtree ("" is the root)."""
    return folder == "" or path == folder or path.startswith(folder + "/")


def followed_files(links: Iterable[LinkTarget]) -> frozenset[str]:
    """The relative paths of the accepted links that are followed (file links)."""
    return frozenset(link.rel for link in links if link.kind == TARGET_FILE)
