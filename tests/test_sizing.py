"""Batch sizing: a fixed size stays fixed; ``"auto"`` holds each batch's lock time under
the budget, shrinking at once after a slow batch and growing at most twofold."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zoo_ops.errors import BadInput
from zoo_ops.migration.sizing import (
    FIRST_AUTO_SIZE,
    MAX_AUTO_SIZE,
    MAX_GROWTH,
    MIN_AUTO_SIZE,
    BatchSizing,
    check_batch_size,
)


def lock_seconds(rows: int, *, overhead_s: float = 0.002, per_row_s: float = 20e-6) -> float:
    """A batch's lock time as a database gives it: a fixed cost plus a cost per row."""
    return overhead_s + rows * per_row_s


def test_a_fixed_size_is_taken_as_given_batch_after_batch() -> None:
    sizing = BatchSizing.of(700)
    for moved, seconds in [(700, 0.5), (700, 0.001), (12, 3.0)]:
        sizing = sizing.after(moved, seconds)
        assert sizing.size == 700 and not sizing.auto


def test_auto_settles_where_a_batch_holds_its_locks_under_the_budget() -> None:
    sizing = BatchSizing.of("auto", 50)
    assert sizing.size == FIRST_AUTO_SIZE
    held = []
    for _ in range(30):
        seconds = lock_seconds(sizing.size)
        held.append(seconds)
        sizing = sizing.after(sizing.size, seconds)
    # 20 us a row and 2 ms a batch: ~1,400 rows make 30 ms, under the 50 ms budget.
    assert all(s <= 0.050 for s in held[5:])
    assert 1000 <= sizing.size <= 2500, sizing


def test_auto_shrinks_at_once_after_a_slow_batch() -> None:
    sizing = BatchSizing.of("auto", 50)
    for _ in range(20):
        sizing = sizing.after(sizing.size, lock_seconds(sizing.size))
    steady = sizing.size
    # A checkpoint: the same rows take ten times as long.
    slowed = sizing.after(steady, 10 * lock_seconds(steady))
    assert slowed.size <= steady // 8
    assert lock_seconds(slowed.size, per_row_s=200e-6, overhead_s=0.02) <= 0.050


def test_a_smaller_budget_gives_smaller_batches() -> None:
    def settled(budget_ms: int) -> int:
        sizing = BatchSizing.of("auto", budget_ms)
        for _ in range(30):
            sizing = sizing.after(sizing.size, lock_seconds(sizing.size, overhead_s=0))
        return sizing.size

    assert settled(10) < settled(50) < settled(200)


@given(st.lists(st.tuples(st.integers(0, 200_000), st.floats(0, 30)), max_size=40))
def test_auto_sizes_stay_in_range_and_never_more_than_double(
    batches: list[tuple[int, float]],
) -> None:
    sizing = BatchSizing.of("auto", 50)
    for moved, seconds in batches:
        following = sizing.after(moved, seconds)
        assert MIN_AUTO_SIZE <= following.size <= MAX_AUTO_SIZE
        assert following.size <= sizing.size * MAX_GROWTH
        sizing = following


@pytest.mark.parametrize(
    "given_size,needle",
    [
        (0, "batch_size 0 is out of range"),
        ("lots", "neither a whole number nor 'auto'"),
        (True, "neither a whole number nor 'auto'"),
        (2.5, "neither a whole number nor 'auto'"),
    ],
)
def test_a_bad_batch_size_is_refused_with_one_line(given_size: object, needle: str) -> None:
    with pytest.raises(BadInput) as info:
        check_batch_size(given_size)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_auto_is_spelled_loosely_and_numbers_pass_through() -> None:
    assert check_batch_size(" Auto ") == "auto" and check_batch_size(250) == 250
