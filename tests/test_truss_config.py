"""config.yaml and examples.yaml parsing: values, truss's defaults, and one-line errors."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zoo_ops.domain.truss_config import (
    Accelerator,
    Example,
    format_memory,
    parse_accelerator,
    parse_cpu,
    parse_examples,
    parse_memory,
    parse_requirements,
    parse_truss_config,
)
from zoo_ops.errors import TrussError

SOURCE = "truss_models/iris/config.yaml"


def config_with_resources(**resources: Any) -> dict[str, Any]:
    return {"model_name": "iris", "python_version": "py311", "resources": resources}


def test_a_minimal_config_gets_truss_defaults() -> None:
    config = parse_truss_config({"model_name": "iris"}, SOURCE)
    assert config.model_name == "iris"
    assert config.model_module_dir == "model"
    assert config.model_class_filename == "model.py"
    assert config.model_class_name == "Model"
    assert config.data_dir == "data"
    assert config.examples_filename == "examples.yaml"
    assert config.requirements == ()
    assert config.secrets == ()
    assert config.resources.cpu_millicores == 1000
    assert config.resources.memory_bytes == 2 * 2**30
    assert config.resources.accelerator is None
    assert config.resources.use_gpu is False


def test_a_config_as_truss_writes_it() -> None:
    data = {
        "model_name": "sentiment",
        "python_version": "py311",
        "requirements": ["numpy>=1.26", "tokenizers==0.15.0"],
        "resources": {"accelerator": "A10G:2", "cpu": "500m", "memory": "512Mi", "use_gpu": True},
        "secrets": {"hf_access_token": None},
        "model_class_name": "Sentiment",
        "model_module_dir": "src",
        "model_class_filename": "serve.py",
        "data_dir": "weights",
        "model_metadata": {"top_k": 3},
    }
    config = parse_truss_config(data, SOURCE)
    assert config.python_version == "py311"
    assert config.requirements == ("numpy>=1.26", "tokenizers==0.15.0")
    assert config.secrets == ("hf_access_token",)
    assert config.resources.accelerator == Accelerator(type="A10G", count=2)
    assert config.resources.use_gpu is True
    assert (config.model_module_dir, config.model_class_filename) == ("src", "serve.py")
    assert (config.model_class_name, config.data_dir) == ("Sentiment", "weights")
    # Keys zoo-ops does not use are kept for the model, which receives them as `config`.
    assert config.raw["model_metadata"] == {"top_k": 3}


def test_secret_values_are_never_kept() -> None:
    data = {"model_name": "m", "secrets": {"hf_access_token": "hf_real_value", "b": "x"}}
    config = parse_truss_config(data, SOURCE)
    assert config.secrets == ("b", "hf_access_token")
    assert "hf_real_value" not in repr(config)
    assert "hf_real_value" not in repr(config.raw)
    assert config.raw["secrets"] == {"b": None, "hf_access_token": None}


@pytest.mark.parametrize(
    ("value", "millicores"),
    [
        ("1", 1000),
        (1, 1000),
        ("500m", 500),
        ("0.5", 500),
        (0.25, 250),
        ("2", 2000),
        ("1500m", 1500),
    ],
)
def test_cpu_quantities(value: Any, millicores: int) -> None:
    assert parse_cpu(value, SOURCE) == millicores


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("2Gi", 2 * 2**30),
        ("512Mi", 512 * 2**20),
        ("64Ki", 64 * 2**10),
        ("1G", 10**9),
        ("250M", 250 * 10**6),
        ("3k", 3000),
        ("1.5Gi", 3 * 2**29),
        (1048576, 1048576),
        ("4096", 4096),
    ],
)
def test_memory_quantities(value: Any, size: int) -> None:
    assert parse_memory(value, SOURCE) == size


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("T4", Accelerator("T4", 1)),
        ("A10G:2", Accelerator("A10G", 2)),
        ("A100:8", Accelerator("A100", 8)),
        (" H100_40GB ", Accelerator("H100_40GB", 1)),
        ("B200", Accelerator("B200", 1)),
        ("RTX_PRO_6000:4", Accelerator("RTX_PRO_6000", 4)),
        ({"accelerator": "L40S", "count": 2}, Accelerator("L40S", 2)),
        ({"accelerator": None}, None),
        (None, None),
    ],
)
def test_accelerator_specs(value: Any, expected: Accelerator | None) -> None:
    assert parse_accelerator(value, SOURCE) == expected


@pytest.mark.parametrize("gpu_type", ["B200", "H200", "L40S", "RTX_PRO_6000", "B300", "GB300"])
def test_every_gpu_type_truss_accepts_is_accepted(gpu_type: str) -> None:
    # Issue 15: zoo-ops's own list refused these, which truss accepts.
    config = parse_truss_config(config_with_resources(accelerator=f"{gpu_type}:2"), SOURCE)
    assert config.resources.accelerator == Accelerator(gpu_type, 2)


def test_use_gpu_is_ignored_as_truss_ignores_it() -> None:
    # Changed in issue 15 ("as truss reads it"): truss drops use_gpu before validating and
    # derives it from the accelerator, so use_gpu alone asks for no GPU (it used to mean
    # one GPU of any type here), and a malformed use_gpu is not an error.
    config = parse_truss_config(config_with_resources(use_gpu=True), SOURCE)
    assert config.resources.accelerator is None
    assert config.resources.use_gpu is False
    assert config.resources.gpu_count == 0
    assert (
        parse_truss_config(config_with_resources(use_gpu="yes"), SOURCE).resources.use_gpu is False
    )


def test_unknown_keys_truss_ignores_are_ignored() -> None:
    data = {"model_name": "m", "runtime_flavour": 3, "resources": {"cpu": "2", "gpu_vendor": "x"}}
    config = parse_truss_config(data, SOURCE)
    assert config.resources.cpu_millicores == 2000
    assert config.raw["runtime_flavour"] == 3


def test_an_accelerator_implies_use_gpu() -> None:
    config = parse_truss_config(config_with_resources(accelerator="T4", use_gpu=False), SOURCE)
    assert config.resources.use_gpu is True


@pytest.mark.parametrize(
    ("resources", "expected_message"),
    [
        (
            {"memory": "12Q"},
            f'{SOURCE}: resources.memory "12Q": unknown unit; use k, M, G, Ki, Mi or Gi',
        ),
        ({"memory": "lots"}, f'{SOURCE}: resources.memory "lots"'),
        ({"memory": "0"}, f'{SOURCE}: resources.memory "0": must be a positive'),
        ({"memory": "0.5"}, f'{SOURCE}: resources.memory "0.5": must be a positive whole'),
        ({"cpu": "two"}, f'{SOURCE}: resources.cpu "two"'),
        ({"cpu": "0.0001"}, f'{SOURCE}: resources.cpu "0.0001": must be a positive whole'),
        ({"cpu": "0"}, f'{SOURCE}: resources.cpu "0"'),
        ({"cpu": True}, f"{SOURCE}: resources.cpu True"),
        ({"accelerator": "T5"}, f'{SOURCE}: resources.accelerator "T5": unknown GPU type'),
        ({"accelerator": "T4:0"}, f'{SOURCE}: resources.accelerator "T4:0": the GPU count'),
        ({"accelerator": "T4:two"}, f'{SOURCE}: resources.accelerator "T4:two"'),
        ({"accelerator": 4}, f"{SOURCE}: resources.accelerator 4"),
        ({"accelerator": "t4"}, f'{SOURCE}: resources.accelerator "t4": GPU types are case'),
        ({"accelerator": ""}, f'{SOURCE}: resources.accelerator "": no GPU type'),
        ({"accelerator": "A10G:2:3"}, f'{SOURCE}: resources.accelerator "A10G:2:3": expected'),
        ({"accelerator": "T4: 2"}, f'{SOURCE}: resources.accelerator "T4: 2": the GPU count'),
        (
            {"accelerator": {"accelerator": "T4", "count": 0}},
            f"{SOURCE}: resources.accelerator.count 0",
        ),
        ({"cpu": 1}, f'{SOURCE}: resources.cpu "1": truss reads cpu only as a string'),
        ({"memory": 1048576}, f'{SOURCE}: resources.memory "1048576": truss reads memory only'),
        ({"cpu": float("inf")}, f'{SOURCE}: resources.cpu "inf"'),
        ({"cpu": float("nan")}, f'{SOURCE}: resources.cpu "nan"'),
        ({"cpu": -1}, f'{SOURCE}: resources.cpu "-1"'),
        ({"memory": float("inf")}, f'{SOURCE}: resources.memory "inf"'),
        ({"memory": float("nan")}, f'{SOURCE}: resources.memory "nan"'),
        ({"memory": "-2Gi"}, f'{SOURCE}: resources.memory "-2Gi"'),
        ({"memory": 1e300}, f'{SOURCE}: resources.memory "1e+300"'),
    ],
)
def test_bad_resources_name_the_file_and_key(
    resources: dict[str, Any], expected_message: str
) -> None:
    with pytest.raises(TrussError) as caught:
        parse_truss_config(config_with_resources(**resources), SOURCE)
    message = str(caught.value)
    assert message.startswith(expected_message)
    assert "\n" not in message
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("data", "expected_start"),
    [
        (["not", "a", "mapping"], f"{SOURCE}: expected a mapping"),
        ({"resources": "big"}, f"{SOURCE}: resources must be a mapping"),
        ({"requirements": "numpy"}, f"{SOURCE}: requirements must be a list of strings"),
        ({"secrets": "hf_access_token"}, f"{SOURCE}: secrets must be a mapping"),
        ({"secrets": ["hf_access_token"]}, f"{SOURCE}: secrets must be a mapping"),
        ({"secrets": None}, f"{SOURCE}: secrets is empty"),
        ({"resources": None}, f"{SOURCE}: resources is empty"),
        ({"secrets": {"token": 3}}, f"{SOURCE}: secrets.token: the placeholder must be null"),
        ({"secrets": {"bad name!": None}}, f"{SOURCE}: secrets: 'bad name!'"),
        ({"model_name": 3}, f"{SOURCE}: model_name 3: expected a string"),
        ({"model_class_name": "not a class"}, f'{SOURCE}: model_class_name "not a class"'),
        ({"model_class_filename": "model.txt"}, f'{SOURCE}: model_class_filename "model.txt"'),
        ({"model_module_dir": "../elsewhere"}, f'{SOURCE}: model_module_dir "../elsewhere"'),
        ({"data_dir": "/abs/data"}, f'{SOURCE}: data_dir "/abs/data"'),
    ],
)
def test_malformed_configs_name_the_file_and_key(data: Any, expected_start: str) -> None:
    with pytest.raises(TrussError, match="^" + expected_start.replace("(", r"\(")):
        parse_truss_config(data, SOURCE)


def test_kubernetes_resources_for_a_gpu_model() -> None:
    config = parse_truss_config(
        config_with_resources(accelerator="A10G:2", cpu="2", memory="8Gi"), SOURCE
    )
    amounts = {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "2"}
    assert config.to_kubernetes_resources() == {"requests": amounts, "limits": amounts}


def test_kubernetes_resources_for_a_cpu_model() -> None:
    config = parse_truss_config(config_with_resources(cpu="500m", memory="1G"), SOURCE)
    assert config.to_kubernetes_resources() == {
        "requests": {"cpu": "500m", "memory": "1000000000"},
        "limits": {"cpu": "500m", "memory": "1000000000"},
    }


@given(st.integers(min_value=1, max_value=2**45))
def test_formatted_memory_parses_back_to_the_same_bytes(size: int) -> None:
    assert parse_memory(format_memory(size), SOURCE) == size


EXAMPLES_SOURCE = "truss_models/iris/examples.yaml"


def test_examples_in_truss_format() -> None:
    data = [
        {"name": "setosa", "input": {"instances": [[5.1, 3.5, 1.4, 0.2]]}},
        {"name": "empty", "input": None},
    ]
    assert parse_examples(data, EXAMPLES_SOURCE) == [
        Example("setosa", {"instances": [[5.1, 3.5, 1.4, 0.2]]}),
        Example("empty", None),
    ]
    assert parse_examples(None, EXAMPLES_SOURCE) == []


@pytest.mark.parametrize(
    ("data", "expected_start"),
    [
        ({"name": "x"}, f"{EXAMPLES_SOURCE}: expected a list"),
        (["x"], f"{EXAMPLES_SOURCE}: example #1: expected a mapping"),
        ([{"input": 1}], f"{EXAMPLES_SOURCE}: example #1: name must be"),
        ([{"name": "a", "input": 1}, {"name": "b"}], f'{EXAMPLES_SOURCE}: example #2 "b": has no'),
        (
            [{"name": "a", "input": 1}, {"name": "a", "input": 2}],
            f'{EXAMPLES_SOURCE}: example #2: duplicate name "a"',
        ),
    ],
)
def test_malformed_examples_name_the_file_and_entry(data: Any, expected_start: str) -> None:
    with pytest.raises(TrussError) as caught:
        parse_examples(data, EXAMPLES_SOURCE)
    assert str(caught.value).startswith(expected_start)


@pytest.mark.parametrize(
    "line",
    [
        "numpy>=1.26",
        "torch==2.1.0; python_version > '3.8'",
        "transformers[torch]~=4.40",
        "git+https://github.com/org/repo.git@v1#egg=repo",
        "https://example.com/wheels/pkg-1.0-py3-none-any.whl",
        "--extra-index-url https://download.pytorch.org/whl/cu121",
        "pkg @ https://example.com/pkg.tar.gz",
    ],
)
def test_requirements_pip_accepts_are_kept(line: str) -> None:
    assert parse_requirements([line], SOURCE) == (line,)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["numpy>=1.26", ""], "requirements #2 '': empty"),
        (["  "], "requirements #1 ' ': empty"),
        (["numpy\nscipy"], "line break or control character"),
        (["numpy\x00"], "line break or control character"),
        (["numpy>=>1.26"], "not a pip requirement"),
        (["numpy ==="], "not a pip requirement"),
        (["two words"], "not a pip requirement"),
    ],
)
def test_requirements_pip_would_reject_are_refused_naming_the_entry(
    lines: list[str], expected: str
) -> None:
    with pytest.raises(TrussError) as caught:
        parse_requirements(lines, SOURCE)
    message = str(caught.value)
    assert message.startswith(f"{SOURCE}: requirements #") and expected in message
    assert "\n" not in message
