"""Step order is a gate, per environment and per truss hash (DESIGN §8).

The pure rule first (every link, each way it can be missing), then the operator's case
in a real kernel: `02_verify -m sentiment` fails (the demo's sentiment truss answers one
example differently), and `03_migrate -m sentiment` is refused, in one line, with nothing
changed -- on the local environment through the real `zoo-ops run`, and in a staging +
protected prod pair where prod requires staging.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from support.envs import staging_and_protected_prod
from support.runs import CLI
from support.runs import user_proxies as user_versions

from zoo_ops.adapters.platform import schema as s
from zoo_ops.domain.gates import RunFact, requirements, step_gate
from zoo_ops.domain.retire_guards import Guard, refusal
from zoo_ops.execute import execute_runbook
from zoo_ops.trail import read_scraps

H, OTHER = "a" * 64, "b" * 64


def gate(step: str, facts: list[RunFact], *, env: str = "local", requires: str = "", **kw):
    return step_gate(
        env=env,
        requires=requires,
        step=step,
        model="sentiment",
        truss_hash=kw.get("truss_hash", H),
        facts=facts,
        override_reason=kw.get("override_reason", ""),
        dry_run=kw.get("dry_run", False),
    )


def ran(step: str, env: str = "local", outcome: str = "succeeded", h: str = H, **kw) -> RunFact:
    return RunFact(env, step, outcome, h, f"{env}-{step}-{outcome}"[:40], **kw)


# --- the rule ------------------------------------------------------------------------------


def test_each_step_needs_the_one_before_it_for_the_same_truss_hash() -> None:
    assert gate("01_copy", []).open
    assert not gate("02_verify", []).open
    assert not gate("02_verify", [ran("01_copy", h=OTHER)]).open, "another content proves nothing"
    assert gate("02_verify", [ran("01_copy")]).open

    copied = [ran("01_copy")]
    refused = gate("03_migrate", [*copied, ran("02_verify", outcome="failed", target="copy")])
    assert not refused.open
    assert "02_verify passed (target copy) not found" in refused.detail
    assert "run 02_verify in local first, or pass gate_override_reason" in refused.detail
    # Only a passed 02 of the copy counts: not one of the new version.
    assert not gate("03_migrate", [*copied, ran("02_verify", target="new")]).open
    assert gate("03_migrate", [*copied, ran("02_verify", target="copy")]).open

    assert not gate("05_retire", []).open
    assert not gate("05_retire", [ran("03_migrate", reverted_by="m-back")]).open
    assert (
        "reverted by migration m-back"
        in gate("05_retire", [ran("03_migrate", reverted_by="m-back")]).detail
    )
    assert gate("05_retire", [ran("03_migrate")]).open
    assert gate("04_revert", []).open, "a revert is never held back by step order"


def test_requires_needs_the_whole_chain_in_the_required_environment() -> None:
    """The issue's prod case: staging's 03 alone (its 02 failed) opens nothing."""
    staging = [
        ran("01_copy", "staging"),
        ran("02_verify", "staging", "failed", target="copy"),
        ran("03_migrate", "staging"),
    ]
    prod_chain = [ran("01_copy", "prod"), ran("02_verify", "prod", target="copy")]
    verdict = gate("03_migrate", staging + prod_chain, env="prod", requires="staging")
    assert not verdict.open
    assert "02_verify for sentiment has not succeeded in staging" in verdict.detail
    assert [(link.env, link.step, link.found) for link in verdict.links] == [
        ("staging", "01_copy", True),
        ("staging", "02_verify", False),
        ("staging", "03_migrate", True),
        ("prod", "02_verify", True),
    ]
    fixed = [*staging, ran("02_verify", "staging", target="copy")]
    assert gate("03_migrate", fixed + prod_chain, env="prod", requires="staging").open
    # prod's own order still holds: staging's whole chain does not stand in for prod's 02.
    assert not gate("03_migrate", fixed, env="prod", requires="staging").open
    # prod 05 needs staging's 05 too, and an unreverted 03 in both.
    assert [
        r.describe() for r in requirements(env="prod", requires="staging", step="05_retire")
    ] == [
        "staging 01_copy succeeded",
        "staging 02_verify passed (target copy)",
        "staging 03_migrate succeeded and not reverted",
        "staging 05_retire succeeded",
        "prod 03_migrate succeeded and not reverted",
    ]


def test_a_dry_run_shows_what_would_block_and_an_override_names_what_it_skipped() -> None:
    dry = gate("03_migrate", [ran("01_copy")], dry_run=True)
    assert dry.open and not dry.overridden
    assert "a real run would need local 02_verify passed (target copy)" in dry.detail
    over = gate("03_migrate", [], override_reason="INC-7 hotfix")
    assert over.open and over.overridden
    assert over.skipped == ("local 02_verify passed (target copy)",)
    assert "INC-7 hotfix" in over.detail and "skipped: local 02_verify" in over.detail
    assert not gate("02_verify", [ran("01_copy")], truss_hash=None).open, "no hash, no match"


def test_the_retire_refusal_names_every_failing_guard() -> None:
    guards = [
        Guard("forward migration done", True, "m1"),
        Guard("old enough", False, "0.02 days since the migration"),
        Guard("not reverted", False, "reverted by migration m2"),
        Guard("no references", False, "52 user versions still point at v1"),
    ]
    line = refusal(guards)
    assert line is not None and "\n" not in line
    assert line.startswith("retire refused (3 of 4 guards): old enough: 0.02 days")
    assert "not reverted: reverted by migration m2" in line
    assert "no references: 52 user versions still point at v1" in line
    assert refusal([Guard("x", True, "")]) is None


def test_the_rollback_puts_back_only_what_is_still_as_03_left_it() -> None:
    from zoo_ops.domain.rollback import current_version_restore, whitelist_restore

    def current(now, status="ACTIVE"):
        return current_version_restore(
            model="iris", current_id=now, old_id="old", new_id="new", old_status=status
        )

    assert current("new").action == "set"
    assert current("old").action == "none"
    assert (
        current("other").action == "cannot" and "not new as 03 left it" in current("other").detail
    )
    assert current("new", "DELETED").action == "cannot"

    def entry(now, before, recorded=True):
        return whitelist_restore(model="iris", now=now, recorded=recorded, before=before)

    assert entry(False, True).action == "set" and entry(False, True).wanted == "copy=true"
    assert entry(False, None).action == "remove"
    assert entry(True, True).action == "none"
    assert entry(None, True).action == "cannot", "removed since 03: not ours to re-add"
    assert entry(False, True, recorded=False).action == "cannot"


# --- the sentiment case, in a real kernel ---------------------------------------------------


def snapshot(env) -> str:
    """Every oracle and version row (so the current versions), and every user proxy."""
    with env.platform.engine.connect() as conn:
        parts = [
            sorted(map(tuple, conn.execute(t.select()).all()))
            for t in (s.oracles, s.oracle_versions)
        ]
    return hashlib.sha256(repr((parts, sorted(user_versions(env).items()))).encode()).hexdigest()


def settings_bytes(env) -> bytes:
    return Path(env.config.settings[len("file:") :]).read_bytes()


def test_03_is_refused_after_a_failed_02_and_changes_nothing(demo_env, tmp_path) -> None:
    env = demo_env
    assert execute_runbook("01_copy", model="sentiment").exit_code == 0
    verify = execute_runbook("02_verify", model="sentiment")
    assert verify.exit_code == 1 and "answers differ" in (verify.error or "")
    before, whitelist = snapshot(env), settings_bytes(env)

    # The operator's command: exit 2 (a gate, as every GateClosed), one line, nothing changed.
    done = subprocess.run(
        [*CLI, "run", "03_migrate", "-m", "sentiment"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "03_migrate for sentiment refused" in line
    assert "02_verify passed (target copy) not found" in line and "latest run" in line
    assert "failed" in line and "gate_override_reason" in line
    assert snapshot(env) == before and settings_bytes(env) == whitelist

    # The refused run's notebook shows every link it looked for, above the error.
    (refused,) = sorted((tmp_path / "executed" / "local" / "sentiment").glob("*-03_migrate.ipynb"))
    scraps = read_scraps(refused)
    assert scraps["run"]["outcome"] == "refused"
    assert scraps["gate"]["open"] is False
    assert "local 02_verify" in refused.read_text()

    # A dry run is not blocked, and says what a real run would be refused for.
    dry = execute_runbook("03_migrate", model="sentiment", parameters={"dry_run": "true"})
    assert dry.exit_code == 0, dry.error
    assert "a real run would need local 02_verify passed" in dry.path.read_text()
    assert snapshot(env) == before and settings_bytes(env) == whitelist


def test_override_passes_and_records_what_it_skipped(demo_env) -> None:
    env = demo_env
    forward = execute_runbook(
        "03_migrate", model="iris", parameters={"gate_override_reason": "INC-9: verified by hand"}
    )
    assert forward.exit_code == 0, forward.error
    run = read_scraps(forward.path)["run"]
    assert run["gate_override_reason"] == "INC-9: verified by hand"
    assert run["gate_skipped"] == "local 02_verify passed (target copy)"
    assert env.platform.version(env.platform.zoo_model("iris").current_version_id).truss_hash


@pytest.fixture
def staging_prod(tmp_path, database_url, write_config):
    """`staging` (SQLite) and a protected `prod` (the parametrised database) requiring it."""
    with staging_and_protected_prod(tmp_path, database_url, write_config, apps=6) as envs:
        yield envs


def test_03_is_refused_in_staging_and_prod_while_02_has_failed(staging_prod) -> None:
    confirm = {"confirm": "prod"}
    assert execute_runbook("01_copy", model="sentiment", env="staging").exit_code == 0
    assert execute_runbook("02_verify", model="sentiment", env="staging").exit_code == 1
    assert (
        execute_runbook("01_copy", model="sentiment", env="prod", parameters=confirm).exit_code == 0
    )

    # prod's 02 needs staging's 02 passed: refused; forced past, it fails as staging's did.
    held = execute_runbook("02_verify", model="sentiment", env="prod", parameters=confirm)
    assert (
        held.exit_code == 2 and "02_verify for sentiment has not succeeded in staging" in held.error
    )
    forced = execute_runbook(
        "02_verify",
        model="sentiment",
        env="prod",
        parameters={**confirm, "gate_override_reason": "see whether prod differs too"},
    )
    assert forced.exit_code == 1

    before = {name: (snapshot(e), settings_bytes(e)) for name, e in staging_prod.items()}
    in_staging = execute_runbook("03_migrate", model="sentiment", env="staging")
    assert in_staging.exit_code == 2 and "local" not in in_staging.error
    assert "staging: 03_migrate for sentiment refused" in in_staging.error
    in_prod = execute_runbook("03_migrate", model="sentiment", env="prod", parameters=confirm)
    assert in_prod.exit_code == 2
    assert "02_verify, 03_migrate for sentiment has not succeeded in staging" in in_prod.error
    assert "prod 02_verify passed (target copy) not found" in in_prod.error
    for refused in (in_staging, in_prod):
        assert read_scraps(refused.path)["run"]["outcome"] == "refused"
    assert {name: (snapshot(e), settings_bytes(e)) for name, e in staging_prod.items()} == before


# --- a revert is a whole rollback -----------------------------------------------------------


def test_revert_puts_back_the_current_version_and_the_whitelist(demo_env, tmp_path) -> None:
    """01 -> 02 -> 03 by the rules, then 04: the users, the zoo model's current version and
    the whitelist entry are as before 03; `rollout` does not call 03 done; 05 names every
    guard that fails."""
    from zoo_ops.services.settings import show_settings

    env = demo_env
    zoo = env.platform.zoo_model("iris")
    old = zoo.current_version_id
    for step in ("01_copy", "02_verify", "03_migrate"):
        done = execute_runbook(step, model="iris")
        assert done.exit_code == 0, f"{step}: {done.error}"
    new = env.platform.zoo_model("iris").current_version_id
    assert new != old and show_settings(env).whitelist["iris"].copy is False

    back = execute_runbook("04_revert", model="iris")
    assert back.exit_code == 0, back.error
    r = read_scraps(back.path)
    assert r["rollback_not_restored"] == ""
    assert dict(zip(r["rollback"]["what"], r["rollback"]["action"], strict=True)) == {
        "whitelist entry": "set",
        "current version": "set",
    }
    assert env.platform.zoo_model("iris").current_version_id == old
    assert show_settings(env).whitelist["iris"].copy is True, "as 01 left it, before 03"
    org = env.platform.user_by_email("owner@acme.example").organization_id
    assert env.platform.create_application(org, "iris").proxy_model_version_id == old
    assert env.platform.count_proxying(new) == 0

    plan = tmp_path / "plan.yaml"
    plan.write_text("environments: [local]\nmodels: [iris]\n")
    rolled = subprocess.run(
        [*CLI, "rollout", str(plan)], capture_output=True, text=True, cwd=tmp_path, timeout=600
    )
    assert rolled.returncode == 1, rolled.stdout + rolled.stderr
    assert "03_migrate was reverted by" in rolled.stdout + rolled.stderr
    assert "done before" not in rolled.stdout

    retire = execute_runbook("05_retire", model="iris", parameters={"min_age_days": "0"})
    assert retire.exit_code == 2
    for guard in ("not reverted", "no references", "new version serving"):
        assert f"{guard}:" in retire.error, guard
    assert "retire refused (" in retire.error and "\n" not in retire.error
    assert "not reverted" in retire.path.read_text(), "the guard table is in the notebook"


def test_a_revert_from_the_journal_says_what_it_could_not_put_back(demo_env) -> None:
    from zoo_ops.services.settings import show_settings

    env = demo_env
    old = env.platform.zoo_model("summarizer").current_version_id
    forward = execute_runbook(
        "03_migrate", model="summarizer", parameters={"gate_override_reason": "test: 03 alone"}
    )
    assert forward.exit_code == 0, forward.error
    migration_id = read_scraps(forward.path)["migration_id"]
    back = execute_runbook(
        "04_revert", model="summarizer", parameters={"migration_id": migration_id}
    )
    assert back.exit_code == 0, back.error
    r = read_scraps(back.path)
    assert r["rollback_not_restored"].startswith(
        "whitelist entry not restored: no forward notebook records the whitelist before 03"
    )
    assert show_settings(env).whitelist["summarizer"].copy is False, "left as is, and said so"
    assert env.platform.zoo_model("summarizer").current_version_id == old, "the rest is restored"


def test_prod_opens_step_by_step_as_staging_and_prod_complete_the_chain(staging_prod) -> None:
    """The order the zoo-staging-prod plan follows, by hand: each prod step runs once
    staging's chain up to it and prod's own step before it have succeeded."""
    confirm = {"confirm": "prod"}

    def run(step: str, env: str) -> int:
        result = execute_runbook(
            step, model="iris", env=env, parameters=confirm if env == "prod" else {}
        )
        return result.exit_code

    assert run("01_copy", "staging") == 0 and run("02_verify", "staging") == 0
    assert run("01_copy", "prod") == 0 and run("02_verify", "prod") == 0
    early = execute_runbook("03_migrate", model="iris", env="prod", parameters=confirm)
    assert early.exit_code == 2
    assert "03_migrate for iris has not succeeded in staging" in early.error
    assert "prod 02_verify" not in early.error, "prod's own 02 passed: not named"
    assert run("03_migrate", "staging") == 0
    assert run("03_migrate", "prod") == 0
    prod = staging_prod["prod"]
    assert prod.platform.version(prod.platform.zoo_model("iris").current_version_id).truss_hash
