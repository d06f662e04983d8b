"""The model zoo automation (issue 5): reconcile on SQLite and PostgreSQL, local serving.

Each test builds the demo in tmp_path with a copy of truss_models as its truss root, so
that tests can change a truss byte without touching the repository.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from zoo_ops.adapters.platform import schema as s
from zoo_ops.adapters.platform.deploys import DeployLog
from zoo_ops.adapters.platform.store import OracleVersion
from zoo_ops.adapters.serving.local import LocalServing
from zoo_ops.adapters.truss_files import truss_content_hash
from zoo_ops.adapters.truss_runtime import read_truss
from zoo_ops.commands.demo import build_demo
from zoo_ops.domain.whitelist import AUTOMATION_KEY, WHITELIST_KEY
from zoo_ops.environment import Environment
from zoo_ops.errors import BadInput, StepFailed
from zoo_ops.services.automation import reconcile, wait_for_active
from zoo_ops.services.preflight import preflight_capacity, preflight_secrets
from zoo_ops.services.settings import set_whitelist_entry

REPO = Path(__file__).resolve().parent.parent
IRIS_REQUEST = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


@pytest.fixture
def trusses(tmp_path: Path) -> Path:
    root = tmp_path / "trusses"
    shutil.copytree(REPO / "truss_models", root)
    return root


@pytest.fixture
def config_path(
    tmp_path: Path, database_url: str, trusses: Path, write_config: Callable[[str], Path]
) -> Path:
    return write_config(
        f"""
[env.local]
database_url = "{database_url}"
settings = "file:{tmp_path / "state" / "dynamic-settings.yaml"}"
state_dir = "{tmp_path / "state"}"
truss_root = "{trusses}"
executed_root = "{tmp_path / "executed"}"
"""
    )


@pytest.fixture
def env(config_path: Path) -> Iterator[Environment]:
    environment = Environment.load("local")
    build_demo(environment, apps=4)
    yield environment
    environment.dispose()


def versions_of(env: Environment, model: str) -> list[OracleVersion]:
    return env.platform.versions_of(env.platform.zoo_model(model).id)


def current(env: Environment, model: str) -> OracleVersion:
    return env.platform.current_version(env.platform.zoo_model(model))


def set_automation(env: Environment, enabled: bool) -> None:
    value = "true" if enabled else "false"
    env.settings.apply(lambda data: {**data, AUTOMATION_KEY: value})


def break_load(truss_dir: Path, message: str) -> None:
    """Make the truss's model raise in load()."""
    model_file = truss_dir / "model" / "model.py"
    model_file.write_text(
        model_file.read_text()
        + f"\n\ndef _broken_load(self):\n    raise RuntimeError({message!r})\n\n"
        "Model.load = _broken_load\n"
    )


# --- what reconcile deploys -----------------------------------------------------------------


def test_copy_true_deploys_the_truss_as_name_copy(env: Environment, trusses: Path) -> None:
    legacy_current = current(env, "iris").id
    set_whitelist_entry(env, "iris", True)

    result = reconcile(env)

    row = result.row("iris")
    expected_hash = truss_content_hash(trusses / "iris")
    assert (row.target, row.action, row.truss_hash) == ("iris_copy", "deployed", expected_hash)
    copy = env.platform.zoo_model("iris_copy")
    assert copy.organization_id == env.platform.admin_organization().id
    new = current(env, "iris_copy")
    assert (new.id, new.status, new.truss_hash) == (row.version_id, s.ACTIVE, expected_hash)
    assert new.artifact == f"truss:artifacts/{new.id}"
    assert current(env, "iris").id == legacy_current  # the original is untouched
    answer = env.serving.predict(new, IRIS_REQUEST)
    assert answer["predictions"] == ["setosa"]
    record = env.deploys.record(new.id)
    assert record is not None and (record.status, record.truss_name) == (s.ACTIVE, "iris")
    assert result.to_frame().columns.tolist() == [
        "model",
        "target",
        "truss_hash",
        "action",
        "version_id",
        "detail",
    ]


def test_local_artifact_is_the_truss_without_ignored_files(env: Environment, trusses: Path) -> None:
    (trusses / "iris" / "model" / "__pycache__").mkdir()
    (trusses / "iris" / "model" / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"x")
    (trusses / "iris" / ".DS_Store").write_bytes(b"x")
    set_whitelist_entry(env, "iris", True)

    row = reconcile(env).row("iris")

    artifact = env.config.state_path / "artifacts" / row.version_id
    assert (artifact / "model" / "model.py").is_file()
    assert not (artifact / "model" / "__pycache__").exists()
    assert not (artifact / ".DS_Store").exists()
    assert truss_content_hash(artifact) == row.truss_hash


def test_copy_false_deploys_a_new_current_version_of_name(env: Environment) -> None:
    old = current(env, "summarizer")
    set_whitelist_entry(env, "summarizer", False)

    row = reconcile(env).row("summarizer")

    assert (row.target, row.action) == ("summarizer", "deployed")
    new = current(env, "summarizer")
    assert new.id == row.version_id != old.id
    assert env.platform.version(old.id).status == s.ACTIVE  # still serving its users
    assert env.platform.find_zoo_model("summarizer_copy") is None


def test_copy_false_creates_the_zoo_model_when_missing(env: Environment, trusses: Path) -> None:
    shutil.copytree(trusses / "summarizer", trusses / "digest")
    set_whitelist_entry(env, "digest", False)
    assert env.platform.find_zoo_model("digest") is None

    row = reconcile(env).row("digest")

    assert row.action == "deployed"
    assert "created zoo model digest" in row.detail
    model = env.platform.zoo_model("digest")
    assert model.organization_id == env.platform.admin_organization().id
    assert current(env, "digest").id == row.version_id


def test_a_second_reconcile_of_an_unchanged_truss_deploys_nothing(env: Environment) -> None:
    set_whitelist_entry(env, "iris", True)
    first = reconcile(env).row("iris")

    second = reconcile(env).row("iris")

    assert second.action == "skipped-duplicate"
    assert second.version_id == first.version_id
    assert f"version {first.version_id} (ACTIVE) already has this hash" in second.detail
    assert len(versions_of(env, "iris_copy")) == 1


def test_a_changed_byte_deploys_exactly_once(env: Environment, trusses: Path) -> None:
    set_whitelist_entry(env, "iris", True)
    first = reconcile(env).row("iris")
    data = trusses / "iris" / "data" / "centroids.json"
    data.write_bytes(data.read_bytes() + b" ")

    second = reconcile(env).row("iris")
    third = reconcile(env).row("iris")

    assert second.action == "deployed"
    assert second.truss_hash != first.truss_hash
    assert third.action == "skipped-duplicate" and third.version_id == second.version_id
    assert [v.truss_hash for v in versions_of(env, "iris_copy")] == [
        first.truss_hash,
        second.truss_hash,
    ]
    assert current(env, "iris_copy").id == second.version_id


def test_a_failing_deploy_marks_the_version_failed_and_keeps_the_current_one(
    env: Environment, trusses: Path
) -> None:
    old = current(env, "iris")
    break_load(trusses / "iris", "weights are corrupt")
    set_whitelist_entry(env, "iris", False)
    set_whitelist_entry(env, "summarizer", True)

    result = reconcile(env)

    row = result.row("iris")
    assert row.action == "failed"
    assert "weights are corrupt" in row.detail
    assert current(env, "iris").id == old.id
    failed = env.platform.version(row.version_id)
    assert failed.status == s.FAILED
    record = env.deploys.record(failed.id)
    assert record is not None and record.status == s.FAILED
    assert record.reason is not None and "RuntimeError: weights are corrupt" in record.reason
    assert not (env.config.state_path / "artifacts" / failed.id).exists()
    # Reconcile went on with the other model.
    assert result.row("summarizer").action == "deployed"
    # The same broken content is not redeployed on every tick; the row says why.
    again = reconcile(env).row("iris")
    assert again.action == "skipped-duplicate"
    assert f"{failed.id} (FAILED)" in again.detail
    with pytest.raises(StepFailed, match="weights are corrupt"):
        wait_for_active(env, "iris", row.truss_hash, timeout_s=1)


def test_a_serving_failure_leaves_the_current_version(
    env: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = current(env, "sentiment")

    def refuse(self: LocalServing, version_id: str, artifact: str, timeout_s: float) -> None:
        raise StepFailed(f"version {version_id} did not load within {timeout_s:g}s")

    monkeypatch.setattr(LocalServing, "wait_ready", refuse)
    set_whitelist_entry(env, "sentiment", False)

    row = reconcile(env, wait_timeout_s=3).row("sentiment")

    assert row.action == "failed" and "did not load within 3s" in row.detail
    assert current(env, "sentiment").id == old.id
    assert env.platform.version(row.version_id).status == s.FAILED


def test_a_missing_truss_is_a_failed_row_and_creates_nothing(
    env: Environment, trusses: Path
) -> None:
    shutil.rmtree(trusses / "iris")
    set_whitelist_entry(env, "iris", True)

    row = reconcile(env).row("iris")

    assert row.action == "failed" and "iris" in row.detail
    assert env.platform.find_zoo_model("iris_copy") is None


def test_a_whitelist_key_that_is_a_path_deploys_nothing_from_outside_the_trusses(
    env: Environment, trusses: Path, tmp_path: Path
) -> None:
    # A hand edit of the ConfigMap: the key names a folder beside truss_root, which holds
    # a perfectly good truss. It is a name that leaves truss_root: nothing is read there.
    shutil.copytree(trusses / "iris", tmp_path / "escape")
    env.settings.apply(lambda data: {**data, WHITELIST_KEY: '{"../escape": {"copy": true}}'})

    result = reconcile(env)

    (row,) = result.rows
    assert row.action == "failed" and "escape" in row.detail
    assert not [m for m in env.platform.zoo_models() if "escape" in m.name]


def test_automation_disabled_does_nothing(env: Environment) -> None:
    set_whitelist_entry(env, "iris", True)
    set_automation(env, False)

    result = reconcile(env)

    assert not result.automation_enabled
    assert [(r.model, r.action) for r in result.rows] == [("iris", "disabled")]
    assert env.platform.find_zoo_model("iris_copy") is None


def test_dry_run_decides_and_creates_nothing(env: Environment) -> None:
    set_whitelist_entry(env, "iris", True)

    row = reconcile(env, dry_run=True).row("iris")

    assert row.action == "would-deploy" and "would create zoo model iris_copy" in row.detail
    assert env.platform.find_zoo_model("iris_copy") is None


def test_models_limits_the_run_and_refuses_a_model_not_whitelisted(env: Environment) -> None:
    set_whitelist_entry(env, "iris", True)
    set_whitelist_entry(env, "summarizer", True)

    result = reconcile(env, models=["summarizer"])

    assert [r.model for r in result.rows] == ["summarizer"]
    assert env.platform.find_zoo_model("iris_copy") is None
    with pytest.raises(BadInput, match="resnet50 not on the whitelist"):
        reconcile(env, models=["resnet50"])


def test_wait_for_active_returns_the_deployed_version(env: Environment) -> None:
    set_whitelist_entry(env, "iris", True)
    row = reconcile(env).row("iris")

    assert wait_for_active(env, "iris_copy", row.truss_hash, timeout_s=5).id == row.version_id
    with pytest.raises(StepFailed, match="no ACTIVE version with hash 000000000000"):
        wait_for_active(env, "iris_copy", "0" * 64, timeout_s=0.2)


# --- concurrency ----------------------------------------------------------------------------


def test_two_concurrent_reconciles_in_threads_create_one_version(
    env: Environment, config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_whitelist_entry(env, "iris", True)
    set_whitelist_entry(env, "summarizer", False)
    barrier = threading.Barrier(2)
    # Widen the race to its worst case: both reconcilers have seen no version with the
    # hash and enter the claim together; only the database-level guard can keep one out.
    claim_barrier = threading.Barrier(2, timeout=30)
    original_claim = DeployLog.claim

    def claim_together(self: DeployLog, *args: object, **kwargs: object) -> object:
        claim_barrier.wait()
        return original_claim(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(DeployLog, "claim", claim_together)
    results = []
    errors: list[BaseException] = []

    def run() -> None:
        other = Environment.load("local")  # its own engine, as a second process would have
        try:
            barrier.wait()
            results.append(reconcile(other))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            other.dispose()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    assert not errors
    for model, target in (("iris", "iris_copy"), ("summarizer", "summarizer")):
        actions = sorted(r.row(model).action for r in results)
        assert actions == ["deployed", "skipped-duplicate"], model
        hashes = [v.truss_hash for v in versions_of(env, target) if v.truss_hash]
        assert len(hashes) == 1, target


def test_two_concurrent_reconcile_processes_create_one_version(
    env: Environment, config_path: Path, tmp_path: Path
) -> None:
    set_whitelist_entry(env, "iris", True)
    go = tmp_path / "go"
    # Each child imports everything, then waits for the same start signal, so the two
    # reconciles really overlap instead of the second starting after the first is done.
    script = f"""
import argparse, os, sys, time
from zoo_ops.cli.automation import register
import zoo_ops.services.automation
while not os.path.exists({str(go)!r}):
    time.sleep(0.01)
parser = argparse.ArgumentParser()
register(parser.add_subparsers())
args = parser.parse_args(["automation", "reconcile"])
sys.exit(args.handler(args))
"""
    child_env = {**os.environ, "ZOO_OPS_CONFIG": str(config_path)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            env=child_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    time.sleep(0.5)
    go.write_text("go")
    outputs = [p.communicate(timeout=120) for p in procs]

    assert [p.returncode for p in procs] == [0, 0], outputs
    actions = sorted(
        word
        for out, _ in outputs
        for word in out.split()
        if word in ("deployed", "skipped-duplicate")
    )
    assert actions == ["deployed", "skipped-duplicate"], outputs
    assert len(versions_of(env, "iris_copy")) == 1


# --- preflights -----------------------------------------------------------------------------


def test_local_capacity_warns_about_a_gpu_and_does_not_refuse(env: Environment) -> None:
    report = preflight_capacity(env, "resnet50", env.config.truss_root_path / "resnet50")

    assert report.fits
    frame = report.to_frame().set_index("what")
    assert frame.loc["accelerator", "requested"] == "T4 x1"
    assert not frame.loc["accelerator", "fits"]
    assert (
        "the in-process runtime serves this model on the CPU" in frame.loc["accelerator", "detail"]
    )
    assert frame.loc["accelerator", "old_version"] == "unknown"  # a legacy version
    assert frame.loc["cpu", "requested"] == "2"
    assert any("CPU" in w for w in report.warnings)


def test_local_secrets_preflight_uses_the_admin_organizations_rows(env: Environment) -> None:
    config = read_truss(env.config.truss_root_path / "sentiment").config
    report = preflight_secrets(env, config)
    assert report.ok
    assert report.to_frame().to_dict("records") == [{"secret": "hf_access_token", "present": True}]

    with env.platform.begin() as conn:
        conn.execute(s.secrets_table.delete())
    missing = preflight_secrets(env, config)
    assert not missing.ok and missing.missing == ["hf_access_token"]
    with pytest.raises(StepFailed, match="hf_access_token"):
        missing.require()


def test_the_model_loads_with_the_admin_organizations_secret(env: Environment) -> None:
    # The sentiment truss checks hf_access_token in load(): a wrong value fails the deploy.
    admin = env.platform.admin_organization()
    env.platform.set_secret(admin.id, "hf_access_token", "not-a-hugging-face-token")
    set_whitelist_entry(env, "sentiment", True)

    refused = reconcile(env).row("sentiment")

    assert refused.action == "failed"
    assert "secret hf_access_token is not a Hugging Face token" in refused.detail
    assert "not-a-hugging-face-token" not in refused.detail

    env.platform.set_secret(admin.id, "hf_access_token", "hf_a_valid_looking_token")
    (env.config.truss_root_path / "sentiment" / "data" / "note.txt").write_text("retry\n")
    accepted = reconcile(env).row("sentiment")
    assert accepted.action == "deployed", accepted.detail


# --- the CLI --------------------------------------------------------------------------------


def run_cli(*argv: str) -> int:
    from zoo_ops.cli.automation import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(list(argv))
    return int(args.handler(args))


def test_cli_prints_the_table_and_exits_1_when_a_deploy_failed(
    env: Environment, trusses: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    set_whitelist_entry(env, "iris", True)
    assert run_cli("automation", "reconcile") == 0
    assert "deployed" in capsys.readouterr().out

    break_load(trusses / "summarizer", "boom")
    set_whitelist_entry(env, "summarizer", True)
    assert run_cli("automation", "reconcile", "--model", "summarizer") == 1
    out = capsys.readouterr().out
    assert "failed" in out and "boom" in out and "iris" not in out
