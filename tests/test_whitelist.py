"""The whitelist and automation flag (DESIGN §4): what is accepted, what is refused, and
the canonical form that keeps an unchanged whitelist byte-identical."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zoo_ops.domain.whitelist import (
    AUTOMATION_KEY,
    WHITELIST_KEY,
    DynamicSettings,
    Whitelist,
    WhitelistEntry,
    diff_whitelists,
    parse_automation_flag,
    parse_whitelist,
    serialize_whitelist,
    target_zoo_model,
    with_whitelist,
)
from zoo_ops.errors import BadInput, SettingsError

SEED_VALUE = '{"iris": {"copy": true}}'


def test_the_seeds_value_parses_and_serializes_back_byte_identical():
    wl = parse_whitelist(SEED_VALUE)
    assert dict(wl) == {"iris": WhitelistEntry("iris", True)}
    assert serialize_whitelist(wl) == SEED_VALUE


def test_absent_key_is_the_empty_whitelist_and_absent_flag_is_off():
    settings = DynamicSettings.from_data({"ratelimitEnabled": "true"})
    assert settings.whitelist == Whitelist()
    assert settings.automation_enabled is False


def test_canonical_form_sorts_keys_and_uses_fixed_separators():
    wl = parse_whitelist('{"zeta":{"copy":false},   "alpha": {"copy": true}}')
    assert serialize_whitelist(wl) == '{"alpha": {"copy": true}, "zeta": {"copy": false}}'


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("", "not JSON"),
        ("{iris: {copy: true}}", "not JSON"),
        ('{"iris": {"copy": true}', "not JSON"),
        ('{"iris": {"copy": NaN}}', "not JSON"),
        ("[" * 100_000, "not JSON"),
        ('["iris"]', "must be a JSON object"),
        ('"iris"', "must be a JSON object"),
        ("null", "must be a JSON object"),
        ('{"iris": {"copy": true}, "iris": {"copy": false}}', "duplicate key 'iris'"),
        ('{"iris": {"copy": true, "copy": false}}', "duplicate key 'copy'"),
        ('{"iris": {"copy": "true"}}', "JSON boolean"),
        ('{"iris": {"copy": 1}}', "JSON boolean"),
        ('{"iris": {"copy": null}}', "JSON boolean"),
        ('{"iris": {"copy": true, "gpu": true}}', "unexpected key(s) 'gpu'"),
        ('{"iris": {}}', "missing the key 'copy'"),
        ('{"iris": true}', "must be an object"),
        ('{"iris": null}', "must be an object"),
        ('{"": {"copy": true}}', "model name is empty"),
        ('{"ir is": {"copy": true}}', "whitespace"),
        ('{"iris\\t": {"copy": true}}', "whitespace"),
        ('{"iris_copy": {"copy": true}}', "ends in '_copy'"),
    ],
)
def test_malformed_whitelist_is_refused_naming_key_and_problem(raw, fragment):
    with pytest.raises(SettingsError) as info:
        parse_whitelist(raw)
    message = str(info.value)
    assert message.startswith(WHITELIST_KEY + ":")
    assert fragment in message
    assert "\n" not in message and len(message) < 300
    assert info.value.exit_code == 2


def test_the_first_bad_entry_in_name_order_is_named():
    with pytest.raises(SettingsError, match="entry 'beta'"):
        parse_whitelist('{"gamma": {"copy": 0}, "alpha": {"copy": true}, "beta": {"copy": "x"}}')


@pytest.mark.parametrize("raw", ["true", "false"])
def test_automation_flag_accepts_exactly_true_and_false(raw):
    assert parse_automation_flag(raw) is (raw == "true")


@pytest.mark.parametrize("raw", ["True", "TRUE", "1", "yes", " true", "true ", "", '"true"'])
def test_automation_flag_refuses_anything_else(raw):
    with pytest.raises(SettingsError) as info:
        parse_automation_flag(raw)
    assert str(info.value).startswith(AUTOMATION_KEY + ":")
    assert info.value.exit_code == 2


def test_dynamic_settings_refuses_a_bad_flag_even_with_a_good_whitelist():
    with pytest.raises(SettingsError, match=AUTOMATION_KEY):
        DynamicSettings.from_data({AUTOMATION_KEY: "yes", WHITELIST_KEY: SEED_VALUE})


def test_set_and_remove_return_new_whitelists_and_leave_the_original_alone():
    wl = parse_whitelist(SEED_VALUE)
    added = wl.set("bert", False)
    flipped = added.set("iris", False)
    removed = flipped.remove("iris")
    assert serialize_whitelist(wl) == SEED_VALUE
    assert serialize_whitelist(added) == '{"bert": {"copy": false}, "iris": {"copy": true}}'
    assert flipped["iris"] == WhitelistEntry("iris", False)
    assert list(removed) == ["bert"]
    assert removed.remove("iris") == removed  # absent: no change


@pytest.mark.parametrize("name", ["", "a b", "iris_copy", "\tiris"])
def test_set_refuses_a_name_the_platform_cannot_act_on(name):
    with pytest.raises(BadInput):
        Whitelist().set(name, True)


def test_target_zoo_model_is_name_copy_for_copy_true():
    assert target_zoo_model(WhitelistEntry("iris", True)) == "iris_copy"
    assert target_zoo_model(WhitelistEntry("iris", False)) == "iris"


def test_with_whitelist_touches_only_the_whitelist_key():
    data = {"ratelimitEnabled": "true", AUTOMATION_KEY: "true", WHITELIST_KEY: SEED_VALUE}
    new = with_whitelist(data, parse_whitelist(SEED_VALUE).set("bert", True))
    assert {k: v for k, v in new.items() if k != WHITELIST_KEY} == {
        "ratelimitEnabled": "true",
        AUTOMATION_KEY: "true",
    }
    assert data[WHITELIST_KEY] == SEED_VALUE


def test_diff_rows_say_added_removed_changed_unchanged():
    before = parse_whitelist('{"a": {"copy": true}, "b": {"copy": true}, "c": {"copy": false}}')
    after = before.remove("a").set("b", False).set("d", True)
    rows = {r.model: (r.before, r.after, r.change) for r in diff_whitelists(before, after)}
    assert rows == {
        "a": (True, None, "removed"),
        "b": (True, False, "changed"),
        "c": (False, False, "unchanged"),
        "d": (None, True, "added"),
    }
    only = [r.model for r in diff_whitelists(before, after, include_unchanged=False)]
    assert only == ["a", "b", "d"]


_names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cf", "Zs", "Cc", "Zl", "Zp")),
    min_size=1,
    max_size=12,
).filter(lambda s: not s.endswith("_copy") and not any(c.isspace() for c in s))


@given(st.dictionaries(_names, st.booleans(), max_size=8))
def test_round_trip_is_identity_and_canonical_text_is_a_fixed_point(mapping):
    wl = Whitelist(WhitelistEntry(m, c) for m, c in mapping.items())
    text = serialize_whitelist(wl)
    assert parse_whitelist(text) == wl
    assert serialize_whitelist(parse_whitelist(text)) == text
    assert json.loads(text) == {m: {"copy": c} for m, c in mapping.items()}
