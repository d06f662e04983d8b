"""One parameter schema per step (zoo_ops.steps.parameters) and the runbooks that follow it.

The runbooks' ``parameters`` cells are read with ``ast`` (no kernel): each declares
exactly its step's schema -- the same names, in the same order, with the same types and
defaults. The schema also validates (``runbook.start``) and converts ``-p`` text (``zoo-ops run``).
"""

from __future__ import annotations

import ast
import dataclasses
import io
import subprocess
import sys
import tokenize
from pathlib import Path
from typing import Any

import nbformat
import pytest

from zoo_ops.errors import BadInput
from zoo_ops.steps.parameters import (
    SCHEMAS,
    CommonParameters,
    MigrateParameters,
    convert_texts,
    parameters_of,
    validate_step,
)
from zoo_ops.trail import STEPS

RUNBOOKS = Path(__file__).resolve().parent.parent / "runbooks"


def parameters_cell(step: str) -> nbformat.NotebookNode:
    notebook = nbformat.read(RUNBOOKS / f"{step}.ipynb", as_version=4)
    cells = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{step}: one cell tagged parameters"
    return cells[0]


def declared(step: str) -> list[tuple[str, str, Any]]:
    """(name, type name, default) of every ``name: type = default`` in the cell, in order."""
    tree = ast.parse(parameters_cell(step).source)
    out = []
    for node in tree.body:
        assert isinstance(node, ast.AnnAssign), f"{step}: only `name: type = default` lines"
        assert isinstance(node.target, ast.Name)
        assert node.value is not None, f"{step}: {node.target.id} has no default"
        annotation = ast.unparse(node.annotation).replace(" ", "")  # int | str: "int|str"
        out.append((node.target.id, annotation, ast.literal_eval(node.value)))
    return out


def test_every_step_has_a_schema_and_a_runbook() -> None:
    assert tuple(SCHEMAS) == STEPS
    assert sorted(p.stem for p in RUNBOOKS.glob("*.ipynb")) == list(STEPS)


@pytest.mark.parametrize("step", STEPS)
def test_the_parameters_cell_declares_exactly_the_schema(step: str) -> None:
    schema = [(p.name, p.type_name, p.default) for p in parameters_of(step)]
    cell = declared(step)
    assert cell == schema
    for (_, _, cell_default), (_, type_name, _) in zip(cell, schema, strict=True):
        # 1000, not 1000.0; False, not 0; "auto" for an int | str
        assert type(cell_default).__name__ in type_name.split("|")


@pytest.mark.parametrize("step", STEPS)
def test_the_parameters_cell_says_what_each_parameter_means_as_the_schema_does(step: str) -> None:
    """The cell's trailing comments are what Jupyter and papermill --help-notebook show: they
    must not drift from the schema's help, which `zoo-ops run STEP --help` shows."""
    comments = {}
    source = parameters_cell(step).source
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            name = source.splitlines()[token.start[0] - 1].split(":", 1)[0].strip()
            comments[name] = token.string.lstrip("#").strip()
    assert comments == {p.name: p.help for p in parameters_of(step)}


def test_the_common_parameters_are_design_section_5s() -> None:
    assert [(p.name, p.default) for p in parameters_of(CommonParameters)] == [
        ("model", ""),
        ("env", "local"),
        ("dry_run", False),
        ("confirm", ""),
        ("operator", ""),
        ("gate_override_reason", ""),
    ]
    for step in STEPS:
        assert [p.name for p in parameters_of(step) if p.common][:6] == [
            "model",
            "env",
            "dry_run",
            "confirm",
            "operator",
            "gate_override_reason",
        ]
        assert all(p.help for p in parameters_of(step)), step


@pytest.mark.parametrize("step", STEPS)
def test_no_cell_but_the_parameters_cell_lists_parameters(step: str) -> None:
    notebook = nbformat.read(RUNBOOKS / f"{step}.ipynb", as_version=4)
    own = {p.name for p in parameters_of(step)}
    code = [c for c in notebook.cells if c.cell_type == "code"]
    starts = [c for c in code if "runbook.start(" in c.source]
    assert len(starts) == 1 and f'runbook.start("{step}", globals())' in starts[0].source
    for cell in code:
        if "parameters" in cell.metadata.get("tags", []):
            continue
        names = {n.id for n in ast.walk(ast.parse(cell.source)) if isinstance(n, ast.Name)}
        assert not names & own, f"{step}: a cell reads {names & own} instead of run.params"
        assert not cell.outputs and cell.execution_count is None, "runbooks carry no outputs"
    assert notebook.metadata.kernelspec.name == "zoo-ops"


def test_explore_notebook_carries_no_outputs_and_names_the_zoo_ops_kernel() -> None:
    notebook = nbformat.read(RUNBOOKS.parent / "explore.ipynb", as_version=4)
    assert notebook.cells[0].source == "%load_ext zoo_ops"
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, "explore.ipynb: no outputs"
    assert notebook.metadata.kernelspec.name == "zoo-ops"


def test_validate_returns_the_typed_schema_with_defaults() -> None:
    params = validate_step("03_migrate", {"model": " iris ", "batch_size": 10})
    assert isinstance(params, MigrateParameters)
    assert params.model == "iris" and params.batch_size == 10 and params.wait_timeout_s == 600
    assert params.affected_inline_limit == 100000 and params.auto_revert is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.batch_size = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    "step,values,needle",
    [
        ("03_migrate", {"model": ""}, "parameter model is required"),
        ("03_migrate", {"model": "ir is"}, "contains whitespace"),
        ("03_migrate", {"model": "iris", "dry_run": "yes"}, "dry_run='yes': must be True or False"),
        ("03_migrate", {"model": "iris", "batch_size": 0}, "batch_size 0 is out of range"),
        (
            "03_migrate",
            {"model": "iris", "batch_size": "lots"},
            "neither a whole number nor 'auto'",
        ),
        ("04_revert", {"model": "iris", "lock_budget_ms": 0}, "lock_budget_ms 0 is out of range"),
        ("03_migrate", {"model": "iris", "lock_budget_ms": 0.5}, "is not a whole number"),
        (
            "03_migrate",
            {"model": "iris", "batchsize": 1},
            "03_migrate has no parameter 'batchsize'",
        ),
        ("02_verify", {"model": "iris", "target": "prod"}, "must be 'copy' or 'new'"),
        ("02_verify", {"model": "iris", "rtol": -1}, "rtol=-1: must be >= 0"),
        ("04_revert", {"model": "iris", "scope": "some"}, "scope 'some'"),
        ("01_copy", {"model": "iris", "wait_timeout_s": 0}, "must be > 0"),
        ("05_retire", {"model": "iris", "delete_copy": 1}, "must be True or False"),
        ("06_party", {"model": "iris"}, "unknown step '06_party'"),
    ],
)
def test_validate_refuses_with_one_line(step: str, values: dict[str, Any], needle: str) -> None:
    with pytest.raises(BadInput) as info:
        validate_step(step, values)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_command_line_text_is_converted_by_the_schemas_types() -> None:
    assert convert_texts(
        "03_migrate",
        {"batch_size": "10", "auto_revert": "yes", "dry_run": "False", "user_email": "a@b.c"},
    ) == {"batch_size": 10, "auto_revert": True, "dry_run": False, "user_email": "a@b.c"}
    assert convert_texts("03_migrate", {"batch_size": "auto", "lock_budget_ms": "20"}) == {
        "batch_size": "auto",
        "lock_budget_ms": 20,
    }
    assert convert_texts("02_verify", {"rtol": "1e-3"}) == {"rtol": 1e-3}
    assert convert_texts("05_retire", {"min_age_days": "0"}) == {"min_age_days": 0.0}
    for given, needle in [
        ({"lock_budget_ms": "lots"}, "expected a whole number"),
        ({"batch_size": "lots"}, "batch_size='lots': expected a whole number or 'auto'"),
        ({"auto_revert": "2"}, "expected true or false"),
        ({"colour": "red"}, "unknown parameter(s) colour"),
    ]:
        with pytest.raises(BadInput) as info:
            convert_texts("03_migrate", given)
        assert needle in str(info.value)


def test_start_reads_exactly_the_schemas_names_from_the_namespace(monkeypatch) -> None:
    from zoo_ops import runbook

    seen: dict[str, Any] = {}

    def fake_start(step: str, given: dict[str, Any], **_: Any) -> Any:
        seen.update(given)
        raise BadInput("stop here")

    monkeypatch.setattr(runbook, "_start", fake_start)
    namespace = {"model": "iris", "batch_size": 5, "runbook": runbook, "other": 1, "__name__": "x"}
    with pytest.raises(BadInput, match="stop here"):
        runbook.start("03_migrate", namespace, dry_run=True)
    assert seen == {"model": "iris", "batch_size": 5, "dry_run": True}


def test_the_schema_module_stays_light() -> None:
    code = (
        "import sys, zoo_ops.steps.parameters; "
        "print(sorted(m for m in ('pandas', 'sqlalchemy', 'papermill') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
