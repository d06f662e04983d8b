"""The name rule and path confinement: nothing a caller names can leave its root."""

from __future__ import annotations

import os
import string
from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zoo_ops.adapters.paths import resolve_inside
from zoo_ops.domain.names import (
    COPY_SUFFIX,
    MODEL_NAME_MAX,
    NAME_BOUNDS,
    NAME_MAX,
    NAME_PATTERN,
    check_name,
    is_valid_name,
)
from zoo_ops.domain.paths import confined, lexically_inside, part_problem
from zoo_ops.errors import BadInput

KINDS = ("model", "environment", "step")
ASCII_NAME_CHARS = string.ascii_letters + string.digits + "_-"

# Texts biased towards what breaks paths and output: separators, dots, control and
# format characters, lookalikes, surrogates, plus plain name characters.
hostile_chars = st.one_of(
    st.sampled_from(list(ASCII_NAME_CHARS)),
    st.sampled_from(
        list("./\\:\x00\n\r\t\x1b \u0430\uff49\u200b\u2028\ufeff\ud800~$*?'\"%")
        + ["..", "../", "/..", "\\.."]
    ),
    st.characters(),
)
hostile_text = st.lists(hostile_chars, max_size=12).map("".join)
valid_names = st.from_regex(NAME_PATTERN, fullmatch=True).filter(lambda s: len(s) <= NAME_MAX)


# -- the name rule ------------------------------------------------------------------


@pytest.mark.parametrize("value", ["iris", "resnet50", "01_copy", "a", "A-b_9", "x" * 58])
def test_plain_names_are_accepted_unchanged(value: str) -> None:
    assert check_name("model", value) == value


@pytest.mark.parametrize(
    "value,needle",
    [
        ("", "is empty"),
        ("..", "'.'"),
        ("../truss_models/iris", "'.'"),
        ("/etc/passwd", "path separator '/'"),
        ("a\\b", "path separator '\\\\'"),
        ("ir\nis", "control or unprintable character '\\n'"),
        ("iris\n", "control or unprintable character '\\n'"),
        ("ir\x1b[2Kis", "'\\x1b'"),
        ("ir is", "whitespace ' '"),
        ("\u0456ris", "non-ASCII character '\\u0456'"),  # Cyrillic і
        ("ir\u0430s", "CYRILLIC SMALL LETTER A"),
        ("\uff49ris", "FULLWIDTH LATIN SMALL LETTER I"),
        ("iris\u200b", "'\\u200b'"),  # zero-width space
        ("ir\ud800is", "'\\ud800'"),  # lone surrogate
        ("-iris", "must start and end with a letter or digit"),
        ("iris_", "must start and end with a letter or digit"),
        ("C:iris", "the character ':'"),
        ("x" * 59, "59 characters long, more than 58"),
    ],
)
def test_bad_model_names_are_refused_with_one_clear_line(value: str, needle: str) -> None:
    with pytest.raises(BadInput) as err:
        check_name("model", value)
    message = str(err.value)
    assert needle in message
    assert "\n" not in message and "\r" not in message and "\x1b" not in message
    assert message.isascii()
    assert "use 1 to 58 ASCII letters, digits, '_' or '-'" in message
    assert err.value.exit_code == 2


def test_a_long_value_is_shown_cut_with_its_length() -> None:
    with pytest.raises(BadInput) as err:
        check_name("model", "m" * 300)
    assert "(300 characters)" in str(err.value)
    assert "m" * 41 not in str(err.value)


def test_model_names_leave_room_for_the_copy_suffix() -> None:
    longest = "m" * MODEL_NAME_MAX
    assert is_valid_name("model", longest)
    assert not is_valid_name("model", longest + "m")
    assert is_valid_name("environment", longest + COPY_SUFFIX)
    assert len(longest + COPY_SUFFIX) == NAME_MAX == 63
    assert not is_valid_name("environment", "e" * 64)


@pytest.mark.parametrize("value", [None, 5, b"iris", ["iris"], Path("iris")])
def test_non_text_is_refused(value: object) -> None:
    with pytest.raises(BadInput, match="must be text"):
        check_name("environment", value)


def test_an_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        is_valid_name("modle", "iris")


@settings(max_examples=400)
@given(kind=st.sampled_from(KINDS), value=hostile_text)
def test_the_rule_is_its_documented_pattern(kind: str, value: str) -> None:
    expected = NAME_PATTERN.fullmatch(value) is not None and len(value) <= NAME_BOUNDS[kind]
    assert is_valid_name(kind, value) is expected
    if expected:
        assert value.isascii() and value.isprintable() and ".." not in value
        assert set(value) <= set(ASCII_NAME_CHARS)
    else:
        with pytest.raises(BadInput) as err:
            check_name(kind, value)
        # The message cannot forge a line or carry a lookalike.
        assert str(err.value).isascii() and str(err.value).isprintable()


@given(value=valid_names)
def test_generated_valid_names_pass(value: str) -> None:
    assert check_name("environment", value) == value


# -- lexical confinement -------------------------------------------------------------

ROOTS = [PurePosixPath("/srv/zoo/executed"), PurePosixPath("executed"), Path("/tmp/zoo-root")]


@pytest.mark.parametrize(
    "part",
    ["", ".", "..", "/etc", "a/b", "a\\b", "C:x", "x\x00", "a\nb", "\\\\server\\share", "a/"],
)
def test_confined_refuses_parts_that_leave_or_bend_the_root(part: str) -> None:
    with pytest.raises(BadInput):
        confined(PurePosixPath("/srv/zoo"), "local", part)


def test_confined_joins_checked_parts_under_root_keeping_its_type() -> None:
    root = Path("/srv/zoo/executed")
    path = confined(root, "staging", "iris", "20260101T000000Z-03_migrate.ipynb")
    assert isinstance(path, Path)
    assert path == Path("/srv/zoo/executed/staging/iris/20260101T000000Z-03_migrate.ipynb")
    assert confined(PureWindowsPath("C:/zoo"), "iris") == PureWindowsPath("C:/zoo/iris")


@settings(max_examples=400)
@given(
    root=st.sampled_from(ROOTS),
    parts=st.lists(st.one_of(hostile_text, valid_names), min_size=1, max_size=4),
)
def test_no_generated_parts_leave_the_root_lexically(root: PurePosixPath, parts: list[str]) -> None:
    try:
        path = confined(root, *parts)
    except BadInput:
        assert any(part_problem(p) is not None for p in parts)
        return
    assert lexically_inside(root, path)
    assert path.parts[: len(root.parts)] == root.parts
    assert len(path.parts) == len(root.parts) + len(parts)
    assert ".." not in path.parts[len(root.parts) :]
    # Also as the OS normalizes it: no step up out of root.
    assert os.path.normpath(str(path)).startswith(os.path.normpath(str(root)))


@given(name=valid_names)
def test_a_checked_name_is_always_a_safe_part(name: str) -> None:
    assert part_problem(name) is None
    assert confined(PurePosixPath("/r"), name) == PurePosixPath("/r", name)


def test_lexically_inside() -> None:
    root = PurePosixPath("/srv/zoo")
    assert lexically_inside(root, PurePosixPath("/srv/zoo/a/b"))
    assert lexically_inside(root, root)
    assert not lexically_inside(root, PurePosixPath("/srv/zoo/../etc"))
    assert not lexically_inside(root, PurePosixPath("/srv/zoo-evil/a"))
    assert not lexically_inside(root, PurePosixPath("srv/zoo/a"))


# -- resolving confinement, on a real tree -----------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """root/ with an inside folder, a link to it, links leading out and a loop."""
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    (root / "staging" / "iris").mkdir(parents=True)
    outside.mkdir()
    (outside / "shadow").write_text("x")
    (root / "alias").symlink_to(root / "staging")  # stays inside
    (root / "out").symlink_to(outside)  # a folder link out
    (root / "staging" / "shadow").symlink_to(outside / "shadow")  # a file link out
    (root / "up").symlink_to("..")  # relative link out
    (root / "loop").symlink_to(root / "loop")  # a loop
    (tmp_path / "root-evil").mkdir()  # a sibling sharing root's name as a prefix
    return root, outside


def test_resolve_inside_accepts_paths_inside_also_through_inner_links(
    tree: tuple[Path, Path],
) -> None:
    root, _ = tree
    real_root = root.resolve()
    assert resolve_inside(root, root / "staging" / "iris") == real_root / "staging" / "iris"
    assert resolve_inside(root, root / "alias" / "iris") == real_root / "staging" / "iris"
    # Not there yet (a file about to be written) is fine.
    assert resolve_inside(root, root / "staging" / "new.ipynb").parent == real_root / "staging"


@pytest.mark.parametrize(
    "rel", ["out", "out/shadow", "staging/shadow", "up", "up/outside/shadow", "out/new"]
)
def test_resolve_inside_refuses_links_that_leave_root(tree: tuple[Path, Path], rel: str) -> None:
    root, _ = tree
    with pytest.raises(BadInput, match="outside"):
        resolve_inside(root, root / rel)


def test_resolve_inside_refuses_a_sibling_with_roots_name_as_prefix(
    tree: tuple[Path, Path],
) -> None:
    root, _ = tree
    with pytest.raises(BadInput, match="outside"):
        resolve_inside(root, root.parent / "root-evil")


def test_resolve_inside_refuses_the_root_itself_unless_allowed(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    with pytest.raises(BadInput, match="itself"):
        resolve_inside(root, root / "staging" / "..")
    assert resolve_inside(root, root, allow_root=True) == root.resolve()


def test_resolve_inside_refuses_a_loop_and_a_nul_in_one_line(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    for bad in (root / "loop", root / "loop" / "x", Path(str(root) + "/a\x00b")):
        with pytest.raises(BadInput) as err:
            resolve_inside(root, bad)
        assert "\n" not in str(err.value)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    parts=st.lists(
        st.one_of(
            hostile_text, st.sampled_from(["out", "up", "alias", "staging", "loop", "shadow", ".."])
        ),
        min_size=1,
        max_size=4,
    )
)
def test_no_generated_path_resolves_outside_root(tree: tuple[Path, Path], parts: list[str]) -> None:
    root, outside = tree
    real_root = root.resolve()
    try:
        candidate = confined(root, *parts)
    except BadInput:
        candidate = root.joinpath(*[p.replace("\x00", "") for p in parts if p])  # raw join
    try:
        resolved = resolve_inside(root, candidate)
    except BadInput:
        return
    assert resolved.is_relative_to(real_root) and resolved != real_root
    assert not resolved.is_relative_to(outside.resolve())
    assert os.path.realpath(candidate).startswith(str(real_root) + os.sep)
