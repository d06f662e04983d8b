"""The demo zoo: each legacy artifact and its truss answer alike on the truss's
examples.yaml, except the one model whose truss deliberately answers differently."""

from __future__ import annotations

import math
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import yaml

from zoo_ops.adapters.legacy_runtime import load_legacy_model
from zoo_ops.adapters.truss_runtime import discover_trusses, load_truss_model, read_truss
from zoo_ops.errors import StepFailed

REPO = Path(__file__).resolve().parents[1]
TRUSS_ROOT = REPO / "truss_models"
DEMO_DATA = Path(str(files("zoo_ops.demo_data")))
CATALOG = yaml.safe_load((DEMO_DATA / "catalog.yaml").read_text())
MODELS = {entry["name"]: entry for entry in CATALOG["models"]}
RTOL = 1e-9


def answers_match(expected: Any, actual: Any, rtol: float = RTOL) -> bool:
    """Equal JSON values, floats within a relative tolerance."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return math.isclose(expected, actual, rel_tol=rtol, abs_tol=0.0)
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(
            answers_match(expected[k], actual[k], rtol) for k in expected
        )
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(
            answers_match(e, a, rtol) for e, a in zip(expected, actual, strict=True)
        )
    return bool(expected == actual)


def compare_on_examples(name: str) -> dict[str, bool]:
    entry = MODELS[name]
    package = read_truss(TRUSS_ROOT / entry["truss"])
    truss_model = load_truss_model(package, secrets=CATALOG["secrets"])
    legacy_model = load_legacy_model(DEMO_DATA / "legacy" / entry["legacy"])
    return {
        example.name: answers_match(
            legacy_model.predict(example.input), truss_model.predict(example.input)
        )
        for example in package.examples
    }


def test_the_catalog_covers_what_the_demo_needs() -> None:
    assert len(MODELS) >= 4
    assert set(discover_trusses(TRUSS_ROOT)) >= {entry["truss"] for entry in MODELS.values()}
    for entry in MODELS.values():
        assert (DEMO_DATA / "legacy" / entry["legacy"] / "legacy.yaml").is_file()
        assert read_truss(TRUSS_ROOT / entry["truss"]).examples, entry["name"]
    configs = [read_truss(TRUSS_ROOT / e["truss"]).config for e in MODELS.values()]
    assert any(c.resources.accelerator for c in configs), "one model must ask for a GPU"
    declared = {name for c in configs for name in c.secrets}
    assert declared, "one model must declare a secret"
    assert declared <= set(CATALOG["secrets"]), "the demo must provide every declared secret"
    assert sum(bool(e["answers_differ"]) for e in MODELS.values()) == 1


@pytest.mark.parametrize("name", sorted(MODELS))
def test_legacy_and_truss_agree_except_the_deliberately_different_model(name: str) -> None:
    matches = compare_on_examples(name)
    if MODELS[name]["answers_differ"]:
        assert not all(matches.values()), f"{name}'s truss must answer differently somewhere"
        # It is a different answer on some inputs, not a broken model.
        assert any(matches.values())
    else:
        assert all(matches.values()), f"{name}: differing examples {matches}"


def test_floats_make_the_tolerance_matter() -> None:
    # resnet50's legacy and truss sum in different orders: equal within rtol, not bitwise.
    entry = MODELS["resnet50"]
    package = read_truss(TRUSS_ROOT / entry["truss"])
    truss_model = load_truss_model(package)
    legacy_model = load_legacy_model(DEMO_DATA / "legacy" / entry["legacy"])
    pairs = [
        (legacy_model.predict(e.input), truss_model.predict(e.input)) for e in package.examples
    ]
    assert all(answers_match(a, b) for a, b in pairs)
    assert any(a != b for a, b in pairs)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_model_loads_and_answers_every_example(name: str) -> None:
    # How fast they do it is a figure in benchmarks/bench_demo_models.py, not a test.
    entry = MODELS[name]
    package = read_truss(TRUSS_ROOT / entry["truss"])
    model = load_truss_model(package, secrets=CATALOG["secrets"])
    legacy = load_legacy_model(DEMO_DATA / "legacy" / entry["legacy"])
    for example in package.examples:
        assert model.predict(example.input) is not None
        assert legacy.predict(example.input) is not None


def test_sentiment_checks_its_secret_when_given() -> None:
    truss = TRUSS_ROOT / MODELS["sentiment"]["truss"]
    assert load_truss_model(truss).predict({"text": "great"})["label"] == "positive"
    with pytest.raises(StepFailed, match="hf_access_token is not a Hugging Face token"):
        load_truss_model(truss, secrets={"hf_access_token": "wrong"})
