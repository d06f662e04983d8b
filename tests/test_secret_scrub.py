"""Secrets never echoed (issue 14), and a database that is not there is one line.

What an operator relies on:

- a model whose ``load`` fails quoting an admin-org secret: the value is nowhere -- not on
  stderr, not in the executed notebook, the run row, the ``run`` scrap, the deploy log,
  the automation's table or the HTML report;
- a database password given as ``?password=`` in the URL is never shown or stored;
- every command against a database that refuses, does not exist or cannot be opened
  ends with ONE line naming the environment and the redacted URL, exit 1, no traceback.

The values come from :mod:`zoo_ops.testing.test_secrets`, so the session's secret scan
also looks for them in every file these tests leave.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import select

from zoo_ops.adapters import known_secrets
from zoo_ops.adapters.platform import schema as s
from zoo_ops.adapters.platform.engine import make_engine
from zoo_ops.cli import main
from zoo_ops.commands.demo import build_demo
from zoo_ops.environment import Environment
from zoo_ops.errors import NotFound, StepFailed
from zoo_ops.testing.test_secrets import (
    MODEL_ERROR_SECRET,
    QUERY_DATABASE_PASSWORD,
    UNREACHABLE_DATABASE_PASSWORD,
)

REPO = Path(__file__).resolve().parent.parent
ONE_ERROR_LINE = re.compile(r"^zoo-ops(?: [a-z_]+)*: error: ")
# sentiment's load() as a careless model author writes it: the secret in the message.
LOAD_QUOTING_THE_SECRET = """
    def load(self):
        token = self._secrets.get("hf_access_token")
        raise ValueError(f"token {token!r} was refused by the hub")
"""


def every_file_text(root: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(root.rglob("*")) if p.is_file())


def write_env(
    tmp_path: Path, write_config: Callable[[str], Path], trusses: Path | None = None
) -> Path:
    """zoo_ops.toml whose database URL comes from ${ZOO_DB_URL}: the file holds no password."""
    return write_config(
        f"""
[env.local]
database_url = "${{ZOO_DB_URL}}"
settings = "file:{tmp_path / "state" / "dynamic-settings.yaml"}"
state_dir = "{tmp_path / "state"}"
truss_root = "{trusses or REPO / "truss_models"}"
executed_root = "{tmp_path / "executed"}"
"""
    )


# --- the registry ---------------------------------------------------------------------------


def test_a_known_secret_is_scrubbed_from_every_error_made_afterwards() -> None:
    known_secrets.add([MODEL_ERROR_SECRET])

    err = StepFailed(f"load raised ValueError: token {MODEL_ERROR_SECRET!r} refused")
    encoded = NotFound(f"GET /models?key={quote(MODEL_ERROR_SECRET, safe='')} -> 404")

    assert MODEL_ERROR_SECRET not in str(err) and "token '***' refused" in str(err)
    assert quote(MODEL_ERROR_SECRET, safe="") not in str(encoded) and "***" in str(encoded)


def test_an_engine_makes_its_urls_query_password_known_before_connecting() -> None:
    encoded = quote(QUERY_DATABASE_PASSWORD, safe="")
    url = f"postgresql://zoo@127.0.0.1:1/platform?sslmode=disable&password={encoded}"

    make_engine(url).dispose()  # no connection is made

    assert known_secrets.knows(QUERY_DATABASE_PASSWORD)
    # The password echoed outside any credential form (a driver quoting it) is removed.
    said = known_secrets.redact(f"authentication failed for {QUERY_DATABASE_PASSWORD}")
    assert QUERY_DATABASE_PASSWORD not in said and said.endswith("for ***")


@pytest.fixture
def demo_env(
    tmp_path: Path,
    database_url: str,
    write_config: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Environment, Path]]:
    """The demo on SQLite and PostgreSQL, with its own copy of truss_models."""
    trusses = tmp_path / "trusses"
    shutil.copytree(REPO / "truss_models", trusses)
    monkeypatch.setenv("ZOO_DB_URL", database_url)
    write_env(tmp_path, write_config, trusses)
    monkeypatch.chdir(tmp_path)
    env = Environment.load("local")
    build_demo(env, apps=2)
    yield env, trusses
    env.dispose()


def test_the_deploy_log_stores_a_reason_without_the_secret(
    demo_env: tuple[Environment, Path],
) -> None:
    # A reason straight from a driver or a model, not through a ZooOpsError.
    env, _ = demo_env
    known_secrets.add([MODEL_ERROR_SECRET])
    oracle, _created = env.deploys.find_or_create_zoo_model("iris_copy")
    claim = env.deploys.claim(oracle, truss_name="iris", truss_hash="h" * 64)
    assert claim.version is not None

    record = env.deploys.finish(
        claim.version.id, s.FAILED, f"ValueError: token {MODEL_ERROR_SECRET} refused"
    )

    assert record.reason == "ValueError: token *** refused"


# --- a model's load() that quotes a secret ----------------------------------------------


def zoo_ops(tmp_path: Path, *argv: str, db_url: str) -> subprocess.CompletedProcess[str]:
    """``zoo-ops ARGV`` in a process of its own, as an operator runs it: what the process
    knows is only what it loads (no secret this test process has seen helps it)."""
    env = {
        **os.environ,
        "ZOO_OPS_CONFIG": str(tmp_path / "zoo_ops.toml"),
        "ZOO_DB_URL": db_url,
    }
    return subprocess.run(
        [sys.executable, "-m", "zoo_ops.cli", *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def quote_the_secret_in_load(trusses: Path) -> None:
    model = trusses / "sentiment" / "model" / "model.py"
    text = model.read_text()
    start, end = text.index("    def load(self):"), text.index("    def predict(")
    model.write_text(text[:start] + LOAD_QUOTING_THE_SECRET.lstrip("\n") + "\n" + text[end:])


def test_a_secret_quoted_by_a_failing_load_appears_nowhere(
    demo_env: tuple[Environment, Path], database_url: str, tmp_path: Path
) -> None:
    env, trusses = demo_env
    env.platform.set_secret(
        env.platform.admin_organization().id, "hf_access_token", MODEL_ERROR_SECRET
    )
    quote_the_secret_in_load(trusses)

    run = zoo_ops(tmp_path, "run", "01_copy", "-m", "sentiment", db_url=database_url)

    assert run.returncode == 1, run.stderr
    errors = run.stderr.splitlines()
    assert len(errors) == 1 and ONE_ERROR_LINE.match(errors[0]), run.stderr
    assert "token '***' was refused by the hub" in errors[0]
    notebooks = list((tmp_path / "executed").rglob("*.ipynb"))
    assert notebooks and "was refused by the hub" in notebooks[0].read_text()
    (record,) = env.runs.find(model="sentiment")
    assert record.error is not None and "token '***' was refused" in record.error
    (failed,) = [r for r in env.deploys.records() if r.status == s.FAILED]
    assert failed.reason is not None and "token '***' was refused" in failed.reason

    # The automation, on its own, meets the same load: its table and log say *** too.
    (trusses / "sentiment" / "data" / "retry.txt").write_text("a new hash\n")
    reconcile = zoo_ops(tmp_path, "automation", "reconcile", db_url=database_url)
    assert "token '***' was refused" in reconcile.stdout, reconcile.stdout + reconcile.stderr
    report = zoo_ops(tmp_path, "report", "-o", str(tmp_path / "report"), db_url=database_url)
    assert report.returncode == 0, report.stderr

    with env.platform.engine.connect() as conn:
        stored = [
            repr(row)
            for table in (s.runs, s.deploy_log)
            for row in conn.execute(select(table)).all()
        ]
    shown = [
        run.stdout,
        run.stderr,
        reconcile.stdout,
        reconcile.stderr,
        report.stdout,
        report.stderr,
        every_file_text(tmp_path / "executed"),
        every_file_text(tmp_path / "report"),
        *stored,
    ]
    for text in shown:
        assert MODEL_ERROR_SECRET not in text
        assert quote(MODEL_ERROR_SECRET, safe="") not in text
