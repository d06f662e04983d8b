"""Settings that cannot escape (issue 14): the local settings file against hand edits that
take no lock, and YAML zoo-ops did not write against bombs, endless nesting, non-finite
numbers and strings that are not text.

The contract for the local file (zoo_ops.adapters.settings.local_file): a hand edit made
while zoo-ops writes either survives, or the zoo-ops write is refused in one line — it is
never overwritten.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from support.settings import SEED_DATA

from zoo_ops.adapters.settings import ConditionalStore, SettingsSnapshot, local_file
from zoo_ops.adapters.settings.local_file import LocalConfigMapFile, changed_parts, overlap
from zoo_ops.domain.bounded_yaml import DocumentRefused, load_bounded
from zoo_ops.domain.whitelist import WHITELIST_KEY, parse_whitelist, with_whitelist
from zoo_ops.errors import ConflictError, NotFound, SettingsError, ZooOpsError

HAND_EDITS = 20

# A person's script, in its own process, taking no lock: read the file, think a moment,
# write it back — half the time as editors save (a new file renamed over the old), half
# in place (vim with backupcopy=yes, `cat >`). Even edits add a ConfigMap key, odd ones
# a whitelist entry (the key zoo-ops is writing too).
HAND_EDITOR = """
import json, os, random, sys, time
from pathlib import Path
import yaml
path, ready, go = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
ready.touch()
while not go.exists():
    time.sleep(0.001)
for i in range(int(sys.argv[4])):
    while True:
        try:
            manifest = yaml.safe_load(path.read_bytes())
            data = manifest["data"]
            break
        except Exception:  # caught zoo-ops mid-swap? never: but an in-place write of ours is torn
            time.sleep(0.001)
    if i % 2 == 0:
        data[f"handEdit{i}"] = str(i)
    else:
        wl = json.loads(data["automaticallyDeployedModelZooModelsWhitelist"])
        wl[f"hand{i}"] = {"copy": False}
        data["automaticallyDeployedModelZooModelsWhitelist"] = json.dumps(wl, sort_keys=True)
    text = yaml.safe_dump(manifest, sort_keys=False, width=1 << 20).encode()
    time.sleep(random.uniform(0, 0.003))
    if i % 4 < 2:
        tmp = path.with_name(f".hand-{i}.tmp")
        tmp.write_bytes(text)
        os.replace(tmp, path)
    else:
        with open(path, "r+b") as f:
            f.write(text)
            f.truncate()
    time.sleep(random.uniform(0, 0.010))
"""


def _add_entry(model: str):  # type: ignore[no-untyped-def]
    def change(data: dict[str, str]) -> dict[str, str]:
        whitelist = parse_whitelist(data.get(WHITELIST_KEY))
        return with_whitelist(data, whitelist.set(model, True))

    return change


@pytest.fixture
def settings_file(tmp_path: Path) -> Path:
    path = tmp_path / "state" / "dynamic-settings.yaml"
    LocalConfigMapFile.create(path, SEED_DATA)
    return path


def _data(path: Path) -> dict[str, str]:
    return dict(yaml.safe_load(path.read_bytes())["data"])


def _hand_write(path: Path, key: str, value: str) -> bytes:
    """A hand edit as an editor saves it: new file renamed over the old; its bytes."""
    manifest = yaml.safe_load(path.read_bytes())
    manifest["data"][key] = value
    text = yaml.safe_dump(manifest, sort_keys=False, width=1 << 20).encode()
    tmp = path.with_name(".hand.tmp")
    tmp.write_bytes(text)
    tmp.replace(path)
    return text


def _whitelist_with(path: Path, model: str, copy: bool) -> str:
    whitelist = json.loads(_data(path)[WHITELIST_KEY])
    whitelist[model] = {"copy": copy}
    return json.dumps(whitelist, sort_keys=True)


# -- the stress run: every hand edit survives -----------------------------------------------


def test_twenty_hand_edits_racing_zoo_ops_writes_are_never_lost(
    settings_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conflicts = 0
    real_replace = local_file.conditional_replace

    def counting(path: Path, expected: bytes, content: bytes) -> None:
        nonlocal conflicts
        try:
            real_replace(path, expected, content)
        except local_file.WriteConflict:
            conflicts += 1
            raise

    monkeypatch.setattr(local_file, "conditional_replace", counting)
    ready, go = tmp_path / "ready", tmp_path / "go"
    editor = subprocess.Popen(
        [sys.executable, "-c", HAND_EDITOR, str(settings_file), str(ready), str(go), "20"]
    )
    while not ready.exists():
        time.sleep(0.005)
    outcomes: dict[str, str] = {}
    done = threading.Event()

    def zoo_ops_writes() -> None:
        store = LocalConfigMapFile(settings_file)
        j = 0
        while not done.is_set():
            model = f"zoo{j}"
            try:
                store.apply(_add_entry(model))
                outcomes[model] = "written"
            except ZooOpsError as exc:  # refused: nothing written, one line
                outcomes[model] = "refused" if "\n" not in str(exc) else f"two lines: {exc}"
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                outcomes[model] = f"crashed: {exc!r}"
            j += 1

    writer = threading.Thread(target=zoo_ops_writes)
    writer.start()
    while not outcomes:  # zoo-ops is writing before the first hand edit
        time.sleep(0.001)
    go.touch()
    try:
        assert editor.wait(timeout=120) == 0
    finally:
        done.set()
        writer.join(timeout=60)
    data = _data(settings_file)
    whitelist = json.loads(data[WHITELIST_KEY])
    lost = [
        i
        for i in range(HAND_EDITS)
        if (f"handEdit{i}" not in data if i % 2 == 0 else f"hand{i}" not in whitelist)
    ]
    assert lost == [], f"hand edits lost: {lost} ({conflicts} conflicts, {outcomes})"
    assert all(o in ("written", "refused") for o in outcomes.values()), outcomes
    assert len(outcomes) >= 3, "zoo-ops did not write while the hand edits ran"
    assert conflicts >= 1, "no hand edit landed inside a zoo-ops write: the race was not run"


# -- the windows, one at a time ---------------------------------------------------------------


def test_a_hand_edit_of_another_key_while_the_new_file_is_prepared_is_kept_and_ours_reapplied(
    settings_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = local_file._prepared_temp
    edits = []

    def prepare_then_edit(path: Path, content: bytes) -> Path:
        tmp = real(path, content)
        if not edits:  # during the slow part (write + fsync), someone saves the file
            edits.append(_hand_write(path, "handKey", "mine"))
        return tmp

    monkeypatch.setattr(local_file, "_prepared_temp", prepare_then_edit)
    LocalConfigMapFile(settings_file).apply(_add_entry("bert"))
    data = _data(settings_file)
    assert data["handKey"] == "mine"
    assert "bert" in json.loads(data[WHITELIST_KEY])


def test_a_hand_edit_of_the_same_entry_is_kept_and_the_write_refused_in_one_line(
    settings_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = local_file._prepared_temp
    edits: list[bytes] = []

    def prepare_then_edit(path: Path, content: bytes) -> Path:
        tmp = real(path, content)
        if not edits:
            edits.append(_hand_write(path, WHITELIST_KEY, _whitelist_with(path, "bert", False)))
        return tmp

    monkeypatch.setattr(local_file, "_prepared_temp", prepare_then_edit)
    with pytest.raises(ConflictError) as info:
        LocalConfigMapFile(settings_file).apply(_add_entry("bert"))
    message = str(info.value)
    assert "changed while writing" in message and "bert" in message and "rerun" in message
    assert "\n" not in message
    assert settings_file.read_bytes() == edits[0]


def test_a_hand_save_between_the_compare_and_the_swap_is_swapped_back(
    settings_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = local_file._exchange
    edits: list[bytes] = []

    def edit_then_exchange(a: Path, b: Path) -> bool:
        if not edits:  # the last possible moment: after the compare, before the swap
            edits.append(_hand_write(b, "handKey", "late"))
        return real(a, b)

    monkeypatch.setattr(local_file, "_exchange", edit_then_exchange)
    LocalConfigMapFile(settings_file).apply(_add_entry("bert"))
    data = _data(settings_file)
    assert data["handKey"] == "late"
    assert "bert" in json.loads(data[WHITELIST_KEY])
    assert not list(settings_file.parent.glob("*.tmp")), "a temp file was left behind"


def test_a_settings_file_deleted_just_before_the_swap_is_one_line_not_recreated(
    settings_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = local_file._exchange

    def delete_then_exchange(a: Path, b: Path) -> bool:
        b.unlink(missing_ok=True)
        return real(a, b)

    monkeypatch.setattr(local_file, "_exchange", delete_then_exchange)
    with pytest.raises(NotFound, match="does not exist") as info:
        LocalConfigMapFile(settings_file).apply(_add_entry("bert"))
    assert "\n" not in str(info.value)
    assert not settings_file.exists()
    assert not list(settings_file.parent.glob("*.tmp")), "a temp file was left behind"


def test_without_an_exchange_an_in_place_edit_of_the_replaced_file_is_written_back(
    settings_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Where the kernel cannot exchange two paths: a writer that had the file open writes
    # into it in place just before our rename; the inode we compared is re-read after.
    monkeypatch.setattr(local_file, "_exchange", lambda a, b: False)
    real_replace = local_file.os.replace
    edits: list[bytes] = []

    def edit_in_place_then_replace(src: Any, dst: Any) -> None:
        if not edits and Path(dst) == settings_file:
            manifest = yaml.safe_load(settings_file.read_bytes())
            manifest["data"]["handKey"] = "in place"
            text = yaml.safe_dump(manifest, sort_keys=False, width=1 << 20).encode()
            with open(settings_file, "r+b") as f:
                f.write(text)
                f.truncate()
            edits.append(text)
        real_replace(src, dst)

    monkeypatch.setattr(local_file.os, "replace", edit_in_place_then_replace)
    LocalConfigMapFile(settings_file).apply(_add_entry("bert"))
    data = _data(settings_file)
    assert data["handKey"] == "in place"
    assert "bert" in json.loads(data[WHITELIST_KEY])


def test_a_torn_in_place_edit_refuses_the_write_and_leaves_the_file_alone(
    settings_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = local_file._prepared_temp
    torn = b"apiVersion: v1\nkind: ConfigMap\ndata: {automaticallyDeployed"

    def prepare_then_tear(path: Path, content: bytes) -> Path:
        tmp = real(path, content)
        path.write_bytes(torn)  # someone's `cat > file`, half way
        return tmp

    monkeypatch.setattr(local_file, "_prepared_temp", prepare_then_tear)
    with pytest.raises(SettingsError, match="fix the file"):
        LocalConfigMapFile(settings_file).apply(_add_entry("bert"))
    assert settings_file.read_bytes() == torn


@pytest.mark.parametrize(
    ("ours", "theirs", "clash"),
    [
        ({"a": "1"}, {"b": "2"}, []),
        ({WHITELIST_KEY: '{"x": 1}'}, {WHITELIST_KEY: '{"y": 1}'}, []),
        ({WHITELIST_KEY: '{"x": 1}'}, {WHITELIST_KEY: '{"x": 2}'}, [f"{WHITELIST_KEY}.x"]),
        ({WHITELIST_KEY: '{"x": 1}'}, {WHITELIST_KEY: "not json"}, [WHITELIST_KEY]),
        ({"a": "1"}, {"a": "2"}, ["a"]),
    ],
)
def test_edits_clash_only_on_the_same_key_or_whitelist_entry(
    ours: dict[str, str], theirs: dict[str, str], clash: list[str]
) -> None:
    base = {WHITELIST_KEY: "{}", "a": "0"}
    mine = changed_parts(base, {**base, **ours})
    other = changed_parts(base, {**base, **theirs})
    assert overlap(mine, other) == clash


# -- YAML nobody at zoo-ops wrote ----------------------------------------------------------------

BOMB = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 10)
)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (BOMB, "anchor bomb"),
        ("a: &a [*a]\n", "recursive alias"),
        ("a: &a {b: *a}\n", "recursive alias"),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        ("a: .inf\n", "not finite"),
        ("a: [1, -.inf]\n", "not finite"),
        ("a: .nan\n", "not finite"),
        ('a: "\\ud800"\n', "lone surrogate"),
        ('"\\udfff": 1\n', "lone surrogate"),
        ("a: " + "7" * 5000 + "\n", "cannot be read"),
        ("a: 2026-02-30\n", "cannot be read"),
        ("a: 1\na: 2\n", "duplicate key"),
        (b"a: \xff\xfe\n", "not UTF-8"),
        ("a: !!python/object:os.system x\n", "not valid YAML"),
    ],
)
def test_hostile_yaml_is_refused_in_one_line(text: str | bytes, why: str) -> None:
    with pytest.raises(DocumentRefused) as info:
        load_bounded(text)
    assert why in str(info.value) and "\n" not in str(info.value)
    str(info.value).encode("utf-8")  # printable: no surrogate in the message itself


def test_anchors_within_the_bound_still_load() -> None:
    # Anchors are ordinary YAML (a shared default block); only the expanded size is bounded.
    text = "defaults: &d {copy: true, cpu: 1}\niris: *d\nbert: {<<: *d, cpu: 2}\n"
    assert load_bounded(text) == {
        "defaults": {"copy": True, "cpu": 1},
        "iris": {"copy": True, "cpu": 1},
        "bert": {"copy": True, "cpu": 2},
    }
    six_levels = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 6)
    )
    assert load_bounded(six_levels, max_nodes=2_000_000)["a5"][9][9][9][9][9][9] == "x"
    with pytest.raises(DocumentRefused, match="past 100000 nodes"):
        load_bounded(six_levels)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_loads_or_is_refused_never_crashes(text: str) -> None:
    try:
        load_bounded(text)
    except DocumentRefused as exc:
        assert "\n" not in str(exc)


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_a_value_round_trips_unless_it_holds_a_non_finite_number_or_a_surrogate(
    value: Any,
) -> None:
    text = yaml.safe_dump(value, allow_unicode=False)
    if _has_non_finite(value):
        with pytest.raises(DocumentRefused, match="not finite"):
            load_bounded(text)
    else:
        assert load_bounded(text) == value


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_non_finite(v) for v in value)
    return False


def test_a_whitelist_file_with_a_bomb_is_one_line_from_the_store(settings_file: Path) -> None:
    settings_file.write_text(
        settings_file.read_text() + "".join(f"  {line}\n" for line in BOMB.splitlines())
    )
    with pytest.raises(SettingsError, match="anchor bomb") as info:
        LocalConfigMapFile(settings_file).read()
    assert "\n" not in str(info.value)


class _SurrogateStore(ConditionalStore):
    """A store whose API hands back a lone surrogate (a JSON ``\\ud800`` escape does)."""

    location = "ConfigMap baseten/settings (test)"

    def _read_state(self) -> tuple[SettingsSnapshot, object]:
        return SettingsSnapshot({"note": "caf\udce9"}, "1"), None

    def _replace(self, token: object, snapshot: SettingsSnapshot, new: dict[str, str]) -> str:
        raise AssertionError("nothing may be written")


def test_configmap_data_that_is_not_text_is_refused_by_every_store() -> None:
    store = _SurrogateStore()
    for attempt in (store.read, lambda: store.apply(lambda d: {**d, "x": "1"})):
        with pytest.raises(SettingsError, match="not valid UTF-8 text") as info:
            attempt()
        str(info.value).encode("utf-8")
