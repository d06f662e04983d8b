"""The one name rule and path confinement, wired through zoo-ops.

tests/test_names.py proves the foundations (``check_name``, ``confined``,
``resolve_inside``) on their own; this file proves the places that use them: the trail's
``executed_path``, the configuration's ``truss_path``/``trail_path``, the runbook
parameters a plain papermill run validates, the CLI's ``-e``, ``zoo-ops run``'s
reservation, ``demo --reset`` and ``report -o``. Generated names and path parts
(any Unicode, separators, dots, control characters) never produce a path outside its
root, and every name accepted matches the documented pattern.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from zoo_ops.adapters.paths import check_removable
from zoo_ops.adapters.platform import schema as s
from zoo_ops.cli import main
from zoo_ops.cli.options import env_name
from zoo_ops.commands.demo import reset_targets
from zoo_ops.commands.report import INDEX_NAME, prepare_report_folder
from zoo_ops.config import load_environment
from zoo_ops.domain.names import MODEL_NAME_MAX, NAME_MAX, NAME_PATTERN
from zoo_ops.errors import BadInput
from zoo_ops.execute import execute_runbook
from zoo_ops.steps.parameters import convert_texts, validate_step
from zoo_ops.trail.names import executed_path

# Names an attacker would try, and text of any kind: every Unicode category (lone
# surrogates included), path separators, dots, control characters.
TRICKS = [
    "..",
    ".",
    "../x",
    "/etc",
    "a/b",
    "a\\b",
    "C:x",
    "x\x00",
    "a\nb",
    "iris\r",
    "\u0456ris",
    "\uff49ris",
    "ir\u200bis",
    "-x",
    "x-",
    "x" * 300,
    "\ud800",
    "~",
    "$HOME",
]
any_text = st.text(st.characters(exclude_categories=()), max_size=70)
path_text = st.text(st.sampled_from("./\\:\x00\n\t -_aZ09\u0430\uff49\u200b~"), max_size=12)
near_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-/ ]{0,70}", fullmatch=True)
names = st.one_of(any_text, path_text, near_names, st.sampled_from(TRICKS))


def is_pattern_name(value: str, bound: int) -> bool:
    """The rule as documented: the pattern in full, within the bound."""
    return NAME_PATTERN.fullmatch(value) is not None and len(value) <= bound


def inside(root: Path, path: Path) -> bool:
    """``path`` below ``root`` also after the OS normalizes ``..``."""
    return os.path.normpath(path).startswith(os.path.normpath(root) + os.sep)


# --- generated names through every place that joins them into a path ----------------------


@settings(max_examples=300, deadline=None)
@given(env=names, model=names)
def test_executed_path_files_only_pattern_names_and_only_under_its_root(
    env: str, model: str
) -> None:
    root = Path("/srv/zoo/executed")
    try:
        path = executed_path(root, env, model, "03_migrate")
    except BadInput as err:
        assert not (is_pattern_name(env, NAME_MAX) and is_pattern_name(model, MODEL_NAME_MAX))
        assert "\n" not in str(err) and str(err).isprintable()
        return
    assert is_pattern_name(env, NAME_MAX) and is_pattern_name(model, MODEL_NAME_MAX)
    assert path.parent == root / env / model and inside(root, path)
    assert path.name.endswith("-03_migrate.ipynb")


@settings(max_examples=200, deadline=None)
@given(model=names)
def test_truss_and_trail_paths_of_a_config_never_leave_their_roots(
    model: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    cfg = load_environment("local", cwd=tmp_path_factory.getbasetemp())
    for root, build in (
        (cfg.truss_root_path, cfg.truss_path),
        (cfg.executed_root_path, cfg.trail_path),
    ):
        try:
            path = build(model)
        except BadInput:
            continue
        assert inside(root, path)


@settings(max_examples=300, deadline=None)
@given(model=names, env=names)
def test_runbook_parameters_accept_only_pattern_names(model: str, env: str) -> None:
    # What runbook.start validates first, also in a plain `papermill -p model ...` run.
    try:
        params = validate_step("03_migrate", {"model": model, "env": env})
    except BadInput:
        assert not (
            is_pattern_name(model.strip(), MODEL_NAME_MAX)
            and is_pattern_name(env.strip(), NAME_MAX)
        )
        return
    assert is_pattern_name(params.model, MODEL_NAME_MAX) and params.model == model.strip()
    assert is_pattern_name(params.env, NAME_MAX) and params.env == env.strip()


@settings(max_examples=200, deadline=None)
@given(value=names)
def test_the_cli_env_option_accepts_only_pattern_names(value: str) -> None:
    args = argparse.Namespace(env_1=[value])
    try:
        assert env_name(args) == value
    except BadInput:
        assert not is_pattern_name(value, NAME_MAX)
        return
    assert is_pattern_name(value, NAME_MAX)


@pytest.mark.parametrize(
    ("step", "name", "text"),
    [
        ("02_verify", "rtol", "nan"),
        ("02_verify", "rtol", "inf"),
        ("05_retire", "min_age_days", "-inf"),
        ("05_retire", "min_age_days", "NaN"),
    ],
)
def test_non_finite_numbers_are_refused_as_text_and_as_values(
    step: str, name: str, text: str
) -> None:
    with pytest.raises(BadInput, match="finite"):
        convert_texts(step, {name: text})
    # A notebook parameter set to float("nan") directly (plain papermill).
    with pytest.raises(BadInput, match="finite"):
        validate_step(step, {"model": "iris", name: float(text)})


def test_wait_timeout_s_refuses_infinity_as_a_notebook_value() -> None:
    with pytest.raises(BadInput, match="finite"):
        validate_step("01_copy", {"model": "iris", "wait_timeout_s": float("inf")})


# --- destructive operations: check_removable and demo --reset --------------------------------


@pytest.fixture
def linked_tree(tmp_path: Path) -> tuple[Path, Path, Path]:
    """root/ with an inner link, a link out, an up link and a loop; keep/ beside it."""
    root, keep, outside = tmp_path / "root", tmp_path / "keep", tmp_path / "outside"
    for folder in (root / "a" / "b", keep, outside):
        folder.mkdir(parents=True)
    (root / "inner").symlink_to(root / "a")
    (root / "out").symlink_to(outside)
    (root / "up").symlink_to(tmp_path)
    (root / "keeplink").symlink_to(keep)
    (root / "loop").symlink_to(root / "loop")
    return root, keep, outside


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    parts=st.lists(
        st.one_of(path_text, st.sampled_from(["a", "b", "inner", "out", "up", "keeplink", "loop"])),
        min_size=1,
        max_size=4,
    )
)
def test_nothing_removable_lies_outside_root_or_holds_what_is_kept(
    linked_tree: tuple[Path, Path, Path], parts: list[str]
) -> None:
    root, keep, outside = linked_tree
    candidate = root.joinpath(*[p.replace("\x00", "") for p in parts if p])  # joined raw
    try:
        real = check_removable(candidate, root, keep={"kept": keep})
    except BadInput:
        return
    real_root = root.resolve()
    assert real.is_relative_to(real_root) and real != real_root
    assert not real.is_relative_to(outside.resolve()) and not keep.resolve().is_relative_to(real)


def demo_config(tmp_path: Path, write_config: Callable[[str], Path], **paths: str) -> None:
    """An environment ``lab`` whose folders are ``paths`` (relative to tmp_path)."""
    values = {
        "state_dir": "state",
        "executed_root": "executed",
        "truss_root": "truss_models",
        "settings": "file:state/settings.yaml",
        **paths,
    }
    body = "".join(f'{key} = "{value}"\n' for key, value in values.items())
    write_config(f'[env.lab]\ndatabase_url = "sqlite:///{tmp_path}/lab.db"\n{body}')
    (tmp_path / "truss_models" / "iris").mkdir(parents=True)
    (tmp_path / "truss_models" / "iris" / "config.yaml").write_text("model_name: iris\n")


def test_reset_deletes_the_artifacts_and_the_environments_own_trail(
    tmp_path: Path, write_config: Callable[[str], Path]
) -> None:
    demo_config(tmp_path, write_config)
    cfg = load_environment("lab")
    assert reset_targets(cfg) == [
        (tmp_path / "state" / "artifacts").resolve(),
        (tmp_path / "executed" / "lab").resolve(),
    ]


@pytest.mark.parametrize(
    ("paths", "needle"),
    [
        ({"state_dir": "."}, "configuration folder"),
        ({"state_dir": "truss_models/x"}, "truss_root"),
        ({"executed_root": "."}, "lies inside the executed_root"),
        ({"executed_root": "state"}, "contains the executed_root"),
        ({"state_dir": "link-to-root"}, "configuration folder"),
        ({"state_dir": "link-to-slash"}, "is or contains"),
    ],
)
def test_demo_reset_refuses_folders_that_hold_what_must_be_kept(
    tmp_path: Path,
    write_config: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    paths: dict[str, str],
    needle: str,
) -> None:
    demo_config(tmp_path, write_config, **paths)
    (tmp_path / "link-to-root").symlink_to(tmp_path)
    (tmp_path / "link-to-slash").symlink_to("/")
    monkeypatch.chdir(tmp_path / "truss_models")
    before = sorted(str(p) for p in tmp_path.rglob("*"))

    assert main(["demo", "-e", "lab", "--reset"]) == 2

    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and needle in err[0], err
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_demo_reset_refuses_an_artifacts_link_that_leaves_the_state_folder(
    tmp_path: Path, write_config: Callable[[str], Path]
) -> None:
    demo_config(tmp_path, write_config)
    (tmp_path / "state").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "state" / "artifacts").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(BadInput, match="outside"):
        reset_targets(load_environment("lab"))


def test_the_issues_dotdot_environment_deletes_nothing(
    tmp_path: Path, write_config: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # issue 14: [env.".."] with state_dir in the repository; demo -e .. --reset exited 0
    # after deleting truss_models/, zoo_ops.toml and every environment's trail.
    repo = tmp_path / "repo"
    (repo / "truss_models" / "iris").mkdir(parents=True)
    (repo / "executed" / "local").mkdir(parents=True)
    config = write_config('[env.".."]\nstate_dir = "repo"\nexecuted_root = "repo/executed"\n')
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    for argv in (["demo", "-e", "..", "--reset"], ["demo", "--reset"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and "environment name '..'" in err[0], err
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before and config.exists()


# --- zoo-ops run: names checked before the run is reserved --------------------------------------


def run_rows(env: object) -> int:
    engine = env.platform.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(s.runs)).scalar_one())


@pytest.mark.parametrize(
    "model", ["../truss_models/iris", "../staging/iris", "/tmp/iris", "iris\nok", "m" * 300]
)
def test_run_refuses_a_bad_model_before_reserving_a_row_or_a_notebook(
    demo_env: object, tmp_path: Path, model: str
) -> None:
    rows = run_rows(demo_env)
    before = sorted(str(p) for p in tmp_path.rglob("*") if "state" not in p.parts)
    with pytest.raises(BadInput, match="model name"):
        execute_runbook("03_migrate", model=model)
    assert run_rows(demo_env) == rows
    assert sorted(str(p) for p in tmp_path.rglob("*") if "state" not in p.parts) == before


def test_run_refuses_a_trail_folder_that_links_out_of_the_trail(
    demo_env: object, tmp_path: Path
) -> None:
    """executed/local -> a folder elsewhere: the notebook would leave the trail."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    trail = Path(demo_env.config.executed_root_path)  # type: ignore[attr-defined]
    trail.mkdir(parents=True, exist_ok=True)
    (trail / "local").symlink_to(outside, target_is_directory=True)
    rows = run_rows(demo_env)
    with pytest.raises(BadInput, match="outside"):
        execute_runbook("02_verify", model="iris", parameters={"dry_run": "true"})
    assert run_rows(demo_env) == rows and not list(outside.iterdir())


# --- report -o -------------------------------------------------------------------------------


def test_report_folder_new_empty_or_an_earlier_report_is_accepted(tmp_path: Path) -> None:
    assert prepare_report_folder(tmp_path / "new") == tmp_path / "new"
    assert (tmp_path / "new").is_dir()
    assert prepare_report_folder(tmp_path / "new") == tmp_path / "new"  # empty: fine
    (tmp_path / "new" / INDEX_NAME).write_text("<html></html>")
    (tmp_path / "new" / "notes.txt").write_text("an earlier report may hold more")
    assert prepare_report_folder(tmp_path / "new") == tmp_path / "new"


def test_report_folder_refusals_change_nothing(tmp_path: Path) -> None:
    (tmp_path / "trail").mkdir()
    (tmp_path / "file").write_text("x")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "trail")
    (tmp_path / "other-link").symlink_to(tmp_path / "elsewhere")
    for out, needle in (
        (tmp_path / "trail" / "r", "lies in the trail"),
        (tmp_path / "link" / "r", "lies in the trail"),
        (tmp_path / "file", "not a folder"),
        (tmp_path / "other-link", "not a folder"),
        (tmp_path / "a" / "b", "not an existing folder"),
    ):
        with pytest.raises(BadInput, match=needle):
            prepare_report_folder(out, [tmp_path / "trail"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "elsewhere",
        "file",
        "link",
        "other-link",
        "trail",
    ]
    assert list((tmp_path / "trail").iterdir()) == list((tmp_path / "elsewhere").iterdir()) == []
