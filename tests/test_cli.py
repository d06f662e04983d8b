"""The command line's shared parts: ``-e ENV`` anywhere, ``run STEP --help``, the table printer."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

import zoo_ops.cli as cli_module
from zoo_ops.cli import build_parser, main
from zoo_ops.cli.options import env_name, env_names
from zoo_ops.cli.output import format_frame, format_table
from zoo_ops.errors import BadInput
from zoo_ops.steps.parameters import parameters_of


@pytest.fixture
def all_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    mine = ("zoo_ops.cli.status", "zoo_ops.cli.history", "zoo_ops.cli.report")
    modules = tuple(dict.fromkeys((*cli_module.COMMAND_MODULES, *mine)))
    monkeypatch.setattr(cli_module, "COMMAND_MODULES", modules)


@pytest.mark.parametrize(
    "argv",
    [
        ["-e", "X", "whitelist", "show"],
        ["whitelist", "-e", "X", "show"],
        ["whitelist", "show", "-e", "X"],
        ["--env", "X", "whitelist", "set", "iris", "--copy", "true"],
        ["whitelist", "set", "iris", "--copy", "true", "-e", "X"],
        ["automation", "reconcile", "-e", "X"],
        ["-e", "X", "automation", "reconcile"],
        ["run", "03_migrate", "-m", "iris", "-e", "X"],
        ["-e", "X", "run", "03_migrate", "-m", "iris"],
        ["-e", "X", "demo"],
        ["history", "abc", "-e", "X"],
    ],
)
def test_env_before_or_after_the_command(argv: list[str], all_commands: None) -> None:
    args = build_parser().parse_args(argv)
    assert env_name(args) == "X"


def test_env_defaults_to_local_and_one_environment_is_one(all_commands: None) -> None:
    assert env_name(build_parser().parse_args(["whitelist", "show"])) == "local"
    same = build_parser().parse_args(["-e", "X", "whitelist", "show", "-e", "X"])
    assert env_name(same) == "X"
    two = build_parser().parse_args(["-e", "X", "whitelist", "show", "-e", "Y"])
    with pytest.raises(BadInput, match="one environment"):
        env_name(two)


def test_status_and_report_take_several_environments(all_commands: None) -> None:
    parse = build_parser().parse_args
    assert env_names(parse(["status"])) is None
    assert env_names(parse(["-e", "a", "status", "-e", "b"])) == ["a", "b"]
    assert env_names(parse(["report", "-e", "a", "-e", "a"])) == ["a"]


def test_a_command_without_an_environment_refuses_e(
    all_commands: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["-e", "X", "hash", "."])
    assert info.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "zoo-ops hash takes no -e ENV" in line


def test_unknown_environment_after_the_action_is_one_line(
    write_config: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(f'[env.local]\nexecuted_root = "{tmp_path / "executed"}"\n')
    assert main(["whitelist", "show", "-e", "nowhere"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("zoo-ops: error: unknown environment 'nowhere'")


@pytest.mark.parametrize("step", ["01_copy", "migrate", "04"])
def test_run_step_help_lists_the_steps_parameters(
    step: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", step, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: zoo-ops run" in out
    header, *rows = out.split("parameters of ", 1)[1].splitlines()[1:]
    assert header.split() == ["parameter", "type", "default", "option", "meaning"]
    canonical = {"01_copy": "01_copy", "migrate": "03_migrate", "04": "04_revert"}[step]
    by_name = {row.split()[0]: row for row in rows if row.strip()}
    assert set(by_name) == {p.name for p in parameters_of(canonical)}
    for p in parameters_of(canonical):
        assert p.type_name in by_name[p.name].split()[1]
        assert p.help in by_name[p.name]


def test_run_help_without_a_step_and_with_an_unknown_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    assert "STEP --help" in out and "parameters of" not in out
    with pytest.raises(SystemExit):
        main(["run", "06_party", "-h"])
    assert "unknown step '06_party'" in capsys.readouterr().out


def test_one_table_printer_for_frames_and_rows() -> None:
    rows = [("iris", "01_copy", None), ("summarizer", "03_migrate", "two\nlines")]
    text = format_table(("model", "step", "note"), rows)
    assert text.splitlines() == [
        "model       step        note",
        "iris        01_copy",
        "summarizer  03_migrate  two lines",
    ]
    frame = pd.DataFrame(rows, columns=["model", "step", "note"])
    assert format_frame(frame) == text
    assert format_table(("a",), []) == format_frame(pd.DataFrame({"a": []})) == "(no rows)"
    wide = pd.DataFrame([{f"c{i}": "x" * 30 for i in range(12)}])
    assert len(format_frame(wide).splitlines()) == 2, "every column on one line, never wrapped"
    assert format_frame(pd.DataFrame([{"n": 1, "f": float("nan")}])).splitlines()[1] == "1"
