"""The bad-input corpus (tests/bad_inputs/*.yaml) through the `zoo-ops` command line.

Each case is DATA: ``argv`` for ``zoo-ops`` (runbook parameters go through ``zoo-ops run``,
exactly as an operator passes them), the expected ``exit`` code, an ``error`` fragment,
the ``databases`` to run it on, and optional ``setup`` steps, ``truss`` breakage,
``files`` (written into the case's folder; a name ending in ``/`` makes a folder) and
``config`` (TOML appended to the case's zoo_ops.toml, e.g. another ``[env.NAME]``). Placeholders in argv and error: ``{tmp}``, ``{trusses}``, ``{forward_run}``,
``{tampered_mapping}``, ``{tampered_migration_id}``, ``{truncated}``, ``{copy_run}``,
``{failed_forward}``, ``{summarizer_app}``.

Each case must end with exit code ``exit``, ONE line on stderr naming the problem (no
traceback), and NOTHING changed: every platform table and zoo-ops's migration, journal,
lock and deploy tables checksummed before and after, and the settings file's bytes.
(``zoo_ops_run`` is excluded: a refused runbook run is recorded there as failed, which is
the audit trail doing its job.) The trail's existing files stay byte-identical (a new
``STAMP-STEP.ipynb`` of the refused run is allowed: it is the audit trail), and outside
the state and trail folders no file or folder appears, vanishes or changes -- the case's
folder (trusses, config, files the case wrote) is snapshotted before and after.

Malformed *settings values* are the corpus of tests/bad_settings (test_bad_settings.py);
this corpus covers what an operator types.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from support.bad_inputs import ONE_ERROR_LINE, case_env, fingerprint  # noqa: F401 - fixture
from support.notebooks import tamper
from support.runs import MIGRATE_ALONE

from zoo_ops.adapters.platform import schema as s
from zoo_ops.cli import main
from zoo_ops.environment import Environment
from zoo_ops.execute import execute_runbook

CORPUS = Path(__file__).parent / "bad_inputs"
CASE_FILES = sorted(CORPUS.glob("*.yaml"))
KEYS = {"why", "argv", "exit", "error", "databases", "setup", "truss", "files", "config"}


def load_case(path: Path) -> dict[str, Any]:
    case = yaml.safe_load(path.read_text())
    assert set(case) <= KEYS and {"why", "argv", "exit", "error", "databases"} <= set(case), path
    assert case["exit"] in (1, 2) and set(case["databases"]) <= {"sqlite", "postgres"}, path
    return case


PARAMS = [
    pytest.param(path, db, id=f"{path.stem}-{db}")
    for path in CASE_FILES
    for db in load_case(path)["databases"]
]


def test_the_corpus_has_at_least_100_distinct_cases() -> None:
    cases = [load_case(p) for p in CASE_FILES]
    assert len(cases) >= 100
    assert len({json.dumps(c["argv"]) + json.dumps(c.get("truss")) for c in cases}) == len(cases)


# --- the environment a case runs in ---------------------------------------------------------


# The case's folders the command may write in, and the database's own files (the
# database is fingerprinted table by table instead).
WRITABLE = {"state", "executed"}
DATABASE_FILES = {"platform.db", "platform.db-wal", "platform.db-shm", "platform.db-journal"}
# A runbook's notebook, or the record of a refused mutating command (whitelist-set, ...).
TRAIL_NAME = re.compile(
    r"^\d{8}T\d{6}Z-(\d\d_[a-z]+|whitelist-set|whitelist-remove|whitelist-edit|reconcile)\.ipynb$"
)


def tree(root: Path, *, skip: Collection[str] = ()) -> dict[str, str]:
    """Every file, folder and link under ``root`` (top-level names in ``skip`` left out):
    relative path -> ``dir``, ``link:TARGET``, ``special`` or the file's sha256."""
    out: dict[str, str] = {}
    if not root.exists():
        return out
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] in skip:
            continue
        if path.is_symlink():
            out[str(rel)] = f"link:{path.readlink()}"
        elif path.is_dir():
            out[str(rel)] = "dir"
        elif path.is_file():
            out[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[str(rel)] = "special"
    return out


def assert_trail_kept(before: dict[str, str], after: dict[str, str], case: str) -> None:
    """The trail's files unchanged; only new notebooks (and their folders) added."""
    changed = sorted(k for k, v in before.items() if after.get(k) != v)
    assert not changed, f"{case}: trail files changed or removed: {changed}"
    added = [k for k in after if k not in before and after[k] != "dir"]
    strays = sorted(k for k in added if not TRAIL_NAME.match(Path(k).name))
    assert not strays, f"{case}: files in the trail that are no notebook: {strays}"


def assert_nothing_else_written(before: dict[str, str], after: dict[str, str], case: str) -> None:
    """Outside the state and trail folders, the case's folder is exactly as it was."""
    created = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    assert not (created or removed or changed), (
        f"{case}: outside state/ and executed/: created {created}, removed {removed}, "
        f"changed {changed}"
    )


def break_truss(trusses: Path, spec: dict[str, Any]) -> None:
    if "remove" in spec:
        (trusses / spec["remove"]).unlink()
    for rel, body in spec.get("write", {}).items():
        (trusses / rel).write_text(body)
    for rel, (old, new) in spec.get("replace", {}).items():
        path = trusses / rel
        text = path.read_text()
        assert old in text, f"{rel} has no {old!r}"
        path.write_text(text.replace(old, new))


def executed(step: str, **params: str) -> Path:
    """Run a runbook for a setup step; its executed path."""
    model = params.pop("model", "iris")
    return execute_runbook(step, model=model, parameters=params).path


SETUPS: dict[str, Callable[[Environment, Path, dict[str, str]], None]] = {}


def setup(name: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def register(fn: Callable[..., None]) -> Callable[..., None]:
        SETUPS[name] = fn
        return fn

    return register


@setup("migrated")
def _migrated(env: Environment, tmp: Path, values: dict[str, str]) -> None:
    result = execute_runbook("03_migrate", model="iris", parameters=dict(MIGRATE_ALONE))
    assert result.exit_code == 0, result.error
    values["forward_run"] = str(result.path)


@setup("copied")
def _copied(env: Environment, tmp: Path, values: dict[str, str]) -> None:
    result = execute_runbook("01_copy", model="iris")
    assert result.exit_code == 0, result.error


@setup("tampered_mapping")
def _tampered_mapping(env: Environment, tmp: Path, values: dict[str, str]) -> None:
    stranger = env.platform.zoo_model("resnet50").current_version_id
    old = env.platform.zoo_model("iris").current_version_id  # after migrate: new
    path = tamper(Path(values["forward_run"]), tmp / "mapping.ipynb", "mapping", {stranger: old})
    values["tampered_mapping"] = str(path)


@setup("tampered_migration_id")
def _tampered_migration_id(env: Environment, tmp: Path, values: dict[str, str]) -> None:
    path = tamper(Path(values["forward_run"]), tmp / "mid.ipynb", "migration_id", "zzzzzzzz")
    values["tampered_migration_id"] = str(path)


@setup("truncated")
def _truncated(env: Environment, tmp: Path, values: dict[str, str]) -> None:
    path = tmp / "truncated-03_migrate.ipynb"
    text = Path(values["forward_run"]).read_text()
    path.write_text(text[: len(text) // 2])
    values["truncated"] = str(path)


@setup("copy_run")
def _copy_run(env: Environment, tmp: Path, values: dict[str, str]) -> None:
    values["copy_run"] = str(executed("01_copy", dry_run="true"))


@setup("failed_forward")
def _failed_forward(env: Environment, tmp: Path, values: dict[str, str]) -> None:
    result = execute_runbook("03_migrate", model="iris", parameters={"batch_size": "0"})
    assert result.exit_code != 0
    values["failed_forward"] = str(result.path)


def summarizer_app(env: Environment) -> str:
    zoo = env.platform.zoo_model("summarizer").current_version_id
    v, o = s.oracle_versions, s.oracles
    with env.platform.engine.connect() as conn:
        return str(
            conn.execute(
                select(o.c.id)
                .join(v, v.c.id == o.c.current_version_id)
                .where(v.c.proxy_model_version_id == zoo, o.c.is_model_zoo.is_(False))
                .order_by(o.c.id)
            ).first()[0]  # type: ignore[index]
        )


@pytest.mark.parametrize(("case_path", "db"), PARAMS)
def test_bad_input_is_refused_with_one_line_and_nothing_changed(
    case_path: Path,
    db: str,
    case_env: Callable[..., tuple[Environment, Path]],  # noqa: F811 - the imported fixture
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    case = load_case(case_path)
    env, trusses = case_env(db, str(case.get("config", "")).replace("{tmp}", str(tmp_path)))
    values = {"tmp": str(tmp_path), "trusses": str(trusses)}
    for step in case.get("setup", []):
        SETUPS[step](env, tmp_path, values)
    if "summarizer_app" in json.dumps(case):
        values["summarizer_app"] = summarizer_app(env)
    for name, body in case.get("files", {}).items():
        if name.endswith("/"):
            (tmp_path / name).mkdir(parents=True)
        else:
            (tmp_path / name).write_text(body)
    if "truss" in case:
        break_truss(trusses, case["truss"])
    argv = [str(a).format(**values) for a in case["argv"]]
    fragment = str(case["error"]).format(**values)
    before = fingerprint(env)
    trail_before = tree(tmp_path / "executed")
    outside_before = tree(tmp_path, skip=WRITABLE | DATABASE_FILES)
    capsys.readouterr()

    try:
        code = main(argv)
    except SystemExit as exc:  # argparse refuses before a handler runs
        code = int(exc.code or 0)
    err = capsys.readouterr().err

    lines = err.splitlines()
    assert code == case["exit"], f"{case_path.stem}: exit {code}: {err}"
    assert len(lines) == 1 and ONE_ERROR_LINE.match(lines[0]), err
    assert "Traceback" not in err
    assert fragment in lines[0], lines[0]
    assert fingerprint(env) == before, f"{case_path.stem}: something changed"
    assert_trail_kept(trail_before, tree(tmp_path / "executed"), case_path.stem)
    outside_after = tree(tmp_path, skip=WRITABLE | DATABASE_FILES)
    assert_nothing_else_written(outside_before, outside_after, case_path.stem)
