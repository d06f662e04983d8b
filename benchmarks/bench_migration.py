"""Benchmark: the migration engine against the seed's script and against one bare UPDATE.

    python benchmarks/bench_migration.py                       # the full run (several minutes)
    python benchmarks/bench_migration.py --big 200000 --quick  # smaller, a minute or two
    ZOO_OPS_BENCH_PG=postgresql://postgres@127.0.0.1:5432/test (default) picks the server

What it measures, every figure in one run on identical generated data (user versions
generated server-side with generate_series / a recursive CTE; 8-character ids like the
platform's, in a scrambled order so the B-tree inserts are as random as real ids make them):

1. per moved row, SQLite and PostgreSQL: the seed's method -- an ORM load of the rows on
   the old version, then per row: set the proxy, flush, commit (what Django's ``save()``
   in a loop does) -- on ``--seed-rows`` rows, against ``forward_migrate`` on
   ``--ours-rows`` rows; and one bare UPDATE of ``--ours-rows`` rows, the ceiling of
   that ratio (nothing moves rows faster than one statement);
2. PostgreSQL and SQLite (``--databases``) at ``--big`` rows: one bare ``UPDATE
   oracles_oracleversion SET proxy_model_version_id = new WHERE proxy_model_version_id =
   old`` (one transaction) on database A against ``forward_migrate`` on database B, an
   identical copy, for each ``--batch-sizes`` (``auto``, the default, sizes batches to
   the 50 ms lock budget); then the same pair backwards (revert ``scope="all"`` against
   the bare UPDATE new -> old) on the tables the first round left;
3. p50 / p99 / max of the time a batch holds its row locks (its statement's start to
   its commit) and the batches' sizes, for each batch size;
4. peak memory (tracemalloc, Python heap, and the process RSS high-water mark sampled
   every 10 ms) of a forward migration plus ``write_affected_parquet`` at ``--mem-small``
   and at ``--big`` rows: flat means the same order at both sizes.

Every schema is created in the server's database under a fresh name and dropped after.
Figures, not pass/fail: targets are printed next to the ratios.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import Connection, create_engine, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, registry

try:
    from zoo_ops.adapters.platform import schema as s
    from zoo_ops.adapters.platform import versioning
except ImportError:  # run from a checkout without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
    from zoo_ops.adapters.platform import schema as s
    from zoo_ops.adapters.platform import versioning

from zoo_ops.adapters.platform.engine import normalize_url
from zoo_ops.environment import Environment
from zoo_ops.migration import engine as m
from zoo_ops.services.migration_output import TqdmProgress

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
OLD, NEW = "irisold1", "irisnew1"
# i -> 7 hex digits: multiplying by an odd constant is a bijection modulo 2**28, so the
# ids are distinct and come out in a scrambled order, as random platform ids do.
SCRAMBLE = "(({i}::bigint * 2654435761) % 268435456)"


# --- data ------------------------------------------------------------------------------------


def generate_pg(engine: Engine, rows: int) -> None:
    """Schema + a zoo model iris (old, new) + ``rows`` user applications on old."""
    versioning.create_schema(engine)
    h = SCRAMBLE.format(i="i")
    with engine.begin() as conn:
        _zoo_rows(conn)
        conn.execute(
            text(
                "INSERT INTO oracles_oracle (id, name, organization_id, is_model_zoo, "
                "current_version_id, created_at) "
                f"SELECT 'o' || lpad(to_hex({h}), 7, '0'), 'app-' || i, "
                "(ARRAY['orga0001','orgb0001','orgc0001'])[1 + i % 3], false, "
                f"'u' || lpad(to_hex({h}), 7, '0'), now() FROM generate_series(1, :n) AS i"
            ),
            {"n": rows},
        )
        conn.execute(
            text(
                "INSERT INTO oracles_oracleversion (id, oracle_id, proxy_model_version_id, "
                "truss_hash, status, artifact, created_at) "
                f"SELECT 'u' || lpad(to_hex({h}), 7, '0'), 'o' || lpad(to_hex({h}), 7, '0'), "
                ":old, NULL, 'ACTIVE', NULL, now() FROM generate_series(1, :n) AS i"
            ),
            {"n": rows, "old": OLD},
        )
    settle_pg(engine)


def generate_sqlite(engine: Engine, rows: int) -> None:
    versioning.create_schema(engine)
    h = SCRAMBLE.format(i="i")
    series = "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < :n) "
    with engine.begin() as conn:
        _zoo_rows(conn)
        conn.execute(
            text(
                series + "INSERT INTO oracles_oracle (id, name, organization_id, is_model_zoo, "
                "current_version_id, created_at) "
                f"SELECT 'o' || printf('%07x', {h.replace('::bigint', '')}), 'app-' || i, "
                "CASE i % 3 WHEN 0 THEN 'orga0001' WHEN 1 THEN 'orgb0001' ELSE 'orgc0001' END, "
                f"0, 'u' || printf('%07x', {h.replace('::bigint', '')}), CURRENT_TIMESTAMP FROM g"
            ),
            {"n": rows},
        )
        conn.execute(
            text(
                series + "INSERT INTO oracles_oracleversion (id, oracle_id, "
                "proxy_model_version_id, truss_hash, status, artifact, created_at) "
                f"SELECT 'u' || printf('%07x', {h.replace('::bigint', '')}), "
                f"'o' || printf('%07x', {h.replace('::bigint', '')}), "
                ":old, NULL, 'ACTIVE', NULL, CURRENT_TIMESTAMP FROM g"
            ),
            {"n": rows, "old": OLD},
        )


def _zoo_rows(c: Connection) -> None:
    c.execute(
        text(
            "INSERT INTO organizations_organization (id, name, is_admin) VALUES "
            "('zooadmin', 'zoo', true), ('orga0001', 'acme', false), "
            "('orgb0001', 'globex', false), ('orgc0001', 'initech', false)"
        )
    )
    c.execute(
        text(
            "INSERT INTO oracles_oracle (id, name, organization_id, is_model_zoo, "
            "current_version_id, created_at) VALUES "
            "('iriszoo1', 'iris', 'zooadmin', true, :new, CURRENT_TIMESTAMP)"
        ),
        {"new": NEW},
    )
    for vid in (OLD, NEW):
        c.execute(
            text(
                "INSERT INTO oracles_oracleversion (id, oracle_id, proxy_model_version_id, "
                "truss_hash, status, artifact, created_at) "
                "VALUES (:id, 'iriszoo1', NULL, NULL, 'ACTIVE', NULL, CURRENT_TIMESTAMP)"
            ),
            {"id": vid},
        )


def settle_pg(engine: Engine) -> None:
    """VACUUM ANALYZE and CHECKPOINT: every measurement starts from the same server state."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE oracles_oracleversion")
        conn.exec_driver_sql("VACUUM ANALYZE oracles_oracle")
        conn.exec_driver_sql("CHECKPOINT")


# --- places ----------------------------------------------------------------------------------


@dataclass
class Place:
    url: str
    env: Environment
    engine: Engine


@contextmanager
def pg_schema(base: str, tmp: Path) -> Iterator[Place]:
    """A fresh schema on the server (its own search_path), dropped afterwards."""
    name = f"bench_{secrets.token_hex(5)}"
    admin = create_engine(normalize_url(base), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{name}"')
    sep = "&" if "?" in base else "?"
    url = f"{normalize_url(base)}{sep}options={quote(f'-csearch_path={name}')}"
    try:
        with environment(url, tmp / name) as place:
            yield place
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        admin.dispose()


@contextmanager
def sqlite_file(tmp: Path) -> Iterator[Place]:
    path = tmp / f"bench_{secrets.token_hex(5)}.db"
    with environment(f"sqlite:///{path}", tmp / path.stem) as place:
        yield place


@contextmanager
def environment(url: str, state: Path) -> Iterator[Place]:
    state.mkdir(parents=True, exist_ok=True)
    config = state / "zoo_ops.toml"
    config.write_text(
        f'[env.local]\ndatabase_url = "{url}"\nsettings = "file:{state}/ds.yaml"\n'
        f'state_dir = "{state}"\n'
    )
    os.environ["ZOO_OPS_CONFIG"] = str(config)
    env = Environment.load("local")
    try:
        yield Place(url, env, env.platform.engine)
    finally:
        env.dispose()


# --- the contenders -----------------------------------------------------------------------


class OracleVersion:
    """ORM class for the seed's method (Django's ``OracleVersion`` model)."""

    id: str
    proxy_model_version_id: str | None


registry().map_imperatively(OracleVersion, s.oracle_versions)


def seed_method(engine: Engine, old: str, new: str) -> tuple[int, float]:
    """The seed's forward script: load the queryset, then save() each row (autocommit)."""
    started = time.perf_counter()
    affected = []
    # expire_on_commit=False: Django does not reload a row after save(); neither do we.
    with Session(engine, expire_on_commit=False) as session:
        rows = session.scalars(
            select(OracleVersion).where(s.oracle_versions.c.proxy_model_version_id == old)
        ).all()
        session.commit()
        for row in rows:
            row.proxy_model_version_id = new
            session.commit()
            affected.append(row.id)
    return len(affected), time.perf_counter() - started


def bare_update(engine: Engine, old: str, new: str) -> tuple[int, float]:
    started = time.perf_counter()
    with engine.begin() as conn:
        moved = conn.execute(
            text(
                "UPDATE oracles_oracleversion SET proxy_model_version_id = :new "
                "WHERE proxy_model_version_id = :old"
            ),
            {"old": old, "new": new},
        ).rowcount
    return int(moved), time.perf_counter() - started


def ours_forward(place: Place, batch_size: int | str, progress: bool = False) -> m.MigrationResult:
    """Our forward migration; ``progress``: render the engine's progress as the runbook does."""
    return m.forward_migrate(
        place.env, "iris", old_version_id=OLD, new_version_id=NEW,
        batch_size=batch_size, progress=TqdmProgress() if progress else None,
    )  # fmt: skip


# --- measurement helpers ----------------------------------------------------------------------


def p99(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]


@contextmanager
def peak_memory() -> Iterator[dict[str, float]]:
    """tracemalloc peak (MiB) and the RSS high-water mark above the start (MiB)."""
    import psutil

    proc = psutil.Process()
    base = proc.memory_info().rss
    out: dict[str, float] = {"rss_peak": 0.0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            out["rss_peak"] = max(out["rss_peak"], proc.memory_info().rss - base)
            stop.wait(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    tracemalloc.start()
    sampler.start()
    try:
        yield out
    finally:
        stop.set()
        sampler.join()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out["heap_peak"] = peak / 2**20
        out["rss_peak"] = out["rss_peak"] / 2**20


def line(label: str, rows: int, seconds: float, extra: str = "") -> None:
    per = seconds / rows * 1e6 if rows else float("nan")
    print(
        f"  {label:<44} {rows:>9,} rows {seconds:>9.3f} s {per:>10.2f} us/row  {extra}", flush=True
    )


# --- the run ----------------------------------------------------------------------------------


def per_row_comparison(args: argparse.Namespace, tmp: Path) -> None:
    print("\n1. per moved row: the seed's method against ours (batch_size 1000)")
    for kind in ("sqlite", "postgresql"):
        results = {}
        contenders = (("seed", args.seed_rows), ("ours", args.ours_rows), ("bare", args.ours_rows))
        for label, rows in contenders:
            place_cm = pg_schema(args.pg, tmp) if kind == "postgresql" else sqlite_file(tmp)
            with place_cm as place:
                if kind == "postgresql":
                    generate_pg(place.engine, rows)
                else:
                    generate_sqlite(place.engine, rows)
                if label == "seed":
                    moved, seconds = seed_method(place.engine, OLD, NEW)
                elif label == "bare":
                    moved, seconds = bare_update(place.engine, OLD, NEW)
                else:
                    result = ours_forward(place, 1000)
                    moved, seconds = result.moved_count, result.seconds
                assert moved == rows, (label, moved, rows)
                results[label] = seconds / moved
                line(f"{kind:<10} {label}", moved, seconds)
        ratio = results["seed"] / results["ours"]
        target = "   (target >= 1000x on PostgreSQL)" if kind == "postgresql" else ""
        print(f"  {kind:<10} ours is {ratio:,.0f}x faster per moved row{target}")
        # No method moves rows faster than one bare UPDATE: this is the ceiling of the ratio.
        ceiling = results["seed"] / results["bare"]
        print(f"  {kind:<10} (one bare UPDATE is {ceiling:,.0f}x the seed's per row: the ceiling)")


def settle(place: Place) -> None:
    """The same server state before every measurement: PostgreSQL VACUUM ANALYZE and a
    checkpoint; SQLite ANALYZE and a WAL checkpoint."""
    if place.engine.dialect.name == "postgresql":
        settle_pg(place.engine)
        return
    raw = place.engine.raw_connection()  # outside SQLAlchemy's BEGIN: a checkpoint needs none
    try:
        raw.driver_connection.execute("ANALYZE")  # type: ignore[union-attr]
        raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
    finally:
        raw.close()


def sizes(result: m.MigrationResult) -> str:
    """The batches' sizes: min / median / max rows."""
    totals = [t.moved_total for t in result.batch_timings]
    rows = [b - a for a, b in zip([0, *totals], totals, strict=False)]
    if not rows:
        return "no batches"
    return f"rows per batch {min(rows):,} / {int(statistics.median(rows)):,} / {max(rows):,}"


def big_comparison(args: argparse.Namespace, tmp: Path) -> None:
    """Bare UPDATE on database A against ours on database B, an identical copy.

    For each batch size: forwards (old -> new), then backwards (revert, scope "all"),
    each against a bare UPDATE in the same direction on A, so A and B have always seen
    the same history of updates (the same dead tuples, the same index bloat).
    """
    for kind in args.databases:
        print(f"\n2./3. {args.big:,} rows on {kind}: bare UPDATE (A) vs ours (B), one run")
        place = (
            (lambda: pg_schema(args.pg, tmp))
            if kind == "postgresql"
            else (lambda: sqlite_file(tmp))
        )
        generate = generate_pg if kind == "postgresql" else generate_sqlite
        with place() as a, place() as b:
            generate(a.engine, args.big)
            generate(b.engine, args.big)
            for batch_size in args.batch_sizes:
                _both_directions(args, a, b, batch_size)


def _both_directions(args: argparse.Namespace, a: Place, b: Place, batch_size: int | str) -> None:
    forward_id = ""
    for direction in ("forwards", "backwards"):
        src, dst = (OLD, NEW) if direction == "forwards" else (NEW, OLD)
        settle(a)
        moved, bare_s = bare_update(a.engine, src, dst)
        settle(b)
        if direction == "forwards":
            result = ours_forward(b, batch_size)
            forward_id = result.migration_id or ""
        else:
            result = m.revert_migration(
                b.env, "iris", forward_migration_id=forward_id, scope="all",
                batch_size=batch_size,
            )  # fmt: skip
        assert moved == result.moved_count == args.big, (moved, result.moved_count)
        locks = result.batch_lock_seconds
        line(f"bare UPDATE {direction}", moved, bare_s)
        line(
            f"ours {direction} batch_size={batch_size}",
            result.moved_count,
            result.seconds,
            f"ratio {result.seconds / bare_s:.2f}x (target <= 1.5x, goal 1.2x)",
        )
        print(
            f"  {'':<44} batches {len(locks):,}, {sizes(result)}: lock p50 "
            f"{statistics.median(locks) * 1000:.1f} ms, p99 {p99(locks) * 1000:.1f} ms, "
            f"max {max(locks) * 1000:.1f} ms (target p99 <= 100 ms)",
            flush=True,
        )


def memory_comparison(args: argparse.Namespace, tmp: Path) -> None:
    print("\n4. peak memory of forward_migrate + write_affected_parquet (flat in the row count)")
    for rows in (args.mem_small, args.big):
        with pg_schema(args.pg, tmp) as place:
            generate_pg(place.engine, rows)
            with peak_memory() as mem:
                result = ours_forward(place, args.batch_sizes[0], progress=True)
                written, _sha = result.write_affected_parquet(tmp / f"affected-{rows}.parquet")
            assert written == rows
            print(
                f"  {rows:>9,} rows: Python heap peak {mem['heap_peak']:7.1f} MiB, "
                f"RSS growth peak {mem['rss_peak']:7.1f} MiB "
                f"(parquet {os.path.getsize(tmp / f'affected-{rows}.parquet') / 2**20:.1f} MiB)"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", default=os.environ.get("ZOO_OPS_BENCH_PG", DEFAULT_PG))
    parser.add_argument("--seed-rows", type=int, default=1000)
    parser.add_argument("--ours-rows", type=int, default=20_000)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--mem-small", type=int, default=100_000)
    parser.add_argument(
        "--batch-sizes",
        type=lambda v: [x if x == "auto" else int(x) for x in v.split(",")],
        default=["auto", 1000],
        help='comma-separated: whole numbers or "auto" (the default: sized to lock_budget_ms)',
    )
    parser.add_argument(
        "--databases",
        type=lambda v: v.split(","),
        default=["postgresql", "sqlite"],
        help="the big comparison on these: postgresql, sqlite or both",
    )
    parser.add_argument("--quick", action="store_true", help="skip the memory comparison")
    parser.add_argument("--only", choices=["per-row", "big", "memory"], default=None)
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="zoo-bench-"))
    try:
        print(f"PostgreSQL {args.pg}; scratch {tmp}")
        if args.only in (None, "per-row"):
            per_row_comparison(args, tmp)
        if args.only in (None, "big"):
            big_comparison(args, tmp)
        if args.only in (None, "memory") and not args.quick:
            memory_comparison(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
