"""Crash points: a forward migration of 100,000 user versions SIGKILLed at 20 seeded moments.

For each database (SQLite, PostgreSQL) a template platform is built once per worker with
server-side SQL: zoo model ``iris`` (old, new, copy versions), ``bert`` with 7 user
versions that must never move, and the user applications on iris's old version:
``ROWS`` (100,000), the full proof, in every run of the suite (``-m slow`` selects it
alone). Batches are rows / 100, so a plan names the same moment of the run at any size.

Each crash point clones the template (a real copy: SQLite's online backup API; on
PostgreSQL a fresh schema with zoo-ops's own DDL and ``INSERT ... SELECT`` of every
table), starts ``forward_migrate`` in a subprocess whose ``on_batch`` hook prints each
committed batch, and SIGKILLs it at a moment drawn from a seeded RNG: the target batch
is stratified over the run (point *i* of 20 draws from the *i*-th twentieth of the
batches; point 0 can be "after it said started, before any batch"), plus a random
fraction of the observed batch time, so kills land both between and inside batches.

At the crash point the journal must agree with the table. The crashed database is then
cloned twice more, so three branches start from the same crashed state:

(a) resume: ``forward_migrate`` again completes the open migration; the table is
    exactly the expected forward state (row checksum over every user-version row);
(b) revert ``scope="recorded"`` and (c) revert ``scope="all"``: the table is exactly the
    template's (row checksum), the interrupted forward record is ``abandoned`` and
    points at its revert.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from queue import Empty, Queue

import pytest
from sqlalchemy import DateTime, bindparam, create_engine, make_url, select, text
from sqlalchemy.engine import Engine
from support.migration import build_platform, postgres_base_url

from zoo_ops.adapters.platform import schema as s
from zoo_ops.config import EnvironmentConfig
from zoo_ops.environment import Environment
from zoo_ops.migration import engine as m
from zoo_ops.migration.plan import ABANDONED, BACKWARDS, DONE, FORWARDS, OPEN

# The full proof: 100,000 rows, 20 points, both databases (marked slow; the suite runs it).
ROWS = 100_000
BATCHES = 100  # batch size = rows / BATCHES, so a kill plan means the same moment at any size
POINTS = 20
SEED = 20_240_917
CHILD_TIMEOUT_S = 120.0

# The child: say "started", then migrate; every committed batch prints its number. The
# parent decides when to kill from these lines; the child never waits for the parent.
CHILD = """
import sys
from pathlib import Path
from zoo_ops.config import EnvironmentConfig
from zoo_ops.environment import Environment
from zoo_ops.migration.engine import forward_migrate

url, old, new, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
env = Environment(EnvironmentConfig(name="local", root=Path.cwd(), database_url=url))
print("started", flush=True)
forward_migrate(
    env, "iris", old_version_id=old, new_version_id=new, batch_size=batch, progress=False,
    on_batch=lambda b, n: print(f"batch {b} {n}", flush=True),
)
print("finished", flush=True)
"""


# --- databases that can be cloned -------------------------------------------------------------


@dataclass
class Db:
    """One platform database: its URL, an Environment on it, and how to drop it."""

    kind: str  # sqlite | postgres
    url: str
    env: Environment
    name: str = ""  # PostgreSQL: the database's name
    path: Path | None = None  # SQLite: the file

    @property
    def engine(self) -> Engine:
        return self.env.platform.engine

    def dispose(self) -> None:
        self.env.dispose()


def make_env(url: str, root: Path) -> Environment:
    return Environment(
        EnvironmentConfig(name="local", root=root, database_url=url, state_dir=str(root / "st"))
    )


class Databases:
    """Creates and clones whole databases of one kind, and drops every one it made.

    A clone is a real, complete copy of a database at rest: SQLite's online backup API
    (which reads committed WAL frames too), PostgreSQL's ``CREATE DATABASE ... TEMPLATE``
    (a block copy, refused while anyone is connected to the source: so the clone also
    proves no session of the killed process survived).
    """

    def __init__(self, kind: str, root: Path) -> None:
        self.kind = kind
        self.root = root
        self.made: list[Db] = []
        self.admin: Engine | None = None
        if kind == "postgres":
            base = make_url(postgres_base_url())
            self.base = base
            self.admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")

    def _name(self) -> str:
        return f"zc_{os.getpid()}_{len(self.made) + 1}_{time.monotonic_ns() % 10**6}"

    def _register(self, name: str, path: Path | None = None) -> Db:
        if self.kind == "sqlite":
            assert path is not None
            url = f"sqlite:///{path}"
        else:
            url = self.base.set(database=name).render_as_string(hide_password=False)
        db = Db(self.kind, url, make_env(url, self.root), name=name, path=path)
        self.made.append(db)
        return db

    def new(self) -> Db:
        name = self._name()
        if self.kind == "sqlite":
            return self._register(name, self.root / f"{name}.db")
        assert self.admin is not None
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        return self._register(name)

    def clone(self, source: Db) -> Db:
        """A new database holding exactly ``source``'s data."""
        name = self._name()
        if self.kind == "sqlite":
            target = self._register(name, self.root / f"{name}.db")
            assert source.path is not None and target.path is not None
            src = sqlite3.connect(source.path)
            dst = sqlite3.connect(target.path)
            try:
                src.backup(dst)
            finally:
                src.close()
                dst.close()
            return target
        assert self.admin is not None
        source.dispose()  # our own pooled connections to the source
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{source.name}"'))
        return self._register(name)

    def drop(self, db: Db) -> None:
        db.dispose()
        if self.kind == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db.path}{suffix}").unlink(missing_ok=True)
        else:
            assert self.admin is not None
            with self.admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)'))
        self.made.remove(db)

    def close(self) -> None:
        for db in list(self.made):
            self.drop(db)
        if self.admin is not None:
            self.admin.dispose()


# --- the template -------------------------------------------------------------------------------

_PG_APPS = """
INSERT INTO oracles_oracle (id, name, organization_id, is_model_zoo, current_version_id, created_at)
SELECT 'co' || lpad(g::text, 6, '0'), 'app-c' || g, (ARRAY[:o0, :o1, :o2])[g % 3 + 1], false,
       'cv' || lpad(g::text, 6, '0'), :now
FROM generate_series(0, :rows - 1) AS g;
"""
_PG_VERSIONS = """
INSERT INTO oracles_oracleversion (id, oracle_id, proxy_model_version_id, truss_hash, status,
                                   artifact, created_at)
SELECT 'cv' || lpad(g::text, 6, '0'), 'co' || lpad(g::text, 6, '0'), :old, NULL, 'ACTIVE', NULL,
       :now
FROM generate_series(0, :rows - 1) AS g;
"""
_SQLITE_SEQ = (
    "WITH RECURSIVE seq(g) AS (SELECT 0 UNION ALL SELECT g + 1 FROM seq WHERE g < :rows - 1) "
)
_SQLITE_APPS = (
    _SQLITE_SEQ
    + """
INSERT INTO oracles_oracle (id, name, organization_id, is_model_zoo, current_version_id, created_at)
SELECT 'co' || printf('%06d', g), 'app-c' || g,
       CASE g % 3 WHEN 0 THEN :o0 WHEN 1 THEN :o1 ELSE :o2 END, 0,
       'cv' || printf('%06d', g), :now
FROM seq
"""
)
_SQLITE_VERSIONS = (
    _SQLITE_SEQ
    + """
INSERT INTO oracles_oracleversion (id, oracle_id, proxy_model_version_id, truss_hash, status,
                                   artifact, created_at)
SELECT 'cv' || printf('%06d', g), 'co' || printf('%06d', g), :old, NULL, 'ACTIVE', NULL, :now
FROM seq
"""
)


@dataclass
class Template:
    db: Db
    old: str
    new: str
    bert: str
    rows: int
    before: str  # checksum of the template: what every revert must restore
    after: str  # checksum of the template with every row on old pointed at new

    @property
    def batch(self) -> int:
        return self.rows // BATCHES


def build_template(dbs: Databases, rows: int) -> Template:
    """The platform every crash point starts from, ``rows`` user versions on iris's old one."""
    db = dbs.new()
    p = build_platform(db.env, apps=0)
    params = {"rows": rows, "old": p.old, "now": datetime.now(UTC)}
    params.update({f"o{i}": org for i, org in enumerate(p.org_ids)})
    statements = (
        (_PG_APPS, _PG_VERSIONS) if db.kind == "postgres" else (_SQLITE_APPS, _SQLITE_VERSIONS)
    )
    with db.engine.begin() as conn:
        for sql in statements:
            conn.execute(
                text(sql).bindparams(bindparam("now", type_=DateTime(timezone=True))), params
            )
    assert db.env.platform.proxy_counts([p.old, p.new, p.bert]) == {
        p.old: rows,
        p.new: 0,
        p.bert: 7,
    }
    return Template(
        db=db,
        rows=rows,
        old=p.old,
        new=p.new,
        bert=p.bert,
        before=versions_checksum(db.engine),
        after=versions_checksum(db.engine, remap={p.old: p.new}),
    )


_PG_CHECKSUM = """
SELECT md5(coalesce(string_agg(concat_ws(E'\\t', id, oracle_id,
    coalesce(CASE WHEN proxy_model_version_id = :remap_from THEN :remap_to
             ELSE proxy_model_version_id END, '<null>'),
    coalesce(truss_hash, '<null>'), status, coalesce(artifact, '<null>'), created_at::text),
    E'\\n' ORDER BY id), ''))
FROM oracles_oracleversion
"""


def versions_checksum(engine: Engine, remap: dict[str, str] | None = None) -> str:
    """A digest of every ``oracles_oracleversion`` row (every column as text) in id order;
    ``remap={a: b}`` reads proxy ``a`` as ``b`` (the expected state after a complete
    migration). PostgreSQL computes it server-side (md5 over the ordered rows); SQLite
    streams the rows through sha256. Digests compare only within one database kind."""
    (remap_from, remap_to), *_ = list((remap or {"": ""}).items())
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            return str(
                conn.execute(
                    text(_PG_CHECKSUM), {"remap_from": remap_from, "remap_to": remap_to}
                ).scalar_one()
            )
    digest = hashlib.sha256()
    v = s.oracle_versions
    proxy_at = list(v.c).index(v.c.proxy_model_version_id)
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=20_000).execute(
            select(v).order_by(v.c.id)
        )
        for row in result:
            values = [str(x) for x in row]
            if remap_from and values[proxy_at] == remap_from:
                values[proxy_at] = remap_to
            digest.update("\t".join(values).encode() + b"\n")
    return digest.hexdigest()


@pytest.fixture(scope="module")
def template(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Databases, Template]]:
    kind, rows = request.param
    dbs = Databases(kind, tmp_path_factory.mktemp(f"crash-{kind}-{rows}"))
    try:
        yield dbs, build_template(dbs, rows)
    finally:
        dbs.close()


# --- the kill -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class KillPlan:
    """Kill after the child reports batch ``after_batch`` (0: after "started"), then wait
    ``fraction`` of one batch's observed duration."""

    after_batch: int
    fraction: float


def kill_plan(point: int) -> KillPlan:
    """Point ``point`` of ``POINTS``: a batch drawn from its stratum of the run (the last
    batch is excluded so that the kill lands before the run ends), and a fraction."""
    rng = random.Random(SEED * 1_000 + point)
    last = BATCHES - 2
    low = point * (last + 1) // POINTS
    high = max(low, (point + 1) * (last + 1) // POINTS - 1)
    return KillPlan(rng.randint(low, high), rng.random())


def _reader(stream: object, lines: Queue[tuple[float, str]]) -> None:
    for line in iter(stream.readline, ""):  # type: ignore[attr-defined]
        lines.put((time.monotonic(), line.strip()))
    lines.put((time.monotonic(), "<eof>"))


def kill_at(db: Db, t: Template, plan: KillPlan) -> list[str]:
    """Run the child on ``db`` and SIGKILL it per ``plan``; the lines it printed."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, db.url, t.old, t.new, str(t.batch)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=db.env.config.root,
    )
    lines: Queue[tuple[float, str]] = Queue()
    threading.Thread(target=_reader, args=(child.stdout, lines), daemon=True).start()
    seen: list[str] = []
    stamps: list[float] = []
    want = "started" if plan.after_batch == 0 else f"batch {plan.after_batch} "
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    try:
        while True:
            try:
                at, line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except Empty:
                pytest.fail(f"the child did not reach {want!r} in {CHILD_TIMEOUT_S}s: {seen[-3:]}")
            seen.append(line)
            if line.startswith("batch "):
                stamps.append(at)
            if line == "<eof>" or line == "finished":
                pytest.fail(f"the child ended before the kill point: {child.stderr.read()!r}")  # type: ignore[union-attr]
            if line.startswith(want) or line == want:
                break
        # One batch's duration: observed between the last two batches, else an estimate.
        batch_s = stamps[-1] - stamps[-2] if len(stamps) >= 2 else 0.02
        time.sleep(plan.fraction * batch_s)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL, (
        f"the migration ended on its own before the kill (plan {plan}); lines: {seen[-3:]}"
    )
    return seen


# --- the checks -------------------------------------------------------------------------------


def scalar(engine: Engine, sql: str, **params: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


@dataclass(frozen=True)
class Crashed:
    """The crashed state: the forward migration record (None: killed before it opened)."""

    record: m.MigrationRecord | None
    moved: int


def assert_journal_agrees_with_table(db: Db, t: Template) -> Crashed:
    """At a crash point: at most one forward migration record; every journaled row's
    ``new_proxy`` is its current proxy and its ``previous_proxy`` is old; every row on new
    is journaled; the record's count is the journal's; nothing else moved."""
    with db.engine.connect() as conn:
        records = conn.execute(select(s.migrations.c.id)).scalars().all()
    assert len(records) <= 1, records
    on_old, on_new = (
        db.env.platform.proxy_counts([t.old, t.new])[t.old],
        db.env.platform.proxy_counts([t.old, t.new])[t.new],
    )
    assert on_old + on_new == t.rows
    assert db.env.platform.proxy_counts([t.bert])[t.bert] == 7
    if not records:
        assert on_new == 0
        assert scalar(db.engine, "SELECT count(*) FROM zoo_ops_migration_journal") == 0
        return Crashed(None, 0)
    record = m.migration_record(db.env, records[0])
    assert record.direction == FORWARDS and record.status in (OPEN, DONE)
    mid = record.id
    journaled = scalar(
        db.engine,
        "SELECT count(*) FROM zoo_ops_migration_journal WHERE migration_id = :mid",
        mid=mid,
    )
    disagreeing = scalar(
        db.engine,
        "SELECT count(*) FROM zoo_ops_migration_journal AS j "
        "JOIN oracles_oracleversion AS v ON v.id = j.oracle_version_id "
        "WHERE j.migration_id = :mid AND (v.proxy_model_version_id <> j.new_proxy "
        "OR j.new_proxy <> :new OR j.previous_proxy <> :old)",
        mid=mid,
        new=t.new,
        old=t.old,
    )
    unjournaled = scalar(
        db.engine,
        "SELECT count(*) FROM oracles_oracleversion AS v WHERE v.proxy_model_version_id = :new "
        "AND NOT EXISTS (SELECT 1 FROM zoo_ops_migration_journal AS j "
        "WHERE j.migration_id = :mid AND j.oracle_version_id = v.id)",
        mid=mid,
        new=t.new,
    )
    assert (disagreeing, unjournaled) == (0, 0)
    assert journaled == on_new == record.moved_count
    assert scalar(db.engine, "SELECT count(*) FROM zoo_ops_migration_journal") == journaled
    return Crashed(record, journaled)


def resume(db: Db, t: Template, crashed: Crashed) -> None:
    result = m.forward_migrate(
        db.env, "iris", old_version_id=t.old, new_version_id=t.new, batch_size=5 * t.batch,
        progress=False, lock_wait_s=15.0,
    )  # fmt: skip
    assert result.status == DONE and result.remaining_on_source == 0
    if crashed.record is not None and crashed.record.status == OPEN:
        assert (result.migration_id, result.resumed) == (crashed.record.id, True)
        assert result.moved_count == t.rows
        # The resumed record's journal covers every row exactly once.
        assert m.journal_digest(db.env, result.migration_id)[0] == t.rows
    assert versions_checksum(db.engine) == t.after


def revert(db: Db, t: Template, crashed: Crashed, scope: str) -> None:
    if crashed.record is None:
        # Killed before the record was written: nothing moved, nothing to revert.
        assert versions_checksum(db.engine) == t.before
        return
    result = m.revert_migration(
        db.env, "iris", forward_migration_id=crashed.record.id, scope=scope,
        batch_size=5 * t.batch, progress=False, lock_wait_s=15.0,
    )  # fmt: skip
    assert result.status == DONE and result.moved_count == crashed.moved
    assert result.plan.direction == BACKWARDS
    assert versions_checksum(db.engine) == t.before
    forward = m.migration_record(db.env, crashed.record.id)
    assert forward.reverted_by == result.migration_id
    assert forward.status == (ABANDONED if crashed.record.status == OPEN else DONE)
    journal = m.journal_for(db.env, result.migration_id or "")
    assert len(journal) == crashed.moved
    assert set(zip(journal.previous_proxy, journal.new_proxy, strict=True)) <= {(t.new, t.old)}


CRASH_PARAMS = [
    pytest.param((kind, rows), point, id=f"{kind}-{rows}-{point}", marks=marks)
    for rows, marks in ((ROWS, (pytest.mark.slow,)),)
    for kind in ("sqlite", "postgres")
    for point in range(POINTS)
]


@pytest.mark.parametrize(("template", "point"), CRASH_PARAMS, indirect=["template"])
def test_a_migration_killed_at_a_random_moment_resumes_and_reverts_exactly(
    template: tuple[Databases, Template], point: int
) -> None:
    dbs, t = template
    crashed_db = dbs.clone(t.db)
    branches: list[Db] = [crashed_db]
    try:
        kill_at(crashed_db, t, kill_plan(point))
        crashed = assert_journal_agrees_with_table(crashed_db, t)
        recorded_db = dbs.clone(crashed_db)
        branches.append(recorded_db)
        all_db = dbs.clone(crashed_db)
        branches.append(all_db)
        resume(crashed_db, t, crashed)
        revert(recorded_db, t, crashed, "recorded")
        revert(all_db, t, crashed, "all")
    finally:
        for db in branches:
            dbs.drop(db)


def test_the_kill_plans_cover_the_whole_run() -> None:
    """The seeded plans are spread from before the first batch to the last batches."""
    plans = [kill_plan(p) for p in range(POINTS)]
    batches = [p.after_batch for p in plans]
    assert batches == sorted(batches) and len(set(batches)) == POINTS
    assert batches[0] < BATCHES // POINTS and batches[-1] >= BATCHES - 2 * BATCHES // POINTS
