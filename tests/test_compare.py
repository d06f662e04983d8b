"""02_verify's comparison of two answers, and the per-field table it shows."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from zoo_ops.domain.compare import MISSING, first_difference, leaf_pairs

RTOL = 1e-6
LEAVES = st.none() | st.booleans() | st.integers(-5, 5) | st.floats(-10, 10) | st.text(max_size=3)
ANSWERS = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abc"), inner),
    max_leaves=8,
)


def nudged(value: Any) -> st.SearchStrategy[Any]:
    """Answers like ``value``: some floats moved a little or a lot, some leaves replaced."""
    if isinstance(value, float):
        return st.sampled_from([value, value * (1 + 1e-9), value + 1.0])
    if isinstance(value, list):
        return st.tuples(*(nudged(v) for v in value)).map(list) | ANSWERS
    if isinstance(value, dict):
        return st.fixed_dictionaries({k: nudged(v) for k, v in value.items()}) | ANSWERS
    return st.just(value) | LEAVES


@given(ANSWERS.flatmap(lambda a: st.tuples(st.just(a), nudged(a))))
def test_the_fields_match_exactly_when_the_answers_do(pair: tuple[Any, Any]) -> None:
    """Each row of the per-field table agrees with the verdict: the answers match iff every
    field does, and the first field that does not is where the verdict says they part
    (a key only one side has is reported at the object holding it)."""
    expected, actual = pair
    rows = leaf_pairs(expected, actual)
    differing = [path for path, e, a in rows if first_difference(e, a, RTOL) is not None]
    verdict = first_difference(expected, actual, RTOL)
    assert (verdict is None) == (not differing)
    if verdict is not None and "keys differ" not in verdict:
        assert verdict.startswith(f"{differing[0]}:")


def test_fields_are_paths_into_the_answer() -> None:
    expected = {"predictions": ["setosa"], "probabilities": [[0.9, 0.1]]}
    actual = {"predictions": ["setosa"], "probabilities": [[0.8, 0.2]], "extra": 1}
    assert leaf_pairs(expected, actual) == [
        ("extra", MISSING, 1),
        ("predictions[0]", "setosa", "setosa"),
        ("probabilities[0][0]", 0.9, 0.8),
        ("probabilities[0][1]", 0.1, 0.2),
    ]
    assert leaf_pairs([1, 2], [1]) == [("answer", [1, 2], [1])]
