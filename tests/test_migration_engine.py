"""The migration engine on SQLite and PostgreSQL: exact reverts, locks, refusals, resume."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from sqlalchemy import insert, text
from support.migration import Platform, build_platform, table_checksum, zoo_ops_state

from zoo_ops.adapters.platform import schema as s
from zoo_ops.adapters.platform import versioning
from zoo_ops.environment import Environment
from zoo_ops.errors import BadInput, GateClosed, LockHeld, NotFound
from zoo_ops.migration import batches
from zoo_ops.migration import engine as m
from zoo_ops.migration import store as msql
from zoo_ops.migration.plan import ABANDONED, DONE, OPEN, MigrationPlan
from zoo_ops.migration.sizing import FIRST_AUTO_SIZE


@pytest.fixture
def platform(local_env: Environment) -> Platform:
    return build_platform(local_env)


def forward(p: Platform, **kwargs: Any) -> m.MigrationResult:
    kwargs.setdefault("batch_size", 25)
    kwargs.setdefault("progress", False)
    return m.forward_migrate(p.env, "iris", old_version_id=p.old, new_version_id=p.new, **kwargs)


# --- exactness ------------------------------------------------------------------------------


def test_forward_then_revert_recorded_restores_the_table_exactly(platform: Platform) -> None:
    p = platform
    before = table_checksum(p.engine)
    result = forward(p)
    assert result.mapping == {p.old: p.new}
    assert (result.moved_count, result.remaining_on_source, result.status) == (120, 0, DONE)
    assert result.batch_count == 5  # 120 rows / 25
    assert p.env.platform.proxy_counts([p.old, p.new, p.bert]) == {p.old: 0, p.new: 120, p.bert: 7}
    affected = result.affected_frame()
    assert list(affected.columns) == [
        "oracle_version_id",
        "oracle_id",
        "organization_id",
        "from_version_id",
        "to_version_id",
    ]
    assert len(affected) == 120 and affected["oracle_version_id"].is_unique
    assert set(affected["from_version_id"]) == {p.old}
    assert set(affected["to_version_id"]) == {p.new}
    assert set(affected["organization_id"]) == set(p.org_ids)
    assert (affected["oracle_id"] == "ao" + affected["oracle_version_id"].str[2:]).all()
    assert table_checksum(p.engine) != before

    revert = m.revert_migration(
        p.env, "iris", forward_migration_id=result.migration_id or "", scope="recorded",
        batch_size=25, progress=False,
    )  # fmt: skip
    assert revert.mapping == {p.new: p.old}
    assert (revert.moved_count, revert.remaining_on_source) == (120, 0)
    assert table_checksum(p.engine) == before
    assert m.migration_record(p.env, result.migration_id or "").reverted_by == revert.migration_id
    # The revert is audited by its own journal: new -> old for every row.
    journal = m.journal_for(p.env, revert.migration_id or "")
    assert len(journal) == 120
    assert set(zip(journal.previous_proxy, journal.new_proxy, strict=True)) == {(p.new, p.old)}


def test_recorded_leaves_later_applications_and_all_takes_them_back(platform: Platform) -> None:
    p = platform
    result = forward(p)
    p.env.platform.set_current_version(p.env.platform.zoo_model("iris").id, p.new)
    later = p.env.platform.create_application(p.org_ids[0], "iris")
    assert later.proxy_model_version_id == p.new

    recorded = m.revert_migration(
        p.env, "iris", forward_migration_id=result.migration_id or "", scope="recorded",
        dry_run=True, progress=False,
    )  # fmt: skip
    everything = m.revert_migration(
        p.env, "iris", forward_migration_id=result.migration_id or "", scope="all",
        dry_run=True, progress=False,
    )  # fmt: skip
    assert (recorded.would_move, everything.would_move) == (120, 121)

    revert = m.revert_migration(
        p.env, "iris", forward_migration_id=result.migration_id or "", scope="all",
        batch_size=50, progress=False,
    )  # fmt: skip
    assert revert.moved_count == 121
    assert p.env.platform.version(later.version_id).proxy_model_version_id == p.old
    assert p.env.platform.proxy_counts([p.old, p.new]) == {p.old: 121, p.new: 0}
    assert later.version_id in set(revert.affected_frame()["oracle_version_id"])


def test_recorded_revert_leaves_a_later_application_on_new(platform: Platform) -> None:
    p = platform
    before = table_checksum(p.engine)
    result = forward(p)
    p.env.platform.set_current_version(p.env.platform.zoo_model("iris").id, p.new)
    later = p.env.platform.create_application(p.org_ids[1], "iris")
    m.revert_migration(
        p.env, "iris", forward_migration_id=result.migration_id or "", scope="recorded",
        progress=False,
    )  # fmt: skip
    assert p.env.platform.version(later.version_id).proxy_model_version_id == p.new
    assert table_checksum(p.engine, exclude={later.version_id}) == before


# --- refusals change nothing ---------------------------------------------------------------


def test_a_second_migration_while_the_lock_is_held_is_refused(platform: Platform) -> None:
    p = platform
    before, state = table_checksum(p.engine), zoo_ops_state(p.engine)
    # Another holder: on PostgreSQL another session, on SQLite a lock row of a live pid.
    other = p.env.migrations.acquire_lock(p.env.name, "iris", holder="someone-else")
    try:
        with pytest.raises(LockHeld, match="holds the lock.*release") as err:
            forward(p, lock_wait_s=0.0)
        assert "\n" not in str(err.value)
        assert table_checksum(p.engine) == before
        assert zoo_ops_state(p.engine)[:2] == state[:2]
    finally:
        other.release()
    assert forward(p).moved_count == 120  # released: the next run proceeds


def test_a_lock_left_by_a_dead_process_does_not_block(platform: Platform) -> None:
    p = platform
    if p.engine.dialect.name == "postgresql":
        # An advisory lock dies with its session: end the holder's session uncleanly.
        other = p.env.migrations.acquire_lock(p.env.name, "iris", holder="crashed")
        other.conn.invalidate()  # type: ignore[attr-defined]
    else:
        with p.engine.begin() as conn:
            conn.execute(
                insert(s.locks).values(
                    name="migrate:local:iris", holder="crashed", host=msql.socket.gethostname(),
                    pid=2**22 + 12345, acquired_at=datetime.now(UTC),
                )
            )  # fmt: skip
    assert forward(p).moved_count == 120
    assert zoo_ops_state(p.engine)[2] == 0  # our lock row (SQLite) is gone again


def test_release_lock_is_the_documented_recovery(platform: Platform) -> None:
    p = platform
    held = p.env.migrations.acquire_lock(p.env.name, "iris", holder="stuck")
    try:
        with pytest.raises(LockHeld):
            forward(p, lock_wait_s=0.0)
        said = m.release_lock(p.env, "iris")
        assert said.startswith(("deleted lock row", "terminated backend"))
        assert forward(p, lock_wait_s=5.0).moved_count == 120
    finally:
        try:
            held.release()
        except Exception:  # noqa: BLE001 - its session may have been terminated
            pass


@pytest.mark.parametrize(
    ("source", "target", "error", "message"),
    [
        ("old", "bert", BadInput, "belongs to zoo model 'bert', not 'iris'"),
        ("bert", "new", BadInput, "belongs to zoo model 'bert', not 'iris'"),
        ("old", "old", BadInput, "same version"),
        ("old", "nope0000", NotFound, "target version 'nope0000' does not exist"),
        ("nope0000", "new", NotFound, "source version 'nope0000' does not exist"),
        ("old", "user", BadInput, "not a model zoo model"),
    ],
)
def test_bad_plans_are_refused_and_change_nothing(
    platform: Platform, source: str, target: str, error: type[Exception], message: str
) -> None:
    p = platform
    ids = {"old": p.old, "new": p.new, "bert": p.bert, "user": "av000001"}
    before, state = table_checksum(p.engine), zoo_ops_state(p.engine)
    with pytest.raises(error, match=message):
        m.forward_migrate(
            p.env, "iris", old_version_id=ids.get(source, source),
            new_version_id=ids.get(target, target), progress=False,
        )  # fmt: skip
    assert table_checksum(p.engine) == before
    assert zoo_ops_state(p.engine) == state


def test_a_target_that_is_not_active_is_refused(local_env: Environment) -> None:
    p = build_platform(local_env, apps=10, new_status=s.DEPLOYING)
    before, state = table_checksum(p.engine), zoo_ops_state(p.engine)
    with pytest.raises(GateClosed, match="is DEPLOYING, not ACTIVE"):
        forward(p)
    assert (table_checksum(p.engine), zoo_ops_state(p.engine)) == (before, state)


def test_the_copy_models_versions_are_the_models_history(platform: Platform) -> None:
    p = platform
    result = m.forward_migrate(
        p.env, "iris", old_version_id=p.old, new_version_id=p.copy, progress=False
    )
    assert result.moved_count == 120


@pytest.mark.parametrize("batch_size", [0, -1, True, 2.5, "10"])
def test_a_bad_batch_size_is_refused(platform: Platform, batch_size: Any) -> None:
    with pytest.raises(BadInput, match="batch_size"):
        forward(platform, batch_size=batch_size)
    assert zoo_ops_state(platform.engine) == (0, 0, 0)


def batch_rows(result: m.MigrationResult) -> list[int]:
    totals = [t.moved_total for t in result.batch_timings]
    return [b - a for a, b in zip([0, *totals], totals, strict=False)]


def test_auto_batches_follow_the_lock_budget_both_ways(local_env: Environment) -> None:
    """batch_size="auto" (the default): a tight lock budget gives many small batches, a
    loose one few large ones; every row moves and comes back either way."""
    p = build_platform(local_env, apps=20_000)
    before = table_checksum(p.engine)
    tight = forward(p, batch_size="auto", lock_budget_ms=1)
    loose = m.revert_migration(
        p.env, "iris", forward_migration_id=tight.migration_id or "", scope="recorded",
        lock_budget_ms=60_000, progress=False,
    )  # fmt: skip
    assert tight.moved_count == loose.moved_count == 20_000
    assert table_checksum(p.engine) == before
    tight_rows, loose_rows = batch_rows(tight), batch_rows(loose)
    assert sum(tight_rows) == sum(loose_rows) == 20_000
    assert len(tight_rows) > len(loose_rows)
    assert max(tight_rows[1:]) < max(loose_rows)
    # A loose budget grows from the first size, at most doubling each batch.
    assert loose_rows[0] == FIRST_AUTO_SIZE
    assert all(b <= 2 * a for a, b in zip(loose_rows, loose_rows[1:], strict=False))


def test_reverting_twice_or_reverting_a_revert_is_refused(platform: Platform) -> None:
    p = platform
    result = forward(p)
    revert = m.revert_migration(
        p.env, "iris", forward_migration_id=result.migration_id or "", progress=False
    )
    before, state = table_checksum(p.engine), zoo_ops_state(p.engine)
    with pytest.raises(GateClosed, match="already reverted"):
        m.revert_migration(p.env, "iris", forward_migration_id=result.migration_id or "")
    with pytest.raises(BadInput, match="is a revert, not a forward migration"):
        m.revert_migration(p.env, "iris", forward_migration_id=revert.migration_id or "")
    with pytest.raises(BadInput, match="migrated 'iris' in 'local', not 'bert'"):
        m.revert_migration(p.env, "bert", forward_migration_id=result.migration_id or "")
    with pytest.raises(BadInput, match="scope 'some'"):
        m.revert_migration(p.env, "iris", forward_migration_id="x", scope="some")
    assert (table_checksum(p.engine), zoo_ops_state(p.engine)) == (before, state)


# --- dry run ----------------------------------------------------------------------------------


def test_dry_run_counts_and_shows_without_writing(platform: Platform) -> None:
    p = platform
    before, state = table_checksum(p.engine), zoo_ops_state(p.engine)
    result = forward(p, dry_run=True)
    assert (result.dry_run, result.migration_id, result.would_move) == (True, None, 120)
    sample = result.sample_frame(5)
    assert len(sample) == 5 and set(sample["to_version_id"]) == {p.new}
    assert len(result.affected_frame()) == 120
    assert result.to_frame().loc[0, "status"] == "dry_run"
    assert (table_checksum(p.engine), zoo_ops_state(p.engine)) == (before, state)


# --- resume -----------------------------------------------------------------------------------


class Interrupt(Exception):
    pass


def test_an_interrupted_run_resumes_with_the_same_migration_id(platform: Platform) -> None:
    p = platform

    def stop_after_three(batch: int, moved: int) -> None:
        if batch == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        forward(p, batch_size=20, on_batch=stop_after_three)
    open_record = m.latest_migration(p.env, "iris", status=OPEN)
    assert open_record is not None and open_record.moved_count == 60
    assert p.env.platform.proxy_counts([p.old, p.new]) == {p.old: 60, p.new: 60}
    assert zoo_ops_state(p.engine) == (1, 60, 0)  # lock released on the way out

    result = forward(p, batch_size=20)
    assert (result.migration_id, result.resumed) == (open_record.id, True)
    assert (result.moved_count, result.batch_count, result.remaining_on_source) == (120, 6, 0)
    journal = m.journal_for(p.env, result.migration_id or "")
    assert sorted(journal["batch"].value_counts().to_dict().items()) == [
        (b, 20) for b in range(1, 7)
    ]
    assert m.latest_migration(p.env, "iris").id == result.migration_id  # type: ignore[union-attr]


def test_another_open_migration_of_the_model_is_refused(platform: Platform) -> None:
    p = platform

    def stop(batch: int, moved: int) -> None:
        raise Interrupt

    with pytest.raises(Interrupt):
        forward(p, on_batch=stop)
    before, state = table_checksum(p.engine), zoo_ops_state(p.engine)
    with pytest.raises(BadInput, match="is open for this model"):
        m.forward_migrate(
            p.env, "iris", old_version_id=p.old, new_version_id=p.copy, progress=False
        )
    assert (table_checksum(p.engine), zoo_ops_state(p.engine)) == (before, state)


def test_reverting_an_interrupted_forward_abandons_it(platform: Platform) -> None:
    p = platform
    before = table_checksum(p.engine)

    def stop(batch: int, moved: int) -> None:
        if batch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        forward(p, on_batch=stop)
    fwd = m.latest_migration(p.env, "iris", status=OPEN)
    assert fwd is not None
    m.revert_migration(p.env, "iris", forward_migration_id=fwd.id, scope="recorded", progress=False)
    assert table_checksum(p.engine) == before
    assert m.migration_record(p.env, fwd.id).status == ABANDONED
    # The abandoned forward is never resumed: a new forward run is a new migration.
    again = forward(p)
    assert not again.resumed and again.migration_id != fwd.id and again.moved_count == 120


# --- affected rows ----------------------------------------------------------------------------


def test_affected_rows_stream_to_parquet_and_match_the_journal(
    platform: Platform, tmp_path: Path
) -> None:
    p = platform
    result = forward(p)
    rows, sha = result.write_affected_parquet(tmp_path / "affected.parquet", chunk_rows=33)
    assert rows == 120
    assert sha == hashlib.sha256((tmp_path / "affected.parquet").read_bytes()).hexdigest()
    assert pq.ParquetFile(tmp_path / "affected.parquet").metadata.num_row_groups == 4  # chunked
    table = pq.read_table(tmp_path / "affected.parquet")
    pd.testing.assert_frame_equal(table.to_pandas(), result.affected_frame(), check_dtype=False)
    assert m.journal_digest(p.env, result.migration_id or "") == m.affected_digest(
        result.affected_frame()
    )
    summary = result.to_frame()
    assert summary.loc[0, "moved_count"] == 120 and summary.loc[0, "direction"] == "forwards"


def test_postgres_batches_pick_through_the_proxy_index(postgres_url: str) -> None:
    """The batch statement must not seq-scan the user versions (quadratic at scale)."""
    from zoo_ops.adapters.platform.engine import make_engine

    engine = make_engine(postgres_url)
    try:
        versioning.create_schema(engine)
        with msql.MigrationStore(engine).mover(MigrationPlan("iris", "forwards", "a", "b"), "m"):
            pass  # entering and leaving must restore the session settings
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW enable_seqscan").scalar() == "on"
            conn.exec_driver_sql("SET enable_seqscan = off")
            conn.exec_driver_sql("SET enable_bitmapscan = off")
            params = {"mid": "x", "source": "a", "target": "b", "n": 10, "batch": 1}
            plan, recorded = (
                "\n".join(
                    r[0]
                    for r in conn.execute(
                        text("EXPLAIN " + batches.pg_statement(scope)),
                        {**params, "fwd": "f", "after": 0},
                    )
                )
                for scope in (False, True)
            )
            conn.rollback()
    finally:
        engine.dispose()
    assert "oracles_oracleversion_proxy_idx" in plan and "Seq Scan" not in plan
    # The recorded scope walks the forward migration's batch rows by their primary key
    # (in batch order, so LIMIT stops early), never a whole-table scan.
    assert "zoo_ops_migration_batch_pkey" in recorded and "Seq Scan" not in recorded, recorded
