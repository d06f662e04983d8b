"""`zoo-ops whitelist edit` (the seed's `kubectl edit`, made safe) and the loud lost entry.

The editor is a real program (``$EDITOR`` set to a small Python script that follows a
plan file, one step per time it is opened); the concurrent writer is the real
`zoo-ops whitelist set` in another process, started by that script between open and save.
Both stores: the local ConfigMap file and the ConfigMap in the Kubernetes stand-in.
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.runs import MIGRATE_ALONE, journal_count, user_proxies

from zoo_ops.cli import main
from zoo_ops.domain.whitelist import DynamicSettings
from zoo_ops.environment import Environment
from zoo_ops.execute import execute_runbook

REPO = Path(__file__).resolve().parent.parent

EDITOR_SCRIPT = r"""
import json, subprocess, sys
from pathlib import Path
from typing import Any

here = Path(__file__).parent
target = Path(sys.argv[1])
counter = here / "opened"
n = int(counter.read_text()) if counter.exists() else 0
counter.write_text(str(n + 1))
steps = json.loads((here / "plan.json").read_text())
step = steps[min(n, len(steps) - 1)]
text = target.read_text()
(here / f"seen-{n}.txt").write_text(text)
if step.get("concurrent"):
    subprocess.run([sys.executable, "-m", "zoo_ops.cli", *step["concurrent"]], check=True,
                   capture_output=True)
mode = step["mode"]
if mode == "add":
    body = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#"))
    data = json.loads(body)
    data.update(step["entries"])
    target.write_text(json.dumps(data, indent=2))
elif mode == "write":
    target.write_text(step["text"])
elif mode == "fail":
    sys.exit(3)
# "keep": save unchanged
"""


def use_editor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, steps: list[dict]) -> Path:
    folder = tmp_path / "editor"
    folder.mkdir(exist_ok=True)
    (folder / "editor.py").write_text(EDITOR_SCRIPT)
    (folder / "plan.json").write_text(json.dumps(steps))
    (folder / "opened").unlink(missing_ok=True)
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", f"{sys.executable} {folder / 'editor.py'}")
    return folder


def opened(folder: Path) -> int:
    return int((folder / "opened").read_text())


def whitelist(env: Environment) -> dict:
    return DynamicSettings.from_data(env.settings.read().data).whitelist.as_json_object()


def check_concurrent_edit(env: Environment, tmp_path, monkeypatch, capsys) -> None:
    """An edit opened on {} while `whitelist set sentiment` lands: re-opened on the new
    content with a notice, and both entries survive."""
    env_name = env.name
    folder = use_editor(
        tmp_path,
        monkeypatch,
        [
            {
                "mode": "add",
                "entries": {"iris": {"copy": True}},
                "concurrent": ["whitelist", "-e", env_name, "set", "sentiment", "--copy", "true"],
            },
            {"mode": "add", "entries": {"iris": {"copy": True}}},
        ],
    )
    capsys.readouterr()
    code = main(["whitelist", "-e", env_name, "edit"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert opened(folder) == 2, "re-opened once after the conflict"
    second = (folder / "seen-1.txt").read_text()
    assert "changed while you edited" in second and "sentiment: added" in second, second
    assert '"sentiment"' in second, "the re-opened file holds the new content"
    assert whitelist(env) == {"iris": {"copy": True}, "sentiment": {"copy": True}}
    assert "after 1 conflicting write(s)" in out
    (run,) = env.runs.find(step="whitelist-edit")
    assert (run.model, run.outcome) == ("iris", "succeeded")
    assert [r.model for r in env.runs.find(step="whitelist-set")] == ["sentiment"]


def test_edit_reopens_after_a_concurrent_write_local_file(
    demo_env, tmp_path, monkeypatch, capsys
) -> None:
    check_concurrent_edit(demo_env, tmp_path, monkeypatch, capsys)


def test_edit_reopens_after_a_concurrent_write_kubernetes(
    k8s_env, tmp_path, monkeypatch, capsys
) -> None:
    check_concurrent_edit(k8s_env, tmp_path, monkeypatch, capsys)


def test_edit_unchanged_empty_invalid_and_editor_failure_write_nothing(
    demo_env, tmp_path, monkeypatch, capsys
) -> None:
    env = demo_env
    main(["whitelist", "set", "iris", "--copy", "true"])
    path = Path(env.config.settings[len("file:") :])
    before = path.read_bytes()
    runs = len(env.runs.find())
    cases = [
        ({"mode": "keep"}, 0, "no change"),
        ({"mode": "write", "text": "# only a comment\n\n"}, 0, "saved file was empty"),
        ({"mode": "write", "text": '{"iris": {"copy": "true"}}'}, 2, "copy must be a JSON boolean"),
        ({"mode": "write", "text": '{"bert_copy": {"copy": true}}'}, 2, "bert_copy"),
        ({"mode": "write", "text": '{"iris": {"copy": true}, "iris": {"copy": false}}'}, 2, "dup"),
        ({"mode": "fail"}, 2, "exited with 3"),
    ]
    for step, code, needle in cases:
        use_editor(tmp_path, monkeypatch, [step])
        capsys.readouterr()
        assert main(["whitelist", "edit"]) == code, step
        out, err = capsys.readouterr()
        if code:
            lines = err.splitlines()
            assert len(lines) == 1 and needle in lines[0] and "nothing written" in lines[0], err
        else:
            assert needle in out, out
        assert path.read_bytes() == before, step
    assert len(env.runs.find()) == runs, "nothing written, nothing recorded"


def test_edit_in_prod_needs_confirm_and_passes_the_gate(
    tmp_path, write_config, monkeypatch, capsys
) -> None:
    from support.envs import env_table

    from zoo_ops.commands.demo import build_demo

    shutil.copytree(REPO / "truss_models", tmp_path / "truss_models")
    body = env_table(tmp_path, "staging", f"sqlite:///{tmp_path / 'staging.db'}") + env_table(
        tmp_path, "prod", f"sqlite:///{tmp_path / 'prod.db'}", requires="staging"
    )
    write_config(body)
    for name in ("staging", "prod"):
        env = Environment.load(name)
        build_demo(env, apps=2)
        env.dispose()
    write_config(body + "protected = true\n")
    prod = Environment.load("prod")
    folder = use_editor(
        tmp_path,
        monkeypatch,
        [{"mode": "add", "entries": {"iris": {"copy": True}, "sentiment": {"copy": False}}}],
    )
    capsys.readouterr()
    assert main(["whitelist", "-e", "prod", "edit"]) == 2
    assert "--confirm prod" in capsys.readouterr().err
    assert not (folder / "opened").exists(), "refused before the editor opens"

    assert main(["whitelist", "-e", "prod", "edit", "--confirm", "prod"]) == 2
    err = capsys.readouterr().err.strip()
    # Every closed gate is named, each by the step whose effect the entry has.
    assert len(err.splitlines()) == 1 and "has not succeeded in staging" in err, err
    assert "iris: prod: 01_copy for iris" in err, err
    assert "sentiment: prod: 03_migrate for sentiment" in err, err
    assert whitelist(prod) == {}
    assert sorted(r.model for r in prod.runs.find(step="whitelist-edit", outcome="refused")) == [
        "iris",
        "sentiment",
    ]
    prod.dispose()


@pytest.fixture
def slow_iris(tmp_path, write_config):
    """A local environment whose iris truss's load() says it started and then waits for
    the test's go-ahead: the window in which 01_copy waits for the deploy."""
    from zoo_ops.commands.demo import build_demo

    shutil.copytree(REPO / "truss_models", tmp_path / "truss_models")
    started, release = tmp_path / "load-started", tmp_path / "load-release"
    model_file = tmp_path / "truss_models" / "iris" / "model" / "model.py"
    model_file.write_text(
        model_file.read_text()
        + "\n\n_original_load = Model.load\n\n\ndef _slow_load(self):\n"
        + "    import pathlib, time\n"
        + f"    pathlib.Path({str(started)!r}).touch()\n"
        + "    deadline = time.monotonic() + 60\n"
        + f"    while not pathlib.Path({str(release)!r}).exists() and time.monotonic() < deadline:\n"
        + "        time.sleep(0.05)\n"
        + "    _original_load(self)\n\n\nModel.load = _slow_load\n"
    )
    write_config(
        f"""
[env.local]
database_url = "sqlite:///{tmp_path / "local.db"}"
settings = "file:{tmp_path / "state" / "settings.yaml"}"
state_dir = "{tmp_path / "state"}"
truss_root = "{tmp_path / "truss_models"}"
executed_root = "{tmp_path / "executed"}"
"""
    )
    env = Environment.load("local")
    build_demo(env, apps=2)
    yield env, started, release
    env.dispose()


def remove_the_entry_while_waiting(
    slow_iris, step: str, parameters: dict[str, str], entry: dict
) -> tuple[Environment, Any]:
    """Run ``step`` for iris; once its deploy waits (the truss's load() started), remove
    the iris whitelist entry ``entry`` as `kubectl edit` does; return the step's result."""
    env, started, release = slow_iris
    settings = Path(env.config.settings[len("file:") :])
    result: dict = {}
    runner = threading.Thread(
        target=lambda: result.update(
            run=execute_runbook(step, model="iris", parameters=parameters)
        ),
        daemon=True,
    )
    runner.start()
    deadline = time.monotonic() + 300
    while not started.exists():
        assert time.monotonic() < deadline and runner.is_alive(), result
        time.sleep(0.05)
    # What `kubectl edit` opened before the step wrote its entry and saved after: a plain
    # replace of the data, no resourceVersion check, the entry gone.
    manifest = yaml.safe_load(settings.read_text())
    assert json.loads(manifest["data"]["automaticallyDeployedModelZooModelsWhitelist"]) == {
        "iris": entry
    }
    manifest["data"]["automaticallyDeployedModelZooModelsWhitelist"] = "{}"
    manifest["metadata"]["resourceVersion"] = str(int(manifest["metadata"]["resourceVersion"]) + 1)
    settings.write_text(yaml.safe_dump(manifest, sort_keys=False))
    release.touch()
    runner.join(300)
    return env, result["run"]


def test_a_whitelist_entry_removed_while_01_waits_fails_the_step_naming_it(slow_iris) -> None:
    env, run = remove_the_entry_while_waiting(slow_iris, "01_copy", {}, {"copy": True})
    assert run.exit_code == 1, run.error
    assert run.error and "\n" not in run.error
    assert 'the whitelist entry iris: {"copy": true} was removed by another write' in run.error
    assert "zoo-ops whitelist edit" in run.error
    (row,) = env.runs.find(step="01_copy")
    assert row.outcome == "failed"


def test_a_whitelist_entry_removed_while_03_waits_fails_the_step_naming_it(slow_iris) -> None:
    env = slow_iris[0]
    proxies = user_proxies(env)
    env, run = remove_the_entry_while_waiting(
        slow_iris, "03_migrate", dict(MIGRATE_ALONE), {"copy": False}
    )
    assert run.exit_code == 1, run.error
    assert run.error and "\n" not in run.error
    assert 'the whitelist entry iris: {"copy": false} was removed by another write' in run.error
    assert "while waiting for iris" in run.error
    assert "zoo-ops whitelist edit" in run.error
    (row,) = env.runs.find(step="03_migrate")
    assert row.outcome == "failed"
    # It failed before migrating: no user application moved, nothing journalled.
    assert user_proxies(env) == proxies
    assert journal_count(env) == 0


def test_interactive_edit_offers_to_reopen_invalid_content(demo_env, tmp_path, monkeypatch):
    import os

    import pexpect

    folder = use_editor(
        tmp_path,
        monkeypatch,
        [
            {"mode": "write", "text": '{"iris": {"copy": "true"}}'},
            {"mode": "add", "entries": {"iris": {"copy": True}}},
        ],
    )
    child = pexpect.spawn(
        sys.executable,
        ["-m", "zoo_ops.cli", "whitelist", "edit"],
        env=dict(os.environ),
        encoding="utf-8",
        timeout=120,
    )
    child.expect("copy must be a JSON boolean")
    child.expect(r"re-open the editor\? \[Y/n\]")
    child.sendline("y")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert opened(folder) == 2
    assert "# error:" in (folder / "seen-1.txt").read_text(), "the notice is in the file"
    assert whitelist(demo_env) == {"iris": {"copy": True}}


def test_edit_can_repair_a_malformed_whitelist(demo_env, tmp_path, monkeypatch, capsys):
    env = demo_env
    env.settings.apply(
        lambda data: {**data, "automaticallyDeployedModelZooModelsWhitelist": '{"iris": "yes"}'}
    )
    folder = use_editor(
        tmp_path, monkeypatch, [{"mode": "write", "text": '{"iris": {"copy": true}}'}]
    )
    capsys.readouterr()
    assert main(["whitelist", "edit"]) == 0, capsys.readouterr().err
    seen = (folder / "seen-0.txt").read_text()
    assert "not a valid whitelist" in seen and "yes" in seen, seen
    assert whitelist(env) == {"iris": {"copy": True}}


def test_the_entry_guard_of_a_polling_wait_names_a_lost_or_changed_entry(demo_env) -> None:
    from zoo_ops.errors import StepFailed
    from zoo_ops.services.settings import entry_guard, set_whitelist_entry

    env = demo_env
    set_whitelist_entry(env, "iris", True)
    guard = entry_guard(env, "iris", True, waiting_for="iris_copy", every_s=0.0)
    guard()  # the entry is there: nothing to say
    set_whitelist_entry(env, "iris", False)  # someone else's write changed it
    with pytest.raises(StepFailed, match=r'iris: \{"copy": true\} was changed to copy false'):
        guard()
    env.settings.apply(lambda data: {**data, "automaticallyDeployedModelZooModelsWhitelist": "{}"})
    with pytest.raises(StepFailed, match="removed by another write while waiting for iris_copy"):
        guard()


@pytest.mark.parametrize("kube_ready_delay_s", [6.0])
def test_a_kubectl_edit_saved_while_01_waits_fails_the_step_naming_the_entry(
    k8s_env, kube_api, kubectl
) -> None:
    from zoo_ops.domain.whitelist import WHITELIST_KEY
    from zoo_ops.testing.kube_fixtures import BASETEN_NAMESPACE, SETTINGS_CONFIGMAP

    where = ("-n", BASETEN_NAMESPACE)
    # The seed's `kubectl edit`, opened before 01 writes its entry: the operator adds
    # sentiment to the whitelist they see...
    got = kubectl(*where, "get", "configmap", SETTINGS_CONFIGMAP, "-o", "json", check=True)
    seen = json.loads(json.loads(got.stdout)["data"].get(WHITELIST_KEY) or "{}")
    assert "iris" not in seen
    seen["sentiment"] = {"copy": True}
    result: dict = {}
    runner = threading.Thread(
        target=lambda: result.update(run=execute_runbook("01_copy", model="iris", env="k8s")),
        daemon=True,
    )
    runner.start()
    deadline = time.monotonic() + 300
    while not kube_api.requests_for(verb="create", resource="deployments"):
        assert time.monotonic() < deadline and runner.is_alive(), result
        time.sleep(0.05)
    # ...and saves while 01 waits for the Deployment: kubectl edit's patch carries the whole
    # whitelist value and no resourceVersion, so 01's entry is gone.
    patch = {"data": {WHITELIST_KEY: json.dumps(seen)}}
    kubectl(
        *where,
        "patch",
        "configmap",
        SETTINGS_CONFIGMAP,
        "--type",
        "merge",
        "-p",
        json.dumps(patch),
        check=True,
    )
    runner.join(300)
    run = result["run"]
    assert run.exit_code == 1, run.error
    assert run.error and "\n" not in run.error
    assert 'the whitelist entry iris: {"copy": true} was removed by another write' in run.error
    assert "while waiting for iris_copy" in run.error
    assert whitelist(k8s_env) == {"sentiment": {"copy": True}}
