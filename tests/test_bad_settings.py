"""The corpus of malformed settings (tests/bad_settings/*.yaml) through the CLI.

Each case is planted in a store (the local file, and the Kubernetes stand-in over HTTP);
`zoo-ops whitelist set` must then exit 2 with ONE line on stderr naming the key and the
problem, and write nothing: the local file byte-identical, the ConfigMap's
resourceVersion unchanged and no write request sent.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.settings import SEED_DATA, Harness, KubeHarness, make_harness

from zoo_ops.cli import main

CORPUS = Path(__file__).parent / "bad_settings"
CASES = sorted(CORPUS.glob("*.yaml"))
WRITE_VERBS = ("create", "update", "patch", "delete")


def load_case(path: Path) -> dict[str, Any]:
    case = yaml.safe_load(path.read_text())
    assert set(case) == {"why", "key", "value", "error"}, path.name
    assert isinstance(case["value"], str), path.name
    return case


def test_the_corpus_has_at_least_15_distinct_cases() -> None:
    values = {(c["key"], c["value"]) for c in map(load_case, CASES)}
    assert len(CASES) >= 15 and len(values) == len(CASES)


def _configmap_writes(request: pytest.FixtureRequest, harness: Harness) -> int:
    if not isinstance(harness, KubeHarness):
        return 0
    api = request.getfixturevalue("kube_api")
    return sum(len(api.requests_for(verb=v, resource="configmaps")) for v in WRITE_VERBS)


@pytest.mark.parametrize("store", ["local", "kubernetes"])
@pytest.mark.parametrize("case_path", CASES, ids=[p.stem for p in CASES])
def test_a_malformed_setting_is_refused_with_exit_2_and_nothing_written(
    store: str,
    case_path: Path,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    case = load_case(case_path)
    harness = make_harness(store, request, tmp_path, monkeypatch)
    harness.plant({**SEED_DATA, case["key"]: case["value"]})
    fingerprint = harness.fingerprint()
    writes = _configmap_writes(request, harness)
    capsys.readouterr()

    for argv in (
        ["whitelist", "-e", harness.env_name, "set", "bert", "--copy", "true"],
        ["whitelist", "-e", harness.env_name, "remove", "iris"],
    ):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2, (argv, err)
        lines = err.splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith(f"zoo-ops: error: {case['key']}: "), lines[0]
        assert case["error"] in lines[0], lines[0]

    assert harness.fingerprint() == fingerprint
    assert _configmap_writes(request, harness) == writes


def test_the_installed_command_exits_2_with_one_line(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same refusal as the shell sees it: a separate `zoo-ops` process.
    harness = make_harness("local", request, tmp_path, monkeypatch)
    case = load_case(CORPUS / "whitelist-copy-string.yaml")
    harness.plant({**SEED_DATA, case["key"]: case["value"]})
    before = harness.fingerprint()
    zoo_ops = Path(sys.executable).parent / "zoo-ops"
    result = subprocess.run(
        [str(zoo_ops), "whitelist", "set", "bert", "--copy", "true"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and case["error"] in result.stderr
    assert harness.fingerprint() == before
