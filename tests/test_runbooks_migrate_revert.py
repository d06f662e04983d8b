"""Runbooks 03_migrate, 04_revert and 05_retire in a real kernel, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
from support.envs import staging_and_protected_prod
from support.notebooks import scrap_payloads, tamper
from support.runs import MIGRATE_ALONE
from support.runs import user_proxies as user_versions

from zoo_ops.adapters.platform import schema as s
from zoo_ops.execute import execute_runbook
from zoo_ops.trail import read_scraps


def checksum(rows: dict[str, str | None]) -> str:
    return hashlib.sha256(json.dumps(sorted(rows.items())).encode()).hexdigest()


def platform_snapshot(env) -> str:
    with env.platform.engine.connect() as conn:
        parts = [
            sorted(map(tuple, conn.execute(t.select()).all()))
            for t in (s.oracles, s.oracle_versions)
        ]
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def run_ok(step: str, model: str, **params: str):
    if step == "03_migrate":
        params = {**MIGRATE_ALONE, **params}
    result = execute_runbook(step, model=model, parameters=params)
    assert result.exit_code == 0, f"{step}: {result.error}"
    return read_scraps(result.path)


def test_migrate_then_revert_recorded_restores_exactly(demo_env) -> None:
    env = demo_env
    before = user_versions(env)
    old = env.platform.zoo_model("iris").current_version_id
    on_old = {k for k, v in before.items() if v == old}
    assert on_old

    m = run_ok("03_migrate", "iris")
    new = env.platform.zoo_model("iris").current_version_id
    assert m["old_version_id"] == old and m["new_version_id"] == new and new != old
    assert env.platform.version(new).status == s.ACTIVE and env.platform.version(new).truss_hash
    assert m["mapping"] == {old: new}
    assert m["whitelist_after"] == {"iris": {"copy": False}}
    assert m["remaining_on_old"] == 0 and m["affected_count"] == len(on_old)
    affected: pd.DataFrame = m["affected"]
    assert list(affected.columns) == [
        "oracle_version_id",
        "oracle_id",
        "organization_id",
        "from_version_id",
        "to_version_id",
    ]
    assert set(affected["oracle_version_id"]) == on_old
    assert set(affected["from_version_id"]) == {old} and set(affected["to_version_id"]) == {new}
    after = user_versions(env)
    assert all(after[k] == new for k in on_old)
    assert all(after[k] == v for k, v in before.items() if k not in on_old), (
        "other models untouched"
    )
    created_after = set(after) - set(before)
    assert created_after and all(after[k] == new for k in created_after), (
        "a new application lands on new"
    )

    r = run_ok("04_revert", "iris", scope="recorded")
    assert r["mapping"] == {new: old}
    assert r["reverted_count"] == len(on_old) and r["remaining_on_new"] == 0
    assert Path(r["forward_run"]).name.endswith("-03_migrate.ipynb")
    restored = user_versions(env)
    assert checksum({k: restored[k] for k in before}) == checksum(before), "exactly as before"
    assert all(restored[k] == new for k in created_after), "recorded scope leaves later apps alone"


def test_revert_all_also_moves_applications_created_after(demo_env) -> None:
    env = demo_env
    old = env.platform.zoo_model("summarizer").current_version_id
    run_ok("03_migrate", "summarizer")
    new = env.platform.zoo_model("summarizer").current_version_id
    org = env.platform.user_by_email("owner@acme.example").organization_id
    late = env.platform.create_application(org, "summarizer")
    assert late.proxy_model_version_id == new
    r = run_ok("04_revert", "summarizer")
    assert r["remaining_on_new"] == 0
    assert env.platform.count_proxying(new) == 0
    assert env.platform.application(late.oracle_id).proxy_model_version_id == old
    assert late.version_id in set(r["reverted"]["oracle_version_id"])


def test_revert_refuses_a_bad_forward_run_and_changes_nothing(demo_env, tmp_path) -> None:
    env = demo_env
    forward = execute_runbook("03_migrate", model="iris", parameters=dict(MIGRATE_ALONE))
    assert forward.exit_code == 0, forward.error
    scraps = read_scraps(forward.path)
    ((old, new),) = scraps["mapping"].items()
    stranger = env.platform.zoo_model("resnet50").current_version_id
    truncated = tmp_path / "truncated.ipynb"
    truncated.write_text(forward.path.read_text()[:2000])
    dry = execute_runbook("03_migrate", model="iris", parameters={"dry_run": "true"})
    cases = {
        "mapping": tamper(forward.path, tmp_path / "mapping.ipynb", "mapping", {old: stranger}),
        "migration": tamper(forward.path, tmp_path / "migration.ipynb", "migration_id", "zzzzzzzz"),
        "truncated": truncated,
        "dry run": dry.path,
        "not a forward run": execute_runbook(
            "02_verify", model="resnet50", parameters={"dry_run": "true"}
        ).path,
    }
    snapshot = platform_snapshot(env)
    for name, path in cases.items():
        result = execute_runbook("04_revert", model="iris", parameters={"forward_run": str(path)})
        assert result.exit_code == 2, f"{name}: {result.error}"
        assert platform_snapshot(env) == snapshot, f"{name}: something changed"


def test_revert_refuses_affected_rows_that_disagree_with_the_journal(demo_env, tmp_path) -> None:
    env = demo_env
    forward = execute_runbook("03_migrate", model="iris", parameters=dict(MIGRATE_ALONE))
    assert forward.exit_code == 0, forward.error
    nb = json.loads(forward.path.read_text())
    # Drop one row from the recorded `affected` table (pandas scraps are arrow bytes, so
    # rebuild the scrap through scrapbook's own encoder).
    import scrapbook as sb
    from scrapbook.encoders import registry
    from scrapbook.scraps import Scrap

    affected: pd.DataFrame = read_scraps(forward.path)["affected"]
    encoded = registry.encode(Scrap("affected", affected.iloc[1:], "pandas"))
    for payload in scrap_payloads(nb, "affected"):
        payload["data"] = encoded.data
    bad = tmp_path / "short.ipynb"
    bad.write_text(json.dumps(nb))
    assert len(sb.read_notebook(str(bad)).scraps["affected"].data) == len(affected) - 1
    snapshot = platform_snapshot(env)
    result = execute_runbook("04_revert", model="iris", parameters={"forward_run": str(bad)})
    assert result.exit_code == 2 and "disagree with the" in (result.error or "")
    assert platform_snapshot(env) == snapshot


def test_retire_guards(demo_env) -> None:
    env = demo_env
    run_ok("01_copy", "iris")
    copy_version = env.platform.zoo_model("iris_copy").current_version_id
    refused = execute_runbook("05_retire", model="iris")
    assert refused.exit_code == 2 and "forward migration done" in refused.error

    m = run_ok("03_migrate", "iris")
    ((old, new),) = m["mapping"].items()
    too_soon = execute_runbook("05_retire", model="iris")
    assert too_soon.exit_code == 2 and "old enough" in too_soon.error

    # A user put back on the old version by hand blocks the deletion.
    app = next(iter(m["affected"]["oracle_version_id"]))
    env.platform.set_proxy(app, old)
    referenced = execute_runbook("05_retire", model="iris", parameters={"min_age_days": "0"})
    assert referenced.exit_code == 2 and "no references" in referenced.error
    env.platform.set_proxy(app, new)

    dry = run_ok("05_retire", "iris", min_age_days="0", dry_run="true")
    assert env.platform.version(old).status == s.ACTIVE and dry["deleted_version_id"] == old

    done = run_ok("05_retire", "iris", min_age_days="0")
    assert done["deleted_version_id"] == old and done["references"] == 0
    assert done["deleted_copy_versions"] == [copy_version]
    assert env.platform.version(old).status == s.DELETED, "marked DELETED, the row kept"
    assert env.platform.version(copy_version).status == s.DELETED
    assert env.platform.zoo_model("iris").current_version_id == new


def test_retire_refuses_after_a_revert(demo_env) -> None:
    run_ok("03_migrate", "summarizer")
    run_ok("04_revert", "summarizer")
    result = execute_runbook("05_retire", model="summarizer", parameters={"min_age_days": "0"})
    assert result.exit_code == 2 and "not reverted" in result.error


@pytest.fixture
def staged_envs(tmp_path, database_url, write_config, monkeypatch):
    """`staging` (SQLite) and a protected `prod` (the parametrised database) that requires it."""
    with staging_and_protected_prod(tmp_path, database_url, write_config, apps=6) as envs:
        yield envs


def test_staging_gate_and_protected_confirm(staged_envs, tmp_path) -> None:
    prod = staged_envs["prod"]
    settings_file = Path(prod.config.settings[len("file:") :])
    before = settings_file.read_bytes()

    unconfirmed = execute_runbook("01_copy", model="iris", env="prod")
    assert unconfirmed.exit_code == 2 and "protected" in unconfirmed.error

    no_staging = execute_runbook(
        "01_copy", model="iris", env="prod", parameters={"confirm": "prod"}
    )
    assert no_staging.exit_code == 2 and "has not succeeded in staging" in no_staging.error
    assert settings_file.read_bytes() == before, "a refused step changes nothing"

    assert execute_runbook("01_copy", model="iris", env="staging").exit_code == 0
    allowed = execute_runbook("01_copy", model="iris", env="prod", parameters={"confirm": "prod"})
    assert allowed.exit_code == 0, allowed.error

    # Another truss content has no staging success: refused, unless overridden (recorded).
    (tmp_path / "truss_models" / "summarizer" / "data" / "extra.txt").write_text("changed\n")
    changed = execute_runbook(
        "01_copy", model="summarizer", env="prod", parameters={"confirm": "prod"}
    )
    assert changed.exit_code == 2
    overridden = execute_runbook(
        "01_copy",
        model="summarizer",
        env="prod",
        parameters={"confirm": "prod", "gate_override_reason": "hotfix INC-42"},
    )
    assert overridden.exit_code == 0, overridden.error
    assert read_scraps(overridden.path)["run"]["gate_override_reason"] == "hotfix INC-42"
