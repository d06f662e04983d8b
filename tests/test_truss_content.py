"""Truss content that cannot escape: what is hashed is exactly what is deployed.

One walk (``truss_files.walk_truss``) serves the hash and the deploy's copy; it refuses
symlinks that leave the truss, broken links, loops and special files (FIFO, socket).
These tests build trusses with each kind of entry and check, for every one of them,
that hash and copy agree -- both refuse with the same line, or the copy holds exactly
the hashed paths and hashes to the same digest -- and that a refused truss stops
``zoo-ops run 01_copy`` before the whitelist or the database changes.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.bad_inputs import ONE_ERROR_LINE, case_env, fingerprint  # noqa: F401 - fixture

from zoo_ops.adapters.serving.local import copy_truss
from zoo_ops.adapters.truss_files import (
    copy_truss_content,
    truss_content_hash,
    walk_truss_folder,
)
from zoo_ops.adapters.truss_runtime import read_truss
from zoo_ops.cli import main
from zoo_ops.domain.truss_content import (
    LINK_BROKEN,
    LINK_LOOP,
    TARGET_DIRECTORY,
    TARGET_FILE,
    LinkTarget,
    inside_path,
    link_problem,
    link_text,
    links_in_cycles,
)
from zoo_ops.environment import Environment
from zoo_ops.errors import StepFailed, TrussError

# --- the pure rule ------------------------------------------------------------------------


def test_inside_path_compares_whole_components() -> None:
    assert inside_path("/t/iris", "/t/iris") == ""
    assert inside_path("/t/iris", "/t/iris/data/x") == "data/x"
    assert inside_path("/t/iris", "/t/iris2/x") is None  # a sibling sharing a prefix
    assert inside_path("/t/iris", "/t") is None
    assert inside_path("/", "/etc/shadow") == "etc/shadow"


@pytest.mark.parametrize(
    ("link", "problem"),
    [
        (LinkTarget("d/x", "/etc/shadow", TARGET_FILE), "outside the truss folder"),
        (LinkTarget("d/x", "/t2/x", TARGET_FILE), "outside the truss folder"),
        (LinkTarget("d/x", LINK_LOOP), "symlink loop"),
        (LinkTarget("d/x", LINK_BROKEN), "broken symlink"),
        (LinkTarget("d/x", "/t/data/a.bin", TARGET_FILE), None),
        (LinkTarget("d/x", "/t/f", "FIFO"), "symlink to a FIFO"),
        (LinkTarget("d/x", "/t/shared", TARGET_DIRECTORY), None),
        (LinkTarget("d/x", "/t", TARGET_DIRECTORY), "a cycle"),
        (LinkTarget("d/e/x", "/t/d", TARGET_DIRECTORY), "a cycle"),
        (LinkTarget("d/x", "/t/build", TARGET_DIRECTORY), "ignore patterns leave"),
    ],
)
def test_link_rule(link: LinkTarget, problem: str | None) -> None:
    found = link_problem(link, "/t", {"shared", "d", "d/e", "data"})
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found and "\n" not in found


@pytest.mark.parametrize(
    ("dir_links", "in_cycles"),
    [
        ({"a/up": "b", "b/back": "a"}, ["a/up", "b/back"]),
        ({"a/up": "b", "b/c/back": "a/x"}, []),  # a/x does not hold a/up
        ({"a/up": "b", "b/on": "c", "c/back": "a"}, ["a/up", "b/on", "c/back"]),
        ({"a/s": "shared", "b/s": "shared"}, []),  # two links to one folder: no cycle
        ({"a/self": "a"}, ["a/self"]),
    ],
)
def test_links_in_cycles(dir_links: dict[str, str], in_cycles: list[str]) -> None:
    assert sorted(links_in_cycles(dir_links)) == in_cycles


def test_link_text_is_relative_to_the_links_folder() -> None:
    assert link_text("shared_link", "shared") == "shared"
    assert link_text("model/lib_link", "shared/lib") == "../shared/lib"
    assert link_text("a/b/c", "a") == ".."


# --- hash and copy agree, on every kind of entry --------------------------------------------


def base_truss(root: Path) -> Path:
    (root / "model").mkdir(parents=True)
    (root / "model" / "model.py").write_text("class Model:\n    pass\n")
    (root / "shared").mkdir()
    (root / "shared" / "common.py").write_text("X = 1\n")
    (root / "data").mkdir()
    (root / "data" / "w.bin").write_bytes(os.urandom(300))
    (root / "build").mkdir()  # ignored by truss's default patterns
    (root / "build" / "junk.txt").write_text("junk")
    (root / "config.yaml").write_text("model_name: t\n")
    return root


def make_fifo(path: Path) -> None:
    os.mkfifo(path)


def make_socket(path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()


# Each addition: (relative path, how to make it, refused?) -- the outside target is made
# by the fixture below, beside the truss.
ADDITIONS: dict[str, tuple[str, Callable[[Path, Path], None], str | None]] = {
    "inside-file-link": (
        "model/common.py",
        lambda at, out: at.symlink_to("../shared/common.py"),
        None,
    ),
    "inside-dir-link": ("shared_link", lambda at, out: at.symlink_to("shared"), None),
    "inside-nested-dir-link": (
        "model/data_link",
        lambda at, out: at.symlink_to("../data"),
        None,
    ),
    "inside-link-chain": (
        "data/chain.bin",
        lambda at, out: at.symlink_to("../model/common_again.py"),
        None,
    ),
    "absolute-inside-file-link": (
        "data/abs.bin",
        lambda at, out: at.symlink_to(at.parent / "w.bin"),
        None,
    ),
    "outside-file-link": (
        "data/x",
        lambda at, out: at.symlink_to(out / "secret.txt"),
        "outside the truss folder",
    ),
    "outside-dir-link": (
        "data/elsewhere",
        lambda at, out: at.symlink_to(out),
        "outside the truss folder",
    ),
    "relative-escape": (
        "data/up",
        lambda at, out: at.symlink_to("../../outside/secret.txt"),
        "outside the truss folder",
    ),
    "etc-shadow": ("data/shadow", lambda at, out: at.symlink_to("/etc/shadow"), "outside"),
    "self-loop": ("data/loop", lambda at, out: at.symlink_to("loop"), "symlink loop"),
    "two-link-loop": (
        "data/a",
        lambda at, out: (at.symlink_to("b"), (at.parent / "b").symlink_to("a")),
        "symlink loop",
    ),
    "broken-link": ("data/gone", lambda at, out: at.symlink_to("nowhere"), "broken symlink"),
    "link-to-root": ("model/root", lambda at, out: at.symlink_to(".."), "a cycle"),
    "two-folder-link-cycle": (
        "data/to_model",
        lambda at, out: (
            at.symlink_to("../model"),
            (at.parent.parent / "model" / "to_data").symlink_to("../data"),
        ),
        "leads back to itself",
    ),
    "link-into-ignored": ("stuff", lambda at, out: at.symlink_to("build"), "ignore patterns"),
    "fifo": ("data/pipe", lambda at, out: make_fifo(at), "is a FIFO"),
    "link-to-fifo": (
        "data/pipe_link",
        lambda at, out: (make_fifo(out / "pipe"), at.symlink_to(out / "pipe")),
        "outside the truss folder",
    ),
    "inside-link-to-fifo": (
        "data/pipe_link",
        lambda at, out: (make_fifo(at.parent / "p.log"), at.symlink_to("p.log")),
        "symlink to a FIFO",
    ),
    "socket": ("data/sock", lambda at, out: make_socket(at), "is a socket"),
    "ignored-fifo": ("__pycache__/pipe", lambda at, out: make_fifo(at), None),
    "ignored-outside-link": (
        "build/x",
        lambda at, out: at.symlink_to(out / "secret.txt"),
        None,
    ),
}


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("not for deploy")
    return folder


def add(root: Path, outside: Path, name: str) -> None:
    rel, make, _ = ADDITIONS[name]
    at = root / rel
    at.parent.mkdir(parents=True, exist_ok=True)
    if name == "inside-link-chain":
        (root / "model" / "common_again.py").symlink_to("../shared/common.py")
    make(at, outside)


def listed(folder: Path) -> set[str]:
    """Every path below ``folder`` (folders, files, links), without following links."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            found.add(Path(dirpath, name).relative_to(folder).as_posix())
    return found


def assert_hash_equals_deploy(root: Path, deployed: Path) -> None:
    """The copy holds exactly the hashed paths, hashes the same, and stays inside."""
    hashed = {rel for rel, _kind in walk_truss_folder(root).entries}
    written = copy_truss_content(root, deployed)
    assert listed(deployed) == hashed
    assert written == truss_content_hash(root) == truss_content_hash(deployed)
    for rel in listed(deployed):
        real = os.path.realpath(deployed / rel)
        assert inside_path(os.path.realpath(deployed), real) is not None, rel


@pytest.mark.parametrize("name", sorted(ADDITIONS))
def test_hash_and_copy_agree_on_every_kind_of_entry(
    name: str, tmp_path: Path, outside: Path
) -> None:
    root = base_truss(tmp_path / "truss")
    add(root, outside, name)
    refusal = ADDITIONS[name][2]
    if refusal is None:
        assert_hash_equals_deploy(root, tmp_path / "deployed")
        return
    rel = ADDITIONS[name][0]
    with pytest.raises(TrussError) as hashed:
        truss_content_hash(root)
    with pytest.raises(TrussError) as copied:
        copy_truss_content(root, tmp_path / "deployed")
    with pytest.raises(TrussError) as read:
        read_truss(root)
    message = str(hashed.value)
    assert message == str(copied.value) == str(read.value)
    assert refusal in message and f"{root}/{rel}" in message and "\n" not in message
    assert not (tmp_path / "deployed").exists()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=st.sets(st.sampled_from(sorted(ADDITIONS)), max_size=4))
def test_any_mix_either_refused_by_both_or_deployed_as_hashed(names: set[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        out = base / "outside"
        out.mkdir()
        (out / "secret.txt").write_text("not for deploy")
        root = base_truss(base / "truss")
        for name in sorted(names):
            rel = ADDITIONS[name][0]
            if os.path.lexists(root / rel):
                continue
            try:
                add(root, out, name)
            except FileExistsError:
                continue  # two additions wanting one path: the first one stays
        try:
            expected = truss_content_hash(root)
        except TrussError as err:
            with pytest.raises(TrussError) as copied:
                copy_truss_content(root, base / "deployed")
            assert str(copied.value) == str(err)
            assert not (base / "deployed").exists()
            return
        assert_hash_equals_deploy(root, base / "deployed")
        assert truss_content_hash(base / "deployed") == expected


def test_deploy_refuses_a_truss_changed_after_its_hash(tmp_path: Path) -> None:
    root = base_truss(tmp_path / "truss")
    (root / "shared_link").symlink_to("shared")
    truss_hash = truss_content_hash(root)
    target = tmp_path / "artifacts" / "v1"
    copy_truss(root, target, truss_hash=truss_hash)
    assert truss_content_hash(target) == truss_hash
    assert os.readlink(target / "shared_link") == "shared"
    (root / "data" / "w.bin").write_bytes(b"changed")
    with pytest.raises(StepFailed, match="changed after it was hashed"):
        copy_truss(root, tmp_path / "artifacts" / "v2", truss_hash=truss_hash)
    assert sorted(p.name for p in (tmp_path / "artifacts").iterdir()) == ["v1"]


def test_a_config_yaml_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    root = base_truss(tmp_path / "truss")
    (root / "config.yaml").unlink()
    os.mkfifo(root / "config.yaml")
    with pytest.raises(TrussError, match=r"config.yaml is a FIFO, not a file"):
        read_truss(root)


def test_a_truss_ignore_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    root = base_truss(tmp_path / "truss")
    os.mkfifo(root / ".truss_ignore")
    with pytest.raises(TrussError, match=r"\.truss_ignore: not a regular file"):
        truss_content_hash(root)
    with pytest.raises(TrussError, match=r"\.truss_ignore: not a regular file"):
        read_truss(root)


# --- through the command line: refused before any write -------------------------------------


def break_iris(trusses: Path, outside: Path, how: str) -> str:
    """Break the demo's iris truss; the path the refusal must name."""
    iris = trusses / "iris"
    if how == "outside-link":
        (iris / "data" / "x").symlink_to(outside / "secret.txt")
        return f"{iris}/data/x"
    if how == "outside-dir-link":
        (iris / "model" / "vendored").symlink_to(outside)
        return f"{iris}/model/vendored"
    if how == "loop":
        (iris / "data" / "loop").symlink_to("loop")
        return f"{iris}/data/loop"
    if how == "fifo":
        os.mkfifo(iris / "data" / "feed")
        return f"{iris}/data/feed"
    if how == "fifo-examples":
        (iris / "examples.yaml").unlink()
        os.mkfifo(iris / "examples.yaml")
        return f"{iris}/examples.yaml"
    raise AssertionError(how)


@pytest.fixture
def demo(
    case_env: Callable[[str], tuple[Environment, Path]],  # noqa: F811 - the imported fixture
) -> Iterator[tuple[Environment, Path]]:
    yield case_env("sqlite")


@pytest.mark.parametrize(
    "how", ["outside-link", "outside-dir-link", "loop", "fifo", "fifo-examples"]
)
def test_01_copy_refuses_before_the_whitelist_or_the_database_changes(
    how: str,
    demo: tuple[Environment, Path],
    outside: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env, trusses = demo
    named = break_iris(trusses, outside, how)
    artifacts = env.config.state_path / "artifacts"
    artifacts_before = sorted(os.listdir(artifacts)) if artifacts.exists() else []
    before = fingerprint(env)
    capsys.readouterr()

    code = main(["run", "01_copy", "-m", "iris"])

    err = capsys.readouterr().err
    lines = err.splitlines()
    assert code == 2, err
    assert len(lines) == 1 and ONE_ERROR_LINE.match(lines[0]), err
    assert named in lines[0]
    assert fingerprint(env) == before  # the settings file's bytes and every platform table
    after = sorted(os.listdir(artifacts)) if artifacts.exists() else []
    assert after == artifacts_before


def test_01_copy_deploys_exactly_the_hashed_truss_with_inside_links(
    demo: tuple[Environment, Path],
) -> None:
    env, trusses = demo
    iris = trusses / "iris"
    (iris / "model" / "centroids.json").symlink_to("../data/centroids.json")
    (iris / "data_link").symlink_to("data")
    expected = truss_content_hash(iris)

    assert main(["run", "01_copy", "-m", "iris"]) == 0

    version = env.platform.current_version(env.platform.zoo_model("iris_copy"))
    assert version.truss_hash == expected
    assert version.artifact is not None
    deployed = env.config.state_path / version.artifact.partition(":")[2]
    assert listed(deployed) == {rel for rel, _kind in walk_truss_folder(iris).entries}
    assert truss_content_hash(deployed) == expected
    assert not (deployed / "model" / "centroids.json").is_symlink()  # followed: a file
    assert os.readlink(deployed / "data_link") == "data"  # kept: a link inside the copy
