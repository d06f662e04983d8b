"""zoo-ops reads a truss ``config.yaml`` as truss itself does.

The oracle is truss's own config model (``truss.base.truss_config.TrussConfig``, from the
``truss`` package of the test extra; zoo-ops never imports it). For generated configs
(resources in every form truss knows, secrets, model class, keys truss ignores) and for
every real truss of this repository and of the shared hash vectors:

- whenever zoo-ops accepts a config, truss accepts it too and both read the same
  resources (millicores, bytes), accelerator type, GPU count, secret names and model class;
- whenever truss refuses a config, zoo-ops refuses it too (with its one-line TrussError);
- zoo-ops refuses a config truss accepts only for one of the documented stricter reasons
  (domain/truss_config.py's module docstring), never for anything else.
"""

from __future__ import annotations

import copy
import re
import tarfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from truss.base.truss_config import Accelerator as TrussAccelerator
from truss.base.truss_config import TrussConfig as TrussOwnConfig

from zoo_ops.domain.truss_config import TRUSS_ACCELERATORS, parse_truss_config
from zoo_ops.errors import TrussError

REPO = Path(__file__).resolve().parents[1]
VECTORS = Path(__file__).resolve().parents[2] / "shared" / "vectors" / "truss-hash"
SOURCE = "config.yaml"

# The refusals zoo-ops makes of configs truss accepts, on purpose (see the docstring of
# zoo_ops.domain.truss_config): amounts no deploy can serve, a count of 0 or a third
# ``:`` part, names Kubernetes or Python cannot hold.
STRICTER = re.compile(
    r"must be a positive whole number"
    r"|resources\.(cpu|memory) \"[^\"]*\": expected a"
    r"|resources\.accelerator\.count 0"
    r"|resources\.accelerator \"[^\"]*:[^\"]*:[^\"]*\": expected"
    r"|is not a valid secret name"
    r"|is not a Python class name"
)


@dataclass(frozen=True)
class Reading:
    cpu_millicores: Decimal
    memory_bytes: int
    accelerator: str | None
    gpu_count: int
    secrets: tuple[str, ...]
    model_class_name: str


def zoo_ops_reading(data: dict[str, Any]) -> Reading | TrussError:
    try:
        config = parse_truss_config(copy.deepcopy(data), SOURCE)
    except TrussError as err:
        return err
    resources = config.resources
    accelerator = resources.accelerator
    return Reading(
        Decimal(resources.cpu_millicores),
        resources.memory_bytes,
        accelerator.type if accelerator else None,
        resources.gpu_count,
        config.secrets,
        config.model_class_name,
    )


def truss_cpu_millicores(cpu: str) -> Decimal:
    """What truss's cpu string means, in millicores (truss keeps it a string)."""
    text = cpu.strip()
    return Decimal(text[:-1]) if text.endswith("m") else Decimal(text) * 1000


def truss_reading(data: dict[str, Any]) -> Reading | Exception:
    """truss's reading, or the error it raises; a value truss validates but cannot turn
    into an amount (memory ``"k"``, cpu ``"m"``) counts as refused: no deploy can use it."""
    try:
        config = TrussOwnConfig.from_dict(copy.deepcopy(data))
        resources = config.resources
        spec = resources.accelerator
        gpu_type = spec.accelerator.value if spec.accelerator is not None else None
        return Reading(
            truss_cpu_millicores(resources.cpu),
            resources.memory_in_bytes,
            gpu_type,
            spec.count if gpu_type else 0,
            tuple(sorted(config.secrets)),
            config.model_class_name,
        )
    except (pydantic.ValidationError, ValueError, TypeError, ArithmeticError) as err:
        return err


def assert_read_alike(data: dict[str, Any]) -> None:
    ours, theirs = zoo_ops_reading(data), truss_reading(data)
    if isinstance(ours, Reading):
        assert isinstance(theirs, Reading), f"zoo-ops accepts what truss refuses: {theirs}"
        assert ours == theirs
    elif isinstance(theirs, Reading):
        assert STRICTER.search(str(ours)), f"zoo-ops refuses what truss accepts: {ours}"
    assert isinstance(ours, Reading | TrussError)
    if isinstance(ours, TrussError):
        assert "\n" not in str(ours) and str(ours).startswith(SOURCE)


# --- generated configs --------------------------------------------------------------------

NUMBERS = st.one_of(
    st.integers(min_value=0, max_value=4096).map(str),
    st.sampled_from(["0.5", "1.5", "0.25", "2.0", "-1", "", "."]),
)
CPU = st.one_of(
    NUMBERS,
    NUMBERS.map(lambda n: n + "m"),
    st.sampled_from(["two", "1x", "m", " 1", "1 ", " 500m", "500m ", "500 m", "1e3", "inf"]),
    st.integers(min_value=1, max_value=8),  # a YAML number: truss refuses it
    st.booleans(),
)
MEMORY_UNITS = ["", "k", "M", "G", "T", "Ki", "Mi", "Gi", "Ti", "Q", "gi", "KB"]
MEMORY = st.one_of(
    st.builds(lambda n, u: n + u, NUMBERS, st.sampled_from(MEMORY_UNITS)),
    st.builds(
        lambda n, u, pad: pad[0] + n + pad[1] + u + pad[2],
        NUMBERS,
        st.sampled_from(MEMORY_UNITS),
        st.sampled_from([(" ", "", ""), ("", " ", ""), ("", "", " "), ("\t", "", "")]),
    ),
    st.integers(min_value=1, max_value=2**34),
)
GPU_TYPES = st.one_of(
    st.sampled_from(TRUSS_ACCELERATORS),
    st.sampled_from(TRUSS_ACCELERATORS).map(str.lower),
    st.sampled_from(["T5", "A10", "", "GPU", "h100-40gb"]),
)
COUNTS = st.one_of(
    st.integers(min_value=0, max_value=16).map(str),
    st.sampled_from(["two", "", " 2", "02", "-1"]),
)
ACCELERATOR = st.one_of(
    st.none(),
    GPU_TYPES,
    st.builds(lambda t, c: f"{t}:{c}", GPU_TYPES, COUNTS),
    st.builds(lambda t: f" {t} ", GPU_TYPES),
    st.builds(lambda t, c, d: f"{t}:{c}:{d}", GPU_TYPES, COUNTS, COUNTS),
    st.fixed_dictionaries(
        {"accelerator": st.one_of(st.none(), GPU_TYPES)},
        optional={"count": st.integers(min_value=0, max_value=8)},
    ),
    st.integers(min_value=1, max_value=4),
)
UNKNOWN_KEYS = st.dictionaries(
    st.from_regex(r"\Ax_[a-z]{1,8}\Z"),
    st.one_of(st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2)),
    max_size=2,
)
RESOURCES = st.builds(
    lambda fixed, unknown: {**unknown, **fixed},
    st.fixed_dictionaries(
        {},
        optional={
            "cpu": CPU,
            "memory": MEMORY,
            "accelerator": ACCELERATOR,
            "use_gpu": st.booleans(),
        },
    ),
    UNKNOWN_KEYS,
)
SECRET_NAMES = st.one_of(
    st.from_regex(r"\A[a-z][a-z0-9_]{0,12}\Z"),
    st.sampled_from(["hf_access_token", "bad name!", "a/b"]),
)
SECRETS = st.one_of(
    st.dictionaries(SECRET_NAMES, st.one_of(st.none(), st.just("x")), max_size=3),
    st.lists(SECRET_NAMES, max_size=2),
    st.dictionaries(SECRET_NAMES, st.integers(), min_size=1, max_size=1),
)
CLASS_NAMES = st.one_of(
    st.sampled_from(["Model", "Sentiment", "ResNet50", "not a class", "3d"]),
    st.from_regex(r"\A[A-Z][A-Za-z0-9_]{0,10}\Z"),
    st.integers(),
)
CONFIGS = st.builds(
    lambda fixed, unknown: {**unknown, **fixed},
    st.fixed_dictionaries(
        {"model_name": st.sampled_from(["iris", "sentiment"])},
        optional={"resources": RESOURCES, "secrets": SECRETS, "model_class_name": CLASS_NAMES},
    ),
    UNKNOWN_KEYS,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CONFIGS)
@example({"model_name": "m", "resources": {"accelerator": "A10G:2", "cpu": "500m"}})
@example({"model_name": "m", "resources": {"accelerator": "H100_40GB", "use_gpu": True}})
@example({"model_name": "m", "resources": {"use_gpu": True}})
@example({"model_name": "m", "resources": {"accelerator": "B200:8", "memory": "1.5Ti"}})
@example({"model_name": "m", "secrets": {"hf_access_token": None}, "x_new_key": {"a": 1}})
def test_generated_configs_read_as_truss_reads_them(data: dict[str, Any]) -> None:
    assert_read_alike(data)


def test_the_accelerator_list_is_truss_own() -> None:
    assert set(TRUSS_ACCELERATORS) == {a.value for a in TrussAccelerator}


# --- real trusses ----------------------------------------------------------------------------


def vector_configs(tmp_root: Path) -> list[Path]:
    found = []
    for archive in sorted((VECTORS / "cases").glob("*.tar.gz")):
        with tarfile.open(archive) as tar:
            tar.extractall(tmp_root, filter="tar")
    for path in sorted(tmp_root.rglob("config.yaml")):
        found.append(path)
    return found


REPO_TRUSSES = sorted((REPO / "truss_models").glob("*/config.yaml"))


@pytest.mark.parametrize("config_path", REPO_TRUSSES, ids=lambda p: p.parent.name)
def test_every_truss_of_the_repository_reads_as_truss_reads_it(config_path: Path) -> None:
    data = yaml.safe_load(config_path.read_text()) or {}
    reading = zoo_ops_reading(data)
    assert isinstance(reading, Reading), reading
    assert TrussOwnConfig.from_yaml(config_path)  # truss accepts the file itself
    assert reading == truss_reading(data)


def test_every_truss_of_the_hash_vectors_reads_as_truss_reads_it(tmp_path: Path) -> None:
    if not (VECTORS / "cases").is_dir():
        pytest.fail(f"no hash vectors at {VECTORS}: set up /work/shared")
    configs = vector_configs(tmp_path)
    assert configs
    for config_path in configs:
        data = yaml.safe_load(config_path.read_text()) or {}
        assert isinstance(zoo_ops_reading(data), Reading)
        assert_read_alike(data)
