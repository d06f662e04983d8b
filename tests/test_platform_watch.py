"""The pure parts of who-deploys and where-served: the platform wait's verdict, the URL and
image templates, and local serving's retire."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from zoo_ops.adapters.platform.store import OracleVersion, utcnow
from zoo_ops.adapters.serving.local import LocalServing
from zoo_ops.adapters.truss_files import truss_content_hash
from zoo_ops.commands.demo import build_demo
from zoo_ops.domain.url_templates import (
    IMAGE_FIELDS,
    LEGACY_URL_FIELDS,
    artifact_path,
    template_problem,
)
from zoo_ops.environment import Environment
from zoo_ops.services.platform_watch import platform_verdict
from zoo_ops.services.settings import set_whitelist_entry
from zoo_ops.testing.platform_automation import PlatformAutomation, settings_from_file

TRUSSES = Path(__file__).resolve().parent.parent / "truss_models"
IRIS_HASH = truss_content_hash(TRUSSES / "iris")
HASH = "a" * 64
OTHER = "b" * 64


def v(version_id: str, truss_hash: str | None, status: str) -> OracleVersion:
    return OracleVersion(version_id, "o1", None, truss_hash, status, None, utcnow())


def test_the_verdict_waits_until_the_hash_is_active_and_current() -> None:
    old = v("old", None, "ACTIVE")
    assert platform_verdict("iris", HASH, [old], "old", {"old"}).seen.startswith(
        "no version of iris with this hash yet; newest is old (none)"
    )
    deploying = v("new", HASH, "DEPLOYING")
    assert platform_verdict("iris", HASH, [old, deploying], "old", {"old"}).seen == (
        "version new is DEPLOYING"
    )
    active = v("new", HASH, "ACTIVE")
    waiting = platform_verdict("iris", HASH, [old, active], "old", {"old"})
    assert waiting.version is None and "not yet current" in waiting.seen
    done = platform_verdict("iris", HASH, [old, active], "new", {"old"})
    assert done.version == active and not done.failure


def test_the_verdict_fails_at_once_on_failed_and_on_another_hash() -> None:
    old = v("old", OTHER, "ACTIVE")
    failed = platform_verdict("iris_copy", HASH, [old, v("new", HASH, "FAILED")], "old", {"old"})
    assert "FAILED in the platform's automation" in failed.failure
    other = platform_verdict("iris_copy", HASH, [old, v("new", OTHER, "DEPLOYING")], "old", {"old"})
    assert OTHER[:12] in other.failure and HASH[:12] in other.failure
    # A version that was there before the wait, with another hash, is no verdict.
    assert not platform_verdict("iris_copy", HASH, [old], "old", {"old"}).failure
    # A DELETED newcomer is not the platform's answer.
    gone = platform_verdict("iris_copy", HASH, [old, v("x", OTHER, "DELETED")], "old", {"old"})
    assert not gone.failure


@pytest.mark.parametrize(
    ("template", "allowed", "ok"),
    [
        ("registry/{truss_name}:{truss_hash_short}", IMAGE_FIELDS, True),
        ("registry/{truss_name}:{model}", IMAGE_FIELDS, False),
        ("http://legacy/{oracle_id}/{version_id}?a={artifact}", LEGACY_URL_FIELDS, True),
        ("http://legacy/{truss_hash}", LEGACY_URL_FIELDS, False),
        ("http://legacy/{0}", LEGACY_URL_FIELDS, False),
        ("http://legacy/{version_id", LEGACY_URL_FIELDS, False),
        ("", LEGACY_URL_FIELDS, True),
    ],
)
def test_template_fields_are_checked(template: str, allowed: tuple[str, ...], ok: bool) -> None:
    problem = template_problem(template, allowed)
    assert (problem is None) is ok
    if problem is not None:
        assert "\n" not in problem


def test_artifact_path_drops_the_kind() -> None:
    assert artifact_path("kubernetes:baseten/zoo-abc") == "baseten/zoo-abc"
    assert artifact_path("legacy:artifacts/abc") == "artifacts/abc"
    assert artifact_path(None) == ""


def test_local_retire_removes_the_artifact_folder_and_says_so(tmp_path: Path) -> None:
    serving = LocalServing(tmp_path)
    folder = tmp_path / "artifacts" / "v1"
    folder.mkdir(parents=True)
    (folder / "legacy.yaml").write_text("format: zoo-legacy/v1\n")
    version = OracleVersion("v1", "o1", None, None, "ACTIVE", "legacy:artifacts/v1", utcnow())
    assert serving.endpoint_problem(version) is None
    removal = serving.retire(version)
    assert removal.removed == f"artifact folder {folder}" and not removal.not_removed
    assert not folder.exists()
    never = OracleVersion("v2", "o1", None, None, "FAILED", None, utcnow())
    assert serving.endpoint_problem(never) is not None
    assert serving.retire(never).not_removed == "no artifact recorded"


def test_the_test_controller_deploys_from_a_settings_file_as_the_platform_would(
    tmp_path: Path, database_url: str, write_config: Callable[[str], Path]
) -> None:
    write_config(
        f"""
[env.local]
database_url = "{database_url}"
settings = "file:{tmp_path / "state" / "dynamic-settings.yaml"}"
state_dir = "{tmp_path / "state"}"
truss_root = "{TRUSSES}"
"""
    )
    env = Environment.load("local")
    try:
        build_demo(env, apps=0)
        set_whitelist_entry(env, "iris", True)
        settings = settings_from_file(tmp_path / "state" / "dynamic-settings.yaml")
        controller = PlatformAutomation(database_url, settings, TRUSSES, deploy_delay_s=0.2)
        try:
            controller.tick()  # inserts the DEPLOYING version (and the copy model)
            copy = env.platform.zoo_model("iris_copy")
            (version,) = env.platform.versions_of(copy.id)
            assert version.status == "DEPLOYING" and version.truss_hash == IRIS_HASH
            time.sleep(0.3)
            controller.tick()  # the delay passed: ACTIVE and current
            controller.tick()  # and deploys nothing twice
        finally:
            controller.engine.dispose()
        assert [v.id for v in env.platform.versions_of(copy.id)] == [version.id]
        assert env.platform.version(version.id).status == "ACTIVE"
        assert env.platform.oracle(copy.id).current_version_id == version.id
        assert env.deploys.records() == []
    finally:
        env.dispose()
