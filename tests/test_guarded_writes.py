"""Every mutating command obeys the runbooks' rules (issue 15, DESIGN §8).

`whitelist set/remove` and `automation reconcile` on a protected environment need
`--confirm ENV`; where the environment `requires` staging they pass the staging gate for
the truss's hash; each write is a run in the runs table and a notebook in the trail, which
`status` shows and the gate never counts as a runbook success.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.envs import env_table, staging_and_protected_prod

from zoo_ops.cli import main
from zoo_ops.domain.whitelist import DynamicSettings
from zoo_ops.environment import Environment
from zoo_ops.execute import execute_runbook
from zoo_ops.trail import TrailIndex, read_scraps

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def staged(tmp_path, database_url, write_config):
    """`staging` (SQLite) and a protected `prod` (the parametrised database) requiring it."""
    with staging_and_protected_prod(tmp_path, database_url, write_config, apps=3) as envs:
        yield envs


def settings_file(env: Environment) -> Path:
    return Path(env.config.settings[len("file:") :])


def whitelist(env: Environment) -> dict:
    return DynamicSettings.from_data(env.settings.read().data).whitelist.as_json_object()


def one_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


def versions(env: Environment) -> int:
    return sum(len(env.platform.versions_of(o.id)) for o in env.platform.zoo_models())


def test_prod_writes_without_confirm_are_refused_with_nothing_changed(staged, capsys) -> None:
    prod = staged["prod"]
    before = settings_file(prod).read_bytes()
    runs_before = len(prod.runs.find())
    for argv in (
        ["whitelist", "-e", "prod", "set", "summarizer", "--copy", "true"],
        ["whitelist", "-e", "prod", "set", "iris", "--copy", "false"],
        ["whitelist", "-e", "prod", "remove", "iris"],
        ["whitelist", "-e", "prod", "edit"],
        ["automation", "-e", "prod", "reconcile"],
        ["whitelist", "-e", "prod", "set", "iris", "--copy", "true", "--confirm", "staging"],
    ):
        capsys.readouterr()
        assert main(argv) == 2, argv
        line = one_error(capsys)
        assert "protected: pass --confirm prod" in line and "nothing changed" in line, line
    assert settings_file(prod).read_bytes() == before
    assert len(prod.runs.find()) == runs_before, "a refusal for confirm is made before any run"
    # A dry run needs no confirm, and writes nothing.
    assert main(["whitelist", "-e", "prod", "set", "iris", "--copy", "true", "--dry-run"]) == 0
    assert settings_file(prod).read_bytes() == before


def test_the_staging_gate_guards_whitelist_set_and_reconcile_in_prod(staged, capsys) -> None:
    staging, prod = staged["staging"], staged["prod"]
    before = settings_file(prod).read_bytes()
    versions_before = versions(prod)

    # The case: summarizer never ran in staging, so prod refuses both writes.
    capsys.readouterr()
    set_argv = ["whitelist", "-e", "prod", "set", "summarizer", "--copy", "true"]
    assert main([*set_argv, "--confirm", "prod"]) == 2
    line = one_error(capsys)
    assert "01_copy for summarizer has not succeeded in staging" in line, line
    assert settings_file(prod).read_bytes() == before

    refused = prod.runs.find(step="whitelist-set", model="summarizer")
    assert [r.outcome for r in refused] == ["refused"]
    assert refused[0].truss_hash, "the refused run names the hash it was gated on"

    # A whitelist write in staging is recorded, but is no runbook success: still refused.
    assert main(["whitelist", "-e", "staging", "set", "summarizer", "--copy", "true"]) == 0
    assert staging.runs.find(step="whitelist-set", model="summarizer", outcome="succeeded")
    capsys.readouterr()
    assert main([*set_argv, "--confirm", "prod"]) == 2
    assert "has not succeeded in staging" in one_error(capsys)

    # Put there behind zoo-ops's back (as kubectl would), reconcile in prod is gated too:
    # nothing deployed.
    prod.settings.apply(
        lambda data: {
            **data,
            "automaticallyDeployedModelZooModelsWhitelist": '{"summarizer": {"copy": true}}',
        }
    )
    capsys.readouterr()
    assert main(["automation", "-e", "prod", "reconcile", "--confirm", "prod"]) == 2
    line = one_error(capsys)
    assert line.startswith("zoo-ops: error: reconcile refused, nothing deployed: summarizer"), line
    assert versions(prod) == versions_before
    assert [r.outcome for r in prod.runs.find(step="reconcile")] == ["refused"]

    # The one recorded way past the gate.
    assert (
        main(
            [
                "whitelist",
                "-e",
                "prod",
                "set",
                "iris",
                "--copy",
                "true",
                "--confirm",
                "prod",
                "--gate-override-reason",
                "hotfix INC-42",
            ]
        )
        == 0
    )
    assert whitelist(prod)["iris"] == {"copy": True}
    (done,) = prod.runs.find(step="whitelist-set", model="iris")
    assert done.outcome == "succeeded" and done.gate_override_reason == "hotfix INC-42"


def test_a_staging_01_copy_opens_the_prod_whitelist_set_and_each_write_is_in_the_trail(
    staged, capsys
) -> None:
    staging, prod = staged["staging"], staged["prod"]
    assert execute_runbook("01_copy", model="iris", env="staging").exit_code == 0
    capsys.readouterr()
    argv = ["whitelist", "-e", "prod", "set", "iris", "--copy", "true", "--confirm", "prod"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "recorded as run" in out
    (run,) = prod.runs.find(step="whitelist-set", model="iris")
    assert run.outcome == "succeeded"
    # The trail notebook reads back through the trail's own reader, with its scraps.
    notebook = Path(run.notebook_path)
    assert notebook.parent == prod.config.executed_root_path / "prod" / "iris"
    assert notebook.name.endswith("-whitelist-set.ipynb")
    scraps = read_scraps(notebook)
    assert scraps["run"]["run_id"] == run.id and scraps["run"]["outcome"] == "succeeded"
    assert scraps["whitelist_after"] == {"iris": {"copy": True}}
    entries = [e for e in TrailIndex(prod.config.executed_root_path).entries("prod", "iris")]
    assert [e.step for e in entries] == ["whitelist-set"]
    # ...and `zoo-ops status` shows it beside the runbook steps.
    capsys.readouterr()
    assert main(["status", "-e", "prod", "-m", "iris"]) == 0
    assert "whitelist-set" in capsys.readouterr().out

    # copy false has the effect of 03_migrate: staging's 01 does not open it.
    capsys.readouterr()
    assert main([*argv[:5], "--copy", "false", "--confirm", "prod"]) == 2
    line = one_error(capsys)
    assert "03_migrate for iris" in line and "has not succeeded in staging" in line, line
    assert whitelist(prod)["iris"] == {"copy": True}

    # remove deploys nothing: confirm is enough (no gate), and it is recorded.
    assert main(["whitelist", "-e", "prod", "remove", "iris", "--confirm", "prod"]) == 0
    assert "iris" not in whitelist(prod)
    assert [r.outcome for r in prod.runs.find(step="whitelist-remove")] == ["succeeded"]
    assert staging.runs.find(step="01_copy", outcome="succeeded")


def test_reconcile_in_prod_after_staging_deploys_and_records_one_run_per_model(
    staged, tmp_path, capsys
) -> None:
    staging, prod = staged["staging"], staged["prod"]
    assert execute_runbook("01_copy", model="iris", env="staging").exit_code == 0
    argv = ["whitelist", "-e", "prod", "set", "iris", "--copy", "true", "--confirm", "prod"]
    assert main(argv) == 0
    before = versions(prod)
    # A dry run decides and deploys nothing, with no confirm.
    assert main(["automation", "-e", "prod", "reconcile", "--dry-run"]) == 0
    assert versions(prod) == before
    capsys.readouterr()
    assert main(["automation", "-e", "prod", "reconcile", "--confirm", "prod"]) == 0
    out = capsys.readouterr().out
    assert "deployed" in out and "recorded as run" in out
    assert versions(prod) == before + 1
    (run,) = prod.runs.find(step="reconcile")
    copy_version = prod.platform.zoo_model("iris_copy").current_version_id
    assert run.model == "iris" and run.outcome == "succeeded"
    assert run.truss_hash == prod.platform.version(copy_version).truss_hash
    # Nothing left to deploy: a second reconcile writes nothing and records nothing.
    assert main(["automation", "-e", "prod", "reconcile", "--confirm", "prod"]) == 0
    assert len(prod.runs.find(step="reconcile")) == 1
    # The audit report shows the command runs beside the runbooks.
    assert main(["report", "-e", "prod", "-o", str(tmp_path / "report")]) == 0
    html = "".join(p.read_text() for p in (tmp_path / "report").rglob("*.html"))
    assert "whitelist-set" in html and "reconcile" in html
    assert staging.runs.find(step="01_copy", outcome="succeeded")


def test_an_environment_that_cannot_record_refuses_prod_writes(
    tmp_path, write_config, capsys
) -> None:
    # prod's database has no zoo-ops tables (never initialised): a write there could not be
    # recorded, so it is refused with nothing changed; `local` without a database writes,
    # and says it is not recorded.
    settings = tmp_path / "prod" / "settings.yaml"
    write_config(
        env_table(tmp_path, "staging", f"sqlite:///{tmp_path / 'staging.db'}")
        + env_table(tmp_path, "prod", f"sqlite:///{tmp_path / 'prod.db'}", requires="staging")
        + "protected = true\n"
        + f'\n[env.local]\nsettings = "file:{tmp_path / "local.yaml"}"\n'
        + f'database_url = "sqlite:///{tmp_path / "nowhere" / "local.db"}"\n'
    )
    from zoo_ops.adapters.settings.local_file import LocalConfigMapFile

    LocalConfigMapFile.create(settings, {}, overwrite=True)
    LocalConfigMapFile.create(tmp_path / "local.yaml", {}, overwrite=True)
    before = settings.read_bytes()
    capsys.readouterr()
    assert main(["whitelist", "-e", "prod", "remove", "iris", "--confirm", "prod"]) == 2
    line = one_error(capsys)
    assert "has no zoo-ops runs table" in line and "zoo-ops init -e prod" in line, line
    assert settings.read_bytes() == before
    assert main(["whitelist", "set", "iris", "--copy", "true"]) == 0
    assert "not recorded" in capsys.readouterr().out
    assert not (tmp_path / "nowhere").exists(), "finding out created no database"
