"""truss's content hash of a truss folder, bit for bit, as pure code over an injected tree.

This is truss 0.18.36's ``directory_content_hash`` (truss/truss_handle/patch/hash.py) with
the ignore patterns truss applies when it archives a truss (truss/util/path.py). The
algorithm:

1. Walk the folder top-down without following symlinked directories (a symlink to a
   directory is listed as a path but not entered). A directory is ignored when the
   patterns match ``rel/path`` or ``rel/path/``; an ignored directory is pruned with
   everything below it. A non-directory is ignored when the patterns match ``rel/path``.
   Patterns are gitignore lines (pathspec's gitwildmatch): the last matching pattern
   decides, a ``!`` pattern re-includes.
2. Collect the relative POSIX path of every directory and non-directory that is not
   ignored. Empty directories count; the root folder's own name does not.
3. Sort the paths as paths, by their tuple of parts, not as strings: ``a/x`` sorts
   before ``a b/x`` because ``"a" < "a b"``, while the strings compare the other way.
4. For each path, feed ``blake3(utf-8 of the relative path).digest()`` into an outer
   blake3; when the path is a file (a symlink to a file counts, its target's bytes are
   read) feed ``blake3(file bytes).digest()`` right after it. Symlinked directories,
   broken symlinks, sockets and FIFOs contribute their path only.
5. The result is the outer ``hexdigest()``.

The ignore patterns are the truss's own ``.truss_ignore`` if it has one, else truss's
fixed default list below; with ``ignore`` off no pattern applies (truss's
``ignore_patterns=None``).

This is truss's algorithm for any folder; zoo-ops hashes only folders that pass its
content rule (``zoo_ops.domain.truss_content``, applied by the adapter's walk): links
that stay inside the truss, no broken link, loop or special file. Within that rule the
hash is truss's, bit for bit, and it covers exactly what the deploy copies.

Nothing here touches the filesystem: the walk takes a ``list_dir`` callable and the hash
takes a ``file_digest`` callable, so the same code serves the fast adapter
(``zoo_ops.adapters.truss_files``), in-memory trees in tests, and the reference.
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from enum import Enum
from typing import Any

from blake3 import blake3

TRUSS_IGNORE_FILENAME = ".truss_ignore"

# truss 0.18.36's truss/util/.truss_ignore, comments and blank lines dropped, order kept
# (order matters only with `!` patterns, but keeping it makes the list diffable).
DEFAULT_TRUSS_IGNORE_PATTERNS: tuple[str, ...] = (
    "__pycache__/",
    "*.py[cod]",
    "*$py.class",
    "*.so",
    ".Python",
    "build/",
    "develop-eggs/",
    "dist/",
    "downloads/",
    "eggs/",
    ".eggs/",
    "lib/",
    "lib64/",
    "parts/",
    "sdist/",
    "var/",
    "wheels/",
    "share/python-wheels/",
    "*.egg-info/",
    ".installed.cfg",
    "*.egg",
    "MANIFEST",
    ".DS_Store",
    "*.manifest",
    "*.spec",
    "pip-log.txt",
    "pip-delete-this-directory.txt",
    "htmlcov/",
    ".tox/",
    ".nox/",
    ".coverage",
    ".coverage.*",
    ".cache",
    "nosetests.xml",
    "coverage.xml",
    "*.cover",
    "*.py,cover",
    ".hypothesis/",
    ".pytest_cache/",
    "cover/",
    "*.mo",
    "*.pot",
    "*.log",
    "local_settings.py",
    "db.sqlite3",
    "db.sqlite3-journal",
    "instance/",
    ".webassets-cache",
    ".scrapy",
    "docs/_build/",
    ".pybuilder/",
    "target/",
    ".ipynb_checkpoints",
    "profile_default/",
    "ipython_config.py",
    ".pdm.toml",
    "__pypackages__/",
    "celerybeat-schedule",
    "celerybeat.pid",
    "*.sage.py",
    ".env",
    ".venv",
    "env/",
    "venv/",
    "ENV/",
    "env.bak/",
    "venv.bak/",
    ".spyderproject",
    ".spyproject",
    ".ropeproject",
    ".mypy_cache/",
    ".dmypy.json",
    "dmypy.json",
    ".ruff_cache/",
    ".pyre/",
    ".pytype/",
    "cython_debug/",
    ".git",
    "*.tmp",
    "*.swp",
)


class EntryKind(Enum):
    """What a directory entry is, as truss's walk and ``Path.is_file()`` see it."""

    DIRECTORY = "directory"  # entered by the walk
    DIRECTORY_LINK = "directory_link"  # symlink to a directory: listed, not entered
    FILE = "file"  # regular file or symlink to one: path and content digest
    OTHER = "other"  # broken symlink, socket, FIFO: path only


def parse_truss_ignore(text: str) -> list[str]:
    """Patterns of a ``.truss_ignore`` text, as truss reads them.

    Each line is stripped of surrounding whitespace (truss does, unlike git); blank
    lines and lines starting with ``#`` are dropped.
    """
    patterns = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            patterns.append(stripped)
    return patterns


@functools.lru_cache(maxsize=64)
def _compile_gitwildmatch(
    patterns: tuple[str, ...],
) -> tuple[tuple[re.Pattern[str] | None, bool | None], ...]:
    """(regex, include) of each gitignore line, as pathspec's gitwildmatch compiles it."""
    # pathspec >= 1.0 deprecates the name 'gitwildmatch' but it is exactly what truss
    # uses; the warning is noise for us.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from pathspec.patterns.gitwildmatch import GitWildMatchPattern

        compiled = [GitWildMatchPattern(pattern) for pattern in patterns]
    return tuple((c.regex, c.include) for c in compiled)


_UNANCHORED_PREFIX = "^(?:.+/)?"
# How pathspec ends the regex of a pattern, once its `ps_d` group is made anonymous.
_PATTERN_TAILS = ("(?:(/)|$)", "(/)")


class IgnoreRules:
    """Compiled gitignore patterns with pathspec's ``PathSpec.match_file`` semantics.

    pathspec tries every pattern with ``regex.search`` and lets the last match decide;
    that is ~80 regex calls a path with truss's default list, where truss spends most
    of its time on a tree of small files. When no pattern is a negation, "last match
    decides" is "any match ignores", so the patterns fold into few regexes:

    - unanchored patterns (regex ``^(?:.+/)?BODY``, from patterns without an inner
      slash) become one alternation of their BODYs, tried with ``match`` at the start of
      each path component, which is exactly where ``(?:.+/)?`` lets them start;
    - the rest (anchored ``^dir/...``, or ``*``) become one alternation tried with
      ``search``.

    With negations present the patterns are tried one by one, last first, as pathspec.

    ``ignores_child`` goes further for the walk, whose parents are known not ignored:
    if no BODY can match a ``/`` before its closing ``/`` or end, a BODY match starting
    inside the parent's part of the path would also have matched the parent tested as
    ``parent/``, which pruned it; so only the child's own name needs trying.
    """

    def __init__(self, patterns: Sequence[str], decisions: dict[str, bool] | None = None) -> None:
        self.patterns: tuple[str, ...] = tuple(patterns)
        # Memo of ``ignores_child`` (key: the path, plus "/" for a directory). A decision
        # depends only on the path, whether it is a directory, and the patterns, so a
        # memo from an earlier walk with the same patterns is exact; the adapter keeps
        # it in its cache so that a re-walk does no regex work.
        self.decisions: dict[str, bool] = dict(decisions or {})
        self.asked: list[str] = []  # keys asked, in order: what a stored memo needs
        self.new_decisions = 0
        compiled = _compile_gitwildmatch(self.patterns)
        active = [(rx, inc) for rx, inc in compiled if rx is not None and inc is not None]
        self.empty = not active
        self._ordered: list[tuple[re.Pattern[str], bool]] = active[::-1]
        self._folded: _Folded | None = None
        if active and all(inc for _rx, inc in active):
            self._folded = _fold(tuple(rx for rx, _inc in active))

    def matches(self, rel_path: str) -> bool:
        """True when the patterns ignore ``rel_path`` (exactly ``match_file``)."""
        folded = self._folded
        if folded is None:
            for regex, include in self._ordered:
                if regex.search(rel_path) is not None:
                    return include
            return False
        if folded.other is not None and folded.other.search(rel_path) is not None:
            return True
        unanchored = folded.unanchored
        if unanchored is None:
            return False
        if unanchored.match(rel_path) is not None:
            return True
        # `.+/` needs a non-empty prefix without a newline (`.` does not match one).
        newline = rel_path.find("\n")
        slash = rel_path.find("/", 1)
        while slash != -1 and (newline == -1 or slash < newline):
            if unanchored.match(rel_path, slash + 1) is not None:
                return True
            slash = rel_path.find("/", slash + 1)
        return False

    def ignores_dir(self, rel_path: str) -> bool:
        """truss tests a directory as ``rel/path`` and as ``rel/path/``."""
        if self.empty:
            return False
        return self.matches(rel_path) or self.matches(rel_path + "/")

    def ignores_file(self, rel_path: str) -> bool:
        """truss tests a non-directory as ``rel/path``."""
        if self.empty:
            return False
        return self.matches(rel_path)

    def ignores_child(self, rel_path: str, name: str, is_dir: bool) -> bool:
        """``ignores_dir``/``ignores_file`` of ``rel_path`` (ending in ``name``), valid
        only when its parent directory is not ignored: what the walk asks."""
        if self.empty:
            return False
        key = rel_path + "/" if is_dir else rel_path
        self.asked.append(key)
        known = self.decisions.get(key)
        if known is None:
            known = self.decisions[key] = self._decide_child(rel_path, name, is_dir)
            self.new_decisions += 1
        return known

    def _decide_child(self, rel_path: str, name: str, is_dir: bool) -> bool:
        folded = self._folded
        if folded is None or not folded.confined or "\n" in rel_path:
            return self.ignores_dir(rel_path) if is_dir else self.ignores_file(rel_path)
        start = len(rel_path) - len(name)
        other, unanchored = folded.other, folded.unanchored
        candidates = (rel_path, rel_path + "/") if is_dir else (rel_path,)
        for candidate in candidates:
            if other is not None and other.search(candidate) is not None:
                return True
            if unanchored is not None and unanchored.match(candidate, start) is not None:
                return True
        return False


class _Folded:
    """The folded regexes of a negation-free pattern list (see ``IgnoreRules``)."""

    def __init__(
        self, unanchored: re.Pattern[str] | None, other: re.Pattern[str] | None, confined: bool
    ) -> None:
        self.unanchored = unanchored
        self.other = other
        self.confined = confined


@functools.lru_cache(maxsize=64)
def _fold(regexes: tuple[re.Pattern[str], ...]) -> _Folded | None:
    """Fold negation-free pattern regexes into two alternations; None if they cannot.

    pathspec names a group ``ps_d`` in each regex; a name may not repeat in one regex and
    we never read the group, so it becomes a plain group. Flags must agree.
    """
    flags = {rx.flags for rx in regexes}
    if len(flags) != 1:
        return None
    flag = flags.pop()
    bodies: list[str] = []
    others: list[str] = []
    for rx in regexes:
        source = re.sub(r"\(\?P<[A-Za-z_]\w*>", "(", rx.pattern)
        if source.startswith(_UNANCHORED_PREFIX):
            bodies.append(source[len(_UNANCHORED_PREFIX) :])
        else:
            others.append(source)
    try:
        return _Folded(
            re.compile("|".join(f"(?:{b})" for b in bodies), flag) if bodies else None,
            re.compile("|".join(f"(?:{o})" for o in others), flag) if others else None,
            all(_body_confined_to_component(b) for b in bodies),
        )
    except re.error:
        return None


def _body_confined_to_component(body: str) -> bool:
    """Whether ``body`` is ``X`` + a pathspec tail where ``X`` can never match ``/``.

    Decided on the parsed regex, conservatively: an unknown construct counts as able to
    match ``/``.
    """
    for tail in _PATTERN_TAILS:
        if body.endswith(tail):
            head = body[: -len(tail)]
            break
    else:
        return False
    try:
        import re._parser as sre_parse  # the stdlib's own regex parser (3.11+)

        parsed = sre_parse.parse(head)
    except Exception:  # a private module; if its shape ever changes, stay exact
        return False
    return _never_matches_slash(list(parsed))


_SLASH = ord("/")


def _never_matches_slash(items: list[Any]) -> bool:
    import re._constants as c

    for op, arg in items:
        if op is c.LITERAL:
            if arg == _SLASH:
                return False
        elif op is c.NOT_LITERAL:
            if arg != _SLASH:
                return False
        elif op is c.IN:
            if not _class_excludes_slash(arg, c):
                return False
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT):
            if not _never_matches_slash(list(arg[2])):
                return False
        elif op is c.SUBPATTERN:
            if not _never_matches_slash(list(arg[3])):
                return False
        elif op is c.BRANCH:
            if not all(_never_matches_slash(list(branch)) for branch in arg[1]):
                return False
        else:  # ANY, AT, GROUPREF, ...: not worth proving
            return False
    return True


def _class_excludes_slash(items: list[Any], c: Any) -> bool:
    """Whether a character class ``[...]`` (sre items) cannot match ``/``."""
    negate = bool(items) and items[0][0] is c.NEGATE
    members = items[1:] if negate else items
    contains = False
    for op, arg in members:
        if op is c.LITERAL:
            contains = contains or arg == _SLASH
        elif op is c.RANGE:
            contains = contains or arg[0] <= _SLASH <= arg[1]
        elif op is c.CATEGORY and arg in (c.CATEGORY_DIGIT, c.CATEGORY_WORD, c.CATEGORY_SPACE):
            pass  # "/" is none of these
        else:
            return False
    return contains if negate else not contains


def select_children(
    rel_dir: str, children: Iterable[tuple[str, EntryKind]], rules: IgnoreRules
) -> list[tuple[str, EntryKind]]:
    """The (relative path, kind) of the children of a kept directory that are kept.

    ``rel_dir`` is the directory's relative path ("" for the root); a directory child is
    tested as ``rel/path`` and ``rel/path/``, any other child as ``rel/path``.
    """
    prefix = rel_dir + "/" if rel_dir else ""
    kept = []
    for name, kind in children:
        rel = prefix + name
        is_dir = kind is EntryKind.DIRECTORY or kind is EntryKind.DIRECTORY_LINK
        if not rules.ignores_child(rel, name, is_dir):
            kept.append((rel, kind))
    return kept


def walk_unignored(
    list_dir: Callable[[str], Iterable[tuple[str, EntryKind]]],
    rules: IgnoreRules,
) -> list[tuple[str, EntryKind]]:
    """Every (relative path, kind) below the root that ``rules`` do not ignore.

    ``list_dir(rel_dir)`` lists the children (name, kind) of a directory ("" is the
    root). Ignored directories are pruned: not kept, not listed; symlinked directories
    (DIRECTORY_LINK) are kept but not listed. Order is unspecified;
    ``directory_content_hash`` sorts.
    """
    kept: list[tuple[str, EntryKind]] = []
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        children = select_children(rel_dir, list_dir(rel_dir), rules)
        pending.extend(rel for rel, kind in children if kind is EntryKind.DIRECTORY)
        kept.extend(children)
    return kept


def path_sort_key(rel_path: str) -> str:
    """Sort key of a relative path as pathlib orders paths: by the tuple of its parts.

    Comparing part tuples equals comparing the strings with each ``/`` replaced by a
    character below every character a name can hold: NUL.
    """
    return rel_path.replace("/", "\0")


def path_digest(rel_path: str) -> bytes:
    """blake3 digest of the UTF-8 relative POSIX path, as truss's ``str_hash``."""
    return blake3(rel_path.encode("utf-8")).digest()


def directory_content_hash(
    entries: Iterable[tuple[str, EntryKind]],
    file_digest: Callable[[str], bytes],
) -> str:
    """truss's ``directory_content_hash`` of the listed entries (see the module doc).

    ``entries`` are the unignored (relative path, kind) pairs, in any order;
    ``file_digest(rel_path)`` returns the 32-byte blake3 digest of a FILE entry's bytes.
    """
    outer = blake3()
    for rel_path, kind in sorted(entries, key=lambda entry: path_sort_key(entry[0])):
        outer.update(path_digest(rel_path))
        if kind is EntryKind.FILE:
            outer.update(file_digest(rel_path))
    return outer.hexdigest()
