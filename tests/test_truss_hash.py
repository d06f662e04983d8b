"""The truss content hash: truss's own digests, its properties, the cache, the benchmark."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pathspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zoo_ops.adapters import truss_files
from zoo_ops.adapters.truss_files import HashCache, load_ignore_patterns, truss_content_hash
from zoo_ops.domain.truss_hash import (
    DEFAULT_TRUSS_IGNORE_PATTERNS,
    EntryKind,
    IgnoreRules,
    directory_content_hash,
    parse_truss_ignore,
    path_digest,
    path_sort_key,
    walk_unignored,
)
from zoo_ops.errors import TrussError

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCHMARK = REPO_ROOT / "benchmarks" / "bench_truss_hash.py"


def shared_dir() -> Path:
    return Path(os.environ.get("ZOO_OPS_SHARED_DIR") or REPO_ROOT.parent / "shared")


VECTORS = shared_dir() / "vectors" / "truss-hash"
MISSING = "<vectors missing>"


def vector_cases() -> list[str]:
    try:
        return sorted(json.loads((VECTORS / "expected.json").read_text())["cases"])
    except (OSError, ValueError, KeyError):
        return [MISSING]  # the test fails loudly instead of vanishing


@pytest.mark.parametrize("name", vector_cases())
def test_vector_matches_truss_digests(name: str, tmp_path: Path) -> None:
    if name == MISSING:
        pytest.fail(
            f"truss-hash vectors not found at {VECTORS}; set ZOO_OPS_SHARED_DIR to the folder"
            " holding vectors/truss-hash (default: <repo>/../shared)"
        )
    case = json.loads((VECTORS / "expected.json").read_text())["cases"][name]
    with tarfile.open(VECTORS / case["archive"]) as archive:
        archive.extractall(tmp_path, filter="tar")
    truss = tmp_path / name
    assert truss_content_hash(truss) == case["hash"]
    assert truss_content_hash(truss, ignore=False) == case["hash_no_ignore"]
    # The cached path must give the same digests, first (cold) and second time.
    cache = HashCache(tmp_path / "cache.sqlite", racy_window_ns=0)
    for _ in range(2):
        assert truss_content_hash(truss, cache=cache) == case["hash"]
        assert truss_content_hash(truss, ignore=False, cache=cache) == case["hash_no_ignore"]


# --- the pure algorithm ----------------------------------------------------------------


def test_paths_sort_by_parts_not_strings() -> None:
    entries = [("a b", EntryKind.DIRECTORY), ("a b/x", EntryKind.OTHER)]
    entries += [("a", EntryKind.DIRECTORY), ("a/x", EntryKind.OTHER)]
    expected = b"".join(path_digest(p) for p in ["a", "a/x", "a b", "a b/x"])
    from blake3 import blake3

    assert directory_content_hash(entries, lambda _p: b"") == blake3(expected).hexdigest()


@given(
    st.lists(
        st.lists(
            st.text(min_size=1, max_size=4).filter(lambda s: "/" not in s and "\0" not in s),
            min_size=1,
            max_size=4,
        ),
        min_size=2,
        max_size=20,
    )
)
def test_path_sort_key_orders_like_part_tuples(parts: list[list[str]]) -> None:
    paths = ["/".join(p) for p in parts]
    assert sorted(paths, key=path_sort_key) == sorted(paths, key=lambda p: tuple(p.split("/")))


def test_walk_over_an_injected_tree_prunes_and_keeps_links() -> None:
    tree = {
        "": [("build", EntryKind.DIRECTORY), ("model", EntryKind.DIRECTORY),
             ("link", EntryKind.DIRECTORY_LINK), ("x.log", EntryKind.FILE)],
        "model": [("model.py", EntryKind.FILE), ("__pycache__", EntryKind.DIRECTORY)],
    }  # fmt: skip
    listed: list[str] = []

    def list_dir(rel: str) -> list[tuple[str, EntryKind]]:
        listed.append(rel)
        return tree[rel]

    kept = walk_unignored(list_dir, IgnoreRules(DEFAULT_TRUSS_IGNORE_PATTERNS))
    assert sorted(kept) == sorted(
        [("model", EntryKind.DIRECTORY), ("model/model.py", EntryKind.FILE),
         ("link", EntryKind.DIRECTORY_LINK)]
    )  # fmt: skip
    assert sorted(listed) == ["", "model"]  # pruned and linked directories are not listed


def test_parse_truss_ignore_strips_lines_and_drops_comments() -> None:
    text = "# c\n\n  *.log  \nbuild/\n#x\n!keep.log\n"
    assert parse_truss_ignore(text) == ["*.log", "build/", "!keep.log"]


def test_default_patterns_are_what_truss_ignores(tmp_path: Path) -> None:
    assert load_ignore_patterns(tmp_path) == list(DEFAULT_TRUSS_IGNORE_PATTERNS)
    (tmp_path / ".truss_ignore").write_text("# mine\n*.bin\n")
    assert load_ignore_patterns(tmp_path) == ["*.bin"]  # replaces, does not extend


PATH_PARTS = ["build", "lib", "x.pyc", "__pycache__", "a.log", ".git", "docs", "_build", "env",
              "share", "python-wheels", "data", ".DS_Store", "x.egg-info", "m.py", "a b", "é"]  # fmt: skip
EXTRA_PATTERNS = ["*.bin", "!keep.log", "data/", "/m.py", "a/**/b", "**/env", "[!c]x", "*", "d?ta",
                  "docs/*.py", "!build/", "\\!x", "a\\ b"]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(list(DEFAULT_TRUSS_IGNORE_PATTERNS) + EXTRA_PATTERNS), max_size=12),
    st.lists(
        st.lists(st.sampled_from(PATH_PARTS), min_size=1, max_size=4), min_size=1, max_size=30
    ),
)
def test_ignore_rules_agree_with_pathspec(patterns: list[str], paths: list[list[str]]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        spec = pathspec.PathSpec.from_lines("gitwildmatch", patterns)
    rules = IgnoreRules(patterns)
    for parts in paths:
        rel = "/".join(parts)
        assert rules.matches(rel) == spec.match_file(rel), (patterns, rel)
        assert rules.matches(rel + "/") == spec.match_file(rel + "/"), (patterns, rel)


# --- properties over random trees on disk ------------------------------------------------


def load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_truss_hash", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


NAMES = ["a", "b", "a b", "a-b", "a.b", "A", "é", "x.py", "x.pyc", "build", "lib", "__pycache__",
         "notes.log", ".git", "w.tmp", "data", "m.py", ".truss_ignore"]  # fmt: skip


IGNORE_FILES = [b"*.py\n", b"build/\n!lib/\n", b"# nothing ignored\n", b"a b\n*.pyc\n"]


@st.composite
def trees(draw: st.DrawFn) -> dict[str, bytes | None]:
    """{relative path: bytes for a file, None for an empty directory}."""
    tree: dict[str, bytes | None] = {}
    for _ in range(draw(st.integers(1, 14))):
        parts = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3))
        rel = "/".join(parts)
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts))]
        if (
            rel in tree
            or (parts[0] == ".truss_ignore" and len(parts) > 1)  # truss needs it a file
            or any(p in tree and tree[p] is not None for p in prefixes)  # under a file
            or any(other.startswith(rel + "/") for other in tree)  # over a directory
        ):
            continue
        if parts[-1] == ".truss_ignore":
            tree[rel] = draw(st.sampled_from(IGNORE_FILES))
        elif draw(st.integers(0, 4)) == 0:
            tree[rel] = None
        else:
            tree[rel] = draw(st.binary(max_size=64))
    # A directory that got children is no longer an empty one.
    return {
        rel: data
        for rel, data in tree.items()
        if not (data is None and any(o.startswith(rel + "/") for o in tree))
    }


def materialise(root: Path, tree: dict[str, bytes | None], order_seed: int = 0) -> Path:
    root.mkdir(parents=True)
    items = list(tree.items())
    random.Random(order_seed).shuffle(items)
    for rel, data in items:
        target = root / rel
        if data is None:
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    rng = random.Random(order_seed + 1)
    for path in root.rglob("*"):
        stamp = rng.randrange(10**9, 2 * 10**9) * 10**9
        os.utime(path, ns=(stamp, stamp), follow_symlinks=False)
    return root


@pytest.fixture(scope="module")
def reference() -> ModuleType:
    return load_benchmark()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees(), seed=st.integers(0, 1000))
def test_hash_matches_reference_and_ignores_order_and_mtimes(
    reference: ModuleType, tree: dict[str, bytes | None], seed: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        one = materialise(Path(tmp) / "one", tree, order_seed=seed)
        two = materialise(Path(tmp) / "two", tree, order_seed=seed + 7)
        patterns = load_ignore_patterns(one)
        digest = truss_content_hash(one)
        assert digest == truss_content_hash(two)
        assert digest == reference.reference_truss_hash(one, patterns)
        assert truss_content_hash(one, ignore=False) == reference.reference_truss_hash(one, [])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees(), data=st.data())
def test_hash_changes_with_any_kept_byte_name_or_empty_dir(
    tree: dict[str, bytes | None], data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = materialise(Path(tmp) / "t", tree)
        rules = IgnoreRules(load_ignore_patterns(root))
        kept = {rel for rel, _kind in truss_files.walk_truss(str(root), rules).entries}
        before = truss_content_hash(root)
        kept_leaves = sorted(rel for rel in tree if rel in kept and rel != ".truss_ignore")
        if not kept_leaves:
            return
        rel = data.draw(st.sampled_from(kept_leaves))
        change = data.draw(st.sampled_from(["byte", "rename", "empty-dir"]))
        target = root / rel
        if change == "byte" and tree[rel]:
            content = bytearray(target.read_bytes())
            i = data.draw(st.integers(0, len(content) - 1))
            content[i] ^= 1 << data.draw(st.integers(0, 7))
            target.write_bytes(bytes(content))
        elif change == "rename":
            target.rename(target.with_name(target.name + "_r"))  # ignored or not: a change
        else:
            parent = target if tree[rel] is None else target.parent
            (parent / "new_empty_dir").mkdir()
        assert truss_content_hash(root) != before


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees(), junk=st.lists(st.sampled_from(
    ["x.pyc", "__pycache__/m.cpython-311.pyc", ".git/HEAD", "build/out", "lib/v.py", "n.log",
     "w.tmp", ".DS_Store", ".mypy_cache/x", "dist/x.whl"]), min_size=1, max_size=5))  # fmt: skip
def test_ignored_paths_do_not_change_the_hash(
    tree: dict[str, bytes | None], junk: list[str]
) -> None:
    tree = {rel: data for rel, data in tree.items() if rel != ".truss_ignore"}
    with tempfile.TemporaryDirectory() as tmp:
        root = materialise(Path(tmp) / "t", tree)
        before = truss_content_hash(root)
        added = False
        for rel in junk:
            target = root / rel
            if any(p.exists() and not p.is_dir() for p in target.parents):
                continue
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"junk")
            added = True
        if added:
            assert truss_content_hash(root) == before
            assert truss_content_hash(root, ignore=False) != truss_content_hash(root)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees(), data=st.data())
def test_cached_hash_equals_uncached_after_random_edits(
    tree: dict[str, bytes | None], data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = materialise(Path(tmp) / "t", tree)
        cache = HashCache(Path(tmp) / "c.sqlite", racy_window_ns=0)
        for _round in range(3):
            assert hash_or_refusal(root, cache) == hash_or_refusal(root, None)
            assert hash_or_refusal(root, cache) == hash_or_refusal(root, None)
            # Next edit in a later timestamp tick: with racy_window_ns=0 the test itself
            # must keep edits apart (the default window is what does it in real use).
            time.sleep(0.02)
            files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != ".truss_ignore")
            edit = data.draw(st.sampled_from(["rewrite", "add", "remove", "mkdir", "link"]))
            if edit == "rewrite" and files:
                target = data.draw(st.sampled_from(files))
                target.write_bytes(data.draw(st.binary(max_size=64)))
            elif edit == "remove" and files:
                data.draw(st.sampled_from(files)).unlink()
            elif edit == "mkdir":
                name = data.draw(st.sampled_from(NAMES))
                if not os.path.lexists(root / name) and name != ".truss_ignore":
                    (root / name).mkdir()
            elif edit == "link" and not os.path.lexists(root / "lnk"):
                (root / "lnk").symlink_to(data.draw(st.sampled_from(["a", "build", "nowhere"])))
            else:
                name = data.draw(st.sampled_from(NAMES))
                if not os.path.lexists(root / name) and name != ".truss_ignore":
                    (root / name).write_bytes(b"added")


def hash_or_refusal(root: Path, cache: HashCache | None) -> str:
    """The hash, or the refusal's message: cached and uncached must agree on both."""
    try:
        return truss_content_hash(root, cache=cache)
    except TrussError as err:
        return f"refused: {err}"


def test_symlinks_file_followed_directory_listed_not_entered(tmp_path: Path) -> None:
    root = tmp_path / "t"
    (root / "shared").mkdir(parents=True)
    (root / "shared" / "common.py").write_text("x = 1\n")
    (root / "link.py").symlink_to("shared/common.py")
    (root / "dirlink").symlink_to("shared")
    before = truss_content_hash(root)
    (root / "shared" / "common.py").write_text("x = 2\n")  # through the file link too
    assert truss_content_hash(root) != before
    ref = load_benchmark().reference_truss_hash(root, load_ignore_patterns(root))
    assert truss_content_hash(root) == ref
    # truss would hash a dangling link's path; zoo-ops refuses it (test_truss_content.py).
    (root / "dangling").symlink_to("nowhere")
    with pytest.raises(TrussError, match="dangling is a broken symlink"):
        truss_content_hash(root)


def test_missing_or_non_directory_path_is_a_one_line_truss_error(tmp_path: Path) -> None:
    with pytest.raises(TrussError, match="does not exist") as err:
        truss_content_hash(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(err.value) and "\n" not in str(err.value)
    (tmp_path / "file").write_text("x")
    with pytest.raises(TrussError, match="is not a directory"):
        truss_content_hash(tmp_path / "file")


# --- the cache ---------------------------------------------------------------------------


@pytest.fixture
def read_counter(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Paths whose contents were read, recorded from the adapter's read functions."""
    reads: list[str] = []
    small, large = truss_files._digest_small, truss_files._digest_large

    def counting_small(job: truss_files._FileJob) -> None:
        reads.append(job.rel)
        small(job)

    def counting_large(job: truss_files._FileJob) -> None:
        reads.append(job.rel)
        large(job)

    monkeypatch.setattr(truss_files, "_digest_small", counting_small)
    monkeypatch.setattr(truss_files, "_digest_large", counting_large)
    yield reads


def small_truss(root: Path, files: int = 20) -> Path:
    (root / "model").mkdir(parents=True)
    (root / "config.yaml").write_text("model_name: t\n")
    for i in range(files):
        (root / "model" / f"m{i}.py").write_text(f"x = {i}\n")
    return root


def test_unchanged_tree_rehash_reads_no_contents(tmp_path: Path, read_counter: list[str]) -> None:
    root = small_truss(tmp_path / "t")
    cache = HashCache(tmp_path / "c.sqlite", racy_window_ns=0)
    cold = truss_content_hash(root, cache=cache)
    assert len(read_counter) == 21
    read_counter.clear()
    assert truss_content_hash(root, cache=cache) == cold
    assert read_counter == []
    # One file changed: only it is read, the rest come from the per-file table.
    (root / "model" / "m3.py").write_text("x = 'changed'\n")
    changed = truss_content_hash(root, cache=cache)
    assert read_counter == ["model/m3.py"]
    assert changed == truss_content_hash(root) != cold


def test_same_size_edit_in_place_is_detected_even_with_mtime_restored(tmp_path: Path) -> None:
    root = small_truss(tmp_path / "t")
    cache = HashCache(tmp_path / "c.sqlite", racy_window_ns=50_000_000)
    time.sleep(0.1)  # let the files settle beyond the racy window
    first = truss_content_hash(root, cache=cache)
    target = root / "model" / "m1.py"
    before = target.stat()
    target.write_text("x = 9\n")  # same size as "x = 1\n"
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))  # mtime as it was
    assert target.stat().st_size == before.st_size
    second = truss_content_hash(root, cache=cache)
    assert second != first
    assert second == truss_content_hash(root)


def test_same_tick_same_size_edit_is_detected_on_coarse_timestamps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A filesystem with 1-second timestamps: a rewrite in the same second keeps the stamp.
    def coarse(st: os.stat_result) -> truss_files.FileStamp:
        second = 10**9
        mtime, ctime = st.st_mtime_ns // second * second, st.st_ctime_ns // second * second
        return (st.st_size, mtime, st.st_ino, ctime)

    monkeypatch.setattr(truss_files, "_stamp", coarse)
    root = small_truss(tmp_path / "t", files=3)
    target = root / "model" / "m0.py"
    cache = HashCache(tmp_path / "c.sqlite")  # default racy window
    for _attempt in range(5):
        while time.time() % 1 > 0.5:  # start early in a second, so all happens within it
            time.sleep(0.05)
        target.write_text("x = 0\n")
        first = truss_content_hash(root, cache=cache)
        before = coarse(target.stat())
        target.write_text("x = 7\n")  # same size, same second
        if coarse(target.stat()) == before:
            break
    else:
        pytest.fail("could not rewrite the file within one second")
    second = truss_content_hash(root, cache=cache)
    assert second != first
    assert second == truss_content_hash(root)


def test_cache_shared_by_concurrent_processes(tmp_path: Path) -> None:
    roots = [small_truss(tmp_path / f"t{i}", files=200) for i in range(2)]
    for i, root in enumerate(roots):
        (root / "model" / "m0.py").write_text(f"variant = {i}\n")
    expected = [truss_content_hash(root) for root in roots]
    cache_path = tmp_path / "shared-cache.sqlite"
    program = (
        "import sys\n"
        "from zoo_ops.adapters.truss_files import HashCache, truss_content_hash\n"
        "cache = HashCache(sys.argv[1], racy_window_ns=0)\n"
        "for _ in range(5):\n"
        "    for root in sys.argv[2:]:\n"
        "        print(truss_content_hash(root, cache=cache))\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", program, str(cache_path), *map(str, roots[:: 1 - 2 * (k % 2)])],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(4)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert set(out.split()) == set(expected)
        assert "warning" not in err.lower(), err
    with sqlite3.connect(cache_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert [truss_content_hash(r, cache=HashCache(cache_path)) for r in roots] == expected


def test_cached_hash_follows_pattern_and_kind_changes(tmp_path: Path) -> None:
    root = small_truss(tmp_path / "t", files=3)
    (root / "build").write_text("a file named build is kept: build/ matches directories\n")
    cache = HashCache(tmp_path / "c.sqlite", racy_window_ns=0)
    assert truss_content_hash(root, cache=cache) == truss_content_hash(root)
    (root / "build").unlink()
    (root / "build").mkdir()  # now a directory: ignored, with its contents
    (root / "build" / "out.bin").write_bytes(b"x")
    assert truss_content_hash(root, cache=cache) == truss_content_hash(root)
    (root / ".truss_ignore").write_text("model/m1.py\n")  # patterns change
    assert truss_content_hash(root, cache=cache) == truss_content_hash(root)
    assert truss_content_hash(root, cache=cache, ignore=False) == truss_content_hash(
        root, ignore=False
    )


def test_unusable_cache_file_does_not_break_hashing(tmp_path: Path) -> None:
    root = small_truss(tmp_path / "t", files=2)
    bad = tmp_path / "cache.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    assert truss_content_hash(root, cache=HashCache(bad)) == truss_content_hash(root)


# --- the benchmark -----------------------------------------------------------------------


def test_benchmark_runs_in_quick_mode() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARK), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    for row in [
        "reference 1-thread",
        "blake3 raw MT",
        "zoo-ops cold",
        "zoo-ops cached",
        "bare walk",
    ]:
        assert row in result.stdout
    assert "targets (issue 4)" in result.stdout
