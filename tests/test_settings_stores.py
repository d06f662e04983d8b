"""One behavioural suite for both settings stores (DESIGN §4).

Every test in the first half runs against the local ConfigMap file and against a
Kubernetes ConfigMap served by the stand-in apiserver, reached only over HTTP (the
official client for zoo-ops, a second independent client for the "other writer").
The harness classes here are reused by test_settings_concurrency and test_bad_settings.
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.settings import (
    CONFIGMAP,
    NAMESPACE,
    SEED_DATA,
    Harness,
    KubeHarness,
    LocalHarness,
    make_harness,
)

from zoo_ops.adapters.settings import ConditionalStore, SettingsSnapshot, WriteConflict
from zoo_ops.adapters.settings.kubernetes import KubernetesConfigMap
from zoo_ops.adapters.settings.local_file import LocalConfigMapFile
from zoo_ops.adapters.wiring import settings_store_for
from zoo_ops.domain.whitelist import AUTOMATION_KEY, WHITELIST_KEY, parse_whitelist
from zoo_ops.environment import Environment
from zoo_ops.errors import ConfigError, ConflictError, NotFound, SettingsError, StepFailed
from zoo_ops.services.settings import (
    remove_whitelist_entry,
    set_whitelist_entry,
    show_settings,
)

# The seed's ConfigMap, plus keys zoo-ops must carry through untouched byte for byte.
# -- harnesses -----------------------------------------------------------------------------


@pytest.fixture(params=["local", "kubernetes"])
def harness(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Harness:
    return make_harness(request.param, request, tmp_path, monkeypatch)


@pytest.fixture
def env(harness: Harness) -> Iterator[Environment]:
    environment = Environment.load(harness.env_name)
    yield environment
    environment.dispose()


def one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text and "Traceback" not in text, text
    return text


# -- the store protocol ----------------------------------------------------------------------


def test_environment_picks_the_configured_store(harness: Harness, env: Environment) -> None:
    expected = LocalConfigMapFile if harness.kind == "local" else KubernetesConfigMap
    assert isinstance(env.settings, expected)


def test_read_returns_all_data_and_a_resource_version(harness: Harness, env: Environment) -> None:
    snap = env.settings.read()
    assert dict(snap.data) == SEED_DATA
    assert snap.resource_version == harness.resource_version() != ""


def test_apply_writes_the_whole_change_bumps_version_and_reads_back(
    harness: Harness, env: Environment
) -> None:
    before = env.settings.read()
    written = env.settings.apply(lambda d: {**d, "newKey": "new value"})
    assert written.previous_resource_version == before.resource_version
    assert written.resource_version != before.resource_version
    assert written.resource_version == harness.resource_version()
    assert harness.data() == {**SEED_DATA, "newKey": "new value"}
    assert dict(env.settings.read().data) == dict(written.data)


def test_apply_can_delete_a_key_it_was_asked_to(harness: Harness, env: Environment) -> None:
    env.settings.apply(lambda d: {k: v for k, v in d.items() if k != "ratelimitEnabled"})
    assert "ratelimitEnabled" not in harness.data()


def test_a_change_that_changes_nothing_writes_nothing(harness: Harness, env: Environment) -> None:
    fingerprint = harness.fingerprint()
    snap = env.settings.apply(lambda d: d)
    assert snap.resource_version == snap.previous_resource_version
    assert harness.fingerprint() == fingerprint


def test_other_keys_are_carried_through_untouched(harness: Harness, env: Environment) -> None:
    set_whitelist_entry(env, "bert", False)
    after = harness.data()
    for key, value in SEED_DATA.items():
        if key != WHITELIST_KEY:
            assert after[key] == value, key
    assert after[WHITELIST_KEY] == '{"bert": {"copy": false}, "iris": {"copy": true}}'


def test_a_conflicting_write_is_re_read_and_the_change_re_applied(
    harness: Harness, env: Environment
) -> None:
    calls: list[dict[str, str]] = []

    def change(data: dict[str, str]) -> dict[str, str]:
        calls.append(dict(data))
        if len(calls) == 1:
            # Another writer gets in between our read and our write.
            harness.poke("ratelimitEnabled", "false")
            harness.poke("anotherWriter", "was here")
        return {**data, "mine": "1"}

    env.settings.apply(change)
    assert len(calls) == 2
    assert calls[1]["anotherWriter"] == "was here"
    final = harness.data()
    assert final["anotherWriter"] == "was here"
    assert final["ratelimitEnabled"] == "false"
    assert final["mine"] == "1"


def test_conflicts_are_retried_a_bounded_number_of_times(harness: Harness) -> None:
    store = harness.store(max_attempts=3)
    attempts = []

    def change(data: dict[str, str]) -> dict[str, str]:
        attempts.append(1)
        harness.poke("counter", str(len(attempts)))
        return {**data, "mine": "1"}

    with pytest.raises(ConflictError) as info:
        store.apply(change)
    assert "gave up after 3 conflicting writes" in one_line(info.value)
    assert len(attempts) == 3
    data = harness.data()
    assert "mine" not in data and data["counter"] == "3"


def test_an_error_inside_the_change_writes_nothing(harness: Harness, env: Environment) -> None:
    fingerprint = harness.fingerprint()

    def change(data: dict[str, str]) -> dict[str, str]:
        raise SettingsError("refused")

    with pytest.raises(SettingsError):
        env.settings.apply(change)
    assert harness.fingerprint() == fingerprint


def test_a_missing_configmap_is_a_one_line_not_found(harness: Harness, env: Environment) -> None:
    harness.delete()
    with pytest.raises(NotFound) as info:
        env.settings.read()
    message = one_line(info.value)
    assert info.value.exit_code == 2
    assert ("zoo-ops demo" in message) if harness.kind == "local" else (CONFIGMAP in message)


# -- procedures over both stores --------------------------------------------------------------


def test_show_settings_parses_flag_and_whitelist(harness: Harness, env: Environment) -> None:
    view = show_settings(env)
    assert view.automation_enabled is True
    assert list(view.whitelist) == ["iris"]
    assert view.resource_version == harness.resource_version()
    assert view.to_frame().to_dict("records") == [
        {"model": "iris", "copy": True, "deploys_as": "iris_copy"}
    ]


def test_set_entry_reports_before_after_and_versions(harness: Harness, env: Environment) -> None:
    rv0 = harness.resource_version()
    change = set_whitelist_entry(env, "iris", False)
    assert change.changed and change.written
    assert change.before["iris"].copy is True and change.after["iris"].copy is False
    assert change.resource_version_before == rv0
    assert change.resource_version_after == harness.resource_version() != rv0
    assert change.to_frame().to_dict("records") == [
        {
            "model": "iris",
            "before": "copy=true",
            "after": "copy=false",
            "deploys_as": "iris",
            "change": "changed",
        }
    ]
    assert parse_whitelist(harness.data()[WHITELIST_KEY])["iris"].copy is False


def test_setting_what_is_already_there_writes_nothing(harness: Harness, env: Environment) -> None:
    fingerprint = harness.fingerprint()
    change = set_whitelist_entry(env, "iris", True)
    assert not change.changed
    assert change.resource_version_after == change.resource_version_before
    assert harness.fingerprint() == fingerprint


def test_dry_run_computes_the_diff_and_writes_nothing(harness: Harness, env: Environment) -> None:
    fingerprint = harness.fingerprint()
    change = set_whitelist_entry(env, "bert", True, dry_run=True)
    assert change.changed and not change.written
    assert [(r.model, r.change) for r in change.diff] == [("bert", "added"), ("iris", "unchanged")]
    removal = remove_whitelist_entry(env, "iris", dry_run=True)
    assert [(r.model, r.change) for r in removal.diff] == [("iris", "removed")]
    assert harness.fingerprint() == fingerprint


def test_remove_entry_and_removing_an_absent_one_is_no_change(
    harness: Harness, env: Environment
) -> None:
    assert remove_whitelist_entry(env, "iris").changed
    assert harness.data()[WHITELIST_KEY] == "{}"
    fingerprint = harness.fingerprint()
    assert not remove_whitelist_entry(env, "iris").changed
    assert harness.fingerprint() == fingerprint


def test_a_malformed_current_whitelist_is_refused_and_nothing_written(
    harness: Harness, env: Environment
) -> None:
    harness.plant({**SEED_DATA, WHITELIST_KEY: '{"iris": {"copy": "true"}}'})
    fingerprint = harness.fingerprint()
    with pytest.raises(SettingsError) as info:
        set_whitelist_entry(env, "bert", True)
    assert WHITELIST_KEY in one_line(info.value) and "JSON boolean" in str(info.value)
    assert harness.fingerprint() == fingerprint


def test_before_is_what_the_final_attempt_saw(harness: Harness, env: Environment) -> None:
    store = env.settings
    original = store.apply
    first = True

    def apply_with_interference(change: Callable[[dict[str, str]], dict[str, str]]):
        def interfering(data: dict[str, str]) -> dict[str, str]:
            nonlocal first
            if first:
                first = False
                harness.poke(WHITELIST_KEY, '{"gpt": {"copy": false}, "iris": {"copy": true}}')
            return change(data)

        return original(interfering)

    store.apply = apply_with_interference  # type: ignore[method-assign]
    change = set_whitelist_entry(env, "bert", True)
    assert list(change.before) == ["gpt", "iris"]
    assert list(change.after) == ["bert", "gpt", "iris"]
    assert harness.data()[WHITELIST_KEY] == (
        '{"bert": {"copy": true}, "gpt": {"copy": false}, "iris": {"copy": true}}'
    )


# -- the conditional loop itself (an in-memory store that misbehaves on purpose) ---------------


class _MemoryStore(ConditionalStore):
    location = "memory"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data: dict[str, str] = {"k": "v"}
        self.rv = 1
        self.after_write: Callable[[], None] = lambda: None

    def _read_state(self) -> tuple[SettingsSnapshot, object]:
        return SettingsSnapshot(dict(self.data), str(self.rv)), self.rv

    def _replace(self, token: object, snapshot: SettingsSnapshot, new: dict[str, str]) -> str:
        if token != self.rv:
            raise WriteConflict("memory")
        self.data, self.rv = dict(new), self.rv + 1
        written = str(self.rv)
        self.after_write()
        return written


def test_read_back_that_differs_from_what_was_written_is_a_failed_step() -> None:
    store = _MemoryStore()

    def corrupt() -> None:
        store.data["k"] = "corrupted"  # same resourceVersion, different data

    store.after_write = corrupt
    with pytest.raises(StepFailed, match="differs from what was written"):
        store.apply(lambda d: {**d, "k": "new"})


def test_a_later_write_that_undid_the_change_is_reported() -> None:
    store = _MemoryStore()

    def undo() -> None:
        store.data, store.rv = {"k": "v"}, store.rv + 1

    store.after_write = undo
    with pytest.raises(ConflictError, match="undid the change"):
        store.apply(lambda d: {**d, "k": "new"})


def test_a_later_write_by_someone_else_that_kept_the_change_is_fine() -> None:
    store = _MemoryStore()

    def other() -> None:
        store.after_write = lambda: None
        store.data, store.rv = {**store.data, "other": "x"}, store.rv + 1

    store.after_write = other
    written = store.apply(lambda d: {**d, "k": "new"})
    assert written.data == {"k": "new"} and store.data == {"k": "new", "other": "x"}


def test_a_change_must_return_string_data() -> None:
    with pytest.raises(TypeError):
        _MemoryStore().apply(lambda d: {**d, "flag": True})  # type: ignore[dict-item]


# -- local file specifics ---------------------------------------------------------------------


@pytest.fixture
def local(tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    return make_harness("local", request, tmp_path, monkeypatch)


def test_local_write_is_atomic_keeps_mode_and_leaves_no_temp_files(local: LocalHarness) -> None:
    local.path.chmod(0o640)
    local.store().apply(lambda d: {**d, "x": "y"})
    assert local.path.stat().st_mode & 0o777 == 0o640
    leftovers = [p.name for p in local.path.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_local_file_keeps_the_manifest_shape_and_other_fields(local: LocalHarness) -> None:
    manifest = yaml.safe_load(local.path.read_text())
    manifest["metadata"]["annotations"] = {"owner": "platform"}
    local.path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    local.store().apply(lambda d: {**d, "x": "y"})
    after = yaml.safe_load(local.path.read_text())
    assert after["apiVersion"] == "v1" and after["kind"] == "ConfigMap"
    assert after["metadata"]["annotations"] == {"owner": "platform"}
    assert after["metadata"]["name"] == CONFIGMAP and after["metadata"]["namespace"] == NAMESPACE
    assert after["metadata"]["resourceVersion"] == str(
        int(manifest["metadata"]["resourceVersion"]) + 1
    )


def test_a_hand_edit_that_did_not_bump_the_version_is_still_a_conflict(
    local: LocalHarness,
) -> None:
    seen = []

    def change(data: dict[str, str]) -> dict[str, str]:
        seen.append(1)
        if len(seen) == 1:
            text = local.path.read_text().replace(
                "ratelimitEnabled: 'true'", "ratelimitEnabled: 'no'"
            )
            local.path.write_text(text)  # same resourceVersion, different content
        return {**data, "mine": "1"}

    local.store().apply(change)
    assert len(seen) == 2
    assert local.data()["ratelimitEnabled"] == "no" and local.data()["mine"] == "1"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("kind: ConfigMap\ndata:\n  a: '1'\n  a: '2'\n", "duplicate key 'a'"),
        (f"kind: ConfigMap\ndata:\n  {AUTOMATION_KEY}: true\n", "must be a string"),
        ("kind: ConfigMap\ndata: [1, 2]\n", "must be mappings"),
        ("kind: Secret\ndata: {}\n", "not a ConfigMap manifest"),
        ("kind: ConfigMap\ndata: {a: '1'\n", "not a valid YAML"),
    ],
)
def test_local_malformed_manifest_is_refused_in_one_line(
    local: LocalHarness, text: str, fragment: str
) -> None:
    local.path.write_text(text)
    with pytest.raises(SettingsError) as info:
        local.store().read()
    assert fragment in one_line(info.value)


def test_create_refuses_an_existing_file_unless_overwrite(local: LocalHarness) -> None:
    before = local.path.read_bytes()
    with pytest.raises(Exception, match="already exists"):
        LocalConfigMapFile.create(local.path, {"a": "b"})
    assert local.path.read_bytes() == before
    rv = int(local.resource_version())
    LocalConfigMapFile.create(local.path, {"a": "b"}, overwrite=True)
    assert local.data() == {"a": "b"} and int(local.resource_version()) == rv + 1


def test_create_writes_the_seed_shaped_manifest(tmp_path: Path) -> None:
    path = tmp_path / "new" / "settings.yaml"
    LocalConfigMapFile.create(path, {WHITELIST_KEY: "{}"}, name="cm", namespace="ns")
    assert yaml.safe_load(path.read_text()) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cm", "namespace": "ns", "resourceVersion": "1"},
        "data": {WHITELIST_KEY: "{}"},
    }


# -- registry and Kubernetes client configuration ----------------------------------------------


def test_an_unknown_settings_scheme_is_a_config_error(tmp_path: Path, monkeypatch) -> None:
    config = tmp_path / "zoo_ops.toml"
    config.write_text('[env.x]\nsettings = "consul://x"\n')
    monkeypatch.setenv("ZOO_OPS_CONFIG", str(config))
    with pytest.raises(ConfigError, match="not a known store"):
        settings_store_for(Environment.load("x").config)


def test_relative_file_path_resolves_against_the_config_directory(
    tmp_path: Path, monkeypatch
) -> None:
    config = tmp_path / "zoo_ops.toml"
    config.write_text('[env.local]\nsettings = "file:state/s.yaml"\n')
    monkeypatch.setenv("ZOO_OPS_CONFIG", str(config))
    store = Environment.load("local").settings
    assert store.path == tmp_path / "state" / "s.yaml"


@pytest.fixture
def kube(tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    return make_harness("kubernetes", request, tmp_path, monkeypatch)


def test_kubernetes_uses_the_current_context_when_none_is_configured(
    kube: KubeHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = copy.deepcopy(yaml.safe_load(kube.kubeconfig.read_text()))
    other["current-context"] = kube.context
    path = tmp_path / "current-context.yaml"
    path.write_text(yaml.safe_dump(other))
    monkeypatch.setenv("KUBECONFIG", str(path))
    store = KubernetesConfigMap(namespace=NAMESPACE, name=CONFIGMAP)
    assert dict(store.read().data) == SEED_DATA


def test_kubernetes_unknown_context_is_a_one_line_config_error(kube: KubeHarness) -> None:
    store = KubernetesConfigMap(namespace=NAMESPACE, name=CONFIGMAP, context="no-such-context")
    with pytest.raises(ConfigError) as info:
        store.read()
    assert "no-such-context" in one_line(info.value)


@pytest.fixture
def in_pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Look like a pod: service host/port set, service-account files at tmp paths."""
    from kubernetes.config import incluster_config

    secrets = tmp_path / "serviceaccount"
    secrets.mkdir()
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(secrets / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(secrets / "ca.crt"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "9")  # discard port: nothing listens
    return secrets


def test_kubernetes_in_cluster_config_is_used_without_a_context(
    kube: KubeHarness, in_pod: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (in_pod / "token").write_text("sa-token-do-not-print")
    (in_pod / "ca.crt").write_text("not a real certificate")
    monkeypatch.setenv("KUBECONFIG", "/nonexistent")
    store = KubernetesConfigMap(namespace=NAMESPACE, name=CONFIGMAP)
    configuration = store.api.api_client.configuration
    assert configuration.host == "https://127.0.0.1:9"
    assert "sa-token-do-not-print" in str(configuration.api_key)
    with pytest.raises(StepFailed) as info:
        store.read()
    assert "sa-token-do-not-print" not in one_line(info.value)


def test_kubernetes_in_a_pod_without_a_token_is_a_config_error(
    kube: KubeHarness, in_pod: Path
) -> None:
    store = KubernetesConfigMap(namespace=NAMESPACE, name=CONFIGMAP)
    with pytest.raises(ConfigError) as info:
        store.read()
    assert "in-cluster service account" in one_line(info.value)


def test_kubernetes_a_configured_context_wins_over_in_cluster_config(
    kube: KubeHarness, in_pod: Path
) -> None:
    store = KubernetesConfigMap(namespace=NAMESPACE, name=CONFIGMAP, context=kube.context)
    assert dict(store.read().data) == SEED_DATA


def test_kubernetes_unreachable_apiserver_is_a_one_line_failure(
    kube: KubeHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = yaml.safe_load(kube.kubeconfig.read_text())
    for cluster in cfg["clusters"]:
        cluster["cluster"]["server"] = "http://127.0.0.1:9"  # discard port: refused
    path = tmp_path / "dead.yaml"
    path.write_text(yaml.safe_dump(cfg))
    monkeypatch.setenv("KUBECONFIG", str(path))
    store = KubernetesConfigMap(namespace=NAMESPACE, name=CONFIGMAP, context=kube.context)
    with pytest.raises(StepFailed) as info:
        store.read()
    assert "cannot read" in one_line(info.value)


def test_kubernetes_preserves_labels_when_replacing(kube: KubeHarness) -> None:
    kube.store().apply(lambda d: {**d, "x": "y"})
    assert kube._read().metadata.labels == {"app": "django"}


# -- real kubectl against the stand-in, then zoo-ops reads ------------------------------------

EDITOR_SCRIPT = """
import sys, yaml
path = sys.argv[-1]
obj = yaml.safe_load(open(path))
obj["data"]["automaticallyDeployedModelZooModelsWhitelist"] = (
    '{"bert": {"copy": false}, "iris": {"copy": true}}'
)
open(path, "w").write(yaml.safe_dump(obj))
"""


def test_the_seeds_kubectl_edit_is_read_by_zoo_ops(
    kube: KubeHarness, kubectl: Any, tmp_path: Path
) -> None:
    editor = tmp_path / "editor.py"
    editor.write_text(EDITOR_SCRIPT)
    result = kubectl(
        "edit",
        "cm",
        "-n",
        NAMESPACE,
        CONFIGMAP,
        env={"KUBE_EDITOR": f"{sys.executable} {editor}", "EDITOR": ""},
    )
    assert result.returncode == 0, result.stderr
    env = Environment.load(kube.env_name)
    view = show_settings(env)
    assert {m: e.copy for m, e in view.whitelist.items()} == {"bert": False, "iris": True}
    assert {k: v for k, v in kube.data().items() if k != WHITELIST_KEY} == {
        k: v for k, v in SEED_DATA.items() if k != WHITELIST_KEY
    }


def test_a_kubectl_merge_patch_is_read_by_zoo_ops(kube: KubeHarness, kubectl: Any) -> None:
    patch = json.dumps({"data": {AUTOMATION_KEY: "false"}})
    result = kubectl("patch", "cm", "-n", NAMESPACE, CONFIGMAP, "--type", "merge", "-p", patch)
    assert result.returncode == 0, result.stderr
    assert show_settings(Environment.load(kube.env_name)).automation_enabled is False


def test_kubectl_replace_of_a_stale_object_gets_409_and_zoo_ops_change_survives(
    kube: KubeHarness, kubectl: Any, tmp_path: Path
) -> None:
    stale = kubectl("get", "cm", "-n", NAMESPACE, CONFIGMAP, "-o", "yaml", check=True).stdout
    set_whitelist_entry(Environment.load(kube.env_name), "bert", True)
    manifest = tmp_path / "stale.yaml"
    manifest.write_text(stale.replace('ratelimitEnabled: "true"', 'ratelimitEnabled: "false"'))
    result = kubectl("replace", "-f", str(manifest))
    assert result.returncode != 0
    assert "the object has been modified" in result.stderr
    data = kube.data()
    assert "bert" in parse_whitelist(data[WHITELIST_KEY]) and data["ratelimitEnabled"] == "true"
