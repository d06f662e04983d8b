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
    # The last line is zoo-ops's (the kernel's shutdown may log before it: not this test's
    # subject, which is the secret).
    error = run.stderr.splitlines()[-1]
    assert ONE_ERROR_LINE.match(error), run.stderr
    assert "token '***' was refused by the hub" in error
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


# --- a password in the URL's query string ----------------------------------------------


def test_a_query_string_password_is_never_shown_or_stored(
    postgres_url: str,
    tmp_path: Path,
    write_config: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # trust auth ignores the password; zoo-ops must still never echo it.
    url = f"{postgres_url}&password={quote(QUERY_DATABASE_PASSWORD, safe='')}"
    monkeypatch.setenv("ZOO_DB_URL", url)
    write_env(tmp_path, write_config)

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return zoo_ops(tmp_path, *argv, db_url=url)

    before_demo = cli("run", "01_copy", "-m", "iris")
    demo = cli("demo")
    again = cli("demo")
    copied = cli("run", "01_copy", "-m", "iris")
    refused = cli("run", "02_verify", "-m", "iris", "-p", "user_email", "nobody@example.com")
    status = cli("status")
    report = cli("report", "-o", str(tmp_path / "report"))

    assert "has no platform tables" in before_demo.stderr
    assert "already exists" in again.stderr and "password=***" in again.stderr
    assert (demo.returncode, copied.returncode, refused.returncode) == (0, 0, 2), refused.stderr
    env = Environment.load("local")
    try:
        errors = [r.error or "" for r in env.runs.find()]
    finally:
        env.dispose()
    shown = [
        *(p.stderr for p in (before_demo, demo, again, copied, refused, status, report)),
        *(p.stdout for p in (before_demo, again, copied, refused, status, report)),
        every_file_text(tmp_path / "executed"),
        every_file_text(tmp_path / "report"),
        *errors,
    ]
    for text in shown:
        assert QUERY_DATABASE_PASSWORD not in text
        assert quote(QUERY_DATABASE_PASSWORD, safe="") not in text


# --- a database that is not there -------------------------------------------------------

REFUSING_DATABASES = {
    "password-in-userinfo": f"postgresql://zoo:{UNREACHABLE_DATABASE_PASSWORD}@127.0.0.1:1/zoo",
    "password-in-query": f"postgresql://zoo@127.0.0.1:1/zoo?password={UNREACHABLE_DATABASE_PASSWORD}",
    "sqlite-folder": "sqlite:///{tmp}/a-folder-not-a-database",
}
COMMANDS = {
    "history": ["history", "abcd1234"],
    "demo": ["demo"],
    "demo-reset": ["demo", "--reset"],
    "automation": ["automation", "reconcile"],
    "run": ["run", "01_copy", "-m", "iris"],
    "run-dry": ["run", "03_migrate", "-m", "iris", "-p", "dry_run", "true"],
    "trail-recover": ["trail", "recover", "abcd1234"],
    "status": ["status"],
}
SETTINGS = """apiVersion: v1
kind: ConfigMap
metadata:
  name: baseten-django-dynamic-settings
  namespace: baseten
  resourceVersion: '1'
data:
  modelZooDeploymentAutomationEnabled: 'true'
  automaticallyDeployedModelZooModelsWhitelist: '{"iris": {"copy": true}}'
"""


def refused_line(
    tmp_path: Path,
    url: str,
    argv: list[str],
    write_config: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> tuple[int, str]:
    """Exit code and stderr of ``zoo-ops ARGV`` against ``url``; the settings file unchanged."""
    (tmp_path / "a-folder-not-a-database").mkdir()
    settings = tmp_path / "state" / "dynamic-settings.yaml"
    settings.parent.mkdir()
    settings.write_text(SETTINGS)
    monkeypatch.setenv("ZOO_DB_URL", url.format(tmp=tmp_path))
    write_env(tmp_path, write_config)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    code = main(argv)
    assert settings.read_text() == SETTINGS
    return code, capsys.readouterr().err


@pytest.mark.parametrize("url", REFUSING_DATABASES.values(), ids=REFUSING_DATABASES)
@pytest.mark.parametrize("argv", COMMANDS.values(), ids=COMMANDS)
def test_every_command_against_a_refusing_database_is_one_line(
    url: str,
    argv: list[str],
    tmp_path: Path,
    write_config: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, err = refused_line(tmp_path, url, argv, write_config, monkeypatch, capsys)

    assert code == 1, err
    (line,) = err.splitlines()
    assert ONE_ERROR_LINE.match(line) and "Traceback" not in err
    assert line.startswith("zoo-ops: error: environment 'local': database ")
    assert "cannot be reached" in line and "check database_url in zoo_ops.toml" in line
    assert UNREACHABLE_DATABASE_PASSWORD not in line
    if url.startswith("postgresql"):
        assert "127.0.0.1:1/zoo" in line and "***" in line and "Connection refused" in line
    else:
        assert "a-folder-not-a-database" in line and "unable to open database file" in line


def test_an_unknown_database_host_is_one_line(
    tmp_path: Path,
    write_config: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"postgresql://zoo:{UNREACHABLE_DATABASE_PASSWORD}@no-such-host.invalid/zoo"

    code, err = refused_line(
        tmp_path, url, ["history", "abcd1234"], write_config, monkeypatch, capsys
    )

    assert code == 1
    (line,) = err.splitlines()
    assert "environment 'local': database postgresql://zoo:***@no-such-host.invalid/zoo" in line
    assert "no-such-host.invalid" in line.split("cannot be reached", 1)[1]
    assert UNREACHABLE_DATABASE_PASSWORD not in err


def test_a_database_lost_under_a_command_is_one_line(
    tmp_path: Path,
    write_config: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The connection worked, then the server went away mid-command: the driver's error
    # reaches the CLI's handler, which names the environment and its redacted URL.
    from sqlalchemy.exc import OperationalError

    from zoo_ops.cli import history

    def lost(*_args: object) -> int:
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection\nmore"))

    monkeypatch.setattr(history, "run_history", lost)
    url = REFUSING_DATABASES["password-in-userinfo"]
    code, err = refused_line(
        tmp_path, url, ["history", "abcd1234"], write_config, monkeypatch, capsys
    )

    assert code == 1
    (line,) = err.splitlines()
    assert line == (
        "zoo-ops: error: environment 'local' (postgresql://zoo:***@127.0.0.1:1/zoo): the "
        "database failed: server closed the connection; check that the database is up, "
        "reachable and not locked, then rerun"
    )


# --- the session's secret scan ------------------------------------------------------------


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A directory OUTSIDE the session's base temp: these tests plant secrets on purpose,
    and the session's own scan must not find them."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="zoo-ops-scan-") as name:
        yield Path(name)


def test_the_secret_scan_finds_query_string_passwords_and_model_errors(scratch: Path) -> None:
    import html
    import sqlite3

    from zoo_ops.testing.secret_scan import scan_tree
    from zoo_ops.testing.test_secrets import all_secret_values

    encoded = quote(QUERY_DATABASE_PASSWORD, safe="")
    (scratch / "upper.ipynb").write_text(f'{{"url": "postgresql://h/db?password={encoded}"}}')
    lower = re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(), encoded)
    (scratch / "lower.log").write_text(f"connecting to postgresql://h/db?password={lower}")
    (scratch / "report.html").write_text(f"<pre>{html.escape(QUERY_DATABASE_PASSWORD)}</pre>")
    (scratch / "model.ipynb").write_text(f"ValueError: token '{MODEL_ERROR_SECRET}' refused")
    db = sqlite3.connect(scratch / "platform.db")
    db.execute("CREATE TABLE zoo_ops_deploy (reason TEXT)")
    db.execute("INSERT INTO zoo_ops_deploy VALUES (?)", (f"dsn ...?password={encoded}",))
    db.commit()
    db.close()

    leaks = scan_tree(scratch, all_secret_values())

    found = sorted((leak.path.name, leak.value[:4], leak.where) for leak in leaks)
    assert found == [
        ("lower.log", "qs-p", "url-encoded (lower-case hex)"),
        ("model.ipynb", "sk-m", "bytes"),
        ("platform.db", "qs-p", "table zoo_ops_deploy, url-encoded"),
        ("report.html", "qs-p", "html-escaped"),
        ("upper.ipynb", "qs-p", "url-encoded"),
    ]
