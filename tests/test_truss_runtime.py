"""The in-process truss runtime and the legacy runtime: loading as truss's server does,
isolation between versions, and one-line errors naming the file."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from zoo_ops.adapters.legacy_runtime import load_legacy_model
from zoo_ops.adapters.truss_runtime import discover_trusses, load_truss_model, read_truss
from zoo_ops.domain.truss_hash import DEFAULT_TRUSS_IGNORE_PATTERNS, IgnoreRules
from zoo_ops.errors import NotFound, StepFailed, TrussError

CONFIG = """\
model_name: {name}
python_version: py311
requirements: []
resources:
  cpu: "1"
  memory: 2Gi
  accelerator: null
secrets: {secrets}
"""


def write_truss(
    root: Path,
    name: str,
    model_py: str,
    *,
    secrets: str = "{}",
    files: dict[str, str] | None = None,
    examples: str | None = None,
) -> Path:
    truss = root / name
    (truss / "model").mkdir(parents=True)
    (truss / "data").mkdir()
    (truss / "config.yaml").write_text(CONFIG.format(name=name, secrets=secrets))
    (truss / "model" / "__init__.py").write_text("")
    (truss / "model" / "model.py").write_text(textwrap.dedent(model_py))
    for relative, text in (files or {}).items():
        (truss / relative).parent.mkdir(parents=True, exist_ok=True)
        (truss / relative).write_text(textwrap.dedent(text))
    if examples is not None:
        (truss / "examples.yaml").write_text(textwrap.dedent(examples))
    return truss


# A model with module-level state and three kinds of sibling import (plain, truss-style
# package, relative), each to a sibling whose name another version shares.
STATEFUL_MODEL = """\
import helper
from model.weights import WEIGHT
from .labels import LABEL

CALLS = 0


class Model:
    def predict(self, model_input):
        global CALLS
        CALLS += 1
        helper.SEEN += 1
        return {
            "version": helper.VERSION,
            "weight": WEIGHT,
            "label": LABEL,
            "calls": CALLS,
            "helper_seen": helper.SEEN,
        }
"""


def stateful_truss(root: Path, name: str, version: str) -> Path:
    return write_truss(
        root,
        name,
        STATEFUL_MODEL,
        files={
            "model/helper.py": f"VERSION = {version!r}\nSEEN = 0\n",
            "model/weights.py": f"WEIGHT = {len(version)}.5\n",
            "model/labels.py": f"LABEL = 'label-{version}'\n",
        },
    )


def test_two_versions_of_one_model_do_not_share_module_state(tmp_path: Path) -> None:
    # zoo-ops's own lazy imports (pathspec, for the content walk) are not the models'.
    IgnoreRules(DEFAULT_TRUSS_IGNORE_PATTERNS)
    modules_before, path_before = set(sys.modules), list(sys.path)
    old = load_truss_model(stateful_truss(tmp_path / "a", "echo", "old"))
    new = load_truss_model(stateful_truss(tmp_path / "b", "echo", "newer"))

    assert old.predict({}) == {
        "version": "old",
        "weight": 3.5,
        "label": "label-old",
        "calls": 1,
        "helper_seen": 1,
    }
    assert new.predict({}) == {
        "version": "newer",
        "weight": 5.5,
        "label": "label-newer",
        "calls": 1,
        "helper_seen": 1,
    }
    assert old.predict({})["calls"] == 2
    assert old.predict({})["helper_seen"] == 3
    assert new.predict({})["calls"] == 2
    # Nothing of theirs is left where a third model (or zoo-ops) would pick it up.
    for name in ("helper", "model", "model.weights", "labels"):
        assert name not in sys.modules
    assert set(sys.modules) - modules_before <= {
        name for name in sys.modules if name.startswith("_zoo_ops_model_")
    }
    assert sys.path == path_before


def test_a_same_named_module_already_imported_is_neither_used_nor_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outsider = type(sys)("helper")
    outsider.VERSION = "outsider"  # type: ignore[attr-defined]
    outsider.SEEN = 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "helper", outsider)
    model = load_truss_model(stateful_truss(tmp_path, "echo", "own"))
    assert model.predict({})["version"] == "own"
    assert sys.modules["helper"] is outsider
    assert outsider.SEEN == 0  # type: ignore[attr-defined]


def test_init_receives_only_the_keywords_it_accepts(tmp_path: Path) -> None:
    truss = write_truss(
        tmp_path,
        "kw",
        """\
        class Model:
            def __init__(self, config, secrets):
                self._seen = {"model_name": config["model_name"], "secrets": dict(secrets)}

            def predict(self, model_input):
                return self._seen
        """,
        secrets="{hf_access_token: null}",
    )
    model = load_truss_model(truss, secrets={"hf_access_token": "hf_x", "undeclared": "nope"})
    # Only the declared secret is passed, as truss does.
    assert model.predict(None) == {"model_name": "kw", "secrets": {"hf_access_token": "hf_x"}}


def test_init_without_keywords_gets_none(tmp_path: Path) -> None:
    truss = write_truss(
        tmp_path,
        "bare",
        """\
        class Model:
            def __init__(self):
                pass

            def predict(self, model_input):
                return model_input
        """,
    )
    assert load_truss_model(truss).predict([1, 2]) == [1, 2]


def test_kwargs_receive_config_data_dir_and_secrets(tmp_path: Path) -> None:
    truss = write_truss(
        tmp_path,
        "all",
        """\
        class Model:
            def __init__(self, **kwargs):
                self._keys = sorted(kwargs)
                self._data = (kwargs["data_dir"] / "x.txt").read_text()

            def predict(self, model_input):
                return {"keys": self._keys, "data": self._data}
        """,
        files={"data/x.txt": "payload"},
    )
    assert load_truss_model(truss).predict({}) == {
        "keys": ["config", "data_dir", "secrets"],
        "data": "payload",
    }


def test_load_once_then_preprocess_predict_postprocess(tmp_path: Path) -> None:
    truss = write_truss(
        tmp_path,
        "pipeline",
        """\
        import numpy as np

        class Model:
            loads = 0

            def load(self):
                Model.loads += 1

            def preprocess(self, request):
                return np.asarray(request["x"], dtype=float) * 2

            def predict(self, array):
                return array + 1

            def postprocess(self, array):
                return {"y": array, "loads": Model.loads, "mean": array.mean()}
        """,
    )
    model = load_truss_model(truss)
    model.predict({"x": [1, 2]})
    # numpy values come back as JSON values, as over HTTP.
    assert model.predict({"x": [1, 2]}) == {"y": [3.0, 5.0], "loads": 1, "mean": 4.0}


def test_loading_writes_no_bytecode_into_the_truss(tmp_path: Path) -> None:
    truss = stateful_truss(tmp_path, "echo", "v")
    load_truss_model(truss).predict({})
    assert not list(truss.rglob("__pycache__"))


def test_discovery_lists_folders_with_a_config(tmp_path: Path) -> None:
    stateful_truss(tmp_path, "b", "1")
    stateful_truss(tmp_path, "a", "1")
    (tmp_path / "notes").mkdir()
    assert list(discover_trusses(tmp_path)) == ["a", "b"]
    with pytest.raises(NotFound, match="truss root folder not found"):
        discover_trusses(tmp_path / "missing")


def test_read_truss_reads_examples(tmp_path: Path) -> None:
    truss = write_truss(
        tmp_path,
        "ex",
        "class Model:\n    def predict(self, x):\n        return x\n",
        examples="""\
        - name: one
          input: {x: 1}
        """,
    )
    package = read_truss(truss)
    assert [(e.name, e.input) for e in package.examples] == [("one", {"x": 1})]
    assert package.config.model_name == "ex"


# --- broken trusses: one line naming the file ----------------------------------------------


def assert_one_line_naming(error: BaseException, path: Path) -> None:
    message = str(error)
    assert "\n" not in message
    assert message.startswith(str(path) + ":"), message


def test_missing_config_yaml(tmp_path: Path) -> None:
    truss = stateful_truss(tmp_path, "m", "1")
    (truss / "config.yaml").unlink()
    with pytest.raises(TrussError) as caught:
        load_truss_model(truss)
    assert_one_line_naming(caught.value, truss / "config.yaml")
    assert "missing" in str(caught.value)


def test_bad_yaml(tmp_path: Path) -> None:
    truss = stateful_truss(tmp_path, "m", "1")
    (truss / "config.yaml").write_text("model_name: m\nresources: [cpu: 1\n")
    with pytest.raises(TrussError) as caught:
        read_truss(truss)
    assert_one_line_naming(caught.value, truss / "config.yaml")
    assert "invalid YAML at line" in str(caught.value)


def test_bad_examples_yaml(tmp_path: Path) -> None:
    truss = stateful_truss(tmp_path, "m", "1")
    (truss / "examples.yaml").write_text("- name: a\n  input: {x: [1, }\n")
    with pytest.raises(TrussError) as caught:
        read_truss(truss)
    assert_one_line_naming(caught.value, truss / "examples.yaml")


def test_bad_resources(tmp_path: Path) -> None:
    truss = stateful_truss(tmp_path, "m", "1")
    (truss / "config.yaml").write_text("model_name: m\nresources:\n  memory: 12Q\n")
    with pytest.raises(TrussError) as caught:
        load_truss_model(truss)
    assert str(caught.value) == (
        f'{truss / "config.yaml"}: resources.memory "12Q": unknown unit; use k, M, G, Ki, Mi or Gi'
        " (or T, P, E, Ti, Pi, Ei)"  # issue 15: every unit truss accepts
    )


def test_missing_model_class(tmp_path: Path) -> None:
    truss = write_truss(tmp_path, "m", "class Predictor:\n    pass\n")
    with pytest.raises(TrussError) as caught:
        load_truss_model(truss)
    assert_one_line_naming(caught.value, truss / "model" / "model.py")
    assert "no class Model" in str(caught.value)


def test_missing_model_file(tmp_path: Path) -> None:
    truss = write_truss(tmp_path, "m", "")
    (truss / "model" / "model.py").unlink()
    with pytest.raises(TrussError) as caught:
        load_truss_model(truss)
    assert_one_line_naming(caught.value, truss / "model" / "model.py")


def test_model_file_that_fails_to_import(tmp_path: Path) -> None:
    truss = write_truss(tmp_path, "m", "import not_a_real_module_xyz\n\n\nclass Model:\n    pass\n")
    with pytest.raises(TrussError) as caught:
        load_truss_model(truss)
    assert_one_line_naming(caught.value, truss / "model" / "model.py")
    assert "ModuleNotFoundError" in str(caught.value)


def test_predict_raising(tmp_path: Path) -> None:
    truss = write_truss(
        tmp_path,
        "m",
        """\
        class Model:
            def predict(self, model_input):
                raise ValueError("instances must be rows\\nof 4 numbers")
        """,
    )
    model = load_truss_model(truss)
    with pytest.raises(StepFailed) as caught:
        model.predict({})
    assert_one_line_naming(caught.value, truss / "model" / "model.py")
    assert "predict raised ValueError: instances must be rows of 4 numbers" in str(caught.value)
    assert caught.value.exit_code == 1


def test_load_raising(tmp_path: Path) -> None:
    truss = write_truss(
        tmp_path,
        "m",
        """\
        class Model:
            def load(self):
                raise RuntimeError("weights missing")

            def predict(self, model_input):
                return 1
        """,
    )
    with pytest.raises(StepFailed, match="load raised RuntimeError: weights missing"):
        load_truss_model(truss)


def test_a_response_that_is_not_json(tmp_path: Path) -> None:
    truss = write_truss(
        tmp_path,
        "m",
        "class Model:\n    def predict(self, x):\n        return {'f': object()}\n",
    )
    with pytest.raises(StepFailed) as caught:
        load_truss_model(truss).predict({})
    assert_one_line_naming(caught.value, truss / "model" / "model.py")


# --- the legacy runtime --------------------------------------------------------------------


def write_legacy(root: Path, name: str, predictor: str, manifest: str | None = None) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "legacy.yaml").write_text(
        manifest
        if manifest is not None
        else f"format: zoo-legacy/v1\nentrypoint: predictor.py\nfunction: predict\nname: {name}\n"
    )
    (folder / "predictor.py").write_text(textwrap.dedent(predictor))
    (folder / "table.txt").write_text(name)
    return folder


LEGACY_PREDICTOR = """\
import helper

CALLS = 0


def predict(request, artifact_dir):
    global CALLS
    CALLS += 1
    return {"table": (artifact_dir / "table.txt").read_text(), "calls": CALLS, "v": helper.V}
"""


def test_legacy_artifacts_are_isolated_like_trusses(tmp_path: Path) -> None:
    first = write_legacy(tmp_path / "a", "one", LEGACY_PREDICTOR)
    (first / "helper.py").write_text("V = 1\n")
    second = write_legacy(tmp_path / "b", "two", LEGACY_PREDICTOR)
    (second / "helper.py").write_text("V = 2\n")
    one, two = load_legacy_model(first), load_legacy_model(second)
    assert one.name == "one"
    assert one.predict({}) == {"table": "one", "calls": 1, "v": 1}
    assert one.predict({}) == {"table": "one", "calls": 2, "v": 1}
    assert two.predict({}) == {"table": "two", "calls": 1, "v": 2}
    assert "helper" not in sys.modules


def test_legacy_function_without_artifact_dir(tmp_path: Path) -> None:
    folder = write_legacy(tmp_path, "plain", "def predict(request):\n    return request * 2\n")
    assert load_legacy_model(folder).predict(21) == 42


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        ("format: zoo-legacy/v2\n", "format 'zoo-legacy/v2': expected"),
        ("format: zoo-legacy/v1\nfunction: score\n", "no function score"),
        ("format: zoo-legacy/v1\nentrypoint: ../x.py\n", "entrypoint '../x.py'"),
        ("format: zoo-legacy/v1\nentrypoint: other.py\n", "missing"),
        ("[unclosed\n", "invalid YAML"),
    ],
)
def test_broken_legacy_artifacts(tmp_path: Path, manifest: str, expected: str) -> None:
    folder = write_legacy(tmp_path, "bad", "def predict(request):\n    return 1\n", manifest)
    with pytest.raises(TrussError) as caught:
        load_legacy_model(folder)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)
    assert str(folder) in str(caught.value)


def test_legacy_missing_manifest_and_raising_function(tmp_path: Path) -> None:
    folder = write_legacy(tmp_path, "x", "def predict(request):\n    raise KeyError('text')\n")
    with pytest.raises(StepFailed) as caught:
        load_legacy_model(folder).predict({})
    assert_one_line_naming(caught.value, folder / "predictor.py")
    assert "predict raised KeyError" in str(caught.value)
    (folder / "legacy.yaml").unlink()
    with pytest.raises(TrussError) as missing:
        load_legacy_model(folder)
    assert_one_line_naming(missing.value, folder / "legacy.yaml")
