"""`zoo-ops init -e ENV`: attach to a platform database the platform made; zoo-ops's own
tables versioned with Alembic.

The platform database comes from :mod:`support.platform_db` (the platform's DDL, not
zoo-ops's schema module). Every command runs as the operator runs it: ``zoo-ops`` in a
subprocess, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    func,
    insert,
    inspect,
    select,
    text,
)
from support.envs import env_table
from support.platform_db import (
    PLATFORM_TABLE_NAMES,
    POSTGRES_DDL,
    SQLITE_DDL,
    TEST_USER_EMAIL,
    PlatformDatabase,
    create_platform_database,
    table_names,
)

from zoo_ops.adapters.platform import schema as s
from zoo_ops.adapters.platform import versioning
from zoo_ops.adapters.platform.engine import make_engine, normalize_url
from zoo_ops.adapters.settings.local_file import LocalConfigMapFile
from zoo_ops.domain import platform_schema as ps
from zoo_ops.domain.whitelist import AUTOMATION_KEY, WHITELIST_KEY
from zoo_ops.trail import read_scraps

REPO = Path(__file__).resolve().parent.parent
ZOO_OPS_TABLES = {t.name for t in s.ZOO_OPS_TABLES} | {versioning.VERSION_TABLE}
ZOO_OPS_VIEWS = {v.name for v in s.ZOO_OPS_VIEWS}
BASELINE = "0001_baseline"
HEAD = "0002_batch_journal"
CREATED = f"({len(s.ZOO_OPS_TABLES) + len(s.ZOO_OPS_VIEWS)} created)"  # tables and views
DB_PASSWORD = "init-pw-Zq7-never-shown"


def zoo_ops(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zoo_ops.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def with_password(url: str) -> str:
    """The URL with a password in its userinfo (PostgreSQL's trust auth ignores it)."""
    if "://postgres@" not in url:
        return url
    return url.replace("://postgres@", f"://postgres:{DB_PASSWORD}@", 1)


def rows(url: str, table: str) -> int:
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


@pytest.fixture
def staging(
    tmp_path: Path, database_url: str, write_config: Callable[[str], Path]
) -> tuple[str, Path]:
    """Environment `staging` on the parametrised database, local serving and settings."""
    shutil.copytree(REPO / "truss_models", tmp_path / "truss_models")
    url = with_password(database_url)
    write_config(env_table(tmp_path, "staging", url, test_user_email=TEST_USER_EMAIL))
    return url, tmp_path


# --- the Alembic baseline ----------------------------------------------------------------------


def _zoo_ops_metadata() -> MetaData:
    only = MetaData()
    for table in s.ZOO_OPS_TABLES:
        table.to_metadata(only)
    return only


def _zoo_ops_0_1_metadata() -> MetaData:
    """zoo-ops's tables as zoo-ops 0.1 made them with create_all, before Alembic: the
    journal was a table of one row per moved user version."""
    only = MetaData()
    for table in s.ZOO_OPS_TABLES:
        if table is not s.migration_batches:
            table.to_metadata(only)
    Table(
        "zoo_ops_migration_journal",
        only,
        Column("migration_id", String(32), primary_key=True),
        Column("oracle_version_id", String(32), primary_key=True),
        Column("previous_proxy", String(32), nullable=True),
        Column("new_proxy", String(32), nullable=True),
        Column("batch", Integer, nullable=False),
        Index("zoo_ops_journal_version_idx", "oracle_version_id"),
    )
    return only


def _describe(url: str) -> dict[str, object]:
    """Every zoo-ops table as the inspector sees it: columns, primary key, indexes, uniques."""
    engine = create_engine(normalize_url(url))
    try:
        insp = inspect(engine)
        return {
            name: {
                "columns": [
                    (c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(name)
                ],
                "pk": insp.get_pk_constraint(name)["constrained_columns"],
                "indexes": sorted(
                    (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                    for i in insp.get_indexes(name)
                ),
                "uniques": sorted(
                    tuple(u["column_names"]) for u in insp.get_unique_constraints(name)
                ),
            }
            for name in sorted(t.name for t in s.ZOO_OPS_TABLES)
        }
    finally:
        engine.dispose()


def test_the_baseline_makes_exactly_what_create_all_makes(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        state = versioning.upgrade(engine).after
        with engine.connect() as conn:
            diffs = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}),
                _zoo_ops_metadata(),
            )
        assert set(inspect(engine).get_table_names()) == ZOO_OPS_TABLES  # nothing else
        assert set(inspect(engine).get_view_names()) == ZOO_OPS_VIEWS
    finally:
        engine.dispose()
    assert (state.revision, state.head, state.missing) == (HEAD, HEAD, ())
    # The one table the metadata lacks is Alembic's version table; nothing else differs.
    assert [(d[0], d[1].name) for d in diffs] == [("remove_table", versioning.VERSION_TABLE)]
    by_alembic = _describe(database_url)
    # The same tables made by create_all in a database of their own.
    if database_url.startswith("sqlite"):
        other = database_url.replace("platform.db", "create_all.db")
        plain = create_engine(other)
        _zoo_ops_metadata().create_all(plain)
        plain.dispose()
        assert by_alembic == _describe(other)
    else:
        declared = {
            t.name: sorted((i.name, tuple(c.name for c in i.columns), i.unique) for i in t.indexes)
            for t in s.ZOO_OPS_TABLES
        }
        assert {n: d["indexes"] for n, d in by_alembic.items()} == declared  # type: ignore[index]


def test_a_create_all_database_is_adopted_by_the_baseline_and_upgraded(database_url: str) -> None:
    """A database made by zoo-ops before Alembic keeps its tables and rows (its journal
    rows too, folded into batches); it is stamped at the baseline and upgraded to head."""
    assert versioning.head_revision() == HEAD
    engine = make_engine(database_url)
    journal = [("m1", f"u{i:03d}", "old", "new", 1 + i // 4) for i in range(10)]
    try:
        _zoo_ops_0_1_metadata().create_all(engine)
        with engine.begin() as conn:
            conn.execute(insert(s.meta).values(key="made-before-alembic", value="kept"))
            conn.execute(
                text(
                    "INSERT INTO zoo_ops_migration_journal (migration_id, oracle_version_id, "
                    "previous_proxy, new_proxy, batch) VALUES (:m, :u, :p, :n, :b)"
                ),
                [dict(zip("mupnb", row, strict=True)) for row in journal],
            )
        before = versioning.state(engine)
        adopted = versioning.upgrade(engine)
        with engine.connect() as conn:
            kept = conn.execute(select(s.meta.c.value)).scalars().all()
            version_rows = conn.execute(
                text(f"SELECT COUNT(*) FROM {versioning.VERSION_TABLE}")
            ).scalar_one()
            folded = conn.execute(
                text(
                    "SELECT migration_id, oracle_version_id, previous_proxy, new_proxy, batch "
                    "FROM zoo_ops_migration_journal ORDER BY oracle_version_id"
                )
            ).all()
        again = versioning.upgrade(engine)
    finally:
        engine.dispose()
    assert before.revision is None
    assert before.missing == ("zoo_ops_migration_batch",)  # 0.1 had the per-row journal
    # adopted, not recreated: only the batch table is new (the journal became its view)
    assert adopted.before == before and adopted.created == ("zoo_ops_migration_batch",)
    assert [tuple(r) for r in folded] == journal
    assert adopted.after.revision == HEAD and kept == ["kept"] and version_rows == 1
    assert again.before == again.after == adopted.after and again.created == ()


# --- zoo-ops init on the platform's database ---------------------------------------------------


def test_init_attaches_a_platform_database_creating_only_zoo_ops_tables(
    staging: tuple[str, Path],
) -> None:
    url, cwd = staging
    platform = create_platform_database(url, apps=12)
    before = table_names(url)

    first = zoo_ops("init", "-e", "staging", cwd=cwd)
    after = table_names(url)
    second = zoo_ops("init", "-e", "staging", cwd=cwd)

    assert before == set(PLATFORM_TABLE_NAMES)
    assert first.returncode == 0, first.stderr
    assert after - before == ZOO_OPS_TABLES and before <= after
    assert f"upgraded from revision none to {HEAD} {CREATED}" in first.stdout
    assert second.returncode == 0, second.stderr
    assert f"already at revision {HEAD}" in second.stdout
    assert table_names(url) == after
    # The platform's rows are untouched, and the password is never shown.
    assert rows(url, "oracles_oracleversion") == len(platform.zoo_models) + 12
    for shown in (first.stdout, first.stderr, second.stdout, second.stderr):
        assert DB_PASSWORD not in shown
    if url.startswith("postgresql"):
        assert "postgres:***@" in first.stdout


def _broken_ddl(dialect: str) -> list[str]:
    """The platform's DDL with five faults: no users table, no truss_hash column, created_at
    as text, current_version_id NOT NULL, an extra NOT NULL column without a default."""
    ddl = [
        statement
        for statement in (SQLITE_DDL if dialect == "sqlite" else POSTGRES_DDL)
        if '"users_user"' not in statement
    ]
    replace = {
        '"truss_hash" varchar(64) NULL, ': "",
        '"current_version_id" varchar(32) NULL': '"current_version_id" varchar(32) NOT NULL',
        '"created_at" timestamp with time zone NOT NULL, "description"': (
            '"created_at" text NOT NULL, "description"'
        ),
        '"created_at" datetime NOT NULL, "description"': '"created_at" text NOT NULL, "description"',
        '"artifact" text NULL, ': '"artifact" text NULL, "region" varchar(16) NOT NULL, ',
    }
    for old, new in replace.items():
        ddl = [statement.replace(old, new) for statement in ddl]
    return ddl


def test_init_refuses_a_database_that_differs_naming_each_difference(
    staging: tuple[str, Path],
) -> None:
    url, cwd = staging
    dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
    create_platform_database(url, ddl=_broken_ddl(dialect), populate=False)
    before = table_names(url)

    refused = zoo_ops("init", "-e", "staging", cwd=cwd)

    assert refused.returncode == 2, refused.stderr
    lines = refused.stderr.splitlines()
    assert lines[0].startswith("zoo-ops: error: environment 'staging'")
    assert "differ from what zoo-ops reads and writes in 5 places; nothing was created" in lines[0]
    assert lines[1:] == [
        "  - table users_user is missing",
        "  - oracles_oracle.current_version_id is NOT NULL; zoo-ops writes NULL into it",
        "  - oracles_oracle.created_at is text; zoo-ops needs timestamp with time zone",
        "  - oracles_oracleversion.truss_hash is missing (zoo-ops uses it as varchar(64))",
        "  - oracles_oracleversion.region is NOT NULL without a default; zoo-ops inserts rows "
        "without it",
    ]
    assert table_names(url) == before  # nothing created
    assert DB_PASSWORD not in refused.stderr


def test_init_refuses_an_empty_database_and_a_protected_one_without_confirm(
    tmp_path: Path, write_config: Callable[[str], Path]
) -> None:
    shutil.copytree(REPO / "truss_models", tmp_path / "truss_models")
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    prod = f"sqlite:///{tmp_path / 'prod.db'}"
    write_config(env_table(tmp_path, "empty", empty) + env_table(tmp_path, "prod", prod))
    with open(tmp_path / "zoo_ops.toml", "a") as config:
        config.write("protected = true\n")
    create_platform_database(prod, apps=3)

    nothing = zoo_ops("init", "-e", "empty", cwd=tmp_path)
    unconfirmed = zoo_ops("init", "-e", "prod", cwd=tmp_path)
    tables_unconfirmed = table_names(prod)
    confirmed = zoo_ops("init", "-e", "prod", "--confirm", "prod", cwd=tmp_path)

    assert nothing.returncode == 2 and "in 5 places" in nothing.stderr
    assert "for the local environment run `zoo-ops demo` instead" in nothing.stderr
    assert "  - table oracles_oracle is missing" in nothing.stderr.splitlines()
    assert table_names(empty) == set()
    assert unconfirmed.returncode == 2
    assert unconfirmed.stderr.count("\n") == 1 and "pass --confirm prod" in unconfirmed.stderr
    assert tables_unconfirmed == set(PLATFORM_TABLE_NAMES)
    assert confirmed.returncode == 0, confirmed.stderr
    assert table_names(prod) == set(PLATFORM_TABLE_NAMES) | ZOO_OPS_TABLES


def test_a_revision_from_a_newer_zoo_ops_is_refused(staging: tuple[str, Path]) -> None:
    url, cwd = staging
    create_platform_database(url, apps=0)
    assert zoo_ops("init", "-e", "staging", cwd=cwd).returncode == 0
    engine = create_engine(normalize_url(url))
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE {versioning.VERSION_TABLE} SET version_num = '0099_future'"))
    engine.dispose()

    refused = zoo_ops("init", "-e", "staging", cwd=cwd)

    assert refused.returncode == 2
    assert "revision 0099_future, which this zoo-ops does not know" in refused.stderr
    assert "upgrade zoo-ops" in refused.stderr


# --- a runbook step on the attached database ---------------------------------------------------


def test_a_step_refuses_until_init_then_runs_on_the_attached_database(
    staging: tuple[str, Path],
) -> None:
    url, cwd = staging
    platform = create_platform_database(url, apps=8)
    LocalConfigMapFile.create(
        cwd / "staging" / "settings.yaml", {AUTOMATION_KEY: "true", WHITELIST_KEY: "{}"}
    )
    before = table_names(url)

    refused = zoo_ops("run", "01_copy", "-e", "staging", "-m", "iris", cwd=cwd)
    notebooks_after_refusal = sorted((cwd / "executed").rglob("*.ipynb"))
    by_papermill = subprocess.run(  # the runbook as it stands: the kernel refuses too
        [
            str(Path(sys.executable).parent / "papermill"),
            str(REPO / "runbooks" / "01_copy.ipynb"),
            str(cwd / "plain.ipynb"),
            *("-p", "model", "iris", "-p", "env", "staging"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )
    after_refusal = table_names(url)
    attached = zoo_ops("init", "-e", "staging", cwd=cwd)
    copied = zoo_ops("run", "01_copy", "-e", "staging", "-m", "iris", cwd=cwd)
    status = zoo_ops("status", "-e", "staging", cwd=cwd)

    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.count("\n") == 1
    assert "has the platform tables but not zoo-ops's own" in refused.stderr
    assert "run `zoo-ops init -e staging`" in refused.stderr
    assert by_papermill.returncode != 0
    plain_run = read_scraps(cwd / "plain.ipynb")["run"]
    assert plain_run["outcome"] == "refused" and plain_run["exit_code"] == 2
    assert "run `zoo-ops init -e staging`" in plain_run["error"]
    assert after_refusal == before  # neither created anything
    assert notebooks_after_refusal == []
    assert attached.returncode == 0, attached.stderr
    assert copied.returncode == 0, copied.stderr + copied.stdout
    # The copy is a new zoo model with an ACTIVE truss version; the users' proxies unmoved.
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            copy = conn.execute(
                select(s.oracle_versions.c.status, s.oracle_versions.c.truss_hash)
                .join(s.oracles, s.oracles.c.id == s.oracle_versions.c.oracle_id)
                .where(s.oracles.c.name == "iris_copy")
            ).all()
            on_iris = conn.execute(
                select(func.count()).where(
                    s.oracle_versions.c.proxy_model_version_id == platform.current_versions["iris"]
                )
            ).scalar_one()
            run = conn.execute(select(s.runs.c.step, s.runs.c.outcome)).all()
    finally:
        engine.dispose()
    assert [(st, bool(h)) for st, h in copy] == [("ACTIVE", True)]
    assert on_iris == platform.applications["iris"]
    assert [tuple(r) for r in run] == [("01_copy", "succeeded")]
    assert status.returncode == 0 and "01_copy" in status.stdout
    whitelist = json.loads(
        LocalConfigMapFile(cwd / "staging" / "settings.yaml").read().data[WHITELIST_KEY]
    )
    assert whitelist == {"iris": {"copy": True}}


def test_a_non_editable_install_ships_every_migration_file() -> None:
    """Alembic reads the migrations as files: each must be in the wheel (a module of a
    package, or matched by pyproject's package-data), or `init` fails after `pip install`."""
    import tomllib

    package = REPO / "lib" / "zoo_ops"
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["zoo_ops"]
    shipped = {p for pattern in globs for p in package.glob(pattern)}
    folder = package / "adapters" / "platform" / "migrations"
    files = [p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts]

    def in_wheel(path: Path) -> bool:
        module = path.suffix == ".py" and (path.parent / "__init__.py").is_file()
        return module or path in shipped

    assert {p.name for p in files} >= {"env.py", "script.py.mako", "0001_baseline.py"}
    assert [p for p in files if not in_wheel(p)] == []


# --- two PostgreSQL platform databases, as staging and prod ------------------------------------


def test_staging_and_prod_attach_separately_and_concurrent_inits_agree(
    tmp_path: Path,
    write_config: Callable[[str], Path],
    platform_databases: Callable[..., PlatformDatabase],
) -> None:
    shutil.copytree(REPO / "truss_models", tmp_path / "truss_models")
    staging = platform_databases(apps=30, password=DB_PASSWORD)
    prod = platform_databases(apps=50, password=DB_PASSWORD)
    write_config(
        env_table(tmp_path, "staging", staging.url)
        + env_table(tmp_path, "prod", prod.url, requires="staging")
        + "protected = true\n"
    )
    prod_before = table_names(prod.url)

    with ThreadPoolExecutor(2) as pool:  # two operators at once: one creates, one finds
        both = list(pool.map(lambda _: zoo_ops("init", "-e", "staging", cwd=tmp_path), [1, 2]))
    refused = zoo_ops("init", "-e", "prod", cwd=tmp_path)
    prod_unconfirmed = table_names(prod.url)
    attached = zoo_ops("init", "-e", "prod", "--confirm", "prod", cwd=tmp_path)

    assert [p.returncode for p in both] == [0, 0], [p.stderr for p in both]
    said = sorted(CREATED in p.stdout for p in both)
    assert said == [False, True], [p.stdout for p in both]  # the other: already at head
    assert table_names(staging.url) == set(PLATFORM_TABLE_NAMES) | ZOO_OPS_TABLES
    assert refused.returncode == 2 and "pass --confirm prod" in refused.stderr
    assert prod_unconfirmed == prod_before == set(PLATFORM_TABLE_NAMES)
    assert attached.returncode == 0, attached.stderr
    assert table_names(prod.url) == set(PLATFORM_TABLE_NAMES) | ZOO_OPS_TABLES
    assert rows(prod.url, "oracles_oracleversion") == 4 + 50
    for p in (*both, refused, attached):
        assert DB_PASSWORD not in p.stdout + p.stderr


# --- the comparison rule, pure ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("want", "have", "problem"),
    [
        (ps.ColumnSpec(ps.STRING, 32), ps.ColumnSpec(ps.STRING, 40), None),
        (ps.ColumnSpec(ps.STRING, 32), ps.ColumnSpec(ps.TEXT), None),
        (ps.ColumnSpec(ps.STRING, 64), ps.ColumnSpec(ps.STRING, 40), "shorter than the 64"),
        (ps.ColumnSpec(ps.TEXT), ps.ColumnSpec(ps.STRING, 255), "zoo-ops needs text"),
        (ps.ColumnSpec(ps.BOOLEAN), ps.ColumnSpec(ps.INTEGER), "is integer; zoo-ops needs bool"),
        (  # SQLite does not say: accepted
            ps.ColumnSpec(ps.TIMESTAMP, timezone=True),
            ps.ColumnSpec(ps.TIMESTAMP, timezone=None),
            None,
        ),
        (
            ps.ColumnSpec(ps.TIMESTAMP, timezone=True),
            ps.ColumnSpec(ps.TIMESTAMP, timezone=False),
            "is timestamp without time zone; zoo-ops needs timestamp with time zone",
        ),
    ],
)
def test_a_column_fits_when_it_holds_what_zoo_ops_writes(
    want: ps.ColumnSpec, have: ps.ColumnSpec, problem: str | None
) -> None:
    found = ps.type_problem(want, have)
    assert found is None if problem is None else problem in (found or "")


def test_extra_tables_and_nullable_or_defaulted_extra_columns_are_fine() -> None:
    expected = {"t": {"id": ps.ColumnSpec(ps.STRING, 32, nullable=False)}}
    actual = {
        "t": {
            "id": ps.ColumnSpec(ps.STRING, 32, nullable=False),
            "note": ps.ColumnSpec(ps.TEXT),
            "serial": ps.ColumnSpec(ps.INTEGER, nullable=False, has_default=True),
        },
        "other": {"x": ps.ColumnSpec(ps.INTEGER, nullable=False)},
    }
    assert ps.differences(expected, actual, inserted_into=["t"]) == []
    # zoo-ops expects NOT NULL, the database allows NULL: reads still work.
    loose = {"t": {"id": ps.ColumnSpec(ps.STRING, 32, nullable=True)}}
    assert ps.differences(expected, loose, inserted_into=["t"]) == []


def test_the_batch_journal_revision_keeps_every_journal_row_both_ways(
    database_url: str, tmp_path: Path
) -> None:
    """Revision 0002 down to the per-row journal table and up again loses no row, and a
    migration journaled before the round trip is still reverted exactly after it."""
    from support.migration import build_platform, proxies

    from zoo_ops.config import EnvironmentConfig
    from zoo_ops.environment import Environment
    from zoo_ops.migration import engine as m

    env = Environment(EnvironmentConfig(name="local", root=tmp_path, database_url=database_url))
    try:
        platform = build_platform(env, apps=60)
        before = proxies(platform.engine)
        forward = m.forward_migrate(
            env, "iris", old_version_id=platform.old, new_version_id=platform.new,
            batch_size=7, progress=False,
        )  # fmt: skip
        journal_sql = text(
            "SELECT migration_id, oracle_version_id, previous_proxy, new_proxy, batch "
            "FROM zoo_ops_migration_journal ORDER BY oracle_version_id"
        )
        with platform.engine.connect() as conn:
            journaled = conn.execute(journal_sql).all()
        config = versioning._config()
        with platform.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, BASELINE)
        insp = inspect(platform.engine)
        down_tables, down_views = set(insp.get_table_names()), set(insp.get_view_names())
        with platform.engine.connect() as conn:
            unfolded = conn.execute(journal_sql).all()
        upgraded = versioning.upgrade(platform.engine)
        with platform.engine.connect() as conn:
            refolded = conn.execute(journal_sql).all()
        back = m.revert_migration(
            env, "iris", forward_migration_id=forward.migration_id or "", scope="recorded",
            progress=False,
        )  # fmt: skip
        after = proxies(platform.engine)
    finally:
        env.dispose()
    assert len(journaled) == 60 and {r.batch for r in journaled} == set(range(1, 10))
    assert "zoo_ops_migration_journal" in down_tables and not down_views & ZOO_OPS_VIEWS
    assert "zoo_ops_migration_batch" not in down_tables
    assert unfolded == journaled == refolded
    assert upgraded.before.revision == BASELINE and upgraded.after.revision == HEAD
    assert back.moved_count == 60 and after == before
